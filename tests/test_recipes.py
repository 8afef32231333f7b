"""Every recipe in ``molgen/configs/`` is a valid config that builds its model: a user's ``molgen train --config
NAME`` must not be the first to find a misspelt key (the benchmark rows and the GPU recipe have their own
tests in ``test_benchmark_command.py``)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from molgen.configs import config_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(config_dir().glob("*.yaml"))


def test_the_recipes_are_found():
    names = {p.stem for p in RECIPES}
    assert {"quickstart", "transformer-smiles", "diffusion", "diffusion-kekule", "flow", "vae", "gan"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_builds_its_model(path):
    from molgen.chem import DEFAULT_POLICY
    from molgen.configs import resolve_config
    from molgen.registry import MODELS, REPRESENTATIONS
    from molgen.training.train import build_model, load_config, resolve_options

    assert resolve_config(path.stem) == path  # `molgen train --config NAME` finds it by name
    cfg = load_config(path)
    assert isinstance(cfg.get("description"), str) and cfg["description"]  # what `molgen train` logs
    opts = resolve_options(cfg)  # unknown training keys are an error here
    assert opts["model"] in MODELS.declared_names()
    cls = MODELS.get(opts["model"])
    if opts["model"] == "gan":  # holds a trained VAE: its own options only
        cls.config_class.from_dict({**opts["model_args"], "max_len": 60})
        return
    with gzip.open(ROOT / "data" / "moses" / "train.csv.gz", "rt") as f:
        next(f)
        smiles = [next(f).split(",")[0].strip() for _ in range(50)]
    rep = REPRESENTATIONS.get(opts["representation"])().fit(smiles)
    net = build_model(cls, rep, DEFAULT_POLICY, 60, dict(opts["model_args"]))  # component arguments checked
    assert net.n_parameters() > 0
