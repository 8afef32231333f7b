"""Block diffusion (``block_size``): autoregressive over blocks, masked diffusion inside a block, with
the autoregressive shift; initialisation from a trained transformer; the KV-cache block sampler;
per-row random streams and canvas infilling for every diffusion sampler.

The tiny language of tests/test_diffusion.py (strings over {C, O}, max_len 3, canvas N = 4) is small
enough to enumerate the block model's exact probability of every string (per block, the average over
all reveal orders inside the block) and its exact ELBO (all masks of every block).
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats

from molgen.errors import CapabilityError, ConfigError
from molgen.registry import MODELS
from molgen.rowrandom import RowRandom
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS

LANG = {"C": 0.10, "CC": 0.20, "CO": 0.30, "CCO": 0.25, "OCO": 0.15}
ALL_STRINGS = ["".join(p) for n in range(4) for p in itertools.product("CO", repeat=n)]  # 15, incl. ""
N_TINY = 4


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_tok():
    return SmilesTokenizer().fit(list(LANG))


def _build(tok, max_len: int = 3, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return MODELS.get("diffusion").build({"backbone.d_model": 32, "backbone.n_layers": 2, "backbone.n_heads": 2,
                                          "backbone.dropout": 0.0, "max_len": max_len, **kw},
                                         representation=tok).eval()


def _scrambled(model, std: float = 0.2, seed: int = 1):
    """Random weights far from the near-uniform init: peaked, position-dependent conditionals."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def _batch(model, strings):
    return model.collate([model.tokenizer.encode(s) for s in strings])


@torch.no_grad()
def block_exact_log_p(model, strings) -> np.ndarray:
    """log p(string) of the block model with T -> infinity inside each block: per block, the log of the
    mean over all reveal orders of the product of conditionals, summed over blocks."""
    x = _batch(model, strings)["ids"]
    B = x.shape[0]
    rows = torch.arange(B)
    total = torch.zeros(B, dtype=torch.float64)
    for lo, hi in model.blocks:
        per_order = []
        for order in itertools.permutations(range(lo, hi)):
            z = x.clone()
            z[:, lo:hi] = model.mask_id
            lp = torch.zeros(B, dtype=torch.float64)
            for pos in order:
                lp += model._block_log_probs(z, x)[rows, pos, x[:, pos]].double()
                z[:, pos] = x[:, pos]
            per_order.append(lp)
        total += torch.logsumexp(torch.stack(per_order), 0) - math.log(math.factorial(hi - lo))
    return total.numpy()


# --- block size 1 is the transformer -----------------------------------------------------------------
@pytest.fixture(scope="module")
def block1(trained_transformer):
    m = MODELS.get("diffusion").build({**TINY_MODEL_ARGS["diffusion"], "block_size": 1,
                                       "max_len": trained_transformer.max_len},
                                      representation=trained_transformer.tokenizer)
    report = m.init_from_transformer(trained_transformer)
    assert report["partially_copied"] == ["net.tok_emb.weight"] and not report["skipped"]
    return m.eval()


def test_block_size_one_is_the_transformer_likelihood_and_samples(block1, trained_transformer, tiny_train_smiles):
    tf, m = trained_transformer.eval(), block1
    mols = tiny_train_smiles[:12]
    a, b = tf.score(mols), m.score(mols)
    assert (b.status == "ok").all() and b.likelihood_kind[0] == "elbo-4-b1"
    np.testing.assert_allclose(b.log_likelihood.to_numpy(), a.log_likelihood.to_numpy(), rtol=0, atol=1e-4)
    # the 2N-stream forward that b > 1 uses, with one-token groups, is the causal forward b = 1 uses
    x = _batch(m, mols[:4])["ids"]
    N = m.canvas_len
    with torch.no_grad():
        xin = m._inputs(x)
        causal = m.net(xin)[..., :m.V]
        general = m.net(torch.cat([xin, xin], 1), position_ids=torch.cat([torch.arange(N)] * 2),
                        attn_mask=m._training_mask(N, 1))[:, :N, :m.V]
    torch.testing.assert_close(general, causal, rtol=0, atol=1e-4)
    for temperature in (1.0, 0.7):
        s_tf = tf.sample(150, seed=3, temperature=temperature, batch_size=64).smiles
        s_m = m.sample(150, seed=3, temperature=temperature, batch_size=64).smiles
        assert s_m == s_tf
    assert m.last_sample_stats["nfe_per_row"] <= m.canvas_len


