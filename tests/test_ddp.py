"""Multi-process training (DDP, gloo on CPU) equals one process with the same global batch.

Runs ``python -m molgen.cli.main train`` as subprocesses (Lightning starts the second process by
re-running the command), so it is slow: ``pytest -m slow tests/test_ddp.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, TINY_MODEL_ARGS

pytestmark = pytest.mark.slow


def _train(args: list[str], env: dict[str, str], cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "molgen.cli.main", "train", *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    import molgen

    with gzip.open(ROOT / "data" / "moses" / "test.csv.gz", "rt") as f:
        smiles = f.read().splitlines()[1:221]
    data = tmp_path / "train.smi"
    data.write_text("\n".join(smiles[:200]) + "\n")
    cwd = tmp_path / "cwd"  # nothing may be written here (no lightning_logs, no second model dir)
    cwd.mkdir()
    env = {**os.environ, "MOLGEN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    tiny = [a for k, v in {**TINY_MODEL_ARGS["transformer"]}.items() for a in ("--set", f"{k}={v}")]
    common = ["--model", "transformer", "--data", str(data), "--max-steps", "10", "--precision", "32-true",
              "--accelerator", "cpu", "--seed", "0", "--lr", "3e-3", *tiny, "-q"]

    one = _train([*common, "--out", str(tmp_path / "one"), "--devices", "1", "--batch-size", "16"], env, cwd)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train([*common, "--out", str(tmp_path / "two"), "--devices", "2", "--strategy", "ddp",
                  "--batch-size", "8"], env, cwd)
    assert two.returncode == 0, two.stderr[-3000:]

    # one summary (rank zero), one model directory, nothing written elsewhere
    summary = json.loads(two.stdout)
    assert summary["steps"] == 10 and summary["molecules_seen"] == json.loads(one.stdout)["molecules_seen"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "cwd", "one", "train.smi", "two"]
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["last.ckpt"]

    m1, m2 = molgen.load(tmp_path / "one"), molgen.load(tmp_path / "two")
    t1, t2 = m1.metadata["training"], m2.metadata["training"]
    assert (t1["world_size"], t2["world_size"]) == (1, 2)
    assert t1["global_batch_size"] == t2["global_batch_size"] == 16
    assert t1["molecules_seen"] == t2["molecules_seen"]
    probe = smiles[200:220]
    s1, s2 = m1.score(probe), m2.score(probe)
    assert (s1.status == "ok").all()
    np.testing.assert_allclose(s2.log_likelihood, s1.log_likelihood, rtol=1e-3)

    # the tolerance tells batches apart: one process with per-device batch 8 (global 8) is another model
    other = _train([*common, "--out", str(tmp_path / "other"), "--devices", "1", "--batch-size", "8"], env, cwd)
    assert other.returncode == 0, other.stderr[-3000:]
    s3 = molgen.load(tmp_path / "other").score(probe)
    assert not np.allclose(s3.log_likelihood, s1.log_likelihood, rtol=1e-3)
