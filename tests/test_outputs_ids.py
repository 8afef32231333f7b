"""Sampling outputs: every row has an id (``sample_000001``, ...) in every format, invalid samples are
marked (``.smi``: the word ``invalid`` after the id; tables and SD fields: ``valid`` 0), every row reads
back, ``keep`` is written 1 / 0 (booleans in parquet), fine-tuning keeps the input's IDs, and the
``molgen pretrained`` / ``molgen info`` listings are aligned and readable."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from molgen.cli.main import main

from .conftest import TINY_MODEL_ARGS

N = 60  # the tiny model below draws about one valid string in eight: both kinds, and empty strings


def _ids(n: int) -> list[str]:
    return [f"sample_{i:06d}" for i in range(1, n + 1)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A transformer trained for 3 steps on chains, branches and rings (seconds): its samples are a mix
    of valid and invalid strings. Returns the model and its directory."""
    import molgen

    data = ["C" * n for n in range(1, 13)] * 3 + ["CC(C)C", "C1CCC1", "CC(C)(C)C", "C1CCCCC1", "CC(=O)O",
                                                  "C1CC1C"] * 4
    out = tmp_path_factory.mktemp("tiny") / "m"
    model = molgen.train("transformer", data=data, out=out, max_steps=3, val_size=6, batch_size=16, progress=False,
                         precision="32-true", num_threads=1, model_args=TINY_MODEL_ARGS["transformer"])
    return model, out


@pytest.fixture(scope="module")
def outputs(tiny, tmp_path_factory):
    """``molgen sample`` of the tiny model written once per format (same seed: the same samples)."""
    d = tmp_path_factory.mktemp("samples")
    for ext in ("smi", "csv", "sdf", "parquet"):
        assert main(["sample", "--model", str(tiny[1]), "-n", str(N), "--seed", "3", "-o", str(d / f"s.{ext}"),
                     "-q"]) == 0
    table = pd.read_csv(d / "s.csv", keep_default_na=False, dtype={"valid": str})
    assert 0 < (table.valid == "0").sum() < N, "the test needs valid and invalid samples"
    return d, table


def test_ids_and_valid_in_tables(outputs):
    d, table = outputs
    assert list(table.columns[:4]) == ["id", "smiles", "canonical", "valid"]
    assert table.id.tolist() == _ids(N)
    assert set(table.valid) == {"0", "1"}  # the one flag convention: 1 / 0
    assert ((table.valid == "0") == (table.canonical == "")).all()
    pq = pd.read_parquet(d / "s.parquet")
    assert pq.columns[0] == "id" and pq.id.tolist() == _ids(N)
    assert pq.valid.dtype == bool and (pq.valid == (table.valid == "1")).all()


def test_smi_rows_have_ids_and_invalid_ones_are_marked(outputs):
    d, table = outputs
    lines = (d / "s.smi").read_text().splitlines()
    assert len(lines) == N
    fields = [line.split("\t") for line in lines]
    assert all(len(f) == 2 for f in fields)  # SMILES<tab>name on every line, an empty string included
    assert [f[0] for f in fields] == table.smiles.tolist()
    names = [f[1] for f in fields]
    invalid = (table.valid == "0").tolist()
    assert names == [f"{i} invalid" if bad else i for i, bad in zip(_ids(N), invalid)]
    assert sum(n.endswith(" invalid") for n in names) == sum(invalid) > 0


def test_smi_reads_back_with_every_row(outputs):
    from rdkit import Chem

    from molgen.data.io import read_smiles, read_table

    d, table = outputs
    smiles = [s or None for s in table.smiles]
    assert read_smiles(d / "s.smi") == smiles
    back = read_table(d / "s.smi")
    assert len(back) == N and [s if isinstance(s, str) else None for s in back.smiles] == smiles
    assert [n.split()[0] for n in back.name] == _ids(N)
    supplier = Chem.SmilesMolSupplier(str(d / "s.smi"), delimiter=" \t", titleLine=False)
    mols = [supplier[i] for i in range(len(supplier))]
    assert len(mols) == N  # RDKit: one entry per line, None for an unparsable string
    for m, i, bad in zip(mols, _ids(N), table.valid == "0"):
        if not bad:
            assert m is not None and m.GetProp("_Name") == i


def test_sdf_titles_are_ids_and_invalid_samples_are_empty_records(outputs):
    from rdkit import Chem

    d, table = outputs
    mols = list(Chem.SDMolSupplier(str(d / "s.sdf"), sanitize=False))
    assert len(mols) == N and all(m is not None for m in mols)
    assert [m.GetProp("_Name") for m in mols] == _ids(N)
    assert [m.GetProp("valid") for m in mols] == table.valid.tolist()
    for m, (_, row) in zip(mols, table.iterrows()):
        assert m.GetProp("smiles") == row.smiles  # the raw string, also for an invalid sample
        if row.valid == "0":
            assert m.GetNumAtoms() == 0


def test_ids_of_a_sharded_draw_are_the_unsharded_ids(tiny, tmp_path):
    assert main(["sample", "--model", str(tiny[1]), "-n", "7", "--seed", "3", "--shards", "3",
                 "-o", str(tmp_path / "s.csv"), "-q"]) == 0
    assert pd.read_csv(tmp_path / "s.csv").id.tolist() == _ids(7)