# --- the tiny language: a proper distribution, an exact-over-blocks bound, its estimator ----------------
@pytest.mark.parametrize("b", range(1, N_TINY + 1))
def test_every_block_size_is_a_proper_distribution_bounded_by_its_elbo(tiny_tok, b):
    m = _scrambled(_build(tiny_tok, block_size=b))
    logp = block_exact_log_p(m, ALL_STRINGS)
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-5)
    assert np.exp(logp).max() < 0.6  # not degenerate
    elbo = m.exact_elbo(_batch(m, ALL_STRINGS)).numpy()
    assert (elbo <= logp + 1e-5).all()
    if b == 1:  # one target per block: the bound is the exact autoregressive log-likelihood
        np.testing.assert_allclose(elbo, logp, rtol=0, atol=1e-5)
    else:
        assert (elbo < logp - 1e-4).any()
    assert m.likelihood_label().kind == f"elbo-16-b{b}"
    assert m.likelihood_label("elbo-64").kind == f"elbo-64-b{b}"
    assert m.likelihood_label(f"elbo-8-b{b}").kind == f"elbo-8-b{b}"
    assert m.likelihood_label("elbo").kind == f"elbo-16-b{b}"
    for bad in (f"elbo-8-b{b + 1}", "elbo-0", "exact", f"elbo-b{b}x"):
        with pytest.raises(ConfigError, match=f"'elbo-K-b{b}'"):
            m.likelihood_label(bad)
    # the stratified estimator is unbiased: averaged over salts it is the exact ELBO
    x = _batch(m, list(LANG))
    with torch.no_grad():
        est = []
        for salt in range(40):
            m.config.mc_seed = salt
            est.append(m.log_likelihood(x, kind="elbo-4").numpy())
    m.config.mc_seed = 0
    est = np.stack(est)
    exact = m.exact_elbo(x).numpy()
    sem = est.std(0) / math.sqrt(len(est)) + 1e-6
    assert np.all(np.abs(est.mean(0) - exact) < 4 * sem + 1e-4)


def test_training_loss_is_the_per_position_bound_and_learns(tiny_tok):
    m = _build(tiny_tok, block_size=2)
    x = _batch(m, ["CCO", "OCO", "C", ""])
    m.train()
    loss, neg = m.training_loss(x)
    assert loss.shape == () and neg.shape == (4,) and float(loss.detach()) == pytest.approx(float(neg.mean()) / N_TINY)
    loss.backward()
    assert m.net.tok_emb.weight.grad is not None
    m.eval()


def test_mc_bound_is_deterministic_per_molecule(smiles_tokenizer, tiny_train_smiles):
    m = MODELS.get("diffusion").build({**TINY_MODEL_ARGS["diffusion"], "max_len": 60, "block_size": 5},
                                      representation=smiles_tokenizer).eval()
    mols = tiny_train_smiles[:6]
    together = m.score(mols, kind="elbo-3").log_likelihood.to_numpy()
    alone = np.array([m.score([s], kind="elbo-3").log_likelihood[0] for s in mols[:3]])
    dup = m.score([mols[2], mols[2], mols[0]], kind="elbo-3").log_likelihood.to_numpy()
    np.testing.assert_allclose(alone, together[:3], atol=1e-4, rtol=0)
    np.testing.assert_allclose(dup, together[[2, 2, 0]], atol=1e-4, rtol=0)
    assert np.isfinite(together).all() and (together < 0).all()
    assert m.score(mols[:1]).likelihood_kind[0] == "elbo-4-b5"


# --- the KV-cache block sampler ------------------------------------------------------------------------
def _chi2(counts: Counter, probs: dict[str, float], n: int) -> float:
    keys = [k for k, v in probs.items() if v * n >= 5]
    obs = [counts[k] for k in keys] + [n - sum(counts[k] for k in keys)]
    exp = [probs[k] * n for k in keys] + [n - sum(probs[k] * n for k in keys)]
    return float(stats.chisquare(obs, exp).pvalue)


