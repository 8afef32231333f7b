"""Molecule files in and out: the one module that owns the file formats.

Everything about a file format lives here: which extensions are read and written
(:data:`READ_SUFFIXES`, :data:`WRITE_SUFFIXES`, :data:`TABLE_SUFFIXES`) and the one-line
:class:`~molgen.errors.ConfigError` listing them (:func:`suffix_of`); which column holds the SMILES or
the ID (:func:`smiles_column`, :func:`id_column`); how each format is read, streamed
(:func:`iter_table_batches`, :func:`read_smiles`) or whole (:func:`read_table`); and how it is
written, one frame (:func:`write_molecules`) or chunk by chunk (:func:`write_frames`), both through the
same per-extension :class:`TableWriter`. It stays in ``molgen/data`` because the readers were here
first and training, metrics and benchmarks import them from here (``molgen.read_table`` and
``molgen.write_molecules`` are these functions); :func:`molgen.scoring.write_scores` is
:func:`write_frames` with the score table's extensions.

**Reading.** Readers never drop rows: an unparsable line stays in place (as its raw text, or None for
an empty SDF record) so outputs can be row-aligned with inputs. ``iter_smiles_batches`` streams large
files; ``iter_table_batches`` streams the SMILES with the input's other columns (an ID, a ``.smi``
name); :func:`read_table` reads every row and column of a file at once (``molgen filter``).

Hostile files: compression is recognised by its magic bytes (a ``.gz`` that is not gzip still reads),
a byte-order mark picks UTF-8 / UTF-16 / UTF-32, BOM-less UTF-16 is recognised by its NUL bytes,
undecodable bytes become U+FFFD (so the row is kept and is invalid), Windows and old Mac line ends
are lines. A file that cannot be read at all (missing, empty, binary, a truncated or corrupt gzip)
is one :class:`InputError` that says what is wrong and, for a damaged stream, after how many rows.
A CSV row with too many fields keeps its row (the extra fields are dropped, with a warning naming
the lines); a row with too few gets empty fields.

**Writing.** ``.smi`` (SMILES, a tab, then the ID as the name when there is one), ``.csv``, ``.tsv``,
``.parquet`` and ``.sdf`` (RDKit molecules, the ID as the title line, every other column as an SD
field). Every row is written, in order: a row whose SMILES does not parse (or whose ``valid`` column
is false) becomes an empty SD record (its fields kept: the raw string, ``valid`` 0), and a ``.smi``
line whatever its string (empty before the tab when there is none), so outputs stay row-aligned with
inputs. One convention for flags (``valid``, ``keep``, any boolean column): ``1`` / ``0`` in ``.csv``,
``.tsv`` and SD fields, booleans in ``.parquet``; a ``.smi`` line carries them after its name, as the
word ``invalid`` where ``valid`` is false and ``keep=1`` / ``keep=0`` where there is a ``keep`` column
(``<TAB>`` is a tab)::

    CCO<TAB>sample_000001
    C1CC(<TAB>sample_000002 invalid
    <TAB>sample_000003 invalid

Such a file reads back with every row (:func:`read_table`, ``molgen evaluate``, ``molgen score``:
the name is then ``sample_000002 invalid``; RDKit:
``Chem.SmilesMolSupplier(path, delimiter=" \\t", titleLine=False)``, whose name is the ID alone and
whose molecule is None for an invalid string, an empty molecule for an empty one). Sample tables get
their IDs from :meth:`~molgen.models.results.SampleResult.to_frame` (:func:`row_ids`). A non-default
pandas index is written by :func:`write_molecules` as a column (``.csv`` / ``.tsv`` / ``.parquet``) or
as the ``.smi`` / SD record's name. An unknown extension is an error listing the accepted ones, never
plain text under another name.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import io
import json
import logging
import lzma
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rdkit import Chem
from rdkit.Chem import rdDepictor

from molgen.chem import quiet_rdkit
from molgen.data import catalog
from molgen.errors import ConfigError, InputError, strict

log = logging.getLogger(__name__)

SmilesSource = str | Path | Sequence[str | None]

# --- formats -------------------------------------------------------------------------------------
#: what :func:`read_table` reads (the streaming readers also undo compression and read any other
#: name as one SMILES per line)
READ_SUFFIXES = (".smi", ".txt", ".csv", ".tsv", ".parquet", ".sdf")
#: what :func:`write_molecules` writes
WRITE_SUFFIXES = (".smi", ".csv", ".tsv", ".parquet", ".sdf")
#: plain tables, no molecule formats (score tables)
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zip")

# --- columns -------------------------------------------------------------------------------------
#: the SMILES column of an input file, first found wins
SMILES_COLUMNS = ("smiles", "SMILES", "Smiles", "canonical_smiles", "smi")
#: the SMILES column of a DataFrame, which may be a table molgen made (a score table's ``input``)
FRAME_SMILES_COLUMNS = (*SMILES_COLUMNS, "input", "canonical")
#: an ID column (carried by default, the ``.smi`` name and SD record name when writing)
ID_COLUMNS = ("id", "ID", "Id", "name", "Name", "compound_id", "mol_id", "molecule_id", "_Name")
#: ``keep_cols`` values besides a list of column names
KEEP_MODES = ("auto", "all", "none")


def suffix_of(path: str | Path, accepted: Sequence[str], what: str) -> str:
    """The lower-case extension of ``path`` if it is one of ``accepted`` (else a ConfigError listing them)."""
    suffix = Path(path).suffix.lower()
    if suffix not in accepted:
        raise ConfigError(f"cannot {what} {Path(path).name!r}: the extension must be one of {', '.join(accepted)}")
    return suffix


def _suffix(path: Path) -> str:
    """The format extension of an input, under any compression extension (``x.smi.gz`` -> ``.smi``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _find_smiles(columns: Sequence[Any], smiles_col: str | None, names: Sequence[str], where: str, hint: str,
                 error: type[ValueError]) -> str:
    if smiles_col is not None:
        if smiles_col not in columns:
            raise error(f"{where}no column {smiles_col!r}; columns are {list(columns)}")
        return smiles_col
    for c in names:
        if c in columns:
            return c
    raise error(f"{where}cannot tell which column holds SMILES ({list(columns)}); {hint}")


def file_smiles_column(columns: Sequence[str], smiles_col: str | None, path: Path) -> str:
    """The SMILES column of the file ``path`` (an :class:`InputError` naming the file otherwise)."""
    return _find_smiles(columns, smiles_col, SMILES_COLUMNS, f"{path}: ", "pass --smiles-col", InputError)


def smiles_column(df: pd.DataFrame, smiles_col: str | None = None) -> str:
    """The column of ``df`` holding SMILES: ``smiles_col`` if given, else the first usual name present."""
    return _find_smiles(list(df.columns), smiles_col, FRAME_SMILES_COLUMNS, "", "give smiles_col", ConfigError)


def _first_id(columns: Iterable[Any]) -> str | None:
    columns = list(columns)
    return next((c for c in ID_COLUMNS if c in columns), None)


def id_column(df: pd.DataFrame) -> str | None:
    """The ID column of ``df`` (the first of :data:`ID_COLUMNS` present), else None."""
    return _first_id(df.columns)


def _default_index(df: pd.DataFrame) -> bool:
    return isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1 \
        and df.index.name is None


# --- opening text --------------------------------------------------------------------------------
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
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    if kind == "xz":
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


# --- sources ---------------------------------------------------------------------------------------
def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file of SMILES")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


def resolve_source(source: str | Path, smiles_col: str | None = None) -> tuple[Path, str | None]:
    """The file behind ``source`` (a path or a catalog name) and its SMILES column if the catalog names
    one; a missing / empty file or an unknown dataset is an :class:`InputError` (call it before long work)."""
    if catalog.looks_named(source):  # a catalog name (an unknown one lists the known ones)
        path, col = catalog.resolve(source)
        return Path(path), smiles_col or col
    path = Path(source)
    _check_file(path)
    return path, smiles_col




# --- streamed reading ----------------------------------------------------------------------------
def _keep_list(keep_cols: str | Sequence[str] | None, columns: Sequence[str], smiles: str, path: Path) -> list[str]:
    """Columns to carry: ``auto`` (None) the ID column if there is one, ``all`` every other column,
    ``none`` nothing, or the named ones (an unknown name lists the columns)."""
    others = [c for c in columns if c != smiles]
    if keep_cols is None or keep_cols == "auto":
        return [c for c in [_first_id(others)] if c is not None]
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


_Batch = tuple[list[str | None], pd.DataFrame | None]


def _csv_batches(path: Path, sep: str, smiles_col: str | None, keep_cols, batch_size: int) -> Iterator[_Batch]:
    with open_text(path) as f:
        try:
            header = pd.read_csv(f, sep=sep, nrows=0).columns
        except pd.errors.EmptyDataError:
            raise InputError(f"{path}: no header line (an empty or blank CSV)") from None
    col = file_smiles_column(list(header), smiles_col, path)
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


def _parquet_batches(path: Path, smiles_col: str | None, keep_cols, batch_size: int) -> Iterator[_Batch]:
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow.ArrowInvalid: not parquet / truncated footer
        raise InputError(f"{path}: not a readable parquet file ({e})") from None
    names = pf.schema_arrow.names
    col = file_smiles_column(names, smiles_col, path)
    keep = _keep_list(keep_cols, names, col, path)
    for b in pf.iter_batches(batch_size=batch_size, columns=[col, *keep]):
        smiles = b.column(col).to_pylist()
        yield smiles, (b.select(keep).to_pandas() if keep else None)


def _sdf_molecules(path: Path) -> Iterator[Any]:
    """The records of an SD file (any compression) as RDKit molecules, None where RDKit cannot read one."""
    with quiet_rdkit(), _raw_open(path) as raw:
        yield from Chem.ForwardSDMolSupplier(raw, sanitize=True)


def _sdf_batches(path: Path, keep_cols, batch_size: int) -> Iterator[_Batch]:
    """``.sdf``: each record's SMILES (None where RDKit cannot read it), its name kept as ``name``."""
    keep_name = keep_cols != "none"
    batch: list[str | None] = []
    names: list[str] = []
    for mol in _sdf_molecules(path):
        batch.append(Chem.MolToSmiles(mol) if mol is not None else None)
        names.append(mol.GetProp("_Name") if mol is not None and mol.HasProp("_Name") else "")
        if len(batch) >= batch_size:
            yield batch, (pd.DataFrame({"name": names}) if keep_name else None)
            batch, names = [], []
    if batch:
        yield batch, (pd.DataFrame({"name": names}) if keep_name else None)


def _smi_fields(line: str) -> tuple[str, str]:
    """(SMILES, name) of a ``.smi`` line: split at the first tab when there is one (so an empty SMILES
    field before the tab stays empty, as :func:`write_molecules` writes a sample with no string), else
    at the first run of whitespace."""
    line = line.rstrip("\r\n")
    if "\t" in line:
        smiles, name = line.split("\t", 1)
        return smiles.strip(), name.strip()
    parts = line.split(None, 1)
    return (parts[0] if parts else ""), (parts[1].strip() if len(parts) > 1 else "")


def _smi_batches(path: Path, keep_cols, batch_size: int) -> Iterator[_Batch]:
    """``.smi``: SMILES, then an optional whitespace-separated name (kept as ``name``)."""
    if keep_cols not in (None, *KEEP_MODES) and [c for c in (
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
                tok, name = _smi_fields(line)
                if first and tok.lower() in ("smiles", "smi"):
                    first = False
                    continue  # header line
                first = False
                batch.append(tok if tok else None)
                names.append(name)
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
                       keep_cols: str | Sequence[str] | None = None) -> Iterator[_Batch]:
    """Row-aligned batches of (raw SMILES, the input's other columns to carry or None).

    ``keep_cols``: None / ``"auto"`` (an ID-like column of a table, the name of a ``.smi`` line),
    ``"all"``, ``"none"`` or column names. A list source carries nothing.
    """
    if not isinstance(source, (str, Path)):
        items = list(source)
        for i in range(0, len(items), batch_size):
            yield list(items[i:i + batch_size]), None
        return
    path, smiles_col = resolve_source(source, smiles_col)
    kind = _suffix(path)
    if kind in (".csv", ".tsv"):
        yield from _csv_batches(path, "\t" if kind == ".tsv" else ",", smiles_col, keep_cols, batch_size)
    elif kind == ".parquet":
        yield from _parquet_batches(path, smiles_col, keep_cols, batch_size)
    elif kind == ".sdf":
        yield from _sdf_batches(path, keep_cols, batch_size)
    else:  # .smi, .txt, anything else: one SMILES per line
        yield from _smi_batches(path, keep_cols, batch_size)


def iter_smiles_batches(source: SmilesSource, smiles_col: str | None = None,
                        batch_size: int = 10_000) -> Iterator[list[str | None]]:
    """Yield row-aligned batches of raw SMILES (None/'' kept where a row has no SMILES)."""
    for smiles, _ in iter_table_batches(source, smiles_col, batch_size, keep_cols="none"):
        yield smiles


@strict
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


# --- whole-table reading -------------------------------------------------------------------------
@strict
def read_table(path: str | Path, *, smiles_col: str | None = None) -> pd.DataFrame:
    """Every row and column of a molecule file as a DataFrame with a ``smiles`` column (or ``smiles_col``).

    ``.csv`` / ``.tsv`` / ``.parquet``: every column, typed; ``.smi`` / ``.txt``: SMILES then an optional
    name (column ``name``; a tab separates them when there is one, as :func:`write_molecules` writes);
    ``.sdf``: the record's SMILES (None where RDKit cannot read it), its name and its SD fields.
    """
    path = Path(path)
    suffix = suffix_of(path, READ_SUFFIXES, "read")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix in (".csv", ".tsv"):
        with open_text(path) as f:
            df = pd.read_csv(f, sep="\t" if suffix == ".tsv" else ",", keep_default_na=False, na_values=[""])
    elif suffix == ".parquet":
        df = pd.read_parquet(path)
    elif suffix == ".sdf":
        rows = []
        for mol in _sdf_molecules(path):
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
        with open_text(path) as f:
            for i, line in enumerate(f):
                smiles, name = _smi_fields(line)  # SMILES<tab>name as written here, else SMILES<space>name
                if i == 0 and smiles.lower() in ("smiles", "smi"):
                    continue  # header line
                rows.append({"smiles": smiles or None, "name": name})
        df = pd.DataFrame(rows, columns=["smiles", "name"])
        if (df["name"] == "").all():
            df = df.drop(columns="name")
    smiles_column(df, smiles_col)  # a clear error now rather than later
    return df


# --- writing -------------------------------------------------------------------------------------
def arrow_table(df: pd.DataFrame, *, preserve_index: bool = False):
    """``df`` as a pyarrow Table whose all-None columns are strings, not nulls (a chunk with every
    ``canonical`` empty must have the same schema as the next chunk)."""
    table = pa.Table.from_pandas(df, preserve_index=preserve_index)
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


#: how a true / false flag (``valid``, ``keep``, any bool column) is written in text formats
#: (``.csv``, ``.tsv``, ``.sdf`` fields, the ``.smi`` marks): ``1`` / ``0``; ``.parquet`` keeps booleans
FLAG_TRUE, FLAG_FALSE = "1", "0"
#: the word after a ``.smi`` row's name that marks a row whose ``valid`` column is false
SMI_INVALID = "invalid"


def row_ids(n: int, *, start: int = 1, width: int | None = None, prefix: str = "sample") -> list[str]:
    """``sample_000001``, ``sample_000002``, ...: 1-based row ids of a table of ``n`` rows, zero-padded to
    6 digits (more when ``n`` needs them), numbered from ``start`` (a chunk of a larger table passes its
    first row number and the whole table's ``width``)."""
    width = width or max(6, len(str(start + n - 1)))
    return [f"{prefix}_{i:0{width}d}" for i in range(start, start + n)]


def _flag(v: object) -> bool | None:
    """A true / false value as written by any writer or read back from any format (None: missing)."""
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return None
    if isinstance(v, str):
        t = v.strip().lower()
        return True if t in ("1", "true", "yes") else (False if t in ("0", "false", "no") else None)
    return bool(v)


def _sd_value(v: object) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return FLAG_TRUE if v else FLAG_FALSE
    return str(v)


def _flags_as_digits(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its boolean columns as 1 / 0 (nullable ones keep their missing values empty)."""
    flags = [c for c in df.columns if pd.api.types.is_bool_dtype(df[c].dtype)]
    if not flags:
        return df
    out = df.copy()
    for c in flags:
        out[c] = df[c].astype("Int8" if df[c].dtype == "boolean" else "int8")
    return out


class TableWriter:
    """One output file in the format of its extension, written one DataFrame at a time.

    The per-extension code behind :func:`write_molecules` (one frame) and :func:`write_frames`
    (streamed chunks, in order): ``.csv`` / ``.tsv`` (a header, then the rows of every frame),
    ``.parquet`` (one parquet file; the first frame's schema and ``attrs``), ``.smi`` and ``.sdf``.
    ``index``: write the pandas index (a column; the ``.smi`` name or SD record name when there is no
    ID column). The caller checks the extension (:func:`suffix_of`); use it as a context manager.
    """

    def __init__(self, path: str | Path, *, smiles_col: str | None = None, index: bool = False) -> None:
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        self.smiles_col, self.index = smiles_col, index
        self.frames = self.rows = 0
        self._sink: Any = None  # the open parquet writer, text file or SD writer
        suffix_of(self.path, WRITE_SUFFIXES, "write")
        self._write = {".csv": self._csv, ".tsv": self._csv, ".parquet": self._parquet, ".smi": self._smi,
                       ".sdf": self._sdf}[self.suffix]

    def write(self, df: pd.DataFrame) -> None:
        self._write(df)
        self.frames += 1
        self.rows += len(df)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _csv(self, df: pd.DataFrame) -> None:
        _flags_as_digits(df).to_csv(self.path, sep="\t" if self.suffix == ".tsv" else ",", index=self.index,
                  mode="a" if self.frames else "w", header=not self.frames)

    def _parquet(self, df: pd.DataFrame) -> None:
        table = arrow_table(df, preserve_index=self.index)
        if self._sink is None:
            if df.attrs:  # as pandas' to_parquet does: read_parquet gives them back
                table = table.replace_schema_metadata(
                    {**(table.schema.metadata or {}), b"PANDAS_ATTRS": json.dumps(df.attrs, default=str)})
            self._sink = pq.ParquetWriter(self.path, table.schema)
        elif table.schema != self._sink.schema:
            table = table.cast(self._sink.schema)  # e.g. a column all None (string) in one chunk, large_string in another
        self._sink.write_table(table)

    def _names(self, df: pd.DataFrame) -> list[str] | None:
        ids = id_column(df)
        return df[ids].astype(str).tolist() if ids else (list(map(str, df.index)) if self.index else None)

    def _smi(self, df: pd.DataFrame) -> None:
        """``SMILES<tab>NAME[ invalid][ keep=1|0]``: the name (ID column or index), then ``invalid`` where
        the ``valid`` column is false and ``keep=`` where there is a ``keep`` column."""
        col = smiles_column(df, self.smiles_col)
        names = self._names(df)
        marks: list[list[str]] = [[] for _ in range(len(df))]
        if "valid" in df.columns:
            for m, v in zip(marks, df["valid"].tolist()):
                if _flag(v) is False:
                    m.append(SMI_INVALID)
        if "keep" in df.columns:
            for m, v in zip(marks, df["keep"].tolist()):
                if _flag(v) is not None:
                    m.append(f"keep={FLAG_TRUE if _flag(v) else FLAG_FALSE}")
        if names is not None or any(marks):
            names = [" ".join(x for x in (names[i] if names is not None else "", *marks[i]) if x)
                     for i in range(len(df))]
        if self._sink is None:
            self._sink = open(self.path, "w")
        _smi_lines(self._sink, df[col].tolist(), names)

    def _sdf(self, df: pd.DataFrame) -> None:
        """One SD record per row: the molecule (2D coordinates), its name (ID column or index) and every
        other column as a field (flags as 1 / 0); an unparsable SMILES, or a row whose ``valid`` column is
        false, gives an empty molecule with the raw string and ``valid`` 0 as fields."""
        col = smiles_column(df, self.smiles_col)
        if self._sink is None:
            self._sink = Chem.SDWriter(str(self.path))
            self._sink.SetForceV3000(False)
        ids = id_column(df)
        fields = [c for c in df.columns if c != col]
        with quiet_rdkit():
            for idx, row in df.iterrows():
                s = row[col]
                said_invalid = "valid" in df.columns and _flag(row["valid"]) is False
                mol = Chem.MolFromSmiles(s) if isinstance(s, str) and s and not said_invalid else None
                valid = mol is not None
                if mol is None:
                    mol = Chem.Mol()
                else:
                    rdDepictor.Compute2DCoords(mol)
                name = row[ids] if ids else (idx if self.index else None)
                mol.SetProp("_Name", _sd_value(name) if name is not None else "")
                mol.SetProp(str(col), _sd_value(s))
                if "valid" not in df.columns:
                    mol.SetProp("valid", FLAG_TRUE if valid else FLAG_FALSE)
                if self.index:
                    mol.SetProp(str(df.index.name or "index"), _sd_value(idx))
                for c in fields:
                    mol.SetProp(str(c), _sd_value(row[c]))
                self._sink.write(mol)


def _smi_lines(f: IO[str], smiles: Iterable[Any], names: Sequence[str] | None = None) -> None:
    """``.smi`` rows: the SMILES (empty when there is none), a tab and the name when there is one (also
    after an empty SMILES: the readers here split at the tab, so the row keeps its name)."""
    for i, s in enumerate(smiles):
        s = s if isinstance(s, str) else ""
        f.write(f"{s}\t{names[i]}\n" if names is not None and names[i] else f"{s}\n")


@strict
def write_molecules(df: pd.DataFrame, path: str | Path, *, smiles_col: str | None = None) -> Path:
    """Write ``df`` to ``path`` in the format of its extension (see the module docstring); returns the path."""
    path = Path(path)
    suffix_of(path, WRITE_SUFFIXES, "write molecules to")
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_molecules takes a DataFrame, got {type(df).__name__}")
    with TableWriter(path, smiles_col=smiles_col, index=not _default_index(df)) as w:
        w.write(df)
    return path


@strict
def write_frames(frames: Iterable[pd.DataFrame], path: str | Path, *, accepted: Sequence[str] = WRITE_SUFFIXES,
                 what: str = "write molecules to", columns: Sequence[str] | None = None,
                 smiles_col: str | None = None) -> int:
    """Stream ``frames`` (consecutive chunks of one table) into ``path``; returns the rows written.

    The extension must be one of ``accepted`` (checked before the first frame is made; the error says
    ``cannot {what} ...``). The index is not written. With no frame at all, ``columns`` (if given) is
    written as an empty table's header."""
    path = Path(path)
    suffix_of(path, accepted, what)
    with TableWriter(path, smiles_col=smiles_col) as w:
        for df in frames:
            w.write(df)
        if not w.frames and columns is not None:
            w.write(pd.DataFrame(columns=list(columns)))
    return w.rows


@strict
def write_smiles(smiles: Iterable[str | None], path: str | Path) -> None:
    """One SMILES per line (an empty line where there is none), whatever the extension of ``path``."""
    with open(path, "w") as f:
        _smi_lines(f, smiles)
