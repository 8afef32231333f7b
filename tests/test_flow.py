"""The categorical flow: invertibility and log-determinants of every bijection, the bound's properties
(<= 0, importance weighting, normalisation over an enumerable language), determinism, training."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2 as chi2_dist

from molgen.errors import ConfigError
from molgen.models.flow import FlowModel
from molgen.nn.flows import ActNorm, AffineCoupling, CategoricalGaussians, Flow, FlowStep, InvertibleLinear
from molgen.rowrandom import RowRandom
from molgen.tokenizers.selfies import SelfiesTokenizer
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.3) -> None:
    """Move every parameter away from its (often identity) initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def _brute_force_logdet(layer, x: torch.Tensor) -> torch.Tensor:
    """log |det dy/dx| per sample from the full Jacobian of the flattened map."""
    out = []
    for b in range(x.shape[0]):
        xb = x[b:b + 1]

        def f(flat, xb=xb):
            return layer(flat.view_as(xb))[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, xb.reshape(-1))
        out.append(torch.linalg.slogdet(jac.double())[1])
    return torch.stack(out)


def _bijections():
    torch.manual_seed(0)
    an = ActNorm(4)
    an.train()
    an(torch.randn(5, 3, 4) * 2 + 1)  # data-dependent initialisation
    coupling = AffineCoupling(4, max_positions=3, d_model=8, n_layers=1, n_heads=2, clamp=2.0)
    step = FlowStep(4, max_positions=3, d_model=8, n_layers=1, n_heads=2, clamp=2.0)
    flow = Flow(4, max_positions=3, n_blocks=3, d_model=8, n_layers=1, n_heads=2)
    layers = {"actnorm": an, "invertible-linear": InvertibleLinear(4), "coupling": coupling, "step": step,
              "flow": flow}
    for i, layer in enumerate(layers.values()):
        _perturb(layer, i)
        layer.eval()
    return layers


