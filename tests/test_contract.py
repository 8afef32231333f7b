"""The generator contract, for every registered model family (new families are picked up here)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from molgen.errors import CapabilityError, ConfigError, OptionError
from molgen.models.base import GenerativeModel
from molgen.models.config import ModelConfig
from molgen.registry import MODELS
from molgen.tokenizers.smiles import SmilesTokenizer

from .conftest import TINY_MODEL_ARGS


def test_every_registered_model_has_tiny_test_arguments():
    missing = set(MODELS.names()) - set(TINY_MODEL_ARGS)
    assert not missing, f"add {sorted(missing)} to TINY_MODEL_ARGS in tests/conftest.py"


@pytest.fixture(scope="module")
def tokenizer(tiny_train_smiles):
    return SmilesTokenizer().fit(tiny_train_smiles)


#: a fixed condition space (as ``molgen train --condition qed --condition logp`` would fit it)
TINY_CONDITION = {"names": ["qed", "logp"], "mean": [0.7, 2.5], "std": [0.1, 1.0], "lo": [0.2, -2.0],
                  "hi": [0.95, 6.0], "sources": ["rdkit", "rdkit"]}
#: every family, and every family that can be conditioned once more as "<name>+cond"
FAMILIES = MODELS.names() + [f"{n}+cond" for n in MODELS.names()
                             if "condition" in MODELS.get(n).config_class.field_names()]
#: configurations of one family that take other code paths: "<name>+<variant>[+cond]"
VARIANTS = {"block": {"block_size": 4},  # block diffusion (KV-cache sampler, exact-over-blocks bound)
            "block1": {"block_size": 1},  # the transformer's computation
            "blockN": {"block_size": 61},  # one block: the whole canvas (max_len 60)
            "block2ltr": {"block_size": 2, "sampler": "left-to-right"},  # the recipe: exact-ltr-b2 likelihood
            "ltr": {"sampler": "left-to-right"}}  # MDLM sampled left to right: exact-ltr likelihood
FAMILIES += ["diffusion+block", "diffusion+block+cond", "diffusion+block1", "diffusion+blockN", "diffusion+block2ltr",
             "diffusion+block2ltr+cond", "diffusion+ltr"]


@pytest.fixture(params=FAMILIES)
def model(request, tokenizer):
    torch.manual_seed(0)
    name, *variants = request.param.split("+")
    args = {**TINY_MODEL_ARGS[name], "max_len": 60, **({"condition": TINY_CONDITION} if "cond" in variants else {}),
            **{k: v for var in variants for k, v in VARIANTS.get(var, {}).items()}}
    cls = MODELS.get(name)
    nested = {}
    if "autoencoder" in cls.nested:  # a family that holds a trained autoencoder (the GAN) gets a tiny VAE
        nested["autoencoder"] = MODELS.get("vae").build({**TINY_MODEL_ARGS["vae"], "max_len": 60},
                                                         representation=tokenizer).eval()
    return cls.build(args, representation=None if nested else tokenizer, **nested).eval()


def test_conditional_models_sample_score_and_label_guidance(model, tiny_train_smiles):
    if "conditional" not in model.capabilities:
        pytest.skip("not conditional")
    c = {"qed": 0.8}
    plain = model.sample(6, seed=4, condition=c)
    assert plain.info["condition"] == c and plain.sampler == model.sampler_name
    # guidance 0 is the conditional model itself: the same draws under one seed
    assert model.sample(6, seed=4, condition=c, guidance=0).smiles == plain.smiles
    guided = model.sample(6, seed=4, condition=c, guidance=2.0)
    assert guided.sampler == f"{model.sampler_name}+cfg-w2" and guided.log_likelihood is None  # no tractable likelihood
    assert guided.info["guidance"] == 2.0
    with pytest.raises(ConfigError, match="conditioned on qed, logp"):
        model.sample(2, condition={"mw": 300})
    with pytest.raises(ConfigError, match="needs a condition"):
        model.sample(2, guidance=1.0)
    with pytest.raises(ConfigError, match=">= 0"):
        model.sample(2, condition=c, guidance=-1)
    with pytest.warns(UserWarning, match=r"outside the training range \[0.2, 0.95\]"):
        model.sample(2, condition={"qed": 1.0})  # 0.5 sd out: warned; 1 sd or more: refused
    if "log_likelihood" in model.capabilities:
        cond = model.score(tiny_train_smiles[:4], condition=c)
        uncond = model.score(tiny_train_smiles[:4])
        assert (cond.condition == "qed=0.8").all() and "condition" not in uncond
        assert np.isfinite(cond.log_likelihood).all()
        assert not np.allclose(cond.log_likelihood, uncond.log_likelihood)  # the condition is seen


def _has_ll(model) -> bool:
    return "log_likelihood" in model.capabilities


def test_sample_returns_n_strings_and_records_its_seed(model):
    res = model.sample(17, seed=3, batch_size=5)
    assert len(res.smiles) == len(res.canonical) == len(res.valid) == 17
    assert all(isinstance(s, str) for s in res.smiles)
    assert res.seed == 3 and res.temperature == 1.0 and res.sampler == model.sampler_name
    assert model.sampler_name == (model.config.sampler if model.name == "diffusion" else "ancestral")
    unseeded = model.sample(4)
    assert isinstance(unseeded.seed, int)
    assert model.sample(4, seed=unseeded.seed).smiles == unseeded.smiles  # the recorded seed reproduces


def test_same_seed_same_samples_other_seed_other_samples(model):
    a, b, c = model.sample(30, seed=1), model.sample(30, seed=1, batch_size=7), model.sample(30, seed=2)
    assert a.smiles == model.sample(30, seed=1).smiles
    assert len(b) == 30
    assert a.smiles != c.smiles


def test_unknown_and_unsupported_options_raise_listing_what_is_accepted(model):
    with pytest.raises(OptionError, match="accepted: n, temperature, seed"):
        model.sample(3, temprature=0.5)
    with pytest.raises(TypeError):  # OptionError is a TypeError too, as Python's own
        model.sample(3, top_k=5)
    with pytest.raises(ConfigError, match="temperature"):
        model.sample(3, temperature=0)
    with pytest.raises(ConfigError, match="n must be"):
        model.sample(-1)
    if "conditional" not in model.capabilities:
        with pytest.raises(CapabilityError, match="not conditional"):
            model.sample(3, condition={"qed": 0.9})
    with pytest.raises(OptionError, match="accepted: smiles, batch_size, progress, kind"):
        model.score(["CCO"], seed=1)
    with pytest.raises(ConfigError, match="unknown option"):
        type(model).build({"no_such_option": 1}, representation=model.representation)


def test_a_bare_string_is_an_error_not_characters(model):
    if not _has_ll(model):
        pytest.skip("no likelihood")
    with pytest.raises(TypeError, match=r"\['CCO'\]"):
        model.score("CCO")


def test_likelihood_is_finite_per_molecule_and_labelled_identically_everywhere(model, tiny_train_smiles,
                                                                               tmp_path):
    if not _has_ll(model):
        pytest.skip("no likelihood")
    from molgen.api import list_models
    from molgen.cli.main import main
    from molgen.persistence import model_config

    df = model.score(tiny_train_smiles[:20])
    assert len(df) == 20 and (df.status == "ok").all()
    ll = df.log_likelihood.to_numpy()
    assert np.isfinite(ll).all() and (ll < 0).all()
    # per molecule, not per token: longer molecules have lower log-likelihood
    assert np.corrcoef(df.n_tokens.to_numpy(), ll)[0, 1] < 0
    label = model.likelihood_label().to_dict()
    assert label["unit"] == "nats/molecule" and label["object"] == "canonical-smiles"
    rows = df[["likelihood_kind", "likelihood_object", "likelihood_unit"]].drop_duplicates()
    assert rows.to_dict("records") == [{f"likelihood_{k}": v for k, v in label.items()}]
    assert df.attrs["likelihood"] == label
    assert model_config(model)["likelihood"] == label
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["likelihood"] == label
    default_kind = type(model).likelihood_kind(type(model).config_class())
    assert {r["name"]: r["likelihood_kind"] for r in list_models()}[model.name] == default_kind
    res = model.sample(5, seed=0)
    if res.log_likelihood is not None:
        assert res.likelihood.to_dict() == label
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", str(tmp_path / "m"), "--json"]) == 0
    assert json.loads(out.getvalue())["likelihood"] == label


def test_sampled_log_p_equals_scored_log_p(model):
    if not _has_ll(model):
        pytest.skip("no likelihood")
    res = model.sample(64, seed=0)
    if res.log_likelihood is None:
        pytest.skip(f"{model.name} does not return log p with its samples")
    # the sampled value is log p of the string as generated: score those strings' own tokens
    compared = 0
    for s, ll in zip(res.smiles, res.log_likelihood):
        try:
            item = model.featurize(s) if s else None
        except (KeyError, ValueError):
            continue
        if item is None or model.tokenizer.decode(item) != s:
            continue
        with torch.no_grad():
            scored = float(model.log_likelihood(model.collate([item]))[0])
        assert scored == pytest.approx(ll, abs=1e-4)
        compared += 1
    assert compared >= 10


def test_save_load_round_trip_gives_identical_likelihoods_and_samples(model, tmp_path, tiny_train_smiles):
    model.save_pretrained(tmp_path / "m")
    back = type(model).from_pretrained(tmp_path / "m")
    assert back.config == model.config and type(back) is type(model)
    assert back.sample(20, seed=5).smiles == model.sample(20, seed=5).smiles
    if _has_ll(model):
        a = model.score(tiny_train_smiles[:10]).log_likelihood
        b = back.score(tiny_train_smiles[:10]).log_likelihood
        pd.testing.assert_series_equal(a, b)


def test_score_keeps_every_row_of_a_file_with_bad_rows_in_order(model, tiny_train_smiles, tmp_path):
    if not _has_ll(model):
        pytest.skip("no likelihood")
    from molgen.scoring import iter_score_file, write_scores

    good = tiny_train_smiles[:6]
    rows = [good[0], "not a smiles", "", good[1], "CC[Se]CC", "C" * 80, good[2], good[3] + ".[Na+]", good[4]]
    src = tmp_path / "lib.csv"
    pd.DataFrame({"id": range(len(rows)), "smiles": rows}).to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    assert write_scores(iter_score_file(model, src, smiles_col="smiles", chunk_size=4, batch_size=3), out) == len(rows)
    df = pd.read_csv(out, keep_default_na=False)
    assert df.input.tolist() == rows
    assert df.status.tolist() == ["ok", "invalid_smiles", "invalid_smiles", "ok", "oov_token:[Se]", "too_long",
                                  "ok", "ok", "ok"]
    series = pd.Series(rows, index=[f"m{i}" for i in range(len(rows))])
    assert model.score(series).index.tolist() == series.index.tolist()


def test_monte_carlo_likelihoods_are_deterministic_per_molecule(model, tiny_train_smiles):
    """Alone, duplicated in a batch, or in a shuffled file: the same molecule, the same number."""
    if not _has_ll(model):
        pytest.skip("no likelihood")
    mols = tiny_train_smiles[:12]
    together = model.score(mols, batch_size=5).log_likelihood.to_numpy()
    alone = np.array([model.score([m]).log_likelihood[0] for m in mols[:4]])
    dup = model.score([mols[0], mols[0], mols[1], mols[0]]).log_likelihood.to_numpy()
    order = np.random.default_rng(0).permutation(len(mols))
    shuffled = model.score([mols[i] for i in order], batch_size=3).log_likelihood.to_numpy()
    np.testing.assert_allclose(alone, together[:4], rtol=0, atol=1e-4)
    np.testing.assert_allclose(dup, together[[0, 0, 1, 0]], rtol=0, atol=1e-4)
    np.testing.assert_allclose(shuffled, together[order], rtol=0, atol=1e-4)


def test_unsupported_likelihood_kind_is_refused(model):
    if not _has_ll(model):
        pytest.skip("no likelihood")
    with pytest.raises(ConfigError, match="kind"):
        model.score(["CCO"], kind="bits-per-dim")


# --- families that the registry does not hold (yet): an implicit model and a nested model ----------


@dataclass
class _ToyConfig(ModelConfig):
    n_choices: int = 3


class _Implicit(GenerativeModel):
    """A sampler without a density (as a GAN)."""

    name = "toy-implicit"
    capabilities = frozenset({"sample"})
    config_class = _ToyConfig
    no_likelihood_reason = "an implicit model has no density"

    def __init__(self, config, *, representation=None, policy=None):
        from molgen.chem import DEFAULT_POLICY

        super().__init__(config, representation=representation, policy=policy or DEFAULT_POLICY)
        self.w = torch.nn.Parameter(torch.zeros(config.n_choices))

    def _sample(self, n, *, temperature, rng, condition, guidance, constrain=None):
        from rdkit import Chem

        pick = rng.categorical(torch.ones(n, self.config.n_choices), 0)
        return [Chem.MolFromSmiles(["CCO", "c1ccccc1", "CC(=O)O"][i]) for i in pick.tolist()], None


class _Holder(GenerativeModel):
    """A model that holds another saved model (as the GAN holds its VAE)."""

    name = "toy-holder"
    capabilities = frozenset({"sample"})
    config_class = _ToyConfig
    nested = ("inner",)

    def __init__(self, config, *, representation=None, policy=None, inner):
        from molgen.chem import DEFAULT_POLICY

        super().__init__(config, representation=representation, policy=policy or DEFAULT_POLICY)
        self.inner = inner
        self.scale = torch.nn.Parameter(torch.tensor([2.5]))

    def _sample(self, n, *, temperature, rng, condition, guidance, constrain=None):
        return self.inner._sample(n, temperature=temperature, rng=rng, condition=None, guidance=None)


def test_a_family_without_likelihood_refuses_with_a_reason(tmp_path, capsys):
    with MODELS.temporarily("toy-implicit", _Implicit):
        m = _Implicit.build({})
        res = m.sample(6, seed=0)  # molecules, not strings, come back as canonical SMILES
        assert set(res.canonical) <= {"CCO", "c1ccccc1", "CC(=O)O"} and res.log_likelihood is None
        assert m.likelihood_label() is None
        for call in (lambda: m.score(["CCO"]), lambda: m.log_likelihood({}), lambda: m.likelihood_label("exact")):
            with pytest.raises(CapabilityError, match="no density"):
                call()
        m.save_pretrained(tmp_path / "implicit")
        assert json.loads((tmp_path / "implicit" / "config.json").read_text())["likelihood"] is None
        from molgen.cli.main import main

        (tmp_path / "lib.smi").write_text("CCO\n")
        assert main(["score", str(tmp_path / "lib.smi"), "--model", str(tmp_path / "implicit"),
                     "-o", str(tmp_path / "o.csv")]) == 2
        assert "no density" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()


def test_nested_saved_models_round_trip_with_json_and_safetensors_only(model, tmp_path):
    with MODELS.temporarily("toy-holder", _Holder):
        holder = _Holder.build({}, inner=model)
        with torch.no_grad():
            holder.scale.fill_(7.0)
        holder.save_pretrained(tmp_path / "h")
        files = sorted(p.relative_to(tmp_path / "h").as_posix() for p in (tmp_path / "h").rglob("*") if p.is_file())
        assert "nested/inner/config.json" in files and "nested/inner/model.safetensors" in files
        assert all(f.endswith((".json", ".safetensors")) for f in files)
        from safetensors.torch import load_file

        assert set(load_file(str(tmp_path / "h" / "model.safetensors"))) == {"scale"}  # inner weights stored once
        back = GenerativeModel.from_pretrained(tmp_path / "h")
        assert isinstance(back.inner, type(model)) and float(back.scale.detach()) == 7.0
        assert back.sample(10, seed=4).smiles == holder.sample(10, seed=4).smiles
