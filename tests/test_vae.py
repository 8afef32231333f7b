"""The VAE: collapse alarms, bounds, encoders, priors, API, persistence, CLI."""

import dataclasses
import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import molgen
from molgen.errors import ConfigError
from molgen.models.priors import StandardNormalPrior
from molgen.models.vae import CollapseWarning, VAEModel
from molgen.tokenizers.selfies import SelfiesTokenizer
from molgen.training.callbacks import AggressiveEncoderPhase, VAEDiagnostics

TINY = {"d_z": 8, "prior.n_components": 4, "emb_dim": 16, "encoder.hidden": 32, "dec_hidden": 64, "iwae_k": 8,
        "iwae_chunk": 8, "elbo_samples": 2, "eval_kl_samples": 16, "diag_size": 200}
GAUSSIAN = {**{k: v for k, v in TINY.items() if not k.startswith("prior.")}, "prior": "gaussian"}


def _vae(tok, max_len=60, **options):
    return VAEModel.build({**TINY, **options, "max_len": max_len}, representation=tok)
NO_GUARDS = dict(kl_anneal="none", free_bits=0.0, word_dropout=0.0, aggressive="off", reseed_dead=False)
GUARDS = dict(kl_anneal="cyclical", free_bits=4.0, word_dropout=0.5, aggressive="off", reseed_dead=True)


def _train(smiles, out, steps=300, base=GAUSSIAN, **model_args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = molgen.train("vae", data=smiles, out=out, max_steps=steps, val_every=max(1, steps // 2), val_size=200,
                         batch_size=32, lr=1e-2, warmup_steps=5, progress=False, precision="32-true",
                         num_threads=1, representation="selfies", seed=0, model_args={**base, **model_args})
    return m, [w for w in caught if issubclass(w.category, CollapseWarning)]


@pytest.fixture(scope="module")
def collapsed(tmp_path_factory, tiny_train_smiles):
    """Built to collapse: strong autoregressive decoder, beta = 1 from step 0, no safeguards."""
    return _train(tiny_train_smiles, tmp_path_factory.mktemp("vae-collapse"), **NO_GUARDS)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny_train_smiles):
    """The same model and data with the safeguards on."""
    return _train(tiny_train_smiles, tmp_path_factory.mktemp("vae-guard"), **GUARDS)


@pytest.mark.slow  # trains two VAEs for 300 steps
def test_collapse_configuration_raises_the_collapse_warning(collapsed):
    model, alarms = collapsed
    last = model.diagnostics_history[-1]
    assert last["posterior_collapse"] and last["mi"] < 0.2 and last["kl"] < 0.5
    assert any("posterior collapse" in str(w.message) for w in alarms)


@pytest.mark.slow  # trains two VAEs for 300 steps
def test_same_model_with_safeguards_does_not_collapse(guarded):
    model, alarms = guarded
    last = model.diagnostics_history[-1]
    assert not last["posterior_collapse"] and last["mi"] > 1.0
    assert last["active_units"] == model.d_z
    assert not alarms, [str(w.message) for w in alarms]


@pytest.mark.slow  # trains two VAEs for 300 steps
def test_diagnostics_are_logged_and_plotted(guarded):
    model, _ = guarded
    assert len(model.diagnostics_history) == 2
    root = model.trainer.log_dir if model._trainer else None
    assert root is not None
    from pathlib import Path

    assert (Path(root) / "vae_diagnostics.png").exists() and (Path(root) / "vae_diagnostics.json").exists()
    for key in ("rec", "kl", "elbo", "active_units", "mi", "mi_cap", "marginal_kl"):
        assert key in model.diagnostics_history[-1]


@pytest.mark.slow  # trains two VAEs for 300 steps
def test_iwae_bound_is_above_the_elbo_and_grows_with_k(guarded, tiny_train_smiles):
    model, _ = guarded
    smiles = tiny_train_smiles[:100]
    elbo = model.score(smiles, kind="elbo").log_likelihood.mean()
    iw = {k: model.score(smiles, kind=f"iwae-{k}").log_likelihood.mean() for k in (1, 8, 64)}
    assert abs(iw[1] - elbo) < 1.0  # IWAE-1 is an unbiased ELBO estimate
    assert iw[64] > iw[8] > iw[1]
    assert iw[64] >= elbo
    df = model.score(smiles[:3], kind="iwae-16")
    assert (df.likelihood_kind == "iwae-16").all()
    assert (model.score(smiles[:3], kind="elbo").likelihood_kind == "elbo").all()
    assert (model.score(smiles[:3], kind="iwae").likelihood_kind == f"iwae-{model.config.iwae_k}").all()
    assert (model.score(smiles[:3]).likelihood_kind == f"iwae-{model.config.iwae_k}").all()


@pytest.mark.slow  # trains two VAEs for 300 steps
def test_scores_are_deterministic_and_the_mc_seed_is_part_of_the_model(guarded, tiny_train_smiles):
    model, _ = guarded
    a = model.score(tiny_train_smiles[:5]).log_likelihood.to_numpy()
    b = model.score(tiny_train_smiles[:5]).log_likelihood.to_numpy()
    other = VAEModel(dataclasses.replace(model.config, mc_seed=1), representation=model.representation)
    other.load_state_dict(model.state_dict())
    c = other.score(tiny_train_smiles[:5]).log_likelihood.to_numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a - c).max() < 2.0  # another Monte-Carlo draw of the same bound


