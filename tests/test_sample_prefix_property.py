"""Per-molecule deterministic sampling (issue 22): molecule i of ``sample(n, seed=s)`` depends on (s, i) only.

So ``sample(20, seed=s)`` is the first 20 of ``sample(50, seed=s)`` whatever the batch size, the shard
count or the process count; the sampler still follows the model (chi-square on an enumerable language);
``constrain`` edits the next-token distribution of the autoregressive sampler without changing the
reported log p; fragment options go to :mod:`molgen.fragments`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chi2 as chi2_dist

import molgen.models.base
from molgen.errors import CapabilityError, ConfigError
from molgen.models.autoregressive import collate_ids
from molgen.registry import MODELS
from molgen.rowrandom import RowRandom
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS
from .test_contract import TINY_CONDITION

#: every family, and every family that can be conditioned once more as "<name>+cond"
FAMILIES = MODELS.names() + [f"{n}+cond" for n in MODELS.names()
                             if "condition" in MODELS.get(n).config_class.field_names()]


@pytest.fixture(scope="module")
def tokenizer(tiny_train_smiles):
    return SmilesTokenizer().fit(tiny_train_smiles)


def _build(name: str, tokenizer):
    torch.manual_seed(0)
    family, _, cond = name.partition("+")
    args = {**TINY_MODEL_ARGS[family], "max_len": 40, **({"condition": TINY_CONDITION} if cond else {})}
    cls = MODELS.get(family)
    nested = {}
    if "autoencoder" in cls.nested:  # the GAN decodes with a tiny VAE
        nested["autoencoder"] = MODELS.get("vae").build({**TINY_MODEL_ARGS["vae"], "max_len": 40},
                                                         representation=tokenizer).eval()
    return cls.build(args, representation=None if nested else tokenizer, **nested).eval()


@pytest.fixture(scope="module", params=FAMILIES)
def model(request, tokenizer):
    return _build(request.param, tokenizer)


def _opts(model) -> dict:
    """Guided conditional sampling for the conditional variants (the hardest path: a doubled batch)."""
    return {"condition": {"qed": 0.8}, "guidance": 2.0} if "conditional" in model.capabilities else {}


def test_a_sample_is_the_prefix_of_a_larger_sample(model):
    o = _opts(model)
    small = model.sample(20, seed=3, **o).smiles
    large = model.sample(50, seed=3, **o).smiles
    assert small == large[:20]
    assert model.sample(50, seed=3, batch_size=7, **o).smiles == large  # batch_size 7 vs the default 1024
    assert model.sample(20, seed=3, batch_size=1, **o).smiles == small
    assert model.sample(30, seed=3, start=20, batch_size=4, **o).smiles == large[20:]
    assert model.sample(20, seed=4, **o).smiles != small  # another seed, other molecules


def test_sampled_log_likelihoods_are_per_row_too(model):
    a, b = model.sample(10, seed=8), model.sample(25, seed=8, batch_size=6)
    if a.log_likelihood is None:
        pytest.skip(f"{model.name} returns no log p with its samples")
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood[:10], rtol=0, atol=1e-5)


def test_sharded_sampling_is_the_unsharded_sample(model):
    from molgen.sharding import sample_sharded

    o = _opts(model)
    whole = model.sample(23, seed=11, **o)
    for n_shards, bs in ((3, 5), (4, 1024)):
        df = sample_sharded(model, 23, seed=11, n_shards=n_shards, batch_size=bs, **o)
        assert df.smiles.tolist() == whole.smiles
        assert df.canonical.tolist() == whole.canonical


def test_start_is_checked(tokenizer):
    m = _build("transformer", tokenizer)
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="start must be"):
            m.sample(3, seed=0, start=bad)
    assert m.sample(3, seed=0, start=5).info["start"] == 5


def test_vae_decode_draws_each_row_from_its_own_streams(tokenizer):
    vae = _build("vae", tokenizer)
    z = torch.randn(12, vae.d_z, generator=torch.Generator().manual_seed(0))
    assert vae.decode(z[:5], seed=1).smiles == vae.decode(z, seed=1).smiles[:5]
    assert vae.decode(z, seed=1).smiles != vae.decode(z, seed=2).smiles


# --- the random numbers --------------------------------------------------------------------------

def test_row_random_is_keyed_by_seed_and_row_only():
    a = RowRandom(5, range(10, 20))
    b = RowRandom(5, range(0, 30))
    torch.testing.assert_close(a.uniform(3, 4), b.uniform(3, 4)[10:20])
    torch.testing.assert_close(a.subset([2, 5]).normal(1, 3), a.normal(1, 3)[[2, 5]])
    assert not torch.equal(a.uniform(3), a.uniform(4))  # streams are independent draws
    assert not torch.equal(a.uniform(3), RowRandom(6, range(10, 20)).uniform(3))
    p = torch.softmax(torch.randn(10, 3, 7, generator=torch.Generator().manual_seed(0)), -1)
    per_position = a.categorical(p, 2)
    assert per_position.shape == (10, 3)
    assert torch.equal(per_position[:, 0], a.categorical(p[:, 0], 2))  # position j: column j of the stream
    assert torch.equal(a.categorical(p[:, :1], 2)[:, 0], a.categorical(p[:, 0], 2))


def test_categorical_never_draws_an_impossible_index():
    rng = RowRandom(0, range(5000))
    probs = torch.tensor([0.0, 0.3, 0.0, 0.7, 0.0]).expand(5000, 5)
    idx = rng.categorical(probs, 0)
    assert set(idx.tolist()) == {1, 3}
    assert abs(float((idx == 3).float().mean()) - 0.7) < 0.03


# --- the autoregressive sampler still follows the model --------------------------------------------

def _tiny_language():
    from .test_transformer import _tiny

    tok, model = _tiny(max_len=2)  # 2 symbols, strings of length 0..2: 7 strings
    symbols = [i for i in range(tok.vocab_size) if i not in tok.special_ids]
    strings = [list(s) for n in range(3) for s in itertools.product(symbols, repeat=n)]
    return tok, model, strings


def _tempered_log_p(model, strings, temperature: float) -> np.ndarray:
    """log q_T(x) = sum_t log softmax(log p(. | x_<t) / T)[x_t]: what ancestral sampling at T draws."""
    batch = collate_ids(strings, model.tokenizer)
    ids = batch["ids"]
    with torch.no_grad():
        logits = model.net(ids[:, :-1])
        pos = torch.arange(ids.shape[1] - 1)
        lp = torch.log_softmax(model.strings.log_probs(logits, pos[None, :]) / temperature, -1)
        tok_lp = lp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    mask = ids[:, 1:] != model.tokenizer.pad_id
    return tok_lp.masked_fill(~mask, 0.0).sum(1).double().numpy()


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_string_sampler_matches_the_model_by_chi_square(temperature):
    tok, model, strings = _tiny_language()
    p = np.exp(_tempered_log_p(model, strings, temperature))
    assert abs(p.sum() - 1) < 1e-6
    n = 6000
    res = model.sample(n, seed=0, temperature=temperature)
    index = {tok.decode(s): i for i, s in enumerate(strings)}
    counts = np.bincount([index[s] for s in res.smiles], minlength=len(strings))
    expected = p * n
    keep = expected > 5  # the rare strings pooled into one cell (left out if still rare)
    cells_obs = np.append(counts[keep], counts[~keep].sum())
    cells_exp = np.append(expected[keep], expected[~keep].sum())
    cells_obs, cells_exp = cells_obs[cells_exp > 5], cells_exp[cells_exp > 5]
    assert len(cells_exp) >= 4
    chi2 = float(((cells_obs - cells_exp) ** 2 / cells_exp).sum())
    assert chi2_dist.sf(chi2, len(cells_exp) - 1) > 1e-3, (counts, expected)


# --- constrained decoding ----------------------------------------------------------------------------

def test_constrain_edits_the_draw_but_not_the_reported_log_p():
    tok, model, _ = _tiny_language()
    o, c = tok.tokens_to_ids(["O"])[0], tok.tokens_to_ids(["C"])[0]
    seen = []

    def no_oxygen_start_with_carbon(t, prev, log_probs):
        seen.append((t, prev.clone()))
        out = log_probs.clone()
        out[:, o] = float("-inf")
        if t == 0:
            out[:, :] = float("-inf")
            out[:, c] = 0.0
        return out

    n = 400
    with torch.no_grad():
        strings, ll = model._sample(n, temperature=1.0, rng=RowRandom(0, range(n)), constrain=no_oxygen_start_with_carbon)
    assert all(s.startswith("C") and "O" not in s for s in strings)
    assert set(strings) == {"C", "CC"}
    assert seen[0][0] == 0 and bool((seen[0][1] == tok.bos_id).all())  # prev: BOS at t = 0
    assert seen[1][0] == 1 and bool((seen[1][1] == c).all())
    scored = model.log_likelihood(collate_ids([tok.encode(s) for s in strings], tok)).detach()
    np.testing.assert_allclose(ll.numpy(), scored.numpy(), atol=1e-6)  # the model's own log p, not the constrained
    # constrained rows are per-row draws too
    with torch.no_grad():
        first, _ = model._sample(7, temperature=1.0, rng=RowRandom(0, range(7)), constrain=no_oxygen_start_with_carbon)
    assert first == strings[:7]


def test_constrain_passes_through_the_guided_transformer(tokenizer):
    m = _build("transformer+cond", tokenizer)
    banned = tokenizer.tokens_to_ids(["C"])[0]

    def no_carbon(t, prev, log_probs):
        return log_probs.masked_fill(torch.arange(log_probs.shape[1]) == banned, float("-inf"))

    for guidance in (None, 2.0):
        with torch.no_grad():
            strings, _ = m._sample(30, temperature=1.0, rng=RowRandom(0, range(30)), condition={"qed": 0.8},
                                   guidance=guidance, constrain=no_carbon)
        assert len(strings) == 30 and not any("C" in tokenizer.tokenize(s) for s in strings)


@pytest.mark.parametrize("name", [n for n in MODELS.names() if n not in ("transformer", "diffusion")])
def test_families_without_token_constraints_refuse_them(name, tokenizer):
    m = _build(name, tokenizer)
    with pytest.raises(CapabilityError, match="constraint"):
        m._sample(2, temperature=1.0, rng=RowRandom(0, range(2)), condition=None, guidance=None,
                  constrain=lambda t, prev, lp: lp)


def test_fragment_options_go_to_constrained_sample(tokenizer, monkeypatch):
    calls = []
    # models.base binds molgen.fragments.constrained_sample at import: replace it there
    monkeypatch.setattr(molgen.models.base, "constrained_sample",
                        lambda model, n, **kw: calls.append((model, n, kw)) or "result")
    m = _build("transformer", tokenizer)
    assert m.sample(5, scaffold="c1ccccc1*", seed=2, batch_size=3) == "result"
    assert calls == [(m, 5, dict(scaffold="c1ccccc1*", linker=None, extend=None, temperature=1.0, seed=2,
                                 batch_size=3, progress=False))]
    with pytest.raises(ConfigError, match="cannot be combined"):
        m.sample(5, extend="CC*", start=3)
