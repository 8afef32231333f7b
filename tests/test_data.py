"""Readers keep every row; catalog files are checksummed; downloads are verified."""

import gzip
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from molgen.chem import DEFAULT_POLICY
from molgen.data import catalog
from molgen.data.datamodule import LengthBucketSampler, featurize_all, load_canonical
from molgen.data.io import InputError, iter_smiles_batches, read_smiles
from molgen.errors import OOVError, TokenizeError, TooLongError


def test_smi_with_header_names_and_blank_lines(tmp_path):
    f = tmp_path / "a.smi"
    f.write_text("SMILES\nCCO ethanol\n\nc1ccccc1\tbenzene\nnot_a_smiles\n")
    assert read_smiles(f) == ["CCO", None, "c1ccccc1", "not_a_smiles"]


def test_csv_needs_a_known_or_given_column(tmp_path):
    f = tmp_path / "a.csv"
    pd.DataFrame({"mol": ["CCO", "", "CC"], "y": [1, 2, 3]}).to_csv(f, index=False)
    with pytest.raises(InputError, match="smiles-col"):
        read_smiles(f)
    assert read_smiles(f, smiles_col="mol") == ["CCO", None, "CC"]
    with pytest.raises(InputError, match="no column"):
        read_smiles(f, smiles_col="nope")


def test_parquet_and_sdf(tmp_path):
    from rdkit import Chem

    pq = tmp_path / "a.parquet"
    pd.DataFrame({"smiles": ["CCO", None]}).to_parquet(pq)
    assert read_smiles(pq) == ["CCO", None]
    sdf = tmp_path / "a.sdf"
    w = Chem.SDWriter(str(sdf))
    w.write(Chem.MolFromSmiles("CCO"))
    w.close()
    assert read_smiles(sdf) == ["CCO"]


def test_empty_and_missing_files_are_clear_errors(tmp_path):
    (tmp_path / "e.smi").write_text("")
    with pytest.raises(InputError, match="empty"):
        read_smiles(tmp_path / "e.smi")
    with pytest.raises(InputError, match="no such file"):
        read_smiles(tmp_path / "missing.smi")


def test_batches_are_row_aligned(tmp_path):
    f = tmp_path / "a.smi"
    f.write_text("\n".join(f"C{'C' * i}" for i in range(25)) + "\n")
    batches = list(iter_smiles_batches(f, batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 5]


def test_moses_catalog_is_embedded_and_verified():
    path, col = catalog.resolve("moses:test")
    assert path.exists() and col == "SMILES"
    assert catalog.sha256_file(path) == catalog.CATALOG["moses:test"].sha256


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_DATA", str(tmp_path))
    (tmp_path / "moses").mkdir()
    with gzip.open(tmp_path / "moses" / "test.csv.gz", "wt") as f:
        f.write("SMILES\nCCO\n")
    catalog._verified.clear()
    with pytest.raises(catalog.ChecksumError, match="does not match"):
        catalog.resolve("moses:test")


def test_download_is_verified_before_use(tmp_path):
    src = tmp_path / "src.csv.gz"
    with gzip.open(src, "wt") as f:
        f.write("SMILES\nCCO\n")
    good = catalog.sha256_file(src)
    dest = tmp_path / "dl" / "x.csv.gz"
    catalog.download(src.as_uri(), dest, good)
    assert dest.read_bytes() == src.read_bytes()
    bad_dest = tmp_path / "dl" / "y.csv.gz"
    with pytest.raises(catalog.ChecksumError):
        catalog.download(src.as_uri(), bad_dest, "0" * 64)
    assert not bad_dest.exists()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["x.csv.gz"]


@pytest.mark.parametrize("n", [100, 101, 97, 64])
def test_distributed_sampler_splits_the_global_batches_of_one_process(n):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 40, n)
    one = LengthBucketSampler(lengths, 16, seed=1, pool=2)
    ranks = [LengthBucketSampler(lengths, 8, seed=1, pool=2, num_replicas=2, rank=r) for r in range(2)]
    for epoch in (0, 3):
        one.set_epoch(epoch)
        for s in ranks:
            s.set_epoch(epoch)
        single = list(one)
        per_rank = [list(s) for s in ranks]
        assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0])
        expected = [b for b in single if len(b) >= 2]
        assert len(per_rank[0]) == len(expected)
        for b, b0, b1 in zip(expected, *per_rank):
            assert b0 == b[0::2] and b1 == b[1::2]
    one.set_epoch(0)
    e0 = list(one)
    one.set_epoch(1)
    assert list(one) != e0  # the epoch picks the shuffle
    assert one.sampler is one  # Lightning calls batch_sampler.sampler.set_epoch


def test_featurize_all_counts_failures_by_row_status():
    def featurize(s):
        if s == "oov":
            raise OOVError(["[Se]", "[Te]"])
        if s == "long":
            raise TooLongError(200, 100)
        if s == "bad":
            raise TokenizeError("bad")
        return [1, 2]

    items, dropped = featurize_all(["ok", "oov", "long", "bad", "ok", "long"], featurize)
    assert items == [[1, 2], [1, 2]]
    assert dropped == Counter({"too_long": 2, "oov_token:[Se],[Te]": 1, "invalid_smiles": 1})


def test_sampler_stream_continues_from_a_position():
    lengths = np.random.default_rng(0).integers(5, 40, 50)
    plain = LengthBucketSampler(lengths, 8, seed=2)
    stream = list(plain) + list(plain)  # epochs 0 and 1
    n = len(plain)
    at = [3]
    resumed = LengthBucketSampler(lengths, 8, seed=2, position=lambda: at[0])
    assert list(resumed) == stream[3:3 + n]  # the rest of epoch 0, then the start of epoch 1


def test_canonical_cache_is_written_atomically(tmp_path, monkeypatch, tiny_train_smiles):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path))
    f = tmp_path / "in.smi"
    f.write_text("\n".join(tiny_train_smiles[:50] + tiny_train_smiles[:5] + ["not_a_smiles"]) + "\n")
    first, stats = load_canonical(f, DEFAULT_POLICY, n_jobs=1)
    again, stats2 = load_canonical(f, DEFAULT_POLICY, n_jobs=1)  # from the cache
    assert first == again and stats == stats2 == {"rows": 56, "invalid_smiles": 1, "duplicates": 5}
    files = [p.name for p in (tmp_path / "datasets").iterdir()]
    assert len(files) == 1 and files[0].endswith(".smi.gz")  # no temporary file left behind