@pytest.mark.parametrize("b", [2, 3, N_TINY])
def test_kv_cache_block_sampler_draws_from_the_model(tiny_tok, b):
    m = _scrambled(_build(tiny_tok, block_size=b)).set_sampling(sampler="exact")
    n = 4000
    res = m.sample(n, seed=0)
    model_p = dict(zip(ALL_STRINGS, np.exp(block_exact_log_p(m, ALL_STRINGS))))
    counts = Counter(res.smiles)
    assert set(counts) <= set(ALL_STRINGS)
    assert _chi2(counts, model_p, n) > 0.01
    tv = 0.5 * sum(abs(counts[s] / n - model_p[s]) for s in ALL_STRINGS)
    assert tv < 0.05
    assert m.last_sample_stats["nfe_per_row"] <= N_TINY and m.last_sample_stats["steps_per_block"] == b


@pytest.mark.parametrize("b", [None, 1, 2, 3, N_TINY])
def test_left_to_right_sampler_draws_from_its_exact_likelihood(tiny_tok, b):
    """``left-to-right`` reveals the first free position per call: a proper distribution whose exact
    log-likelihood (kind ``exact-ltr[-bB]``, b passes) the samples follow; b = 1 it is the block model's
    exact autoregressive likelihood. MDLM (b = None) too."""
    m = _scrambled(_build(tiny_tok, block_size=b, sampler="left-to-right"))
    tail = "" if b is None else f"-b{b}"
    assert m.likelihood_label().kind == f"exact-ltr{tail}"  # the default follows the configured sampler
    assert m.likelihood_label("elbo").kind == f"elbo-16{tail}"
    x = _batch(m, ALL_STRINGS)
    with torch.no_grad():
        ltr = m.log_likelihood(x).numpy()
    assert np.exp(ltr).sum() == pytest.approx(1.0, abs=1e-5)
    assert np.exp(ltr).max() < 0.6
    if b == 1:
        np.testing.assert_allclose(ltr, block_exact_log_p(m, ALL_STRINGS), rtol=0, atol=1e-5)
    elif b is not None:  # another order than the random one the bound describes: a different distribution
        assert np.abs(ltr - block_exact_log_p(m, ALL_STRINGS)).max() > 1e-3
    n = 4000
    counts = Counter(m.sample(n, seed=0).smiles)
    p = np.exp(ltr.astype(np.float64))
    probs = dict(zip(ALL_STRINGS, p / p.sum()))
    assert set(counts) <= set(ALL_STRINGS) and _chi2(counts, probs, n) > 0.01
    assert 0.5 * sum(abs(counts[s] / n - probs[s]) for s in ALL_STRINGS) < 0.05
    scored = m.score(["CCO", "OCO"])
    assert (scored.likelihood_kind == f"exact-ltr{tail}").all()
    np.testing.assert_allclose(scored.log_likelihood.to_numpy(), ltr[[ALL_STRINGS.index("CCO"),
                                                                    ALL_STRINGS.index("OCO")]], atol=1e-5)


@pytest.mark.parametrize("b", [None, 3])
def test_confidence_sampler_reveals_the_most_confident_position_first(tiny_tok, b):
    m = _scrambled(_build(tiny_tok, block_size=b, sampler="confidence"))
    masked = torch.tensor([[True, False, True, True]])
    logp = torch.log_softmax(torch.tensor([[[0.0, 5.0], [9.0, 0.0], [0.0, 1.0], [3.0, 0.0]]]), -1)
    assert int(m._next_position(masked, logp, torch.rand(1, 4))) == 0  # the free one with the top probability
    m.set_sampling(sampler="left-to-right")
    assert int(m._next_position(masked, logp, torch.rand(1, 4))) == 0
    m.set_sampling(sampler="confidence")
    res = m.sample(300, seed=0)
    assert set(res.smiles) <= set(ALL_STRINGS) and len(set(res.smiles)) > 3  # drawn, not the mode
    assert m.sample(100, seed=0, batch_size=7).smiles == res.smiles[:100]
    assert m.likelihood_label().kind == ("elbo-16" if b is None else "elbo-16-b3")  # no tractable likelihood


