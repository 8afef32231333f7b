"""Named datasets: ``moses:train`` etc. resolve to files shipped in ``data/`` or downloaded and verified.

Each entry records its source URL, sha256 and licence. The embedded MOSES files are checked against
their sha256 on first use; a download (for a user-added entry or a missing file) is verified the same
way before it is used, so a truncated or tampered file is an error, not a silent difference.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MOSES_URL = "https://media.githubusercontent.com/media/molecularsets/moses/master/data/{}.csv.gz"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    filename: str
    sha256: str
    url: str
    licence: str
    smiles_col: str = "SMILES"


CATALOG: dict[str, DatasetEntry] = {
    e.name: e
    for e in [
        DatasetEntry("moses:train", "moses/train.csv.gz",
                     "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c",
                     MOSES_URL.format("train"), "MIT"),
        DatasetEntry("moses:test", "moses/test.csv.gz",
                     "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
                     MOSES_URL.format("test"), "MIT"),
        DatasetEntry("moses:test_scaffolds", "moses/test_scaffolds.csv.gz",
                     "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde",
                     MOSES_URL.format("test_scaffolds"), "MIT"),
    ]
}
ALIASES = {"moses": "moses:train", "moses:test-scaffolds": "moses:test_scaffolds", "moses:testsf": "moses:test_scaffolds"}


def data_dir() -> Path:
    """``$MOLGEN_DATA`` or the repository's ``data/`` folder (the embedded default)."""
    env = os.environ.get("MOLGEN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


def cache_dir() -> Path:
    """``$MOLGEN_CACHE`` or ``~/.cache/molgen``: tokenization caches, reference statistics."""
    d = Path(os.environ.get("MOLGEN_CACHE", Path.home() / ".cache" / "molgen"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class ChecksumError(RuntimeError):
    pass


_verified: set[Path] = set()


def verify(path: Path, sha256: str) -> Path:
    if path in _verified:
        return path
    got = sha256_file(path)
    if got != sha256:
        raise ChecksumError(f"{path}: sha256 {got} does not match the catalog ({sha256}); "
                            "the file is corrupt or was replaced. Delete it to download it again.")
    _verified.add(path)
    return path


def download(url: str, dest: Path, sha256: str) -> Path:
    """Download ``url`` to ``dest`` through a temporary file and verify the checksum before moving."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
        tmp_path = Path(tmp.name)
        with urllib.request.urlopen(url, timeout=60) as r:
            shutil.copyfileobj(r, tmp)
    try:
        verify(tmp_path, sha256)
    except ChecksumError:
        tmp_path.unlink(missing_ok=True)
        raise
    tmp_path.replace(dest)
    return dest


def is_named(name: str) -> bool:
    return ALIASES.get(name, name) in CATALOG


def resolve(name: str, *, allow_download: bool = True) -> tuple[Path, str]:
    """Path and SMILES column of a catalog dataset, verified by sha256."""
    key = ALIASES.get(name, name)
    if key not in CATALOG:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(CATALOG))}")
    e = CATALOG[key]
    path = data_dir() / e.filename
    if not path.exists():
        if not allow_download:
            raise FileNotFoundError(f"{path} is missing and downloads are off")
        download(e.url, path, e.sha256)
    return verify(path, e.sha256), e.smiles_col
