"""64-bit hashes of canonical SMILES: novelty lookups without re-standardising a training set.

A set of molecules is stored as the sorted, distinct ``uint64`` hashes of their canonical SMILES
(molgen's policy, :mod:`molgen.chem`). The hash of a string is the first 8 bytes of its BLAKE2b
digest (``digest_size=8``) read as little-endian ``uint64``: stable across platforms, processes and
Python versions (unlike ``hash()``). A query is hashed the same way and looked up with
``np.searchsorted``; with 1.6M molecules in 2^64 values the chance that a novel molecule is called
not novel by a collision is ~1e-13.

Where the hashes come from, for :func:`canonical_hashes`:

1. a dataset of the catalog with hashes shipped in ``data/`` (``moses:train``: ``data/moses/hashes/``),
   when the policy and the RDKit release (``YYYY.MM``) are those that produced them: loaded and
   checked against the sha256 pinned in :data:`molgen.data.catalog.SHIPPED_HASHES` (a mismatch is a
   :class:`~molgen.data.catalog.ChecksumError`); no molecule is standardised;
2. the user cache (``cache_dir()/hashes``), keyed by the source's content hash, the policy, the RDKit
   release and the hash function;
3. computed: every molecule standardised (a log line and a progress bar; minutes for 1.6M molecules on
   one core), then cached as in 2.

Rebuild the shipped file (after an RDKit release that changes canonical SMILES, or for another
policy) with::

    python -m molgen.data.hashes build moses:train --n-jobs 2

which writes ``data/moses/hashes/<name>-<policy key>.npy`` and prints the catalog entry to pin.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rdkit

from molgen.chem import DEFAULT_POLICY, Policy, canonicalize_many
from molgen.data import catalog
from molgen.data.io import read_smiles, source_hash
from molgen.parallel import map_chunks

log = logging.getLogger(__name__)

HASH_FUNCTION = "blake2b-64"  # part of every cache key and of the shipped entries
CHUNK = 20_000  # molecules per standardisation task (a progress-bar step)


def rdkit_release() -> str:
    """The RDKit release, ``YYYY.MM`` (``2026.09.1`` -> ``2026.09``): canonical SMILES may change
    between releases, so shipped hashes are used only under the release that produced them."""
    return ".".join(rdkit.__version__.split(".")[:2])


def smiles_hash(smiles: str) -> int:
    """The 64-bit hash of one string (see the module docstring)."""
    return int.from_bytes(hashlib.blake2b(smiles.encode(), digest_size=8).digest(), "little")


def hash_smiles(smiles: Iterable[str]) -> np.ndarray:
    """Row-aligned ``uint64`` hashes of strings (canonical SMILES, as given)."""
    b2 = hashlib.blake2b
    raw = b"".join(b2(s.encode(), digest_size=8).digest() for s in smiles)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def contains(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``queries[i] in table`` for a sorted ``table`` (bool array, one per query)."""
    queries = np.asarray(queries, dtype=np.uint64)
    if len(table) == 0 or len(queries) == 0:
        return np.zeros(len(queries), dtype=bool)
    pos = np.searchsorted(table, queries)
    return table[np.minimum(pos, len(table) - 1)] == queries


