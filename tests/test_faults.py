"""Faults lose nothing: atomic model directories, unwritable or full output locations refused before work,
NaN losses stop naming the step with the last good checkpoint kept, an interrupted ``molgen score``
resumes to the same bytes, a SIGKILLed training resumes to the same weights (slow), and loading refuses
newer formats and paths that leave the model directory.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

import pandas as pd
import pytest
import torch

from molgen.cli.main import main
from molgen.persistence import ModelFormatError, OutputError, load_pretrained
from tests.conftest import TINY_MODEL_ARGS, copy_model


# --- atomic model directories ------------------------------------------------------------------
def _disk_full(monkeypatch):
    import safetensors.torch

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)


def test_a_failed_save_leaves_no_directory_and_no_temporary(trained_transformer, tmp_path, monkeypatch):
    _disk_full(monkeypatch)
    with pytest.raises(OutputError, match="No space left on device"):
        trained_transformer.save_pretrained(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_over_a_model_keeps_the_old_one_or_leaves_nothing_that_loads(trained_transformer, saved,
                                                                                   tmp_path, monkeypatch):
    from molgen import persistence

    d = copy_model(saved, tmp_path)
    before = (d / "model.safetensors").read_bytes()
    with monkeypatch.context() as m:  # the disk fills while the new files are written: the old model stays
        _disk_full(m)
        with pytest.raises(OutputError):
            trained_transformer.save_pretrained(d)
    assert (d / "model.safetensors").read_bytes() == before and load_pretrained(d) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]

    real = os.replace

    def fail_on_weights(src, dst):  # the disk fails while files are moved into place
        if str(dst).endswith("model.safetensors"):
            raise OSError(errno.EIO, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(persistence.os, "replace", fail_on_weights)
    with pytest.raises(OutputError, match="Input/output error"):
        trained_transformer.save_pretrained(d)
    with pytest.raises(ModelFormatError, match=r"config\.json is missing"):
        load_pretrained(d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_saving_over_a_run_folder_replaces_the_model_and_keeps_other_files(trained_transformer, saved, tmp_path):
    d = copy_model(saved, tmp_path)
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    (d / "model.safetensors").write_bytes(b"stale")
    trained_transformer.save_pretrained(d)
    assert (d / "checkpoints" / "last.ckpt").read_bytes() == b"ckpt"
    m = load_pretrained(d)
    for k, v in trained_transformer.state_dict().items():
        assert torch.equal(m.state_dict()[k], v)


def test_an_unwritable_output_is_an_error_before_any_work(tiny_train_smiles, tmp_path, monkeypatch):
    import molgen
    import molgen.training.train as train_mod

    def no_work(*a, **k):
        raise AssertionError("data preparation started")

    monkeypatch.setattr(train_mod, "split_data", no_work)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        molgen.train("transformer", data=tiny_train_smiles, out=blocker / "run", max_steps=2, progress=False)


def test_a_disk_too_small_for_the_run_is_an_error_before_fit(tiny_train_smiles, tmp_path, monkeypatch):
    import molgen

    real = shutil.disk_usage

    def tiny(path):
        return real(path)._replace(free=1024)

    monkeypatch.setattr(shutil, "disk_usage", tiny)
    out = tmp_path / "run"
    with pytest.raises(OutputError, match="MiB free"):
        molgen.train("transformer", data=tiny_train_smiles[:100], out=out, max_steps=2, progress=False,
                     precision="32-true", num_threads=1, model_args=TINY_MODEL_ARGS["transformer"])
    assert not (out / "config.json").exists()


# --- NaN / inf losses ----------------------------------------------------------------------------
def test_a_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_train_smiles, tmp_path):
    import lightning as L

    import molgen

    class Poison(L.Callback):  # every weight of the embedding becomes NaN before step 7
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 7:
                with torch.no_grad():
                    next(pl_module.parameters()).fill_(float("nan"))

    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(FloatingPointError, match=r"at step 7 .*last good checkpoint \(step 6\)"):
        molgen.train("transformer", data=tiny_train_smiles[:200], out=out, max_steps=20, val_every=3, val_size=20,
                     batch_size=16, progress=False, precision="32-true", num_threads=1, callbacks=[Poison()],
                     model_args=TINY_MODEL_ARGS["transformer"])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (out / "config.json").exists()  # no model directory from a failed run


# --- loading safety ------------------------------------------------------------------------------
def test_a_newer_model_directory_is_refused_with_the_version_it_needs(saved, tmp_path):
    d = copy_model(saved, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(format_version=cfg["format_version"] + 1, molgen_version="9.4.0")
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match=r"molgen 9\.4\.0.*upgrade molgen to >= 9\.4\.0"):
        load_pretrained(d)


@pytest.mark.parametrize("name", ["model.safetensors", "representation.json", "metadata.json", "config.json"])
def test_a_file_linked_from_outside_the_directory_is_refused(saved, tmp_path, name):
    d = copy_model(saved, tmp_path)
    outside = tmp_path / f"outside-{name}"
    shutil.move(d / name, outside)
    os.symlink(outside, d / name)
    with pytest.raises(ModelFormatError, match="outside the model directory"):
        load_pretrained(d)


# --- molgen score --resume -----------------------------------------------------------------------
def _library(tmp_path, tiny_train_smiles):
    rows = [*tiny_train_smiles[:30], "garbage", "", "CC[Se]CC", *tiny_train_smiles[30:37]]
    src = tmp_path / "lib.csv"
    pd.DataFrame({"id": [f"m{i}" for i in range(len(rows))], "smiles": rows}).to_csv(src, index=False)
    return src, rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_score_resume_continues_and_writes_the_same_bytes(saved, tmp_path, tiny_train_smiles, monkeypatch, suffix):
    import molgen.scoring as scoring

    src, rows = _library(tmp_path, tiny_train_smiles)
    args = ["score", str(src), "--model", str(saved), "--chunk-size", "6", "--batch-size", "4", "-q"]
    whole = tmp_path / f"whole{suffix}"
    assert main([*args, "-o", str(whole)]) == 0

    real, calls = scoring.score_smiles, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C / pre-emption after three chunks
        return real(*a, **k)

    out = tmp_path / f"out{suffix}"
    monkeypatch.setattr(scoring, "score_smiles", interrupted)
    assert main([*args, "-o", str(out)]) == 130
    assert not out.exists() and len(list((tmp_path / f"out{suffix}.parts").glob("chunk-*"))) == 3
    assert main([*args, "-o", str(out)]) == 2  # leftovers without --resume: refused, not overwritten
    monkeypatch.setattr(scoring, "score_smiles", real)
    assert main([*args, "--batch-size", "5", "-o", str(out), "--resume"]) == 2  # other options: refused
    calls.clear()
    monkeypatch.setattr(scoring, "score_smiles", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    assert main([*args, "-o", str(out), "--resume"]) == 0
    assert len(calls) == 4  # 7 chunks of 6 rows, 3 done before
    assert out.read_bytes() == whole.read_bytes()
    assert not (tmp_path / f"out{suffix}.parts").exists()
    df = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, keep_default_na=False)
    assert df.id.tolist() == [f"m{i}" for i in range(len(rows))] and len(df) == len(rows)


# --- SIGKILL mid-epoch, resume, same weights ----------------------------------------------------
@pytest.mark.slow
def test_a_sigkilled_training_resumes_to_the_same_weights(tmp_path, tiny_train_smiles):
    import signal
    import subprocess
    import sys
    import time

    import molgen
    from tests.conftest import ROOT

    data = tmp_path / "train.smi"
    data.write_text("\n".join(tiny_train_smiles[:300]) + "\n")
    env = {**os.environ, "MOLGEN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    tiny = [a for k, v in TINY_MODEL_ARGS["transformer"].items() for a in ("--set", f"{k}={v}")]
    config = tmp_path / "run.yaml"  # a checkpoint after every validation, every 4 steps
    config.write_text("val_every: 4\nval_size: 20\n")
    common = [sys.executable, "-m", "molgen.cli.main", "train", "--model", "transformer", "--data", str(data),
              "--config", str(config), "--max-steps", "60", "--batch-size", "16", "--lr", "3e-3",
              "--precision", "32-true", "--accelerator", "cpu", "--seed", "0", *tiny, "-q"]

    whole = subprocess.run([*common, "--out", str(tmp_path / "whole")], env=env, capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    ckpt = out / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([*common, "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and ckpt.exists()
    assert not (out / "config.json").exists()  # killed mid-run: no model directory yet
    step = torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < step < 60

    resumed = subprocess.run([*common, "--out", str(out), "--resume", str(ckpt)], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = molgen.load(tmp_path / "whole"), molgen.load(out)
    assert a.metadata["training"]["steps"] == b.metadata["training"]["steps"] == 60
    assert a.metadata["training"]["molecules_seen"] == b.metadata["training"]["molecules_seen"]
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=1e-4, atol=1e-5, msg=k)
