"""The argmax flow (issue 21): a partition of R^d into one region per category, a learned context-dependent
q(v|x) thresholded into x's region (exact log q), a deterministic decoder that recovers x from every
v ~ q(v|x), the bound on an enumerable language, and no weight decay on the dequantizer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from molgen.errors import ConfigError
from molgen.models.flow import FlowModel
from molgen.nn.flows import ArgmaxDequantizer, binary_codes, partition_width
from molgen.rowrandom import RowRandom
from molgen.tokenizers.selfies import SelfiesTokenizer
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS

PARTITIONS = ["binary", "onehot"]
ARGMAX_ARGS = {**TINY_MODEL_ARGS["flow"], "dequantizer": "argmax", "q_d_model": 16, "q_heads": 2, "q_couplings": 2}


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


# --- the partition ---------------------------------------------------------------------------------

@pytest.mark.parametrize("k", list(range(2, 70)))
def test_binary_partition_has_exactly_k_regions_covering_every_code(k):
    w = partition_width("binary", k)
    assert w == max(2, math.ceil(math.log2(k)))
    signs, mask, code_to_cat = binary_codes(k, w)
    assert sorted(set(code_to_cat.tolist())) == list(range(k))  # every code used, every category reached
    # a category's region: the codes whose fixed bits agree with its signs
    for code in range(2 ** w):
        bits = torch.tensor([(code >> j) & 1 for j in range(w)]) * 2 - 1
        owners = [c for c in range(k) if ((bits == signs[c]) | (mask[c] == 0)).all()]
        assert owners == [int(code_to_cat[code])]


def _deq(partition: str, k: int = 7, positions: int = 5, seed: int = 0, scale: float = 0.3) -> ArgmaxDequantizer:
    torch.manual_seed(seed)
    d = ArgmaxDequantizer(k, positions, partition, d_model=16, n_layers=1, n_heads=2, mlp_ratio=2, n_couplings=2,
                          clamp=2.0, init_scale=1.0)
    _perturb(d, seed + 1, scale)  # move the (identity-initialised) couplings and the mean/scale head
    return d.eval()


@pytest.mark.parametrize("partition", PARTITIONS)
def test_decoder_recovers_x_from_every_sample_of_q(partition):
    """The point of the argmax flow: v ~ q(v|x) always decodes to x (no decoding loss)."""
    k, positions = 7, 5
    deq = _deq(partition, k, positions)
    g = torch.Generator().manual_seed(3)
    cats = torch.randint(0, k, (4000, positions), generator=g)
    with torch.no_grad():
        for scale in (1.0, 3.0):  # wide noise too: far from the region's boundary and near it
            v, logq = deq.sample(cats, scale * torch.randn(*cats.shape, deq.dim, generator=g))
            assert torch.isfinite(logq).all()
            assert torch.equal(deq.decode(v), cats)


@pytest.mark.parametrize("partition", PARTITIONS)
def test_log_q_is_exact_change_of_variables(partition):
    """log q(v|x) = log N(eps) - log |det dv/deps| with the Jacobian of the whole map eps -> v."""
    k, positions = 5, 3
    deq = _deq(partition, k, positions, seed=4, scale=0.1)
    g = torch.Generator().manual_seed(5)
    cats = torch.randint(0, k, (3, positions), generator=g)
    eps = torch.randn(3, positions, deq.dim, generator=g, dtype=torch.float64)
    deq = deq.double()
    for b in range(3):
        x = cats[b:b + 1]

        def f(flat, x=x):
            return deq.sample(x, flat.view(1, positions, deq.dim))[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, eps[b].reshape(-1))
        expected = (-0.5 * eps[b] ** 2 - 0.5 * math.log(2 * math.pi)).sum() - torch.linalg.slogdet(jac)[1]
        with torch.no_grad():
            _, logq = deq.sample(x, eps[b:b + 1])
        assert float(logq[0]) == pytest.approx(float(expected), abs=1e-6)


# --- the model ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def selfies_tokenizer(tiny_train_smiles):
    return SelfiesTokenizer().fit(tiny_train_smiles)


@pytest.fixture(scope="module", params=PARTITIONS)
def argmax_flow(request, selfies_tokenizer):
    torch.manual_seed(0)
    m = FlowModel.build({**ARGMAX_ARGS, "partition": request.param, "max_len": 60},
                        representation=selfies_tokenizer)
    _perturb(m.flow, 3, 0.05)
    return m.eval()


def _batch(model, smiles):
    return model.collate([model.featurize(s) for s in smiles])


def test_model_recovers_real_molecules_and_bounds_are_ordered(argmax_flow, tiny_train_smiles):
    m = argmax_flow
    b = _batch(m, tiny_train_smiles[:32])
    assert b["cats"].shape == (32, m.max_len)  # max_len positions: no always-<eos> last position
    assert m.width == partition_width(m.config.partition, m.n_categories)
    with torch.no_grad():
        v, _ = m.dequantizer.sample(b["cats"], torch.randn(*b["cats"].shape, m.width))
        assert torch.equal(m.dequantizer.decode(v), b["cats"])
        assert torch.equal(m.argmax_decode(v), b["cats"])  # the well-formed decoder (default) too
        assert (m.decoder_log_prob(v, b["cats"]) == 0).all()
        elbo = m.log_likelihood(b, kind="dequantized-bound")
        iw_same = m.log_likelihood(b, kind=f"iw-{m.config.bound_samples}")
        iw = {k: float(m.log_likelihood(b, kind=f"iw-{k}").mean()) for k in (1, 4, 32)}
    assert (elbo < 0).all() and (iw_same >= elbo - 1e-9).all()
    assert iw[1] < iw[4] < iw[32]
    assert m.likelihood_label().kind == "iw-4" and m.likelihood_label().object == "canonical-selfies"


def test_sampling_decodes_v_deterministically(argmax_flow):
    m = argmax_flow
    res = m.sample(40, seed=0)
    assert res.sampler == "ancestral" and res.log_likelihood is None
    assert m.sample(40, seed=0).smiles == res.smiles
    assert m.sample(15, seed=0).smiles == res.smiles[:15]  # per-molecule streams
    z = torch.randn(6, m.length, m.width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cats = m.argmax_decode(m.flow.inverse(z))
        assert torch.equal(m.decode_base(z, RowRandom(0, range(6))), m.cat_to_id[cats])
        assert m.well_formed(cats).all()  # the default decoder gives well-formed strings only
        m.config.decoder = "independent"
        try:
            regions = m.dequantizer.decode(m.flow.inverse(z))
            assert torch.equal(m.decode_base(z, RowRandom(0, range(6))), m.cat_to_id[regions])
        finally:
            m.config.decoder = "well-formed"


def test_dequantizer_parameters_get_no_weight_decay(selfies_tokenizer):
    """Issue 21 acceptance: no optimizer group may decay a dequantizer (q(v|x)) parameter."""
    for args in ({**TINY_MODEL_ARGS["flow"]}, {**ARGMAX_ARGS, "partition": "binary"},
                 {**ARGMAX_ARGS, "partition": "onehot"}):
        m = FlowModel.build({**args, "max_len": 30}, representation=selfies_tokenizer)
        m.optim.weight_decay = 0.1
        opt = m.configure_optimizers()["optimizer"]
        deq = {id(p) for p in m.dequantizer.parameters()}
        assert deq and len(deq) == len({n for n, _ in m.named_parameters() if n.startswith("dequantizer.")})
        seen = set()
        for group in opt.param_groups:
            for p in group["params"]:
                seen.add(id(p))
                if id(p) in deq:
                    assert group["weight_decay"] == 0, "a dequantizer parameter is weight-decayed"
        assert deq <= seen  # every dequantizer parameter is trained
        assert any(g["weight_decay"] > 0 and g["params"] for g in opt.param_groups)  # the flow still is


def test_argmax_options_are_checked_listing_accepted_values(selfies_tokenizer):
    with pytest.raises(ConfigError, match="gaussian, argmax"):
        FlowModel.build({"dequantizer": "softmax"}, representation=selfies_tokenizer)
    with pytest.raises(ConfigError, match="binary, onehot"):
        FlowModel.build({"dequantizer": "argmax", "partition": "ternary"}, representation=selfies_tokenizer)
    with pytest.raises(ConfigError, match="q_couplings"):
        FlowModel.build({"dequantizer": "argmax", "q_couplings": -1}, representation=selfies_tokenizer)
    with pytest.raises(ConfigError, match="divisible"):
        FlowModel.build({"dequantizer": "argmax", "q_d_model": 10, "q_heads": 4}, representation=selfies_tokenizer)


# --- the bound on an enumerable language ----------------------------------------------------------

def _tiny_language_flow(partition: str, decoder: str) -> FlowModel:
    """Padded strings of length 2 on 3 symbols + <eos> (4 categories: 16 strings), briefly trained."""
    tok = SmilesTokenizer().fit(["CON"])
    torch.manual_seed(0)
    m = FlowModel.build({"max_len": 2, "dequantizer": "argmax", "partition": partition, "decoder": decoder,
                         "n_blocks": 2, "cond_d_model": 16, "cond_layers": 1, "cond_heads": 2, "q_d_model": 16,
                         "q_heads": 2, "q_couplings": 1}, representation=tok)
    data = ["C", "CC", "CO", "O", "OC", "N", "CN"]
    batch = m.collate([m.featurize(s) for s in data])["cats"]
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(150):
        loss = -m.log_weights(batch, torch.randn(*batch.shape, m.width)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


@pytest.mark.parametrize("partition", PARTITIONS)
def test_argmax_bound_sums_to_at_most_one_and_the_masses_to_one(partition):
    """Independent decoder: P is a distribution over all K^L padded strings (the regions tile R^(L x d)),
    so the bounds sum to <= 1 and the unbiased importance-weighted masses to about 1."""
    m = _tiny_language_flow(partition, "independent")
    K, L = m.n_categories, m.length
    cats = torch.tensor(list(itertools.product(range(K), repeat=L)))
    with torch.no_grad():
        w = m.sample_log_weights(cats, list(range(len(cats))), 256)  # [256, K^L]
    bound = w.mean(0)
    assert torch.isfinite(w).all() and (bound < 0).all()
    total = float(torch.logsumexp(bound, 0).exp())
    assert 0.2 < total <= 1.0
    mass = float(torch.logsumexp(torch.logsumexp(w, 0) - math.log(w.shape[0]), 0).exp())
    assert 0.9 < mass < 1.1
    # the 7 trained strings got more than their uniform share (7/16) of it
    data = m.collate([m.featurize(s) for s in ["C", "CC", "CO", "O", "OC", "N", "CN"]])["cats"]
    index = [{tuple(c.tolist()): i for i, c in enumerate(cats)}[tuple(c.tolist())] for c in data]
    assert float(torch.logsumexp(torch.logsumexp(w[:, index], 0) - math.log(w.shape[0]), 0).exp()) > 0.5


@pytest.mark.parametrize("partition", PARTITIONS)
def test_well_formed_argmax_decoder_projects_onto_well_formed_strings(partition):
    """Well-formed decoder: p(x|v) = 1[x = the nearest well-formed string to v], a distribution over
    well-formed strings (>= 1 symbol, then <eos> to the end): every v decodes to exactly one of them, the
    others get -inf, and the well-formed strings' bounds sum to <= 1."""
    m = _tiny_language_flow(partition, "well-formed")
    K, L, d = m.n_categories, m.length, m.width
    cats = torch.tensor(list(itertools.product(range(K), repeat=L)))
    ok = m.well_formed(cats)
    assert 0 < int(ok.sum()) < len(cats)
    with torch.no_grad():
        w = m.sample_log_weights(cats, list(range(len(cats))), 64)
        assert torch.isinf(w[:, ~ok]).all() and torch.isfinite(w[:, ok]).all()
        assert float(torch.logsumexp(w.mean(0)[ok], 0).exp()) <= 1.0
        for v in torch.randn(50, L, d) * 2:
            lp = m.decoder_log_prob(v.expand(len(cats), L, d), cats)
            assert int(torch.isfinite(lp).sum()) == 1 and bool(ok[torch.isfinite(lp)].all())
        # the projection keeps a v that already decodes to a well-formed string where it is
        v = torch.randn(2000, L, d) * 2
        region = m.dequantizer.decode(v)
        inside = m.well_formed(region)
        assert inside.any() and torch.equal(m.argmax_decode(v)[inside], region[inside])