@pytest.mark.parametrize("name", ["actnorm", "invertible-linear", "coupling", "step", "flow"])
def test_each_bijection_inverts_and_its_logdet_matches_the_jacobian(name):
    layer = _bijections()[name]
    x = torch.randn(3, 3, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, logdet = layer(x)
        back = layer.inverse(y)
    assert (y - x).abs().max() > 1e-2  # not the identity: the check below means something
    assert (back - x).abs().max() < 1e-4
    brute = _brute_force_logdet(layer, x)
    assert logdet.dtype == torch.float64
    assert logdet.abs().max() > 1e-2 or name == "invertible-linear"
    np.testing.assert_allclose(logdet.numpy(), brute.numpy(), atol=2e-4, rtol=1e-4)


def test_actnorm_initialises_from_data_only_in_training():
    an = ActNorm(3)
    x = torch.randn(64, 5, 3) * 3 + 2
    an.eval()
    assert torch.equal(an(x)[0], x)  # eval before training: identity, no initialisation
    an.train()
    y, _ = an(x)
    flat = y.reshape(-1, 3)
    assert flat.mean(0).abs().max() < 1e-4 and (flat.std(0, correction=0) - 1).abs().max() < 1e-3
    before = an.log_scale.detach().clone()
    an(x * 10)
    assert torch.equal(before, an.log_scale.detach())  # initialised once


def test_coupling_scales_are_soft_clamped():
    c = AffineCoupling(4, max_positions=3, d_model=8, n_layers=1, n_heads=2, clamp=1.5)
    with torch.no_grad():
        c.net.out.bias.fill_(100.0)  # a runaway conditioner
    _, logdet = c(torch.randn(2, 3, 4))
    assert torch.isfinite(logdet).all() and logdet.max() <= 1.5 * 3 * 2 + 1e-6


def test_bayes_decoder_is_a_distribution_for_every_point():
    deq = CategoricalGaussians(5, 3, 4)
    lp = deq.posterior_log_probs(torch.randn(7, 4, 3) * 5)
    np.testing.assert_allclose(lp.exp().sum(-1).detach().numpy(), 1.0, atol=1e-5)


# --- the model ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def selfies_tokenizer(tiny_train_smiles):
    return SelfiesTokenizer().fit(tiny_train_smiles)


@pytest.fixture(scope="module")
def flow(selfies_tokenizer):
    torch.manual_seed(0)
    m = FlowModel.build({**TINY_MODEL_ARGS["flow"], "max_len": 60}, representation=selfies_tokenizer)
    _perturb(m.flow, 3, 0.05)
    return m.eval()


def _batch(model, smiles):
    return model.collate([model.featurize(s) for s in smiles])


def test_padding_rule_one_padded_string_per_molecule(flow, tiny_train_smiles):
    items = [flow.featurize(s) for s in tiny_train_smiles[:5]]
    cats = flow.collate(items)["cats"]
    assert cats.shape == (5, flow.max_len + 1)
    for row, item in zip(cats, items):
        n = len(item)
        assert (row[:n] > 0).all() and (row[n:] == 0).all()  # symbols, then <eos> (category 0) to the end
        assert flow.cat_to_id[row[:n]].tolist() == item


def test_whole_model_flow_inverts(flow, tiny_train_smiles):
    b = _batch(flow, tiny_train_smiles[:4])
    v, _ = flow.dequantizer.sample(b["cats"], torch.randn(*b["cats"].shape, flow.config.dim))
    with torch.no_grad():
        z, _ = flow.flow(v)
        assert (flow.flow.inverse(z) - v).abs().max() < 1e-4


def test_bounds_are_negative_ordered_and_rise_with_k(flow, tiny_train_smiles):
    b = _batch(flow, tiny_train_smiles[:24])
    with torch.no_grad():
        elbo = flow.log_likelihood(b, kind="dequantized-bound")
        iw_same = flow.log_likelihood(b, kind=f"iw-{flow.config.bound_samples}")
        iw = {k: flow.log_likelihood(b, kind=f"iw-{k}") for k in (1, 4, 32)}
    assert (elbo < 0).all() and (iw[32] < 0).all()
    # same samples: log-mean-exp >= mean (Jensen), for every molecule
    assert (iw_same >= elbo - 1e-9).all() and (iw_same > elbo + 1e-6).any()
    means = [float(iw[k].mean()) for k in (1, 4, 32)]
    assert means[0] < means[1] < means[2]
    assert flow.likelihood_label().kind == "iw-4" and flow.likelihood_label().object == "canonical-selfies"
    assert FlowModel.likelihood_kind(flow.config, "iw") == "iw-4"


def test_bound_is_deterministic_per_molecule(flow, tiny_train_smiles):
    mols = tiny_train_smiles[:6]
    for kind in ("dequantized-bound", "iw-3"):
        together = flow.score(mols, kind=kind).log_likelihood.to_numpy()
        alone = np.array([flow.score([m], kind=kind).log_likelihood[0] for m in mols[:3]])
        dup = flow.score([mols[2], mols[0], mols[2]], kind=kind).log_likelihood.to_numpy()
        np.testing.assert_allclose(alone, together[:3], atol=1e-6, rtol=0)
        np.testing.assert_allclose(dup, together[[2, 0, 2]], atol=1e-6, rtol=0)
        assert len(set(np.round(together, 6))) == len(mols)  # different molecules, different numbers


def test_unsupported_kinds_and_options_list_what_is_accepted(flow):
    with pytest.raises(ConfigError, match=r"dequantized-bound.*iw-K"):
        flow.score(["CCO"], kind="bits-per-dim")
    with pytest.raises(ConfigError, match="iw-K"):
        flow.score(["CCO"], kind="iw-0")
    with pytest.raises(ConfigError, match="dim must be"):
        FlowModel.build({"dim": 1}, representation=flow.representation)
    with pytest.raises(ConfigError, match="divisible"):
        FlowModel.build({"cond_d_model": 10, "cond_heads": 4}, representation=flow.representation)


def test_one_shot_sampling_is_valid_selfies_and_temperature_is_labelled(flow):
    res = flow.sample(40, seed=0)
    assert res.sampler == "ancestral" and res.log_likelihood is None
    assert res.validity > 0.8  # SELFIES: every non-empty symbol string is a molecule
    cold = flow.sample(10, seed=0, temperature=0.5)
    assert cold.sampler == "ancestral-T0.5"
    assert flow.sample(40, seed=0).smiles == res.smiles


# --- the bound on an enumerable language ----------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_language_flow():
    """A flow over padded strings of length 3 on 3 symbols (4 categories: 64 strings), briefly trained."""
    tok = SmilesTokenizer().fit(["CON"])
    torch.manual_seed(0)
    m = FlowModel.build({"max_len": 2, "dim": 2, "n_blocks": 2, "cond_d_model": 16, "cond_layers": 1,
                         "cond_heads": 2, "init_scale": 0.5}, representation=tok)
    data = ["C", "CC", "CO", "O", "OC", "N", "CN"]
    batch = m.collate([m.featurize(s) for s in data])["cats"]
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for _ in range(150):
        eps = torch.randn(*batch.shape, m.config.dim)
        loss = -m.log_weights(batch, eps).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def test_exp_bound_summed_over_every_string_is_at_most_one(tiny_language_flow):
    m = tiny_language_flow
    K, L = m.n_categories, m.length
    cats = torch.tensor(list(itertools.product(range(K), repeat=L)))
    assert cats.shape == (K ** L, L)
    seeds = list(range(len(cats)))
    with torch.no_grad():
        w = m.sample_log_weights(cats, seeds, 256)  # [256, K^L]
    bound = w.mean(0)
    total = float(torch.logsumexp(bound, 0).exp())
    assert 0.2 < total <= 1.0  # a bound, and not a vacuous one after training
    # the importance-weighted estimate of each P(x) is unbiased: the masses must sum to about 1,
    # which catches a missing or doubled change-of-variables / entropy term in either direction
    mass = float(torch.logsumexp(torch.logsumexp(w, 0) - math.log(w.shape[0]), 0).exp())
    assert 0.9 < mass < 1.1
    assert (bound < 0).all()


def _well_formed(cats: torch.Tensor) -> torch.Tensor:
    end = cats == 0
    return ~end[:, 0] & end[:, -1] & (end[:, :-1] <= end[:, 1:]).all(1)


def test_well_formed_decoder_is_a_distribution_over_well_formed_strings_only(tiny_language_flow):
    m = tiny_language_flow
    K, L, d = m.n_categories, m.length, m.config.dim
    cats = torch.tensor(list(itertools.product(range(K), repeat=L)))
    ok = _well_formed(cats)
    assert 0 < int(ok.sum()) < len(cats)
    with torch.no_grad():
        for v in torch.randn(5, L, d) * 2:
            lp = m.decoder_log_prob(v.expand(len(cats), L, d), cats)
            assert torch.isinf(lp[~ok]).all() and torch.isfinite(lp[ok]).all()
            assert float(torch.logsumexp(lp, 0).exp()) == pytest.approx(1.0, abs=1e-6)
            # the renormalisation only adds mass: every well-formed string gains -log Z >= 0
            m.config.decoder = "independent"
            try:
                plain = m.decoder_log_prob(v.expand(len(cats), L, d), cats)
            finally:
                m.config.decoder = "well-formed"
            assert float(torch.logsumexp(plain, 0).exp()) == pytest.approx(1.0, abs=1e-6)
            assert (lp[ok] >= plain[ok] - 1e-9).all()


def test_well_formed_sampler_draws_from_the_decoder(tiny_language_flow):
    """Sampled padded strings are all well-formed and follow p(x|v) at a fixed v (chi-square)."""
    m = tiny_language_flow
    K, L, d = m.n_categories, m.length, m.config.dim
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, L, d, generator=g).expand(20000, L, d)
    with torch.no_grad():
        v = m.flow.inverse(z[:1])
        cats = m.id_to_cat[m.decode_base(z, RowRandom(0, range(len(z))))]
        assert _well_formed(cats).all()
        strings = torch.tensor(list(itertools.product(range(K), repeat=L)))
        strings = strings[_well_formed(strings)]
        p = m.decoder_log_prob(v.expand(len(strings), L, d), strings).exp().numpy()
    index = {tuple(s.tolist()): i for i, s in enumerate(strings)}
    counts = np.bincount([index[tuple(c.tolist())] for c in cats], minlength=len(strings))
    expected = p * len(cats)
    keep = expected > 5
    chi2 = float((((counts - expected) ** 2 / expected)[keep]).sum())
    assert chi2_dist.sf(chi2, int(keep.sum()) - 1) > 1e-3


