"""Pretrained models that ship in ``data/models/NAME/``, loadable by name (issue 13).

Part one: the machinery (``molgen.pretrained``, ``benchmarks/ship_model.py``, ``molgen pretrained``,
loading by name from the API and the CLI) on a tiny model shipped into a temporary ``$MOLGEN_MODELS``.
Part two: every model actually shipped in the repository loads by name from a clean checkout and its
samples (the seed and n recorded in ``shipped_check.json``) give the recorded validity within noise.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from molgen.errors import ModelFormatError
from molgen.pretrained import (
    ENV,
    PretrainedError,
    check_shipped,
    list_pretrained,
    models_dir,
    resolve_model,
    shipped_names,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "models"
NAME = "tiny-tf"
SHIPPED_FILES = {"config.json", "model.safetensors", "representation.json", "metadata.json", "MODEL_CARD.md",
                 "evaluation.json", "shipped_check.json", "SHA256SUMS"}


def _ship_module():
    if "ship_model" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ship_model", ROOT / "benchmarks" / "ship_model.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["ship_model"] = module
        spec.loader.exec_module(module)
    return sys.modules["ship_model"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Sampling with two threads on a shared 2-core machine is up to 40x slower than with one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _fake_report(label: dict[str, str]) -> dict:
    """An Evaluator report as ``EvaluationReport.to_json`` writes it (computing one takes minutes)."""
    return {"metrics": {"NLL/Test": 74.5, "NLL/Test/n_scored": 1000, "NLL/Test/n_unscored": 0, "valid": 0.02,
                        "unique@1000": 1.0, "FCD/Test": 52.2, "SNN/Test": 0.12, "IntDiv": 0.4},
            "source": "samples.smi", "n_requested": 1000, "n_valid": 20,
            "references": {"Test": {"name": "moses:test", "n": 176074}}, "train": None, "likelihood": label,
            "NLL/Test": {"n": 1000, "n_scored": 1000, "n_unscored": 0}, "notes": {}}


@pytest.fixture(scope="module")
def run_dir(saved, tmp_path_factory):
    """A training run's folder: the model plus what must not ship (checkpoints, logs, the data list)."""
    d = tmp_path_factory.mktemp("run") / "run"
    shutil.copytree(saved, d)
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"\0" * 100)
    (d / "logs").mkdir()
    (d / "logs" / "metrics.csv").write_text("step,loss\n")
    (d / "train_options.json").write_text('{"data": ["CCO"]}')
    label = json.loads((d / "config.json").read_text())["likelihood"]
    (d / "evaluation.json").write_text(json.dumps(_fake_report(label)))
    return d


