"""Exact-likelihood and sampling properties of the autoregressive transformer."""

import itertools
import math

import numpy as np
import pytest
import torch

from molgen.models.autoregressive import collate_ids
from molgen.models.transformer import TransformerModel
from molgen.rowrandom import RowRandom
from molgen.tokenizers.smiles import SmilesTokenizer


def _tiny(max_len=4, d_model=16, positions="learned"):
    tok = SmilesTokenizer().fit(["CO", "OC", "CC"])  # vocabulary: 2 symbols + 4 specials
    torch.manual_seed(0)
    model = TransformerModel.build({"max_len": max_len, "backbone": {"name": "transformer", "args": dict(
        d_model=d_model, n_layers=2, n_heads=2, dropout=0.0, positions=positions)}},
        representation=tok).double()
    # Larger weights than the 0.02 init so the distribution is far from uniform.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(25.0) if p.dim() >= 2 else None
    return tok, model.eval()


POSITIONS = pytest.mark.parametrize("positions", ["learned", "rope"])


@POSITIONS
def test_probabilities_over_all_strings_sum_to_one(positions):
    tok, model = _tiny(max_len=4, positions=positions)
    symbols = [i for i in range(tok.vocab_size) if i not in tok.special_ids]
    strings = [list(s) for n in range(0, 5) for s in itertools.product(symbols, repeat=n)]
    batch = collate_ids(strings, tok)
    with torch.no_grad():
        ll = model.log_likelihood(batch)
    assert len(strings) == 31
    # every string of length 0..max_len has a finite probability (a model that forced the end token
    # one symbol early would still sum to 1 over the shorter strings)
    assert torch.isfinite(ll).all()
    total = float(torch.logsumexp(ll, 0).exp())
    assert abs(total - 1.0) < 1e-5
    # and the distribution is not trivially uniform
    assert float(ll.max() - ll.min()) > 1.0


def test_likelihood_is_per_molecule_sum_including_eos():
    tok, model = _tiny()
    batch = collate_ids([tok.encode("CO"), tok.encode("C")], tok)
    tok_lp, mask = model.token_log_probs(batch)
    assert mask.sum(1).tolist() == [3, 2]  # two symbols + EOS, one symbol + EOS; pad excluded
    assert torch.allclose(model.log_likelihood(batch), tok_lp.sum(1))


@POSITIONS
def test_sampled_log_likelihood_matches_scoring_the_samples(positions):
    tok, model = _tiny(positions=positions)
    res = model.sample(200, seed=1)
    ids = [tok.tokens_to_ids(tok.tokenize(s)) for s in res.smiles]
    ll = model.log_likelihood(collate_ids(ids, tok)).detach().numpy()
    np.testing.assert_allclose(res.log_likelihood, ll, atol=1e-8)


@POSITIONS
def test_kv_cache_sampling_equals_full_recomputation(positions):
    _tok, model = _tiny(max_len=6, positions=positions)

    def draw(use_cache):
        with torch.no_grad():
            return model._sample(300, temperature=1.0, rng=RowRandom(7, range(300)), use_cache=use_cache)

    (a, lla), (b, llb) = draw(True), draw(False)
    assert a == b
    np.testing.assert_allclose(lla.numpy(), llb.numpy(), atol=1e-9)


def test_samples_follow_the_model_distribution():
    tok, model = _tiny(max_len=2)
    res = model.sample(4000, seed=0)
    freq = {s: c / 4000 for s, c in zip(*np.unique(res.smiles, return_counts=True))}
    for s, p in freq.items():
        ids = tok.tokens_to_ids(tok.tokenize(s))
        expected = math.exp(float(model.log_likelihood(collate_ids([ids], tok))[0].detach()))
        assert abs(p - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000) + 1e-3


def test_seed_makes_sampling_reproducible_and_temperature_changes_it():
    _tok, model = _tiny()
    assert model.sample(50, seed=3).smiles == model.sample(50, seed=3).smiles
    assert model.sample(50, seed=3).smiles != model.sample(50, seed=4).smiles
    cold = model.sample(500, seed=3, temperature=0.3)
    hot = model.sample(500, seed=3, temperature=1.0)
    assert len(set(cold.smiles)) < len(set(hot.smiles))
    with pytest.raises(ValueError):
        model.sample(5, temperature=0.0)


