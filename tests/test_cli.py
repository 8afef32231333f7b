"""CLI commands run in-process through ``molgen.cli.main.main``."""

import json

import pandas as pd
import pytest

from molgen.cli.main import main


@pytest.fixture(scope="module")
def model_dir(trained_transformer, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli") / "model"
    trained_transformer.save_pretrained(d)
    return d


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "transformer" in out and "exact" in out
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {r["name"]: r for r in listing["models"]}
    assert rows["transformer"]["likelihood_kind"] == "exact" and rows["vae"]["likelihood_kind"] == "iwae-50"
    assert "backbone.<arg>" in rows["transformer"]["options"]
    assert listing["components"]["prior"] == ["flow", "gaussian", "mog", "vamp"]


def test_info(model_dir, capsys):
    assert main(["info", str(model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "transformer"
    assert info["likelihood"] == {"kind": "exact", "object": "canonical-smiles", "unit": "nats/molecule"}
    assert info["representation"] == "smiles"


def test_sample_writes_n_lines(model_dir, tmp_path):
    out = tmp_path / "s.smi"
    assert main(["sample", "--model", str(model_dir), "-n", "37", "-o", str(out), "--seed", "1", "-q"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 37
    out2 = tmp_path / "s2.smi"
    main(["sample", "--model", str(model_dir), "-n", "37", "-o", str(out2), "--seed", "1", "-q"])
    assert out2.read_text().splitlines() == lines
    csv = tmp_path / "s.csv"
    main(["sample", "--model", str(model_dir), "-n", "5", "-o", str(csv), "-q"])
    assert list(pd.read_csv(csv).columns[:4]) == ["id", "smiles", "canonical", "valid"]


def test_score_keeps_every_row_in_order(model_dir, tmp_path, tiny_train_smiles):
    lib = tmp_path / "lib.smi"
    rows = [tiny_train_smiles[0], "xx(", "", tiny_train_smiles[1], "CC[Se]"]
    lib.write_text("\n".join(rows) + "\n")
    out = tmp_path / "scores.csv"
    assert main(["score", str(lib), "--model", str(model_dir), "-o", str(out), "-q"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert df.status.tolist() == ["ok", "invalid_smiles", "invalid_smiles", "ok", "oov_token:[Se]"]
    assert df.input.tolist()[:2] == rows[:2]


def _tiny_set(family: str = "transformer") -> list[str]:
    """``--set KEY=VALUE`` flags for the shared tiny model options of ``family``."""
    from tests.conftest import TINY_MODEL_ARGS

    return [a for k, v in TINY_MODEL_ARGS[family].items() for a in ("--set", f"{k}={v}")]


def test_train_in_process(tmp_path, tiny_train_smiles, capsys):
    import molgen

    data = tmp_path / "train.smi"
    data.write_text("\n".join(tiny_train_smiles[:200]) + "\n")
    out = tmp_path / "m"
    rc = main(["train", "--model", "transformer", "--data", str(data), "--out", str(out), "--max-steps", "3",
               "--batch-size", "20", "--representation", "selfies", "--precision", "32-true", *_tiny_set(), "-q"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3 and summary["molecules_seen"] == 60
    assert summary["likelihood"]["kind"] == "exact"
    assert json.loads((out / "representation.json").read_text())["name"] == "selfies"
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["data"]["validation"]["from_training_data"] is True
    assert molgen.load(out).metadata["training"]["steps"] == 3


def test_user_errors_are_one_line_not_a_traceback(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "config.json is missing" in err and "Traceback" not in err
    assert main(["train", "--out", str(tmp_path / "x"), "--config", "no-such-config"]) == 2


def test_training_resumes_from_its_lightning_checkpoint(tmp_path, tiny_train_smiles, capsys):
    data = tmp_path / "train.smi"
    data.write_text("\n".join(tiny_train_smiles[:200]) + "\n")
    out = tmp_path / "m"
    common = ["train", "--data", str(data), "--out", str(out), "--batch-size", "20", "--precision", "32-true",
              *_tiny_set(), "-q"]
    assert main([*common, "--max-steps", "2"]) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.exists()
    capsys.readouterr()
    assert main([*common, "--max-steps", "5", "--resume", str(ckpt)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 5 and summary["molecules_seen"] == 5 * 20
    # one checkpoint to resume from, always the newest (never a stale last.ckpt beside last-v1.ckpt)
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last.ckpt"]


def test_train_refuses_a_test_set_for_validation(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), "--val-data", "moses:test_scaffolds", "--max-steps", "1"]) == 2
    assert "test sets are for reported metrics only" in capsys.readouterr().err


@pytest.mark.parametrize("error", [FloatingPointError("non-finite training loss (nan) at step 7"),
                                   OSError(28, "No space left on device")])
def test_a_nan_stop_or_a_full_disk_is_one_line(error, monkeypatch, capsys):
    import molgen.cli.info as inspect_cli

    def fail(args):
        raise error

    monkeypatch.setattr(inspect_cli, "run_info", fail, raising=False)
    monkeypatch.setattr(inspect_cli, "run", fail, raising=False)
    assert main(["info", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("molgen info: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
