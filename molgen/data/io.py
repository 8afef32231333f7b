"""Read SMILES from ``.smi`` / ``.txt`` / ``.csv`` / ``.tsv`` / ``.parquet`` / ``.sdf`` files, lists or catalog names.

Readers never drop rows: an unparsable line stays in place (as its raw text, or None for an empty
SDF record) so outputs can be row-aligned with inputs. ``iter_smiles_batches`` streams large files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from molgen.data import catalog

SmilesSource = str | Path | Sequence[str | None]
_DEFAULT_COLS = ("smiles", "SMILES", "Smiles", "canonical_smiles", "smi")


class InputError(ValueError):
    """A file that cannot be read as SMILES at all (missing, empty, wrong column)."""


def _pick_col(columns: Sequence[str], smiles_col: str | None, path: Path) -> str:
    if smiles_col is not None:
        if smiles_col not in columns:
            raise InputError(f"{path}: no column {smiles_col!r}; columns are {list(columns)}")
        return smiles_col
    for c in _DEFAULT_COLS:
        if c in columns:
            return c
    raise InputError(f"{path}: cannot tell which column holds SMILES ({list(columns)}); pass --smiles-col")


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".xz", ".zip"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _smi_lines(path: Path) -> Iterator[str | None]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n\r")
            # .smi convention: SMILES, then optional whitespace-separated name
            tok = line.split()[0] if line.strip() else ""
            yield tok


def iter_smiles_batches(source: SmilesSource, smiles_col: str | None = None,
                        batch_size: int = 10_000) -> Iterator[list[str | None]]:
    """Yield row-aligned batches of raw SMILES (None/'' kept where a row has no SMILES)."""
    if not isinstance(source, (str, Path)):
        items = list(source)
        for i in range(0, len(items), batch_size):
            yield list(items[i:i + batch_size])
        return
    if catalog.looks_named(source):  # a catalog name (an unknown one lists the known ones)
        path, col = catalog.resolve(source)
        smiles_col = smiles_col or col
    else:
        path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    kind = _suffix(path)
    if kind in (".csv", ".tsv"):
        sep = "\t" if kind == ".tsv" else ","
        header = pd.read_csv(path, sep=sep, nrows=0).columns
        col = _pick_col(list(header), smiles_col, path)
        for chunk in pd.read_csv(path, sep=sep, usecols=[col], chunksize=batch_size, dtype=str,
                                 keep_default_na=False):
            yield [None if v == "" else v for v in chunk[col].tolist()]
    elif kind == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        col = _pick_col(pf.schema_arrow.names, smiles_col, path)
        for b in pf.iter_batches(batch_size=batch_size, columns=[col]):
            yield b.column(0).to_pylist()
    elif kind == ".sdf":
        from rdkit import Chem

        from molgen.chem import quiet_rdkit

        batch: list[str | None] = []
        with quiet_rdkit():
            for mol in Chem.ForwardSDMolSupplier(str(path), sanitize=True):
                batch.append(Chem.MolToSmiles(mol) if mol is not None else None)
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch
    else:  # .smi, .txt, anything else: one SMILES per line
        batch = []
        lines = _smi_lines(path)
        first = True
        for tok in lines:
            if first and tok.lower() in ("smiles", "smi"):
                first = False
                continue  # header line
            first = False
            batch.append(tok if tok else None)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def read_smiles(source: SmilesSource, smiles_col: str | None = None) -> list[str | None]:
    """All rows of ``source`` as a list (row-aligned; empty rows are None)."""
    out: list[str | None] = []
    for b in iter_smiles_batches(source, smiles_col, batch_size=100_000):
        out.extend(b)
    if isinstance(source, (str, Path)) and not out:
        raise InputError(f"{source}: no SMILES rows found")
    return out


def source_hash(source: SmilesSource, smiles_col: str | None = None) -> str:
    """Stable content hash of a source (file sha256 or hash of the list), for cache keys."""
    if catalog.looks_named(source):
        path, _ = catalog.resolve(source)
        return catalog.sha256_file(path)[:16]
    if isinstance(source, (str, Path)):
        return catalog.sha256_file(source)[:16] + (f":{smiles_col}" if smiles_col else "")
    h = hashlib.sha256()
    for s in source:
        h.update(((s or "") + "\n").encode())
    return h.hexdigest()[:16]


def write_smiles(smiles: Iterable[str | None], path: str | Path) -> None:
    with open(path, "w") as f:
        for s in smiles:
            f.write(f"{s or ''}\n")