@pytest.mark.slow  # trains two VAEs for 300 steps
def test_encode_decode_and_interpolate(guarded, tiny_train_smiles):
    model, _ = guarded
    mu = model.encode([*tiny_train_smiles[:4], "not a molecule"])
    assert mu.shape == (5, model.d_z) and torch.isfinite(mu[:4]).all() and torch.isnan(mu[4]).all()
    res = model.decode(mu[:4], seed=0)
    assert res.sampler == "ancestral" and len(res.smiles) == 4
    greedy = model.decode(mu[:4], greedy=True)
    assert greedy.sampler == "greedy" and greedy.info["decoder"] == "argmax"
    assert greedy.smiles == model.decode(mu[:4], greedy=True).smiles  # argmax ignores the seed
    df = model.interpolate(tiny_train_smiles[0], tiny_train_smiles[1], n_steps=5)
    assert list(df.t) == pytest.approx([0, 0.25, 0.5, 0.75, 1]) and len(df) == 5


def test_encode_and_decode_check_their_inputs(tiny_train_smiles):
    m = _vae(SelfiesTokenizer().fit(tiny_train_smiles[:50])).eval()
    with pytest.raises(ConfigError, match=r"\[N, 8\]"):
        m.decode(torch.zeros(3, 64))  # not six latents of size 32, not three of 64
    with pytest.raises(ConfigError, match="temperature"):
        m.decode(torch.zeros(2, 8), temperature=0)
    assert len(m.decode(torch.zeros(8), seed=0)) == 1
    with pytest.raises(TypeError, match="single string"):
        m.encode("CCO")
    with pytest.raises(TypeError, match="accepted: z, greedy, temperature, seed"):
        m.decode(torch.zeros(1, 8), top_k=3)


def test_beta_schedules_read_the_training_progress():
    tok = SelfiesTokenizer().fit(["CCO", "c1ccccc1"])
    cyc = _vae(tok, max_len=20)
    assert cyc.beta() == 1.0  # outside training: the schedule's end value
    for fraction, beta in ((0.0, 0.0), (0.0625, 0.5), (0.2, 1.0), (0.25, 0.0), (1.0, 1.0)):
        # 4 cycles, ramp over half of each (R = 0.5); training ends at beta = 1
        cyc.progress = SimpleNamespace(fraction=lambda f=fraction: f)
        assert cyc.beta() == pytest.approx(beta), fraction
    assert _vae(tok, max_len=20, kl_anneal="none").beta() == 1.0
    with pytest.raises(ConfigError, match="kl_anneal must be one of cyclical, monotonic, none"):
        _vae(tok, kl_anneal="linear")