def test_row_ids_width_and_offsets(tiny):
    from molgen.data.io import row_ids
    from molgen.models.base import SampleResult

    assert row_ids(3) == _ids(3)
    assert row_ids(1_234_567)[-1] == "sample_1234567" and row_ids(1_234_567)[0] == "sample_0000001"
    assert tiny[0].sample(3, seed=0).to_frame().id.tolist() == _ids(3)
    later = SampleResult(["CCO", "CC"], ["CCO", "CC"], info={"start": 998})  # rows 999 and 1000 of a run
    assert later.to_frame().id.tolist() == ["sample_000999", "sample_001000"]


def test_keep_is_one_convention_in_every_writer(tmp_path):
    from rdkit import Chem

    from molgen.data.io import write_molecules
    from molgen.models.base import SampleResult

    res = SampleResult(["CCO", "C1CC(", "", "c1ccccc1", "OCC"], ["CCO", None, None, "c1ccccc1", "CCO"])
    df = res.filter(alerts=None)  # invalid, invalid, kept, duplicate
    assert df.keep.dtype == bool and df.keep.tolist() == [True, False, False, True, False]
    for ext in ("csv", "tsv", "smi", "sdf", "parquet"):
        write_molecules(df, tmp_path / f"f.{ext}")
    want = ["1" if k else "0" for k in df.keep]
    assert pd.read_csv(tmp_path / "f.csv", dtype=str).keep.tolist() == want
    assert pd.read_csv(tmp_path / "f.tsv", sep="\t", dtype=str).keep.tolist() == want
    assert [m.GetProp("keep") for m in Chem.SDMolSupplier(str(tmp_path / "f.sdf"), sanitize=False)] == want
    lines = (tmp_path / "f.smi").read_text().splitlines()
    assert [re.search(r"keep=(\d)", line).group(1) for line in lines] == want
    assert lines[:3] == ["CCO\tsample_000001 keep=1", "C1CC(\tsample_000002 invalid keep=0",
                         "\tsample_000003 invalid keep=0"]  # an empty string keeps its line and name
    pq = pd.read_parquet(tmp_path / "f.parquet")
    assert pq.keep.dtype == bool and pq.keep.tolist() == df.keep.tolist()


def test_finetune_rows_keep_the_input_id_column(tiny, tmp_path, capsys):
    import molgen

    base = tiny[0]
    data = pd.DataFrame({"compound_id": ["A1", "A2", "A3", "A4", "A5"], "smiles": ["CCCC", "CCCCC", "CCCCCC",
                                                                                   "not_a_smiles", "CCC"]})
    data.to_csv(tmp_path / "actives.csv", index=False)
    molgen.finetune(base, tmp_path / "actives.csv", tmp_path / "ft", max_steps=2, batch_size=4, val_size=1,
                    progress=False, precision="32-true", num_threads=1)
    rows = pd.read_csv(tmp_path / "ft" / "finetune_data.csv", keep_default_na=False)
    assert list(rows.columns) == ["compound_id", "input", "canonical", "status"]
    assert rows.compound_id.tolist() == data.compound_id.tolist()
    assert rows.status.tolist()[3] == "invalid_smiles"
    (tmp_path / "actives.smi").write_text("CCCC\tX1\nCCCCC\tX2\nCCC\tX3\n")
    molgen.finetune(base, tmp_path / "actives.smi", tmp_path / "ft2", max_steps=1, batch_size=4, val_size=1,
                    progress=False, precision="32-true", num_threads=1)
    rows = pd.read_csv(tmp_path / "ft2" / "finetune_data.csv", keep_default_na=False)
    assert list(rows.columns[:2]) == ["name", "input"] and rows.name.tolist() == ["X1", "X2", "X3"]
    # and molgen info shows the fine-tuning as a section of the summary
    capsys.readouterr()
    assert main(["info", str(tmp_path / "ft")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "fine-tuning" in out and any(re.match(r"  rows by status:\s+ok 4, invalid_smiles 1", x) for x in out)


def _column_starts(header: str, names: list[str]) -> list[int]:
    return [header.index(n) for n in names]


def test_pretrained_table_is_aligned(capsys):
    from molgen.pretrained import list_pretrained

    if not list_pretrained():
        pytest.skip("no shipped models")
    assert main(["pretrained"]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()
    header, rows = lines[0], lines[1:]
    assert len(rows) == len(list_pretrained())
    left = _column_starts(header, ["family", "repr.", "likelihood", "description"])
    right = [header.index(n) + len(n) for n in ("valid", "MB")]
    for row in rows:
        for p in left:  # every left-aligned cell starts in its header's column, after a gap
            assert row[p - 2:p] == "  " and row[p] != " ", (row, p)
        for p in right:  # numbers end where their header ends
            assert row[p - 1] != " " and row[p] == " ", (row, p)


def test_info_is_a_readable_summary_and_json_on_request(tiny, capsys):
    saved = tiny[1]
    assert main(["info", str(saved)]) == 0
    out = capsys.readouterr().out
    assert '{"' not in out and "[\"" not in out  # no JSON blobs
    kv = [line for line in out.splitlines() if line.startswith("  ") and ": " in line]
    assert {line.split(":")[0].strip() for line in kv} >= {"family", "parameters", "representation", "likelihood",
                                                          "data", "budget", "molecules seen", "validation NLL",
                                                          "conditioning"}
    assert len({re.match(r"  [^:]+:\s+", line).end() for line in kv}) == 1  # every value starts in one column
    assert "family:" in out and "transformer" in out and "exact log p(canonical-smiles), nats/molecule" in out
    for section in ("model", "training", "metrics"):
        assert section in out.splitlines()
    assert main(["info", str(saved), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "transformer" and info["likelihood"]["kind"] == "exact"
    assert {"config", "data", "training", "final", "versions"} <= set(info)
