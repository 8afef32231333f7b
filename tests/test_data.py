"""Readers keep every row; catalog files are checksummed; downloads are verified."""

import gzip

import pandas as pd
import pytest

from molgen.data import catalog
from molgen.data.io import InputError, iter_smiles_batches, read_smiles


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