def test_dead_mixture_components_are_reseeded(tiny_train_smiles):
    tok = SelfiesTokenizer().fit(tiny_train_smiles[:50])
    m = _vae(tok, **{"prior.n_components": 4})
    mu = torch.randn(100, m.d_z) * 0.1
    buf = {"mu": mu, "h": torch.randn(100, 32)}
    diag = {"usage": [0.97, 0.01, 0.01, 0.01]}
    before = m.prior.means.detach().clone()
    assert m.reseed_dead_components(buf, diag) == 3
    after = m.prior.means.detach()
    assert torch.equal(after[0], before[0])
    assert all(any(torch.allclose(after[k], mu[i]) for i in range(100)) for k in (1, 2, 3))


@pytest.mark.parametrize("encoder", ["sequence", "graph"])
@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_encoders_and_priors_are_one_switch(encoder, prior, tiny_train_smiles, tmp_path):
    m = molgen.train("vae", data=tiny_train_smiles[:200], out=tmp_path / "m", max_steps=6, val_every=3,
                     val_size=40, batch_size=32, progress=False, precision="32-true", num_threads=1,
                     representation="selfies", model_args={**TINY, "encoder": encoder, "prior": prior})
    assert m.config.encoder["name"] == encoder and m.config.prior["name"] == prior
    assert len(m.diagnostics_history) == 2 and "usage_perplexity" in m.diagnostics_history[-1]
    back = VAEModel.from_pretrained(tmp_path / "m")
    assert back.config == m.config
    assert back.sample(8, seed=3).smiles == m.sample(8, seed=3).smiles
    a = m.score(tiny_train_smiles[:6]).log_likelihood
    b = back.score(tiny_train_smiles[:6]).log_likelihood
    assert np.allclose(a, b) and np.isfinite(a).all()


def test_cli_train_vae_with_graph_encoder(tiny_train_smiles, tmp_path):
    from molgen.cli.main import main

    data = tmp_path / "train.smi"
    data.write_text("\n".join(tiny_train_smiles[:120]) + "\n")
    sets = [x for k, v in GAUSSIAN.items() if k != "prior" for x in ("--set", f"{k}={v}")]
    rc = main(["train", "--model", "vae", "--encoder", "graph", "--prior", "gaussian", "--data", str(data),
               "--out", str(tmp_path / "m"), "--max-steps", "3", "--batch-size", "32", "--representation",
               "selfies", "-q", *sets])
    assert rc == 0
    m = molgen.load(tmp_path / "m")
    assert m.config.encoder["name"] == "graph" and m.config.prior["name"] == "gaussian"
    assert math.isfinite(float(m.score(["CCO"]).log_likelihood[0]))


def test_components_are_injected_as_built_modules(tiny_train_smiles):
    """The encoder, prior and backbone are built at the configuration edge (``build_components``) and
    injected into the constructor; the model uses exactly the modules it is given."""
    tok = SelfiesTokenizer().fit(tiny_train_smiles[:50])
    config = VAEModel.config_class.from_dict({**GAUSSIAN, "max_len": 40})
    parts = VAEModel.build_components(config, tok)
    assert set(parts) == {"encoder", "prior"} and isinstance(parts["prior"], StandardNormalPrior)
    m = VAEModel(config, representation=tok, **parts)
    assert m.encoder is parts["encoder"] and m.prior is parts["prior"]
    torch.manual_seed(0)
    a = VAEModel.from_config(config, representation=tok)
    torch.manual_seed(0)
    b = VAEModel.build({**GAUSSIAN, "max_len": 40}, representation=tok)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(ConfigError, match="all its components or none"):
        VAEModel(config, representation=tok, encoder=parts["encoder"])
    with pytest.raises(ConfigError, match="d_z is 8"):
        VAEModel(config, representation=tok, encoder=parts["encoder"], prior=StandardNormalPrior(4))
    kinds = [type(cb) for cb in m.default_callbacks()]  # what acts around training steps: callbacks
    assert VAEDiagnostics in kinds and AggressiveEncoderPhase in kinds
