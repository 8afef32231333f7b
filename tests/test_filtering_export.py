"""Filtering (every failed criterion in ``reason``), export by extension (SDF round trip through RDKit),
``molgen filter`` and ``molgen sample -o x.sdf``."""

from __future__ import annotations

import pandas as pd
import pytest

from molgen.errors import ConfigError, OptionError

MCF = "C=CC#N"                          # MCF1: acyclic C=C-C#N
PAINS = "S=C1SC(=Cc2ccccc2)C(=O)N1"     # ene_rhod_A
GREASE = "C" * 38 + "C(=O)O"            # MW > 500 and logP > 5 (Lipinski), 37 rotatable bonds (Veber)
ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


@pytest.fixture()
def library() -> pd.DataFrame:
    smiles = [ASPIRIN, "not a smiles", "OC(=O)c1ccccc1OC(C)=O", MCF, PAINS, GREASE, "CCO", None]
    return pd.DataFrame({"compound_id": [f"C{i}" for i in range(len(smiles))], "smiles": smiles,
                         "pIC50": [5.0 + i / 10 for i in range(len(smiles))]}, index=range(10, 10 + len(smiles)))


def test_filter_reasons_rows_index_and_ids(library):
    from molgen.filtering import PROPERTIES, filter_molecules, summary

    out = filter_molecules(library, novel_against=["CCO"], ranges={"qed": (0.45, None), "mw": (None, 400)},
                           rules=("lipinski", "veber"))
    assert list(out.index) == list(library.index)  # every row, same index, input columns kept
    assert out["compound_id"].tolist() == library["compound_id"].tolist()
    assert out["pIC50"].tolist() == library["pIC50"].tolist()
    r = dict(zip(out.compound_id, out.reason))
    assert r["C0"] == "" and out.loc[10, "keep"]
    assert r["C1"] == "invalid" and r["C7"] == "invalid"
    assert r["C2"] == "duplicate"  # the same molecule as C0 written differently; the first one is kept
    assert r["C3"].split(";")[0] == "mcf:MCF1"
    assert "pains:ene_rhod_A" in r["C4"]
    assert set(r["C5"].split(";")) >= {"mw>400", "lipinski", "veber"}  # every failed criterion, not the first
    assert r["C6"].startswith("not_novel") and "qed<0.45" in r["C6"]
    assert out["keep"].tolist() == [x == "" for x in out["reason"]]
    assert out.loc[10, "mw"] == pytest.approx(180.16, abs=0.01) and set(PROPERTIES) <= set(out.columns)
    assert pd.isna(out.loc[11, "qed"])
    assert summary(out).startswith("kept 1 of 8")


def test_filter_options_are_checked(library):
    from molgen.filtering import filter_molecules

    with pytest.raises(ConfigError, match="accepted: qed, logp"):
        filter_molecules(library, ranges={"QED": (0.5, None)})
    with pytest.raises(ConfigError, match="accepted: lipinski, veber"):
        filter_molecules(library, rules=["ghose"])
    with pytest.raises(ConfigError, match="accepted: mcf, pains"):
        filter_molecules(library, alerts=["brenk"])
    with pytest.raises(ConfigError, match="min 5 > max 1"):
        filter_molecules(library, ranges={"logp": (5, 1)})
    with pytest.raises(OptionError, match="accepted"):
        filter_molecules(library, qed_min=0.5)
    with pytest.raises(TypeError, match="single string"):
        filter_molecules("CCO")
    kept = filter_molecules(library, valid=False, unique=False, alerts=None)
    assert kept.loc[11, "keep"] and kept.loc[12, "keep"] and kept.loc[13, "keep"]


def test_sdf_round_trip_through_rdkit(library, tmp_path):
    from rdkit import Chem

    from molgen.data.io import read_table, write_molecules
    from molgen.filtering import filter_molecules

    out = filter_molecules(library, alerts=None)
    path = write_molecules(out, tmp_path / "hits.sdf")
    mols = list(Chem.SDMolSupplier(str(path)))
    assert len(mols) == len(out)  # invalid rows are empty records, not missing ones
    assert [m.GetProp("_Name") for m in mols] == out["compound_id"].tolist()
    assert Chem.MolToSmiles(mols[0]) == Chem.CanonSmiles(ASPIRIN)
    assert mols[1].GetNumAtoms() == 0 and mols[1].GetProp("valid") == "0" and mols[0].GetProp("valid") == "1"
    assert float(mols[0].GetProp("qed")) == pytest.approx(out.iloc[0]["qed"], rel=1e-6)
    assert mols[4].GetProp("pIC50") == "5.4" and mols[3].GetProp("reason") == ""
    back = read_table(path)
    assert len(back) == len(out) and back["compound_id"].tolist() == out["compound_id"].tolist()


def test_writers_by_extension_and_unknown_refused(library, tmp_path):
    from molgen.data.io import read_table, write_molecules

    with pytest.raises(ConfigError, match=r"\.smi, \.csv, \.tsv, \.parquet, \.sdf"):
        write_molecules(library, tmp_path / "x.xlsx")
    write_molecules(library, tmp_path / "x.parquet")
    pq = pd.read_parquet(tmp_path / "x.parquet")
    assert list(pq.index) == list(library.index) and pq["compound_id"].tolist() == library["compound_id"].tolist()
    write_molecules(library, tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv", index_col=0)
    assert list(back.index) == list(library.index)
    write_molecules(library, tmp_path / "x.smi")
    lines = (tmp_path / "x.smi").read_text().splitlines()
    assert len(lines) == len(library) and lines[0] == f"{ASPIRIN}\tC0" and lines[1] == "not a smiles\tC1"
    smi = read_table(tmp_path / "x.smi")
    assert smi["name"].tolist()[:2] == ["C0", "C1"]


def test_cli_filter_writes_every_row(library, tmp_path, capsys):
    from molgen.cli.main import main

    src = tmp_path / "lib.csv"
    library.to_csv(src, index=False)
    rc = main(["filter", str(src), "-o", str(tmp_path / "out.csv"), "--qed-min", "0.45", "--rule", "lipinski"])
    assert rc == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(out) == len(library) and out["compound_id"].tolist() == library["compound_id"].tolist()
    assert "kept" in capsys.readouterr().err
    rc = main(["filter", str(src), "-o", str(tmp_path / "kept.sdf"), "--only-kept"])
    assert rc == 0
    from rdkit import Chem

    assert [m.GetProp("_Name") for m in Chem.SDMolSupplier(str(tmp_path / "kept.sdf"))] == ["C0", "C5", "C6"]
    assert main(["filter", str(src), "-o", str(tmp_path / "x.txt")]) == 2
    assert "must be one of .smi, .csv" in capsys.readouterr().err


def test_sample_filter_and_sdf_output(trained_transformer, tmp_path):
    from rdkit import Chem

    from molgen.cli.main import main

    res = trained_transformer.sample(16, seed=0)
    df = res.filter(alerts=None)
    assert len(df) == 16 and df["smiles"].tolist() == res.smiles
    assert (df["reason"] == "invalid").sum() == int((~res.valid).sum())
    trained_transformer.save_pretrained(tmp_path / "m")
    assert main(["sample", "--model", str(tmp_path / "m"), "-n", "7", "--seed", "0",
                 "-o", str(tmp_path / "s.sdf"), "-q"]) == 0
    mols = list(Chem.SDMolSupplier(str(tmp_path / "s.sdf"), sanitize=False))
    assert len(mols) == 7 and all(m.HasProp("log_likelihood") for m in mols)
