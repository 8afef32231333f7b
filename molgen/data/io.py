"""Read SMILES from ``.smi`` / ``.txt`` / ``.csv`` / ``.tsv`` / ``.parquet`` / ``.sdf`` files, lists or catalog names.

Readers never drop rows: an unparsable line stays in place (as its raw text, or None for an empty
SDF record) so outputs can be row-aligned with inputs. ``iter_smiles_batches`` streams large files;
``iter_table_batches`` streams the SMILES with the input's other columns (an ID, a ``.smi`` name).

Hostile files: compression is recognised by its magic bytes (a ``.gz`` that is not gzip still reads),
a byte-order mark picks UTF-8 / UTF-16 / UTF-32, BOM-less UTF-16 is recognised by its NUL bytes,
undecodable bytes become U+FFFD (so the row is kept and is invalid), Windows and old Mac line ends
are lines. A file that cannot be read at all (missing, empty, binary, a truncated or corrupt gzip)
is one :class:`InputError` that says what is wrong and, for a damaged stream, after how many rows.
A CSV row with too many fields keeps its row (the extra fields are dropped, with a warning naming
the lines); a row with too few gets empty fields.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import pandas as pd

from molgen.data import catalog

log = logging.getLogger(__name__)

SmilesSource = str | Path | Sequence[str | None]
_DEFAULT_COLS = ("smiles", "SMILES", "Smiles", "canonical_smiles", "smi")
_ID_COLS = ("id", "ID", "Id", "name", "Name", "compound_id", "mol_id", "molecule_id", "_Name")
#: ``keep_cols`` values besides a list of column names
KEEP_MODES = ("auto", "all", "none")


class InputError(ValueError):
    """A file that cannot be read as SMILES at all (missing, empty, binary, damaged, wrong column)."""


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


_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}


def _compression(head: bytes) -> str | None:
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def _encoding(head: bytes) -> str:
    """Text encoding from a byte-order mark, or BOM-less UTF-16 from its NUL pattern; else UTF-8."""
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if head.startswith(bom):
            return enc
    if len(head) >= 4 and b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
    return "utf-8"


def _raw_open(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        head = f.read(8)
    kind = _compression(head)
    if kind == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if kind == "bz2":
        import bz2

        return bz2.open(path, "rb")
    if kind == "xz":
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")


_DAMAGE = (EOFError, OSError, zlib.error)


def open_text(path: str | Path) -> IO[str]:
    """A text stream of ``path`` whatever its compression and encoding (see the module docstring)."""
    path = Path(path)
    try:
        raw = _raw_open(path)
        head = raw.peek(4096)[:4096] if hasattr(raw, "peek") else b""
        if not head:
            head = raw.read(4096)
            raw.close()
            raw = _raw_open(path)
    except _DAMAGE as e:
        raise InputError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    enc = _encoding(head)
    if enc == "utf-8" and b"\x00" in head:
        raw.close()
        raise InputError(f"{path}: looks like a binary file (NUL bytes), not text with one SMILES per line")
    return io.TextIOWrapper(raw, encoding=enc, errors="replace", newline=None)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file of SMILES")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


def _resolve(source: str | Path, smiles_col: str | None) -> tuple[Path, str | None]:
    if catalog.looks_named(source):  # a catalog name (an unknown one lists the known ones)
        path, col = catalog.resolve(source)
        return Path(path), smiles_col or col
    path = Path(source)
    _check_file(path)
    return path, smiles_col


def _keep_list(keep_cols: str | Sequence[str] | None, columns: Sequence[str], smiles: str, path: Path) -> list[str]:
    """Columns to carry: ``auto`` (None) the ID column if there is one, ``all`` every other column,
    ``none`` nothing, or the named ones (an unknown name lists the columns)."""
    others = [c for c in columns if c != smiles]
    if keep_cols is None or keep_cols == "auto":
        return [c for c in _ID_COLS if c in others][:1]
    if keep_cols == "all":
        return others
    if keep_cols == "none":
        return []
    names = [keep_cols] if isinstance(keep_cols, str) else list(keep_cols)
    names = [c.strip() for n in names for c in str(n).split(",") if c.strip()]
    unknown = [c for c in names if c not in columns]
    if unknown:
        raise InputError(f"{path}: no column(s) {unknown} to keep; columns are {list(columns)} "
                         f"(or use one of {', '.join(KEEP_MODES)})")
    return [c for c in names if c != smiles]


def _csv_batches(path: Path, sep: str, smiles_col: str | None, keep_cols, batch_size: int
                 ) -> Iterator[tuple[list[str | None], pd.DataFrame | None]]:
    with open_text(path) as f:
        try:
            header = pd.read_csv(f, sep=sep, nrows=0).columns
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: no header line (an empty or blank CSV)") from None
    col = _pick_col(list(header), smiles_col, path)
    keep = _keep_list(keep_cols, list(header), col, path)
    n_fields = len(header)
    bad: list[int] = []

    def cut(fields: list[str]) -> list[str]:  # too many fields: keep the row, drop the extras (warned)
        bad.append(len(bad))
        return fields[:n_fields]

    with open_text(path) as f:
        try:
            reader = pd.read_csv(f, sep=sep, usecols=[col, *keep], chunksize=batch_size, dtype=str,
                                 keep_default_na=False, engine="python", on_bad_lines=cut)
            for chunk in reader:
                smiles = [None if v == "" else v for v in chunk[col].tolist()]
                yield smiles, (chunk[keep].reset_index(drop=True) if keep else None)
        except pd.errors.ParserError as e:
            raise InputError(f"{path}: cannot be parsed as CSV: {str(e).strip()}") from None
        except _DAMAGE as e:
            raise InputError(f"{path}: damaged or truncated ({type(e).__name__}: {e})") from None
    if bad:
        log.warning("%s: %d row(s) had more fields than the header; their extra fields were ignored",
                    path, len(bad))


def _smi_batches(path: Path, keep_cols, batch_size: int) -> Iterator[tuple[list[str | None], pd.DataFrame | None]]:
    """``.smi``: SMILES, then an optional whitespace-separated name (kept as ``name``)."""
    if keep_cols not in (None, "auto", "all", "none") and [c for c in (
            [keep_cols] if isinstance(keep_cols, str) else keep_cols) if c != "name"]:
        raise InputError(f"{path}: a .smi file has the columns ['smiles', 'name'] to keep")
    keep_name = keep_cols != "none"
    batch: list[str | None] = []
    names: list[str] = []
    n = 0
    first = True
    with open_text(path) as f:
        try:
            for line in f:
                parts = line.strip().split(None, 1)
                tok = parts[0] if parts else ""
                if first and tok.lower() in ("smiles", "smi"):
                    first = False
                    continue  # header line
                first = False
                batch.append(tok if tok else None)
                names.append(parts[1].strip() if len(parts) > 1 else "")
                n += 1
                if len(batch) >= batch_size:
                    yield batch, (pd.DataFrame({"name": names}) if keep_name else None)
                    batch, names = [], []
        except _DAMAGE as e:
            raise InputError(f"{path}: damaged or truncated after {n} rows ({type(e).__name__}: {e})); "
                             "the file is damaged: recompress or download it again") from None
    if batch:
        yield batch, (pd.DataFrame({"name": names}) if keep_name else None)


def iter_table_batches(source: SmilesSource, smiles_col: str | None = None, batch_size: int = 10_000, *,
                       keep_cols: str | Sequence[str] | None = None
                       ) -> Iterator[tuple[list[str | None], pd.DataFrame | None]]:
    """Row-aligned batches of (raw SMILES, the input's other columns to carry or None).

    ``keep_cols``: None / ``"auto"`` (an ID-like column of a table, the name of a ``.smi`` line),
    ``"all"``, ``"none"`` or column names. A list source carries nothing.
    """
    if not isinstance(source, (str, Path)):
        items = list(source)
        for i in range(0, len(items), batch_size):
            yield list(items[i:i + batch_size]), None
        return
    path, smiles_col = _resolve(source, smiles_col)
    kind = _suffix(path)
    if kind in (".csv", ".tsv"):
        yield from _csv_batches(path, "\t" if kind == ".tsv" else ",", smiles_col, keep_cols, batch_size)
    elif kind == ".parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
        except Exception as e:  # pyarrow.ArrowInvalid: not parquet / truncated footer
            raise InputError(f"{path}: not a readable parquet file ({e})") from None
        names = pf.schema_arrow.names
        col = _pick_col(names, smiles_col, path)
        keep = _keep_list(keep_cols, names, col, path)
        for b in pf.iter_batches(batch_size=batch_size, columns=[col, *keep]):
            smiles = b.column(col).to_pylist()
            yield smiles, (b.select(keep).to_pandas() if keep else None)
    elif kind == ".sdf":
        from rdkit import Chem

        from molgen.chem import quiet_rdkit

        keep_name = keep_cols != "none"
        batch: list[str | None] = []
        names: list[str] = []
        with quiet_rdkit(), _raw_open(path) as raw:
            for mol in Chem.ForwardSDMolSupplier(raw, sanitize=True):
                batch.append(Chem.MolToSmiles(mol) if mol is not None else None)
                names.append(mol.GetProp("_Name") if mol is not None and mol.HasProp("_Name") else "")
                if len(batch) >= batch_size:
                    yield batch, (pd.DataFrame({"name": names}) if keep_name else None)
                    batch, names = [], []
        if batch:
            yield batch, (pd.DataFrame({"name": names}) if keep_name else None)
    else:  # .smi, .txt, anything else: one SMILES per line
        yield from _smi_batches(path, keep_cols, batch_size)


def iter_smiles_batches(source: SmilesSource, smiles_col: str | None = None,
                        batch_size: int = 10_000) -> Iterator[list[str | None]]:
    """Yield row-aligned batches of raw SMILES (None/'' kept where a row has no SMILES)."""
    for smiles, _ in iter_table_batches(source, smiles_col, batch_size, keep_cols="none"):
        yield smiles


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
