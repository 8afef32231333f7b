"""The notebook API: lazy import, train/load/sample/score."""

import math
import subprocess
import sys

import pytest


def test_import_molgen_is_lazy_and_fast():
    code = ("import sys, time; t = time.perf_counter(); import molgen; dt = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'lightning', 'rdkit', 'torch_geometric', 'molgen.api') "
            "if m in sys.modules]; print(dt, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dt, heavy = out.split(" ", 1)
    assert heavy.strip() == "[]"
    assert float(dt) < 0.5


def test_public_names_resolve_to_their_modules_and_unknown_names_raise():
    import molgen
    import molgen.api

    assert molgen.load is molgen.api.load and molgen.train is molgen.api.train
    with pytest.raises(AttributeError, match="no attribute 'lod'"):
        molgen.lod  # noqa: B018
    with pytest.raises(ImportError):
        from molgen import not_a_function  # noqa: F401
    assert {"train", "load", "list_models", "Evaluator", "__version__"} <= set(dir(molgen))


def test_load_sample_score(trained_transformer, tmp_path):
    from rdkit import Chem

    import molgen
    from molgen.registry import MODELS

    trained_transformer.save_pretrained(tmp_path / "m")
    model = molgen.load(tmp_path / "m")
    assert type(model) is type(trained_transformer) and model is not trained_transformer
    res = model.sample(10, seed=0)
    assert len(res.smiles) == 10
    parsed = [bool(s) and Chem.MolFromSmiles(s) is not None for s in res.smiles]
    assert res.validity == pytest.approx(sum(parsed) / 10)
    assert model.sample(10, seed=0).smiles == res.smiles
    df = model.score(["CCO", "bad("])
    assert df.status.tolist() == ["ok", "invalid_smiles"]
    assert math.isfinite(df.log_likelihood[0]) and df.log_likelihood[0] < 0 and math.isnan(df.log_likelihood[1])
    # the loaded model gives the saved model's numbers
    assert df.log_likelihood[0] == pytest.approx(trained_transformer.score(["CCO"]).log_likelihood[0], abs=1e-5)
    assert {m["name"] for m in molgen.list_models()} == {name for name, _ in MODELS.items()} >= {"transformer"}


def test_lazy_public_names_are_not_shadowed_by_submodules():
    """``molgen.draw`` / ``molgen.finetune`` stay functions after every submodule has been imported
    (a submodule of the same name would replace the attribute on import)."""
    import importlib
    import pkgutil

    import molgen

    names = {m.name.rsplit(".", 1)[-1] for m in pkgutil.iter_modules(molgen.__path__)}
    assert not names & set(molgen._LAZY), "a public lazy name must not also be a submodule of molgen"
    for mod, _ in molgen._LAZY.values():
        importlib.import_module(mod)
    assert callable(molgen.draw) and callable(molgen.finetune) and callable(molgen.train)