@pytest.mark.parametrize("b", [1, 3])
def test_fused_cache_path_gives_the_uncached_log_probs(smiles_tokenizer, tiny_train_smiles, b):
    from molgen.nn.transformer import KVCache

    m = _scrambled(MODELS.get("diffusion").build({**TINY_MODEL_ARGS["diffusion"], "max_len": 40, "block_size": b},
                                                 representation=smiles_tokenizer), std=0.1).eval()
    mols = [s for s in tiny_train_smiles if len(smiles_tokenizer.encode(s)) <= 40][:5]
    x = _batch(m, mols)["ids"]
    g = torch.Generator().manual_seed(0)
    z = x.masked_fill(torch.rand(x.shape, generator=g) < 0.5, m.mask_id)
    with torch.no_grad():
        full = m._block_log_probs(z, x)  # the 2N forward, every block at once
        cache = KVCache(m.net.cfg, len(x), x.device, torch.float32)
        for j, (lo, hi) in enumerate(m.blocks):
            if j % 3 == 2:  # skip a block: the next call appends two blocks of clean tokens at once
                continue
            canvas = torch.cat([x[:, :lo], z[:, lo:hi], torch.full_like(x[:, hi:], m.mask_id)], 1)
            lp = m._cached_group_log_probs(cache, canvas, lo, hi)
            torch.testing.assert_close(lp, full[:, lo:hi], rtol=0, atol=2e-4)
            if b == 1:  # the one-token group is the clean token: it stays in the cache (the transformer's)
                assert cache.length == hi
                continue
            assert cache.length == lo
            again = m._cached_group_log_probs(cache, canvas, lo, hi)  # a later step of the same block
            torch.testing.assert_close(again, lp, rtol=0, atol=1e-5)


@pytest.mark.parametrize("variant", ["mdlm", "mdlm-exact", "b1", "b2", "bN", "b3-exact", "b4-steps1"])
def test_first_20_of_50_and_any_batch_size(smiles_tokenizer, variant):
    kw = {"mdlm": {}, "mdlm-exact": {"sampler": "exact"}, "b1": {"block_size": 1}, "b2": {"block_size": 2},
          "bN": {"block_size": 21}, "b3-exact": {"block_size": 3, "sampler": "exact"},
          "b4-steps1": {"block_size": 4, "steps_per_block": 1}}[variant]
    m = MODELS.get("diffusion").build({**TINY_MODEL_ARGS["diffusion"], "max_len": 20, **kw},
                                      representation=smiles_tokenizer).eval()
    _scrambled(m, std=0.15)
    a = m.sample(50, seed=11).smiles
    assert m.sample(20, seed=11).smiles == a[:20]
    assert m.sample(50, seed=11, batch_size=7).smiles == a
    assert m.sample(30, seed=11, start=20).smiles == a[20:]
    assert m.sample(20, seed=12).smiles != a[:20]


def test_canvas_infilling_never_changes_fixed_positions(smiles_tokenizer):
    N = 21
    g = torch.Generator().manual_seed(0)
    eos = smiles_tokenizer.eos_id
    for kw in ({}, {"sampler": "exact"}, {"block_size": 4}, {"block_size": 3, "sampler": "exact"},
               {"block_size": 5, "steps_per_block": 2}):
        m = _scrambled(MODELS.get("diffusion").build({**TINY_MODEL_ARGS["diffusion"], "max_len": N - 1, **kw},
                                                     representation=smiles_tokenizer), std=0.15).eval()
        n = 24
        canvas = torch.full((n, N), m.mask_id, dtype=torch.long)
        fixed = torch.rand(n, N, generator=g) < 0.3
        fixed[:, :6] = torch.rand(n, 6, generator=g) < 0.6
        sym = torch.tensor([i for i in range(m.V) if bool(m._is_symbol[i])])
        canvas[fixed] = sym[torch.randint(len(sym), (int(fixed.sum()),), generator=g)]
        canvas[:4, 10:] = eos  # some rows end at a fixed <eos>
        fixed[:4, 10:] = True
        canvas[:, -1], fixed[:, -1] = m.mask_id, False
        out = m._sample_canvases(n, temperature=1.0, rng=RowRandom(0, range(n)), canvas=canvas)
        assert torch.equal(out[fixed], canvas[fixed]), kw
        assert not bool((out == m.mask_id).any())
        assert (out[:4, 10:] == eos).all()
        strings, ll = m._sample(n, temperature=1.0, rng=RowRandom(0, range(n)), canvas=canvas)
        assert ll is None and strings == m.decode(out)
    with pytest.raises(ConfigError, match="canvas must be"):
        m._sample(2, temperature=1.0, rng=RowRandom(0, range(2)), canvas=torch.zeros(2, 5, dtype=torch.long))
    bad = torch.full((2, N), m.mask_id, dtype=torch.long)
    bad[0, 3] = smiles_tokenizer.bos_id
    with pytest.raises(ConfigError, match="cannot be fixed"):
        m._sample(2, temperature=1.0, rng=RowRandom(0, range(2)), canvas=bad)
    bad = torch.full((2, N), m.mask_id, dtype=torch.long)
    bad[0, -1] = sym[0]
    with pytest.raises(ConfigError, match="always <eos>"):
        m._sample(2, temperature=1.0, rng=RowRandom(0, range(2)), canvas=bad)
    with pytest.raises(CapabilityError, match="canvas"):
        m._sample(2, temperature=1.0, rng=RowRandom(0, range(2)), constrain=lambda t, prev, lp: lp)