@pytest.mark.parametrize("partition", PARTITIONS)
def test_end_costs_are_squared_distances_to_the_regions(partition):
    """The well-formed decoder's distances to <eos>'s region and to the nearest symbol region, against a
    numerical projection (SLSQP) onto each region."""
    from scipy.optimize import minimize

    deq = _deq(partition, k=6, positions=2, seed=7)
    v = torch.randn(3, 2, deq.dim, generator=torch.Generator().manual_seed(8)) * 2
    d_end, d_sym, best = deq.end_costs(v)
    for b, t in itertools.product(range(3), range(2)):
        x = v[b, t].double().numpy()

        def dist(c, x=x):
            if partition == "onehot":
                cons = [{"type": "ineq", "fun": lambda w, i=i: w[c] - w[i]} for i in range(len(x)) if i != c]
            else:
                cons = [{"type": "ineq", "fun": lambda w, j=j: float(deq.signs[c, j]) * w[j]}
                        for j in range(len(x)) if deq.mask[c, j] > 0]
            return minimize(lambda w: ((w - x) ** 2).sum(), x.copy(), constraints=cons, method="SLSQP",
                            options={"ftol": 1e-12, "maxiter": 500}).fun

        dists = np.array([dist(c) for c in range(6)])
        assert float(d_end[b, t]) == pytest.approx(dists[0], abs=1e-6)
        assert float(d_sym[b, t]) == pytest.approx(dists[1:].min(), abs=1e-6)
        assert dists[int(best[b, t])] == pytest.approx(dists[1:].min(), abs=1e-6)


