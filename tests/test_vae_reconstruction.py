"""A VAE whose latent carries the molecule (issue 21): the transformer decoder, ``init_from`` a trained
transformer, reconstruction accuracy in training, metadata and ``molgen info``."""

from __future__ import annotations

import warnings

import pytest
import torch

import molgen
from molgen.errors import ConfigError
from molgen.models.vae import VAEModel
from molgen.models.vae_diagnostics import reconstruction_accuracy, reconstruction_matches
from molgen.rowrandom import RowRandom

from .conftest import TINY_MODEL_ARGS

# a tiny language: 64 distinct molecules (head + tail), so a decoder that ignores z reconstructs at most
# one of them greedily
HEADS = ["C", "CC", "CCC", "CCCC", "C1CC1", "C1CCC1", "c1ccccc1", "CC(C)"]
LANGUAGE = [h + t for h in HEADS for t in ["O", "N", "F", "Cl", "C#N", "C(=O)O", "OC", "S"]]
TINY_TF = {"decoder": "transformer", "backbone.d_model": 32, "backbone.n_layers": 2, "backbone.n_heads": 2,
           "backbone.dropout": 0.0, "d_z": 8, "prior.n_components": 4, "encoder.hidden": 32, "iwae_k": 4,
           "iwae_chunk": 4, "elbo_samples": 2, "eval_kl_samples": 8, "diag_size": 200, "recon_size": 16}
RECON_FIRST = {"kl_anneal": "none", "free_bits": 16.0, "word_dropout": 0.0, "aggressive": "off", "fit_prior": True}


def _train(out, steps, **model_args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return molgen.train("vae", data=LANGUAGE, out=out, max_steps=steps, val_every=steps, val_size=16,
                            batch_size=16, lr=1e-2, warmup_steps=5, progress=False, precision="32-true",
                            num_threads=1, representation="smiles", seed=0, model_args={**TINY_TF, **model_args})


@pytest.fixture(scope="module")
def reconstructing(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("vae-rec"), 400, **RECON_FIRST)


@pytest.mark.slow  # trains the tiny VAE for 400 steps (~25 s), shared by the slow tests of this file
def test_reconstruction_accuracy_rises_above_chance(reconstructing, tmp_path):
    untrained = _train(tmp_path / "untrained", 1, **RECON_FIRST)
    before = reconstruction_accuracy(untrained, LANGUAGE)["accuracy"]
    after = reconstruction_accuracy(reconstructing, LANGUAGE)
    assert before <= 2 / len(LANGUAGE)  # an untrained decoder writes (about) one string for every z
    assert after["accuracy"] >= 0.5 and after["n"] == after["n_encoded"] == len(LANGUAGE)
    # the same number is logged at validation and kept in metadata.json for `molgen info`
    final = reconstructing.metadata["final"]
    assert final["recon_n"] == final["val_n"] and 0 <= final["recon_accuracy"] <= 1
    assert final["active_units"] >= 1 and final["d_z"] == 8 and final["mi_nats"] > 0.5
    assert reconstructing.diagnostics_history[-1]["recon_accuracy"] == pytest.approx(final["recon_accuracy"], abs=1e-4)


@pytest.mark.slow
def test_reconstruction_accuracy_counts_unencodable_rows_as_misses(reconstructing):
    rep = reconstruction_accuracy(reconstructing, [*LANGUAGE[:4], "not a molecule", "[U]"])
    assert rep["n"] == 6 and rep["n_encoded"] == 4
    assert rep["accuracy"] == pytest.approx(rep["accuracy_encoded"] * 4 / 6)
    assert reconstruction_matches(["OCC", "CCN", None], ["CCO", "CCO", "CCO"], reconstructing.policy) == [
        True, False, False]  # canonical match: OCC is ethanol


@pytest.mark.slow
def test_molgen_info_shows_the_latent_usage(reconstructing, tmp_path, capsys):
    from molgen.cli.main import main

    reconstructing.save_pretrained(tmp_path / "m")
    main(["info", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert "active_units" in out.replace(" ", "_") and "recon_accuracy" in out.replace(" ", "_")


def test_transformer_decoder_started_from_a_transformer_is_that_language_model(saved, tiny_train_smiles, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = molgen.train("vae", data=tiny_train_smiles[:64], out=tmp_path / "v", max_steps=1, val_size=16,
                           batch_size=16, lr=1e-9, warmup_steps=1, progress=False, precision="32-true",
                           num_threads=1, init_from=str(saved),
                           model_args={"decoder": "transformer", "d_z": 4, "prior": "gaussian", "iwae_k": 2})
    tf = molgen.load(saved)
    assert vae.metadata["init_from"]["counts"]["copied"] > 0
    assert vae.config.backbone == tf.config.backbone
    src = tf.state_dict()
    for name, t in vae.state_dict().items():
        if name.startswith("net."):
            torch.testing.assert_close(t, src[name], rtol=0, atol=1e-6)  # lr ~ 0: still the copy
    # the cached sampler is the teacher-forced distribution: log p of what it drew = log p(x|z) re-scored
    z = torch.randn(8, 4)
    vae.eval()
    with torch.no_grad():
        ids, ll = vae.strings.sample(vae._decoder_step(z), 8, device=z.device, rng=RowRandom(0, range(8)))
        bos = torch.full((8, 1), vae.tokenizer.bos_id)
        rescored = vae.log_px_given_z(z, torch.cat([bos, ids], 1))
    torch.testing.assert_close(rescored.double(), ll, rtol=0, atol=1e-3)


def test_init_from_needs_the_transformer_decoder(saved, smiles_tokenizer):
    vae = VAEModel.build({"decoder": "gru", "d_z": 4, "prior": "gaussian", "max_len": 60},
                         representation=smiles_tokenizer)
    with pytest.raises(ConfigError, match="set decoder: transformer"):
        vae.init_from_transformer(molgen.load(saved))


def test_decoder_and_beta_max_are_checked(smiles_tokenizer):
    with pytest.raises(ConfigError, match="gru, transformer"):
        VAEModel.build({"decoder": "lstm", "max_len": 60}, representation=smiles_tokenizer)
    with pytest.raises(ConfigError, match="beta_max"):
        VAEModel.build({"beta_max": 0.0, "max_len": 60}, representation=smiles_tokenizer)
    vae = VAEModel.build({"beta_max": 0.25, "kl_anneal": "none", "max_len": 60}, representation=smiles_tokenizer)
    assert vae.beta() == 0.25


@pytest.mark.slow
def test_latent_gan_on_the_transformer_decoder_vae(reconstructing, tmp_path):
    """A LatentGAN holds the transformer-decoder VAE: trains on its latents, samples per row, reloads."""
    vae_dir = tmp_path / "vae"
    reconstructing.save_pretrained(vae_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gan = molgen.train("gan", data=LANGUAGE, out=tmp_path / "gan", max_steps=6, val_size=8, batch_size=16,
                           progress=False, precision="32-true", num_threads=1, autoencoder=str(vae_dir),
                           model_args=TINY_MODEL_ARGS["gan"])
    a, b = gan.sample(12, seed=3), gan.sample(5, seed=3)
    assert len(a) == 12 and a.smiles[:5] == b.smiles  # per-row streams: a prefix
    assert molgen.load(tmp_path / "gan").sample(12, seed=3).smiles == a.smiles
