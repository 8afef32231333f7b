"""Shared fixtures: tiny data, tiny models (seconds to build), an isolated cache directory."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tiny per-family constructor arguments for the contract tests; every registered model needs one.
TINY_MODEL_ARGS: dict[str, dict] = {
    "transformer": {"backbone.d_model": 32, "backbone.n_layers": 2, "backbone.n_heads": 2, "backbone.dropout": 0.0},
    "vae": {"d_z": 8, "prior.n_components": 4, "emb_dim": 16, "encoder.hidden": 32, "dec_hidden": 48, "iwae_k": 8,
            "iwae_chunk": 8, "elbo_samples": 2, "eval_kl_samples": 16, "diag_size": 200},
    "flow": {"dim": 4, "n_blocks": 2, "cond_d_model": 16, "cond_layers": 1, "cond_heads": 2, "iw_k": 4,
             "bound_samples": 2},
    "gan": {"noise_dim": 8, "gen_hidden": [16, 16], "critic_hidden": [16], "occupancy_n": 64, "occupancy_bins": 8},
    "diffusion": {"backbone.d_model": 32, "backbone.n_layers": 2, "backbone.n_heads": 2, "backbone.dropout": 0.0,
                  "elbo_samples": 4, "val_elbo_samples": 2},
}


def cache_in(tmp_path_factory, name: str):
    """Point MOLGEN_CACHE at a fresh temporary folder for as long as the generator is suspended."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MOLGEN_CACHE", str(tmp_path_factory.mktemp(name)))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep test caches out of the user's ~/.cache/molgen."""
    yield from cache_in(tmp_path_factory, "molgen-cache")


@pytest.fixture(autouse=True)
def _progress_not_quiet():
    """An in-process ``molgen ... -q`` sets the process-wide quiet switch: each test starts without it."""
    from molgen.progress import set_quiet

    set_quiet(False)
    yield
    set_quiet(False)


@pytest.fixture(scope="session")
def moses_test_smiles() -> list[str]:
    with gzip.open(ROOT / "data" / "moses" / "test.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    return lines[1:2001]


@pytest.fixture(scope="session")
def tiny_train_smiles(moses_test_smiles) -> list[str]:
    return moses_test_smiles[:600]


@pytest.fixture(scope="session")
def smiles_tokenizer(tiny_train_smiles):
    from molgen.tokenizers.smiles import SmilesTokenizer

    return SmilesTokenizer().fit(tiny_train_smiles)


@pytest.fixture(scope="session")
def trained_transformer(tmp_path_factory, tiny_train_smiles):
    """A transformer trained for a few dozen steps through the real ``molgen.train`` path."""
    import molgen

    out = tmp_path_factory.mktemp("tf")
    return molgen.train("transformer", data=tiny_train_smiles, out=out, max_steps=40, val_every=20,
                        val_size=50, batch_size=32, lr=3e-3, warmup_steps=5, progress=False,
                        precision="32-true", num_threads=1, model_args=TINY_MODEL_ARGS["transformer"])


@pytest.fixture(scope="session")
def saved(trained_transformer, tmp_path_factory):
    """The trained transformer's model directory (read-only: tests that change it use ``copy_model``)."""
    path = tmp_path_factory.mktemp("saved") / "model"
    trained_transformer.save_pretrained(path)
    return path


def copy_model(saved, tmp_path):
    """A private copy of a saved model directory to break or edit."""
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(saved, dst)
    return dst

