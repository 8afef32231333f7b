"""Novelty against ``moses:train`` through the shipped 64-bit hashes (``data/moses/hashes``): no training
molecule is read or standardised, a corrupted hash file is refused, and another policy or RDKit release
falls back to computing (and caching) the hashes."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

# MOSES train rows: row 0 is canonical; row 7974 is not canonical under today's RDKit (MOSES novelty
# compares the rows as given, molgen's filter compares canonical forms)
ROW0 = "CCCS(=O)c1ccc2[nH]c(=NC(=O)OC)[nH]c2c1"
ROW1_RANDOMISED = "Clc1ccc(OC(n2ccnc2)C(=O)C(C)(C)C)cc1"  # row 1 written differently
ROW7974 = "[H]N=c1c(C#N)c(C)c(C(=O)OCC)nn1-c1ccc(C)cc1"
ROW7974_CANONICAL = "CCOC(=O)c1nn(-c2ccc(C)cc2)c(=N)c(C#N)c1C"


@pytest.fixture
def no_train_standardising(monkeypatch, tmp_path):
    """Fresh cache; parsing raises after a few molecules (standardising a training set parses 1.58M)
    and reading the moses:train rows raises."""
    import molgen.chem.policy
    import molgen.data.hashes
    import molgen.data.io
    import molgen.metrics.evaluator
    import molgen.metrics.reference

    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    real_to_mol = molgen.chem.policy.to_mol  # what standardize() parses with, however it was imported
    calls = {"n": 0}

    def guarded(smiles):
        calls["n"] += 1
        if calls["n"] > 200:
            raise AssertionError("the training set is being standardised")
        return real_to_mol(smiles)

    monkeypatch.setattr(molgen.chem.policy, "to_mol", guarded)
    real_read = molgen.data.io.read_smiles

    def read(source, *args, **kwargs):
        if isinstance(source, str) and source.startswith("moses:train"):
            raise AssertionError("the moses:train rows were read")
        return real_read(source, *args, **kwargs)

    for module in (molgen.data.io, molgen.data.hashes, molgen.metrics.evaluator, molgen.metrics.reference):
        monkeypatch.setattr(module, "read_smiles", read)  # wherever the readers import it from
    return calls


def test_filter_novelty_against_moses_train_uses_the_shipped_hashes(no_train_standardising):
    from molgen.filtering import filter_molecules

    out = filter_molecules(["CCO", ROW0, ROW1_RANDOMISED, ROW7974, "not a smiles"],
                           novel_against="moses:train", alerts=None)
    reasons = out["reason"].tolist()
    assert "not_novel" not in reasons[0]
    assert all("not_novel" in r for r in reasons[1:4]), reasons
    assert reasons[4] == "invalid"
    assert no_train_standardising["n"] <= 10  # the five queries, nothing of the training set


def test_evaluator_novelty_against_moses_train_reads_no_training_row(no_train_standardising):
    from molgen.metrics import Evaluator

    ev = Evaluator(reference=["CCO", "CCN", "c1ccccc1", "CCCl", "OCCO"], train="moses:train", extras=False,
                   guacamol=False, use_cache=False)
    r = ev.evaluate([ROW0, "CCO", "CCO"])
    assert r["Novelty"] == pytest.approx(0.5)  # ROW0 is in train, CCO is not


def test_row_hashes_are_the_moses_train_rows_as_given():
    """MOSES novelty compares with the train strings unchanged: the non-canonical row is in the row set,
    its canonical form only in the canonical set."""
    from molgen.data.hashes import HashSet, canonical_hashes, row_hashes

    rows, canon = HashSet(row_hashes("moses:train")), HashSet(canonical_hashes("moses:train"))
    assert len(rows) == len(canon) == 1_584_663
    assert ROW0 in rows and ROW0 in canon
    assert ROW7974 in rows and ROW7974 not in canon
    assert ROW7974_CANONICAL in canon and ROW7974_CANONICAL not in rows
    assert "CCO" not in rows and "CCO" not in canon


def test_a_corrupted_shipped_hash_file_is_refused(monkeypatch, tmp_path):
    from molgen.data.catalog import ChecksumError, data_dir
    from molgen.filtering import filter_molecules

    (tmp_path / "moses").mkdir()
    shutil.copytree(data_dir() / "moses" / "hashes", tmp_path / "moses" / "hashes")
    npy = next((tmp_path / "moses" / "hashes").glob("train-*.npy"))
    raw = bytearray(npy.read_bytes())
    raw[-3] ^= 0xFF  # one hash changed
    npy.write_bytes(bytes(raw))
    monkeypatch.setenv("MOLGEN_DATA", str(tmp_path))
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ChecksumError, match=r"novelty hashes of moses:train are corrupt.*sha256"):
        filter_molecules(["CCO"], novel_against="moses:train", alerts=None)


@pytest.mark.parametrize("why", ["policy", "rdkit"])
def test_another_policy_or_rdkit_release_falls_back_to_computing_and_caches(why, monkeypatch, tmp_path, caplog):
    import molgen.data.hashes as H
    from molgen.chem import DEFAULT_POLICY, Policy
    from molgen.filtering import filter_molecules

    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    policy = Policy(keep_stereo=False) if why == "policy" else DEFAULT_POLICY
    if why == "rdkit":
        monkeypatch.setattr(H, "rdkit_release", lambda: "2019.03")
    assert H.shipped_entry("moses:train", policy) is None
    reads = []

    def small_train(source, *args, **kwargs):  # stands in for the 1.58M rows
        reads.append(source)
        return ["C[C@H](N)c1ccccc1", "CCOC(=O)C", None]

    monkeypatch.setattr(H, "read_smiles", small_train)
    with caplog.at_level(logging.INFO, logger="molgen.data.hashes"):
        out = filter_molecules(["CC(N)c1ccccc1", "C[C@@H](N)c1ccccc1", "CC(=O)OCC", "CCO"],
                               novel_against="moses:train", alerts=None, policy=policy)
    assert reads == ["moses:train"]
    assert "standardising the 3 molecules of moses:train" in caplog.text
    novel = ["not_novel" not in r for r in out["reason"]]
    # stereo removed: every spelling of the amine is the train molecule; kept: only the same stereo is
    assert novel == ([False, False, False, True] if why == "policy" else [True, True, False, True])
    cached = list((tmp_path / "cache" / "hashes").glob("*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).dtype == np.uint64
    filter_molecules(["CCO"], novel_against="moses:train", alerts=None, policy=policy)
    assert reads == ["moses:train"]  # the second run reads the cache