class HashSet:
    """A set of canonical SMILES held as sorted 64-bit hashes: ``smiles in s``, ``s.contains_many(list)``."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, smiles: object) -> bool:
        if not isinstance(smiles, str) or len(self.table) == 0:
            return False
        h = np.uint64(smiles_hash(smiles))
        i = int(np.searchsorted(self.table, h))
        return i < len(self.table) and self.table[i] == h

    def contains_many(self, smiles: Sequence[str]) -> np.ndarray:
        return contains(self.table, hash_smiles(smiles))


def standardize_with_progress(smiles: Sequence[Any], policy: Any, *, n_jobs: int = 1,
                              desc: str = "standardising") -> list[str | None]:
    """Row-aligned canonical SMILES (None where invalid); a progress bar over chunks for large inputs."""
    smiles = list(smiles)
    if len(smiles) < CHUNK:
        return canonicalize_many(smiles, policy)
    out: list[str | None] = []
    for part in map_chunks(canonicalize_many, smiles, n_jobs, chunk_size=CHUNK, desc=desc, policy=policy):
        out.extend(part)
    return out


def sorted_unique(hashes: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(hashes, dtype=np.uint64))


def compute_hashes(smiles: Sequence[Any], policy: Any = None, *, n_jobs: int = 1,
                   desc: str = "standardising") -> np.ndarray:
    """Sorted distinct hashes of the canonical SMILES of ``smiles`` (invalid rows left out)."""
    canon = standardize_with_progress(smiles, policy or DEFAULT_POLICY, n_jobs=n_jobs, desc=desc)
    return sorted_unique(hash_smiles(c for c in canon if c is not None))


# ---- shipped hashes -----------------------------------------------------------------------------
def shipped_entry(name: str, policy: Any, *, any_release: bool = False) -> Any:
    """The :class:`~molgen.data.catalog.HashesEntry` for dataset ``name`` under ``policy``, if hashes
    ship for it and were produced by this RDKit release (any release with ``any_release``); else None."""
    if not isinstance(name, str) or not catalog.is_named(name):
        return None
    e = catalog.SHIPPED_HASHES.get((catalog.canonical_name(name), policy.key))
    if e is None or e.hash_function != HASH_FUNCTION or (e.rdkit_release != rdkit_release() and not any_release):
        return None
    ds = catalog.entry(name)
    if ds.sha256 != e.source_sha256:  # the dataset was re-pinned: these hashes describe other bytes
        return None
    return e


def _verified_shipped(e: Any, filename: str, sha256: str) -> Path:
    path = catalog.data_dir() / filename
    if not path.exists():
        raise FileNotFoundError(f"{path}: the shipped hashes of {e.dataset} are missing; restore the file or "
                                f"rebuild it with `python -m molgen.data.hashes build {e.dataset}`")
    try:
        catalog.verify(path, sha256)
    except catalog.ChecksumError as exc:
        raise catalog.ChecksumError(
            f"shipped novelty hashes of {e.dataset} are corrupt: {exc} Restore {filename} from the "
            f"repository or rebuild it with `python -m molgen.data.hashes build {e.dataset}`") from None
    return path


def load_shipped(e: Any) -> np.ndarray:
    """The shipped hash array of entry ``e``, verified against its pinned sha256."""
    path = _verified_shipped(e, e.filename, e.sha256)
    table = np.load(path, allow_pickle=False)
    if table.dtype != np.uint64 or table.ndim != 1 or len(table) != e.n:
        raise catalog.ChecksumError(f"{path}: expected {e.n} uint64 hashes, found {table.dtype} {table.shape}")
    return table


# ---- cache ----------------------------------------------------------------------------------------
def _cache_path(source_key: str, policy: Any) -> Path:
    """Cache file of a source's hashes: canonical under ``policy`` and this RDKit release, or the rows
    as given (``policy=None``, independent of RDKit)."""
    raw = (f"{source_key}|{policy.key}|rdkit={rdkit_release()}|{HASH_FUNCTION}" if policy is not None
           else f"{source_key}|{HASH_FUNCTION}")
    return catalog.cache_dir() / "hashes" / f"{hashlib.sha256(raw.encode()).hexdigest()[:20]}.npy"


def _save_atomic(path: Path, table: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = catalog.atomic_tmp(path)
    try:
        with open(tmp, "wb") as f:
            np.save(f, table)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def canonical_hashes(source: Any, policy: Any = None, *, smiles_col: str | None = None, n_jobs: int = 1,
                     use_cache: bool = True) -> np.ndarray:
    """Sorted distinct ``uint64`` hashes of the canonical SMILES (under ``policy``) of ``source``: a
    catalog name (``moses:train``), a file, or a list / set / Series of SMILES (see the module docstring
    for where they come from). Invalid rows are left out."""
    policy = policy or DEFAULT_POLICY
    if not isinstance(source, (str, Path)):
        if hasattr(source, "tolist"):
            source = source.tolist()
        return compute_hashes(list(source), policy, n_jobs=n_jobs)
    e = shipped_entry(source, policy) if isinstance(source, str) and smiles_col is None else None
    if e is not None:
        return load_shipped(e)
    path = _cache_path(source_hash(source, smiles_col), policy) if use_cache else None
    if path is not None and path.exists():
        return np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    smiles = read_smiles(source, smiles_col)
    log.info("standardising the %d molecules of %s for novelty (policy %s, RDKit %s); first use only, "
             "cached afterwards%s", len(smiles), source, policy.key, rdkit_release(),
             " (single process: pass n_jobs / --n-jobs to use more cores)" if n_jobs <= 1 else "")
    table = compute_hashes(smiles, policy, n_jobs=n_jobs, desc=f"novelty: standardising {source}")
    if path is not None:
        _save_atomic(path, table)
    log.info("novelty reference %s: %d distinct molecules in %.0f s%s", source, len(table),
             time.perf_counter() - t0, f" (cached in {path})" if path is not None else "")
    return table


def row_hashes(source: Any, *, smiles_col: str | None = None, use_cache: bool = True) -> np.ndarray:
    """Sorted distinct hashes of the non-empty rows of ``source`` **as given** (no RDKit): the training
    set of MOSES's novelty, which compares canonical generated SMILES with the train strings unchanged.

    For a dataset with shipped hashes and their ``rows_delta`` (the few rows that are not canonical) the
    rows are rebuilt from those two files, whatever RDKit is installed (both come from one build, and
    hashing a string needs no RDKit); a file's row hashes are cached by its content hash; a list is
    hashed each time."""
    if not isinstance(source, (str, Path)):
        if hasattr(source, "tolist"):
            source = source.tolist()
        return sorted_unique(hash_smiles(s for s in source if isinstance(s, str) and s))
    e = shipped_entry(source, DEFAULT_POLICY, any_release=True) if smiles_col is None else None
    if e is not None and e.rows_delta:
        # the rows = the canonical molecules, less those whose row was not canonical, plus those rows
        with np.load(_verified_shipped(e, e.rows_delta, e.rows_delta_sha256), allow_pickle=False) as z:
            rows_only, canonical_only = z["rows_only"], z["canonical_only"]
        table = load_shipped(e)
        keep = np.delete(table, np.searchsorted(table, canonical_only[contains(table, canonical_only)]))
        extra = rows_only[~contains(keep, rows_only)]
        return np.insert(keep, np.searchsorted(keep, extra), extra)  # sorted, distinct, no full sort
    path = _cache_path("rows|" + source_hash(source, smiles_col), None) if use_cache else None
    if path is not None and path.exists():
        return np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    table = sorted_unique(hash_smiles(s for s in read_smiles(source, smiles_col) if s))
    if path is not None:
        _save_atomic(path, table)
    log.info("novelty: hashed the %d distinct rows of %s in %.1f s", len(table), source, time.perf_counter() - t0)
    return table


# ---- maintenance: build the shipped file --------------------------------------------------------
def write_rows_delta(path: Path, smiles: Sequence[Any], table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows that are not canonical (MOSES novelty compares the rows as given): ``rows_only`` (hashes
    of those rows) and ``canonical_only`` (hashes of canonical forms that are no row), as an npz."""
    rows = sorted_unique(hash_smiles(s for s in smiles if isinstance(s, str) and s))
    rows_only, canonical_only = np.setdiff1d(rows, table), np.setdiff1d(table, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:  # an npz with fixed timestamps: the same bytes on every build
        for name, arr in (("rows_only", rows_only), ("canonical_only", canonical_only)):
            with z.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr, dtype=np.uint64), allow_pickle=False)
    return rows_only, canonical_only


