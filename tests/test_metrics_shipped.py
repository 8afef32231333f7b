"""The reference statistics shipped in data/moses/stats are used for the data they were computed from
and refused when a file does not match its sha256."""

import shutil

import numpy as np
import pytest

from molgen.data.io import source_hash
from molgen.metrics import reference as R


def _stats(name: str) -> R.ReferenceStats:
    return R.ReferenceStats(name=name, source_hash=source_hash(name))


def test_shipped_statistics_load_for_moses_test():
    stats = _stats("moses:test")
    R.load_shipped(stats)
    assert stats.has("fcd") and stats.has("props") and stats.has("counts")
    assert stats.fcd_mu.shape == (512,) and stats.fcd_sigma.shape == (512, 512)
    assert np.allclose(stats.fcd_sigma, stats.fcd_sigma.T)
    assert stats.props.shape[0] == 176_074


def test_other_data_does_not_pick_up_shipped_statistics():
    stats = R.ReferenceStats(name="mine", source_hash="0123456789abcdef")
    R.load_shipped(stats)
    assert not stats.has("fcd")


def test_tampered_file_is_refused(tmp_path, monkeypatch):
    dst = tmp_path / "moses" / "stats"
    shutil.copytree(R.shipped_dir(), dst)
    with open(dst / "test" / "fcd.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    monkeypatch.setattr(R, "shipped_dir", lambda: dst)
    with pytest.raises(RuntimeError, match="sha256 does not match"):
        R.load_shipped(_stats("moses:test"))