def test_options_steps_per_block_and_their_errors(smiles_tokenizer):
    def build(**kw):
        return MODELS.get("diffusion").build({**TINY_MODEL_ARGS["diffusion"], "max_len": 20, **kw},
                                             representation=smiles_tokenizer).eval()

    m = build(block_size=4)
    assert m.sampling_steps == 4 and build(block_size=4, steps_per_block=2).sampling_steps == 2
    blocks = math.ceil(21 / 4)
    for steps in (1, 2, 4):
        m.set_sampling(steps=steps)
        m.sample(30, seed=1)
        st = m.last_sample_stats
        assert st["steps_per_block"] == steps and st["block_size"] == 4
        assert st["nfe_per_row"] <= steps * blocks
    m.set_sampling()
    assert m.sampling_steps == 4
    for bad, match in (({"block_size": 0}, "block_size must be"), ({"block_size": 22}, "block_size must be"),
                       ({"block_size": True}, "block_size must be"),
                       ({"steps_per_block": 2}, "steps_per_block needs block_size"),
                       ({"block_size": 2, "steps_per_block": 0}, "steps_per_block must be"),
                       ({"block_size": 2, "sampling_steps": 4}, "steps_per_block")):
        with pytest.raises(ConfigError, match=match):
            build(**bad)
    assert build(block_size=21).blocks == [(0, 21)] and build(block_size=8).blocks == [(0, 8), (8, 16), (16, 21)]


# --- initialisation from a transformer, persistence ---------------------------------------------------
def test_init_from_refuses_a_non_transformer_or_another_vocabulary(tiny_tok, smiles_tokenizer):
    m = _build(tiny_tok, block_size=2)
    with pytest.raises(ConfigError, match="must be a trained transformer"):
        m.init_from_transformer(_build(tiny_tok))
    other = MODELS.get("transformer").build({**TINY_MODEL_ARGS["transformer"], "max_len": 3},
                                            representation=smiles_tokenizer)
    with pytest.raises(ConfigError, match="representation"):
        m.init_from_transformer(other)
    longer = MODELS.get("transformer").build({**TINY_MODEL_ARGS["transformer"], "max_len": 5},
                                             representation=tiny_tok)
    with pytest.raises(ConfigError, match="max_len"):
        m.init_from_transformer(longer)