def build_shipped(name: str, policy: Any = None, *, n_jobs: int = 1, out_dir: Path | None = None) -> dict:
    """Standardise catalog dataset ``name``, write its hashes to ``data/<folder>/hashes/`` and return the
    fields of its :class:`~molgen.data.catalog.HashesEntry` (plus statistics about the run)."""
    policy = policy or DEFAULT_POLICY
    e = catalog.entry(name)
    path, _ = catalog.resolve(e.name)
    t0 = time.perf_counter()
    smiles = read_smiles(e.name)
    canon = standardize_with_progress(smiles, policy, n_jobs=n_jobs, desc=f"standardising {e.name}")
    seconds = time.perf_counter() - t0
    valid = [c for c in canon if c is not None]
    table = sorted_unique(hash_smiles(valid))
    n_distinct = len(set(valid))
    folder = (out_dir or catalog.data_dir() / Path(e.filename).parent / "hashes")
    stem = f"{e.name.split(':', 1)[-1]}-{policy.key}"
    out, delta = folder / f"{stem}.npy", folder / f"{stem}-rows.npz"
    _save_atomic(out, table)
    rows_only, canonical_only = write_rows_delta(delta, smiles, table)
    rel = Path(e.filename).parent / "hashes"
    info = {"dataset": e.name, "filename": str(rel / out.name),
            "sha256": catalog.sha256_file(out), "rows_delta": str(rel / delta.name),
            "rows_delta_sha256": catalog.sha256_file(delta), "policy_key": policy.key, "policy": policy.to_dict(),
            "rdkit_release": rdkit_release(), "rdkit": rdkit.__version__, "hash_function": HASH_FUNCTION,
            "source_sha256": catalog.sha256_file(path), "n": len(table), "bytes": out.stat().st_size,
            "rows": len(smiles), "invalid": len(canon) - len(valid), "distinct_canonical": n_distinct,
            "hash_collisions": n_distinct - len(table),
            "rows_changed_by_policy": sum(1 for s, c in zip(smiles, canon) if c is not None and s != c),
            "rows_only": len(rows_only), "canonical_only": len(canonical_only),
            "standardise_seconds": round(seconds, 1), "n_jobs": n_jobs,
            "date": time.strftime("%Y-%m-%d")}
    (folder / f"{out.stem}.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m molgen.data.hashes",
                                 description="build the shipped novelty hashes of a catalog dataset")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("name", help="catalog dataset, e.g. moses:train")
    b.add_argument("--n-jobs", type=int, default=1)
    b.add_argument("--no-stereo", action="store_true", help="policy: remove stereo (default keeps it)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    info = build_shipped(args.name, Policy(keep_stereo=not args.no_stereo), n_jobs=args.n_jobs)
    print(json.dumps(info, indent=1))
    print("pin it in molgen/data/catalog.py SHIPPED_HASHES:\n"
          f"    HashesEntry({info['dataset']!r}, {info['filename']!r}, {info['sha256']!r}, {info['policy_key']!r},\n"
          f"                {info['rdkit_release']!r}, {info['source_sha256']!r}, {info['n']},\n"
          f"                rows_delta={info['rows_delta']!r},\n"
          f"                rows_delta_sha256={info['rows_delta_sha256']!r}),")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