def test_eos_is_forced_at_max_len_and_specials_never_sampled():
    _tok, model = _tiny(max_len=3)
    res = model.sample(500, seed=0)
    assert max(len(s) for s in res.smiles) <= 3
    assert all("<" not in s for s in res.smiles)


def test_uses_gelu_not_relu():
    _, model = _tiny()
    kinds = {type(m).__name__ for m in model.modules()}
    assert "GELU" in kinds and "ReLU" not in kinds


def test_rotary_positions_round_trip_and_unknown_positions_are_refused(tmp_path):
    import molgen
    from molgen.errors import ConfigError

    tok, model = _tiny(positions="rope")
    assert not any("pos_emb" in n for n, _ in model.named_parameters())  # no learned position table
    model.float().save_pretrained(tmp_path / "m")
    back = molgen.load(tmp_path / "m")
    batch = collate_ids([tok.encode("CO"), tok.encode("OCC")], tok)
    assert torch.allclose(back.log_likelihood(batch), model.log_likelihood(batch))
    with pytest.raises((ConfigError, ValueError), match="accepted: learned, rope"):
        TransformerModel.build({"max_len": 4, "backbone.positions": "alibi"}, representation=tok)


def test_a_kekule_smiles_model_trains_samples_and_scores_with_its_label(tiny_train_smiles, tmp_path):
    import molgen
    from molgen.chem import canonicalize

    from .conftest import TINY_MODEL_ARGS

    m = molgen.train("transformer", data=tiny_train_smiles, out=tmp_path / "k", representation="smiles-kekule",
                     max_steps=20, val_size=20, batch_size=32, lr=3e-3, warmup_steps=2, progress=False,
                     precision="32-true", num_threads=1, model_args=TINY_MODEL_ARGS["transformer"])
    res = m.sample(20, seed=0)
    assert len(res.smiles) == 20 and not any(ch in "cnos" for s in res.smiles for ch in s if ch.islower())
    rows = ["c1ccccc1O", "not a smiles", "Oc1ccccc1"]
    df = m.score(rows)
    assert df.status.tolist() == ["ok", "invalid_smiles", "ok"]
    assert df.likelihood_object.iloc[0] == "canonical-kekule-smiles" and df.likelihood_kind.iloc[0] == "exact"
    assert df.log_likelihood[0] == df.log_likelihood[2]  # one string per molecule, however it was written
    assert molgen.load(tmp_path / "k").likelihood_label().object == "canonical-kekule-smiles"
    assert df.canonical[0] == df.canonical[2] == canonicalize("OC1=CC=CC=C1") == "Oc1ccccc1"  # rows stay aromatic


def test_the_fitted_representation_is_cached_per_data_split(tiny_train_smiles, tmp_path, monkeypatch):
    import molgen
    from molgen.tokenizers.smiles import KekuleSmilesTokenizer

    from .conftest import TINY_MODEL_ARGS

    calls = []
    fit = KekuleSmilesTokenizer.fit
    monkeypatch.setattr(KekuleSmilesTokenizer, "fit", lambda self, *a, **k: calls.append(1) or fit(self, *a, **k))
    opts = dict(representation="smiles-kekule", max_steps=1, val_size=20, batch_size=32, progress=False,
                precision="32-true", num_threads=1, model_args=TINY_MODEL_ARGS["transformer"])
    data = tiny_train_smiles[:300]
    a = molgen.train("transformer", data=data, out=tmp_path / "a", seed=3, **opts)
    b = molgen.train("transformer", data=data, out=tmp_path / "b", seed=3, **opts)
    assert len(calls) == 1 and a.tokenizer.itos == b.tokenizer.itos  # the second run reloaded the fit
    molgen.train("transformer", data=data, out=tmp_path / "c", seed=4, **opts)  # another split: fitted again
    assert len(calls) == 2