def test_bound_is_deterministic_per_molecule(argmax_flow, tiny_train_smiles):
    mols = tiny_train_smiles[:5]
    together = argmax_flow.score(mols, kind="iw-3").log_likelihood.to_numpy()
    alone = np.array([argmax_flow.score([m], kind="iw-3").log_likelihood[0] for m in mols[:2]])
    np.testing.assert_allclose(alone, together[:2], atol=1e-6, rtol=0)


# --- training through molgen.train ----------------------------------------------------------------

def test_argmax_flow_trains_through_molgen_train_and_round_trips(tmp_path, tiny_train_smiles):
    import molgen

    args = {**ARGMAX_ARGS, "cond_d_model": 32, "partition": "binary"}
    m0 = FlowModel.build({**args, "max_len": 60}, representation=SelfiesTokenizer().fit(tiny_train_smiles))
    before = float(m0.score(tiny_train_smiles[-50:]).log_likelihood.mean())
    model = molgen.train("flow", representation="selfies", data=tiny_train_smiles, out=tmp_path / "f",
                         max_steps=120, val_every=60, val_size=50, batch_size=32, lr=3e-3, warmup_steps=10,
                         progress=False, precision="32-true", num_threads=1, model_args=args, max_len=60)
    after = float(model.score(tiny_train_smiles[-50:]).log_likelihood.mean())
    assert after > before + 10  # nats per molecule
    res = model.sample(100, seed=0)
    assert res.validity > 0.5
    back = molgen.load(tmp_path / "f")
    assert back.sample(20, seed=1).smiles == model.sample(20, seed=1).smiles
    np.testing.assert_allclose(back.score(tiny_train_smiles[:5]).log_likelihood,
                               model.score(tiny_train_smiles[:5]).log_likelihood)