def test_sampler_survives_a_certain_end_symbol(selfies_tokenizer):
    """Where <eos> is certain the symbols' probabilities underflow to zero; sampling must not fail."""
    m = FlowModel.build({**TINY_MODEL_ARGS["flow"], "max_len": 12}, representation=selfies_tokenizer).eval()
    with torch.no_grad():
        m.dequantizer.mu[0] = 0.0
        m.dequantizer.mu[1:] = 300.0  # every symbol absurdly far from v = f^-1(0)
        ids = m.decode_base(torch.zeros(4, m.length, m.config.dim), RowRandom(0, range(4)))
    assert ids.shape == (4, m.length)


def test_independent_decoder_is_kept_and_the_choice_is_checked(selfies_tokenizer):
    m = FlowModel.build({**TINY_MODEL_ARGS["flow"], "max_len": 20, "decoder": "independent"},
                        representation=selfies_tokenizer)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        cats = m.id_to_cat[m.decode_base(torch.randn(200, m.length, m.config.dim, generator=g), RowRandom(0, range(200)))]
    assert not _well_formed(cats).all()  # the plain product puts mass on malformed strings
    with pytest.raises(ConfigError, match="well-formed"):
        FlowModel.build({**TINY_MODEL_ARGS["flow"], "max_len": 20, "decoder": "bayes"},
                        representation=selfies_tokenizer)


