"""Molecule tables in and out, the format chosen by the file extension in one place.

Writers: ``.smi`` (SMILES, then the ID as the name when there is one), ``.csv``, ``.tsv``, ``.parquet``
and ``.sdf`` (RDKit molecules with every other column as an SD field). Every row is written, in
order: a row whose SMILES does not parse becomes an empty SD record (its fields kept, ``valid`` 0)
and an empty ``.smi`` line, so outputs stay row-aligned with inputs. A non-default pandas index is
written as a column (``.csv`` / ``.tsv`` / ``.parquet``) or as the SD record's name. An unknown
extension is an error listing the accepted ones, never plain text under another name.

Readers (:func:`read_table`) keep every input column (IDs, activities) next to the SMILES.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from molgen.errors import ConfigError, strict

WRITE_SUFFIXES = (".smi", ".csv", ".tsv", ".parquet", ".sdf")
READ_SUFFIXES = (".smi", ".txt", ".csv", ".tsv", ".parquet", ".sdf")
SMILES_COLUMNS = ("smiles", "SMILES", "Smiles", "canonical_smiles", "smi", "input", "canonical")
ID_COLUMNS = ("id", "ID", "Id", "name", "Name", "compound_id", "mol_id", "molecule_id", "_Name")


def suffix_of(path: str | Path, accepted: Sequence[str], what: str) -> str:
    """The lower-case extension of ``path`` if it is one of ``accepted`` (else a ConfigError listing them)."""
    suffix = Path(path).suffix.lower()
    if suffix not in accepted:
        raise ConfigError(f"cannot {what} {Path(path).name!r}: the extension must be one of {', '.join(accepted)}")
    return suffix


def smiles_column(df: pd.DataFrame, smiles_col: str | None = None) -> str:
    """The column holding SMILES: ``smiles_col`` if given, else the first usual name present."""
    if smiles_col is not None:
        if smiles_col not in df.columns:
            raise ConfigError(f"no column {smiles_col!r}; columns are {list(df.columns)}")
        return smiles_col
    for c in SMILES_COLUMNS:
        if c in df.columns:
            return c
    raise ConfigError(f"cannot tell which column holds SMILES ({list(df.columns)}); give smiles_col")


def id_column(df: pd.DataFrame) -> str | None:
    return next((c for c in ID_COLUMNS if c in df.columns), None)


def _default_index(df: pd.DataFrame) -> bool:
    return isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1 \
        and df.index.name is None


@strict
def read_table(path: str | Path, *, smiles_col: str | None = None) -> pd.DataFrame:
    """Every row and column of a molecule file as a DataFrame with a ``smiles`` column (or ``smiles_col``).

    ``.smi`` / ``.txt``: SMILES then an optional name (column ``name``); ``.sdf``: the record's SMILES
    (None where RDKit cannot read it), its name and its SD fields.
    """
    path = Path(path)
    suffix = suffix_of(path, READ_SUFFIXES, "read")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix in (".csv", ".tsv"):
        df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])
    elif suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix == ".sdf":
        from rdkit import Chem

        from molgen.chem import quiet_rdkit

        rows = []
        with quiet_rdkit():
            for mol in Chem.ForwardSDMolSupplier(str(path), sanitize=True):
                if mol is None:
                    rows.append({"smiles": None})
                    continue
                row = {"smiles": Chem.MolToSmiles(mol) if mol.GetNumAtoms() else None,
                       "name": mol.GetProp("_Name") if mol.HasProp("_Name") else ""}
                row.update(mol.GetPropsAsDict(includePrivate=False, includeComputed=False))
                rows.append(row)
        df = pd.DataFrame(rows)
        if "name" in df and (df["name"].fillna("") == "").all():
            df = df.drop(columns="name")
    else:
        rows = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f):
                line = line.rstrip("\r\n")  # SMILES<tab>name as written here, else SMILES<space>name
                parts = line.split("\t", 1) if "\t" in line else line.split(maxsplit=1)
                parts = [p for p in parts if p.strip()]
                if i == 0 and parts and parts[0].lower() in ("smiles", "smi"):
                    continue  # header line
                rows.append({"smiles": parts[0] if parts else None,
                             "name": parts[1].strip() if len(parts) > 1 else ""})
        df = pd.DataFrame(rows, columns=["smiles", "name"])
        if (df["name"] == "").all():
            df = df.drop(columns="name")
    smiles_column(df, smiles_col)  # a clear error now rather than later
    return df


@strict
def write_molecules(df: pd.DataFrame, path: str | Path, *, smiles_col: str | None = None) -> Path:
    """Write ``df`` to ``path`` in the format of its extension (see the module docstring); returns the path."""
    path = Path(path)
    suffix = suffix_of(path, WRITE_SUFFIXES, "write molecules to")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_molecules takes a DataFrame, got {type(df).__name__}")
    keep_index = not _default_index(df)
    if suffix in (".csv", ".tsv"):
        df.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=keep_index)
    elif suffix == ".parquet":
        df.to_parquet(path, index=keep_index)
    elif suffix == ".smi":
        col = smiles_column(df, smiles_col)
        ids = id_column(df)
        names = df[ids].astype(str).tolist() if ids else (list(map(str, df.index)) if keep_index else None)
        with open(path, "w") as f:
            for i, s in enumerate(df[col].tolist()):
                s = s if isinstance(s, str) else ""
                f.write(f"{s}\t{names[i]}\n" if names is not None and s else f"{s}\n")
    else:
        _write_sdf(df, path, smiles_column(df, smiles_col), keep_index)
    return path


def _sd_value(v: object) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)


def _write_sdf(df: pd.DataFrame, path: Path, col: str, keep_index: bool) -> None:
    """One SD record per row: the molecule (2D coordinates), its name (ID column or index) and every
    other column as a field; an unparsable SMILES gives an empty molecule with ``valid`` 0."""
    from rdkit import Chem
    from rdkit.Chem import rdDepictor

    from molgen.chem import quiet_rdkit

    ids = id_column(df)
    fields = [c for c in df.columns if c != col]
    writer = Chem.SDWriter(str(path))
    writer.SetForceV3000(False)
    try:
        with quiet_rdkit():
            for idx, row in df.iterrows():
                s = row[col]
                mol = Chem.MolFromSmiles(s) if isinstance(s, str) and s else None
                valid = mol is not None
                if mol is None:
                    mol = Chem.Mol()
                else:
                    rdDepictor.Compute2DCoords(mol)
                name = row[ids] if ids else (idx if keep_index else None)
                mol.SetProp("_Name", _sd_value(name) if name is not None else "")
                mol.SetProp(str(col), _sd_value(s))
                if "valid" not in df.columns:
                    mol.SetProp("valid", "1" if valid else "0")
                if keep_index:
                    mol.SetProp(str(df.index.name or "index"), _sd_value(idx))
                for c in fields:
                    mol.SetProp(str(c), _sd_value(row[c]))
                writer.write(mol)
    finally:
        writer.close()
