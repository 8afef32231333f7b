"""Scoring and sampling across processes and nodes write the single-process file, in input order.

The two-process tests spawn real processes (``molgen score --devices 2``; one torch thread each, as
the single-process run), so they are slow; the node split and the shard seeds are tested in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from molgen.sharding import score_file, shard_sizes, shard_starts
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def model_dir(trained_transformer, tmp_path_factory):
    path = tmp_path_factory.mktemp("sharded") / "model"
    trained_transformer.save_pretrained(path)
    return path


@pytest.fixture()
def library(tmp_path, tiny_train_smiles):
    rows = [*tiny_train_smiles[:40], "garbage", "", "CC[Se]CC", *tiny_train_smiles[40:57]]
    src = tmp_path / "lib.smi"
    src.write_text("".join(f"{s} id{i}\n" if s else "\n" for i, s in enumerate(rows)))  # a blank line: no name
    return src, rows


def test_shards_are_consecutive_row_ranges():
    assert shard_sizes(10, 3) == [4, 3, 3] and sum(shard_sizes(1001, 7)) == 1001
    assert shard_starts(10, 3) == [0, 4, 7] and shard_starts(5, 1) == [0]
    sizes, starts = shard_sizes(1001, 7), shard_starts(1001, 7)
    assert [a + n for a, n in zip(starts, sizes)] == [*starts[1:], 1001]


def test_sharded_sampling_is_the_unsharded_sample(trained_transformer):
    from molgen.sharding import sample_sharded

    a = sample_sharded(trained_transformer, 30, seed=5, n_shards=3, batch_size=8)
    b = sample_sharded(trained_transformer, 30, seed=5, n_shards=3, batch_size=8)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 30
    whole = trained_transformer.sample(30, seed=5, batch_size=8)
    def plain(df):  # missing values as None in every column (concatenated shards may type them otherwise)
        return df.astype(object).where(df.notna(), None)

    # shards draw the rows of one process's sample
    pd.testing.assert_frame_equal(plain(a), plain(whole.to_frame()), check_exact=False)
    assert sample_sharded(trained_transformer, 30, seed=5, n_shards=4, batch_size=5).smiles.tolist() == whole.smiles
    second = trained_transformer.sample(10, seed=5, start=10, batch_size=3)
    assert a.smiles.tolist()[10:20] == second.smiles
    assert a.smiles.tolist()[:10] != a.smiles.tolist()[10:20]  # shards are different draws
    with pytest.raises(ValueError, match="processes must be"):
        sample_sharded(trained_transformer, 30, seed=5, n_shards=2, processes=3)


def test_nodes_sharing_the_parts_merge_the_single_process_file(trained_transformer, model_dir, library, tmp_path):
    src, rows = library
    opts = dict(chunk_size=7, batch_size=4, smiles_col=None, kind=None, condition=None, keep_cols=None)
    one = tmp_path / "one.csv"
    assert score_file(trained_transformer, model_dir, src, one, **opts) == len(rows)
    two = tmp_path / "two.csv"
    # node 1 finishes first and leaves the merge to node 0; node 0 merges once every shard is done
    assert score_file(trained_transformer, model_dir, src, two, num_nodes=2, node_rank=1, **opts) is None
    assert not two.exists()
    assert score_file(trained_transformer, model_dir, src, two, num_nodes=2, node_rank=0, **opts) == len(rows)
    assert two.read_bytes() == one.read_bytes()
    df = pd.read_csv(two, keep_default_na=False)
    assert df.input.tolist() == [r or "" for r in rows]
    assert df.name.tolist() == [f"id{i}" if r else "" for i, r in enumerate(rows)]


def _cli(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MOLGEN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "molgen.cli.main", *args], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_two_processes_score_and_sample_the_single_process_files(model_dir, library, tmp_path):
    src, rows = library
    common = ["score", str(src), "--model", str(model_dir), "--chunk-size", "6", "--batch-size", "4",
              "--threads", "1", "-q"]
    for suffix in (".csv", ".parquet"):
        one, two = tmp_path / f"one{suffix}", tmp_path / f"two{suffix}"
        r1 = _cli([*common, "-o", str(one), "--devices", "1"], tmp_path)
        assert r1.returncode == 0, r1.stderr[-2000:]
        r2 = _cli([*common, "-o", str(two), "--devices", "2"], tmp_path)
        assert r2.returncode == 0, r2.stderr[-2000:]
        assert two.read_bytes() == one.read_bytes()
    assert len(pd.read_csv(tmp_path / "two.csv")) == len(rows)

    sample = ["sample", "--model", str(model_dir), "-n", "50", "--seed", "11", "--batch-size", "16", "-q"]
    s2 = _cli([*sample, "-o", str(tmp_path / "s2.csv"), "--devices", "2"], tmp_path)
    assert s2.returncode == 0, s2.stderr[-2000:]
    s1 = _cli([*sample, "-o", str(tmp_path / "s1.csv"), "--shards", "2"], tmp_path)
    assert s1.returncode == 0, s1.stderr[-2000:]
    assert (tmp_path / "s2.csv").read_bytes() == (tmp_path / "s1.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "s2.csv")) == 50
    s0 = _cli([*sample, "-o", str(tmp_path / "s0.csv")], tmp_path)  # one process, no shards: the same molecules
    assert s0.returncode == 0, s0.stderr[-2000:]
    read = lambda p: pd.read_csv(p, keep_default_na=False).smiles.tolist()  # noqa: E731
    assert read(tmp_path / "s0.csv") == read(tmp_path / "s2.csv")