@pytest.fixture(scope="module")
def shipped_root(run_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    _ship_module().ship(run_dir, NAME, n=200, seed=3, models_dir=root, quiet=True)
    return root


@pytest.fixture
def models(shipped_root, monkeypatch):
    monkeypatch.setenv(ENV, str(shipped_root))
    return shipped_root


@pytest.fixture
def broken_copy(shipped_root, tmp_path, monkeypatch):
    """A private ``$MOLGEN_MODELS`` holding a copy of the shipped model, to damage."""
    root = tmp_path / "models"
    shutil.copytree(shipped_root, root)
    monkeypatch.setenv(ENV, str(root))
    return root / NAME


# ---- part one: the machinery ----------------------------------------------------------------------
def test_ship_copies_only_the_model_and_records_the_check(shipped_root, run_dir):
    d = shipped_root / NAME
    assert {p.name for p in d.iterdir()} == SHIPPED_FILES  # no checkpoints/, logs/, train_options.json
    assert check_shipped(d) == []
    check = json.loads((d / "shipped_check.json").read_text())
    assert (check["n"], check["seed"], check["temperature"], check["name"]) == (200, 3, 1.0, NAME)
    assert check["n_valid"] == round(check["validity"] * 200)
    assert json.loads((d / "evaluation.json").read_text()) == json.loads((run_dir / "evaluation.json").read_text())
    assert not [p for p in shipped_root.iterdir() if p.name.startswith(".")]  # no temporary folder left
    sums = (d / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split("  ", 1)[1] for line in sums) == sorted(SHIPPED_FILES - {"SHA256SUMS"})


def test_load_by_name_and_the_samples_repeat_the_check(models):
    import molgen

    assert shipped_names() == [NAME] and models_dir() == models
    assert resolve_model(NAME) == models / NAME
    model = molgen.load(NAME)
    check = json.loads((models / NAME / "shipped_check.json").read_text())
    res = model.sample(check["n"], seed=check["seed"], batch_size=check["batch_size"])
    assert res.validity == check["validity"]  # same machine, same seed: the same molecules


def test_cli_sample_score_and_info_by_name(models, tmp_path, capsys):
    from molgen.cli.main import main

    out = tmp_path / "s.smi"
    assert main(["sample", "--model", NAME, "-n", "20", "-o", str(out), "--seed", "0", "-q"]) == 0
    assert len(out.read_text().splitlines()) == 20
    lib = tmp_path / "lib.smi"
    lib.write_text("CCO\nc1ccccc1\n")
    assert main(["score", "--model", NAME, str(lib), "-o", str(tmp_path / "scores.csv"), "-q"]) == 0
    assert main(["info", NAME, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "transformer"


def test_an_unknown_name_is_one_line_listing_the_shipped_names(models, tmp_path, capsys):
    from molgen.cli.main import main

    with pytest.raises(PretrainedError, match=rf"'moses-nope' is neither a model directory .*shipped models: {NAME}"):
        resolve_model("moses-nope")
    assert main(["sample", "--model", "moses-nope", "-n", "5", "-o", str(tmp_path / "x.smi")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and NAME in err and "Traceback" not in err


def test_no_shipped_models_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "empty"))
    with pytest.raises(PretrainedError, match=rf"no shipped models were found in .*empty \(\${ENV}\)"):
        resolve_model("moses-vae")
    assert list_pretrained() == []


def test_corrupt_weights_are_refused(broken_copy):
    import molgen

    w = broken_copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit of a weight: the file still loads, the model is wrong
    w.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match=r"shipped model tiny-tf is corrupt \(changed: model\.safetensors\)"):
        molgen.load(NAME)
    assert any("model.safetensors" in p for p in check_shipped(broken_copy))


def test_a_changed_config_or_missing_or_unlisted_file_is_refused(broken_copy):
    cfg = broken_copy / "config.json"
    cfg.write_text(cfg.read_text().replace('"max_len": 52', '"max_len": 53'))
    with pytest.raises(PretrainedError, match=r"changed: config\.json"):
        resolve_model(NAME)
    shutil.copy(broken_copy / "metadata.json", broken_copy / "extra.safetensors")
    (broken_copy / "representation.json").unlink()
    with pytest.raises(PretrainedError, match=r"missing: representation\.json; not in SHA256SUMS: extra\.safetensors"):
        resolve_model(NAME)
    (broken_copy / "SHA256SUMS").unlink()
    with pytest.raises(PretrainedError, match="SHA256SUMS is missing"):
        resolve_model(NAME)


def test_an_edited_card_still_loads_but_fails_the_shipped_check(broken_copy):
    card = broken_copy / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\nedited\n")
    assert resolve_model(NAME) == broken_copy  # documentation is not needed to load
    assert any("changed: MODEL_CARD.md" in p for p in check_shipped(broken_copy))


def test_an_existing_path_wins_over_a_name(models, tmp_path, monkeypatch):
    import molgen

    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).mkdir()  # a folder of the same name in the working directory, not a model
    assert resolve_model(NAME) == Path(NAME)
    with pytest.raises(ModelFormatError, match=r"config\.json is missing"):
        molgen.load(NAME)


def test_the_card_states_the_likelihood_label_first_and_the_licence(shipped_root):
    card = (shipped_root / NAME / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {NAME}\n")
    metrics = card.split("## Metrics (likelihood first)", 1)[1]
    assert metrics.lstrip().startswith("- **NLL/Test 74.50 nats/molecule** — kind **exact**, object "
                                       "**canonical-smiles**, unit **nats/molecule**")
    assert metrics.index("NLL/Test") < metrics.index("| valid |")
    for text in ("## Training data", "## Budget", "Molecules seen:", "molecules/s", "Machine:", "## Sampler",
                 "temperature 1", "Weights: MIT", "Code (molgen): MIT", "## Intended use and limitations",
                 f"molgen sample --model {NAME}"):
        assert text in card, text


def test_list_pretrained_and_the_command(models, capsys):
    from molgen.cli.main import main

    (row,) = list_pretrained(verify=True)
    check = json.loads((models / NAME / "shipped_check.json").read_text())
    assert row["name"] == NAME and row["family"] == "transformer" and row["representation"] == "smiles"
    assert (row["likelihood_kind"], row["likelihood_object"], row["likelihood_unit"]) == \
        ("exact", "canonical-smiles", "nats/molecule")
    assert row["validity"] == check["validity"] and row["status"] == "ok"
    assert 0 < row["size_mb"] < 1 and row["description"].startswith("A molgen `transformer`")
    assert main(["pretrained"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "exact, canonical-smiles" in out and f"{check['validity']:.3f}" in out
    assert main(["pretrained", "--json", "--verify"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "ok"


def test_ship_refuses_a_model_over_the_size_limit_or_an_existing_name(run_dir, shipped_root, tmp_path, capsys):
    ship = _ship_module()
    with pytest.raises(ship.ShipError, match=r"over the 0\.01 MB limit .*--max-mb"):
        ship.ship(run_dir, "big", max_mb=0.01, models_dir=tmp_path, quiet=True)
    assert list(tmp_path.iterdir()) == []
    assert ship.main([str(run_dir), "--name", NAME, "--models-dir", str(shipped_root)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    with pytest.raises(ship.ShipError, match="--name"):
        ship.ship(run_dir, "Moses/VAE", models_dir=tmp_path, quiet=True)


def test_ship_a_model_holding_a_nested_model(smiles_tokenizer, tmp_path):
    """The GAN holds its VAE in nested/autoencoder/: shipped with it, checksummed, loaded by name."""
    import torch

    import molgen
    from molgen.registry import MODELS

    from .conftest import TINY_MODEL_ARGS

    torch.manual_seed(0)
    vae = MODELS.get("vae").build({**TINY_MODEL_ARGS["vae"], "max_len": 60}, representation=smiles_tokenizer)
    gan = MODELS.get("gan").build({**TINY_MODEL_ARGS["gan"], "max_len": 60}, autoencoder=vae.eval())
    gan.save_pretrained(tmp_path / "run")
    ship = _ship_module()
    ship.ship(tmp_path / "run", "tiny-gan", n=20, models_dir=tmp_path / "models", quiet=True)
    d = tmp_path / "models" / "tiny-gan"
    sums = (d / "SHA256SUMS").read_text()
    assert "nested/autoencoder/model.safetensors" in sums and "nested/autoencoder/config.json" in sums
    card = (d / "MODEL_CARD.md").read_text()
    assert "Likelihood: none" in card and "holds a trained `vae` as `nested/autoencoder/`" in card
    assert "Not evaluated" in card
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(tmp_path / "models"))
        assert molgen.load("tiny-gan").name == "gan"
        w = d / "nested" / "autoencoder" / "model.safetensors"
        w.write_bytes(w.read_bytes()[:-1] + b"\0")
        with pytest.raises(PretrainedError, match=r"changed: nested/autoencoder/model\.safetensors"):
            molgen.load("tiny-gan")


# ---- part two: the models that ship in data/models/ ------------------------------------------------
def _shipped_params():
    params = []
    for name in shipped_names(SHIPPED):
        try:
            seconds = json.loads((SHIPPED / name / "shipped_check.json").read_text()).get("sample_seconds", 0)
        except (OSError, ValueError):
            seconds = 0  # the agreement test below reports the missing file
        params.append(pytest.param(name, id=name, marks=[pytest.mark.slow] if seconds > 10 else []))
    return params


def test_models_are_looked_for_in_the_source_tree(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert models_dir() == SHIPPED


def test_the_registry_and_the_shipped_directories_agree(monkeypatch):
    """Every folder under data/models/ is a complete shipped model whose checksums match, and the
    registry lists exactly those folders (none of either, while nothing ships)."""
    monkeypatch.delenv(ENV, raising=False)
    folders = sorted(p.name for p in SHIPPED.iterdir() if p.is_dir()) if SHIPPED.is_dir() else []
    rows = list_pretrained(verify=True)
    assert [r["name"] for r in rows] == folders
    for r in rows:
        assert r["status"] == "ok", f"{r['name']}: {r['status']}"
        assert r["family"] and r["size_mb"] is not None and r["description"], r
        check = json.loads((SHIPPED / r["name"] / "shipped_check.json").read_text())
        assert check["name"] == r["name"]


@pytest.mark.parametrize("name", _shipped_params())
def test_a_shipped_model_samples_with_the_recorded_validity(name, monkeypatch):
    """Loaded by name from a clean checkout; the recorded seed and n. The same CPU gives the same
    molecules; another CPU's BLAS may round differently and the draws then part ways, so the two
    validities are compared as independent binomial proportions: |diff| <= 4 standard errors of the
    difference + 0.01 (likewise uniqueness among the valid samples)."""
    import molgen

    monkeypatch.delenv(ENV, raising=False)
    assert resolve_model(name) == SHIPPED / name
    check = json.loads((SHIPPED / name / "shipped_check.json").read_text())
    model = molgen.load(name)
    res = model.sample(check["n"], seed=check["seed"], temperature=1.0, batch_size=check.get("batch_size"))
    assert res.sampler == check.get("sampler", res.sampler)
    p, n = check["validity"], check["n"]
    tol = 4 * math.sqrt(2 * p * (1 - p) / n) + 0.01
    assert abs(res.validity - p) <= tol, f"{name}: validity {res.validity:.4f}, recorded {p:.4f} (tolerance {tol:.4f})"
    valid = [c for c in res.canonical if c is not None]
    u = check.get("uniqueness")
    if u is not None and valid:
        m = min(len(valid), check["n_valid"])
        tol_u = 4 * math.sqrt(2 * u * (1 - u) / m) + 0.01
        assert abs(len(set(valid)) / len(valid) - u) <= tol_u, f"{name}: uniqueness"