def test_init_from_via_the_cli_records_metadata_copies_weights_and_round_trips(saved, trained_transformer,
                                                                               tiny_train_smiles, tmp_path):
    import molgen
    from molgen.cli.main import main

    data = tmp_path / "train.smi"
    data.write_text("\n".join(tiny_train_smiles) + "\n")
    out = tmp_path / "bd"
    args = ["train", "-q", "--model", "diffusion", "--init-from", str(saved), "--data", str(data), "--out", str(out),
            "--max-steps", "1", "--batch-size", "16", "--lr", "1e-9", "--precision", "32-true", "--set", "block_size=4",
            "--set", "elbo_samples=2"]
    assert main(args) == 0
    meta = json.loads((out / "metadata.json").read_text())
    init = meta["init_from"]
    assert init["source"] == str(saved) and init["model"] == "transformer"
    assert init["likelihood"]["kind"] == "exact" and init["data_hash"]
    assert init["partially_copied"] == ["net.tok_emb.weight"] and not init["skipped"]
    assert init["counts"]["copied"] == len(init["copied"]) > 10
    m = molgen.load(out)
    tf = trained_transformer
    assert m.config.block_size == 4 and m.max_len == tf.max_len
    assert m.tokenizer.state_key == tf.tokenizer.state_key  # the source's representation, not a new fit
    assert m.config.backbone == tf.config.backbone  # the source's architecture
    w_src, w = tf.net.tok_emb.weight.detach(), m.net.tok_emb.weight.detach()
    torch.testing.assert_close(w[:tf.tokenizer.vocab_size], w_src, rtol=0, atol=1e-5)  # lr ~0: still the copy
    torch.testing.assert_close(m.net.blocks[0].attn.qkv.weight.detach(), tf.net.blocks[0].attn.qkv.weight.detach(),
                               rtol=0, atol=1e-5)
    # save / load round trip of a block model: the same bound and the same samples
    m.save_pretrained(tmp_path / "again")
    back = molgen.load(tmp_path / "again")
    mols = tiny_train_smiles[:6]
    np.testing.assert_array_equal(back.score(mols).log_likelihood.to_numpy(), m.score(mols).log_likelihood.to_numpy())
    assert back.sample(12, seed=2).smiles == m.sample(12, seed=2).smiles
    assert json.loads((tmp_path / "again" / "config.json").read_text())["likelihood"]["kind"] == "elbo-2-b4"
    # refused: a source that is not a transformer, another representation, a family that cannot start from one
    with pytest.raises(ConfigError, match="init_from takes a trained transformer"):
        molgen.train("diffusion", data=tiny_train_smiles, out=tmp_path / "x1", init_from=str(out), max_steps=1,
                     progress=False, precision="32-true")
    with pytest.raises(ConfigError, match="its representation is smiles"):
        molgen.train("diffusion", data=tiny_train_smiles, out=tmp_path / "x2", init_from=str(saved), max_steps=1,
                     representation="selfies", progress=False, precision="32-true")
    with pytest.raises(ConfigError, match="init_from is for --model diffusion"):
        molgen.train("transformer", data=tiny_train_smiles, out=tmp_path / "x3", init_from=str(saved), max_steps=1,
                     progress=False, precision="32-true")
    assert not (tmp_path / "x1").exists() and not (tmp_path / "x2").exists()


def test_left_to_right_block_one_completes_fragment_templates_as_the_transformer(block1, trained_transformer):
    """A diffusion model that writes left to right takes the transformer's template completion: with the
    transformer's weights (b = 1) it draws the transformer's constrained molecules, row for row."""
    from molgen.fragments.completion import TemplateCompletion
    from molgen.fragments.constraints import parse_constraint
    from molgen.fragments.sampling import strategy_for

    m = block1.set_sampling(sampler="left-to-right")
    try:
        assert isinstance(strategy_for(m, parse_constraint(scaffold="c1ccccc1")), TemplateCompletion)
        a = trained_transformer.eval().sample(24, scaffold="c1ccccc1", seed=5)
        b = m.sample(24, scaffold="c1ccccc1", seed=5)
        assert b.smiles == a.smiles and b.sampler == a.sampler
        assert list(b.to_frame().contains_fragments) == list(a.to_frame().contains_fragments)
    finally:
        m.set_sampling()
    with pytest.raises(CapabilityError, match="left-to-right"):
        m._sample(2, temperature=1.0, rng=RowRandom(0, range(2)), constrain=lambda t, prev, lp: lp)


def test_samples_carry_log_q_only_under_its_own_label(tiny_tok):
    """A model configured left to right returns exact-ltr log q with its samples; one switched to it by
    set_sampling keeps its elbo label, so its samples carry none (no mislabelled numbers)."""
    m = _scrambled(_build(tiny_tok, block_size=2, sampler="left-to-right"))
    res = m.sample(30, seed=1)
    assert res.likelihood.kind == "exact-ltr-b2" and res.log_likelihood is not None
    x = _batch(m, res.smiles)
    with torch.no_grad():
        np.testing.assert_allclose(res.log_likelihood, m.log_likelihood(x).numpy(), atol=1e-4)
    other = _scrambled(_build(tiny_tok, block_size=2)).set_sampling(sampler="left-to-right")
    assert other.sample(5, seed=1).log_likelihood is None and other.likelihood_label().kind == "elbo-16-b2"