# --- training through molgen.train ----------------------------------------------------------------

def test_trains_on_selfies_through_molgen_train_and_round_trips(tmp_path, tiny_train_smiles):
    import molgen

    args = {**TINY_MODEL_ARGS["flow"], "cond_d_model": 32}
    m0 = FlowModel.build({**args, "max_len": 60}, representation=SelfiesTokenizer().fit(tiny_train_smiles))
    before = float(m0.score(tiny_train_smiles[-50:]).log_likelihood.mean())
    model = molgen.train("flow", representation="selfies", data=tiny_train_smiles, out=tmp_path / "f",
                         max_steps=120, val_every=60, val_size=50, batch_size=32, lr=3e-3, warmup_steps=10,
                         progress=False, precision="32-true", num_threads=1, model_args=args, max_len=60)
    assert all(bool(a.initialized) for a in model.modules() if isinstance(a, ActNorm))
    after = float(model.score(tiny_train_smiles[-50:]).log_likelihood.mean())
    assert after > before + 10  # nats per molecule
    res = model.sample(100, seed=0)
    assert res.validity > 0.9
    back = molgen.load(tmp_path / "f")
    assert back.sample(20, seed=1).smiles == model.sample(20, seed=1).smiles
    np.testing.assert_allclose(back.score(tiny_train_smiles[:5]).log_likelihood,
                               model.score(tiny_train_smiles[:5]).log_likelihood)


def test_non_finite_loss_stops_training_naming_the_step_and_keeps_the_checkpoint(tmp_path, tiny_train_smiles):
    import molgen

    class Exploding(FlowModel):
        def training_step(self, batch, batch_idx):
            if self.trainer.global_step == 7:
                with torch.no_grad():
                    self.dequantizer.mu.fill_(float("nan"))
            return super().training_step(batch, batch_idx)

    with pytest.raises(FloatingPointError, match=r"non-finite training loss .* at step 7 .*last good checkpoint \(step 4\)"):
        molgen.train(Exploding, data=tiny_train_smiles[:200], out=tmp_path / "x", max_steps=20, val_every=4,
                     val_size=20, batch_size=16, progress=False, precision="32-true", num_threads=1,
                     model_args=TINY_MODEL_ARGS["flow"], max_len=60)
    ckpt = torch.load(tmp_path / "x" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "x" / "model.safetensors").exists()  # no broken model directory
