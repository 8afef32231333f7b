"""Named datasets: ``moses:train``, ``guacamol:train``, ``zinc250k`` ... with source URL, checksum,
licence and citation; verified, resumable downloads into ``$MOLGEN_CACHE/datasets``.

- The MOSES files ship in ``data/`` (embedded); their sha256 equals the Git-LFS object id of the
  MOSES repository, so the embedded copy and a download are the same bytes.
- GuacaMol (ChEMBL 24-derived) and ZINC250k publish an md5 only. Their sha256 is not pinned here (it
  could not be computed offline), so ``molgen data get NAME`` refuses them unless the user passes
  ``--allow-unpinned``: the file is then checked against the published md5 and its sha256 recorded
  next to it (``FILE.sha256``), and later uses verify that.
- Nothing downloads implicitly: a missing file is an error that names the command, or under
  ``MOLGEN_OFFLINE=1`` the path to place the file at by hand.
- A download goes to ``FILE.part`` (continued with an HTTP ``Range`` request after an interruption)
  and is renamed to ``FILE`` only after its checksum matched.
- :data:`SHIPPED_HASHES` pins the files derived from a dataset that ship with it: the 64-bit hashes of
  ``moses:train``'s canonical SMILES for novelty (``data/moses/hashes``, :mod:`molgen.data.hashes`),
  keyed by dataset and policy, with the RDKit release that produced them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from molgen.progress import progress_bar

MOSES_URL = "https://media.githubusercontent.com/media/molecularsets/moses/master/moses/dataset/data/{}.csv.gz"
MOSES_CITE = ("Polykovskiy et al., Molecular Sets (MOSES): a benchmarking platform for molecular generation "
              "models, Front. Pharmacol. 11:565644 (2020)")
GUACAMOL_URL = "https://ndownloader.figshare.com/files/{}"
GUACAMOL_CITE = ("Brown et al., GuacaMol: benchmarking models for de novo molecular design, J. Chem. Inf. "
                 "Model. 59(3):1096-1108 (2019); ChEMBL: Gaulton et al., Nucleic Acids Res. 45:D945 (2017)")
GUACAMOL_LICENCE = "CC BY-SA 3.0 (derived from ChEMBL 24); guacamol code MIT"
GUACAMOL_MD5_SOURCE = "md5 published in the GuacaMol README (github.com/BenevolentAI/guacamol)"
ZINC250K_URL = ("https://raw.githubusercontent.com/aspuru-guzik-group/chemical_vae/master/models/"
                "zinc_properties/250k_rndm_zinc_drugs_clean_3.csv")


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset file: where it comes from, how it is verified, under which terms it may be used."""

    name: str
    filename: str
    sha256: str | None  # None: not pinned (see md5 / checksum_source)
    url: str
    licence: str
    smiles_col: str = "SMILES"
    citation: str = ""
    description: str = ""
    md5: str | None = None  # the checksum the source itself publishes, when it is not a sha256
    size: int | None = None  # bytes
    checksum_source: str = ""
    embedded: bool = False  # shipped in the repository's data/ folder

    @property
    def verification(self) -> str:
        if self.sha256:
            return "sha256 (pinned)"
        if self.md5:
            return "md5 only (sha256 not pinned; needs --allow-unpinned)"
        return "none (needs --allow-unpinned)"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verification": self.verification}


CATALOG: dict[str, DatasetEntry] = {
    e.name: e
    for e in [
        DatasetEntry("moses:train", "moses/train.csv.gz",
                     "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c",
                     MOSES_URL.format("train"), "MIT (MOSES); molecules from ZINC Clean Leads", citation=MOSES_CITE,
                     description="MOSES training split, 1.58M molecules", size=10_238_967,
                     checksum_source="Git-LFS object id in molecularsets/moses", embedded=True),
        DatasetEntry("moses:test", "moses/test.csv.gz",
                     "f896fbf3764f88d94670b9959e5872c600c12152a18233823e820761b7a791b2",
                     MOSES_URL.format("test"), "MIT (MOSES); molecules from ZINC Clean Leads", citation=MOSES_CITE,
                     description="MOSES test split, 176k molecules", size=1_367_572,
                     checksum_source="Git-LFS object id in molecularsets/moses", embedded=True),
        DatasetEntry("moses:test_scaffolds", "moses/test_scaffolds.csv.gz",
                     "adffb2192c1bfe31ab0e13154d4af19a37dc18bdbf3cd7b4491e04405128adde",
                     MOSES_URL.format("test_scaffolds"), "MIT (MOSES); molecules from ZINC Clean Leads",
                     citation=MOSES_CITE, description="MOSES scaffold test split (scaffolds unseen in train)",
                     size=1_274_114, checksum_source="Git-LFS object id in molecularsets/moses", embedded=True),
        DatasetEntry("guacamol:train", "guacamol/guacamol_v1_train.smiles", None, GUACAMOL_URL.format(13612760),
                     GUACAMOL_LICENCE, citation=GUACAMOL_CITE, md5="05ad85d871958a05c02ab51a4fde8530",
                     size=61_841_218, checksum_source=GUACAMOL_MD5_SOURCE,
                     description="GuacaMol v1 training split (ChEMBL 24-derived), 1.27M molecules"),
        DatasetEntry("guacamol:valid", "guacamol/guacamol_v1_valid.smiles", None, GUACAMOL_URL.format(13612766),
                     GUACAMOL_LICENCE, citation=GUACAMOL_CITE, md5="e53db4bff7dc4784123ae6df72e3b1f0",
                     size=3_859_125, checksum_source=GUACAMOL_MD5_SOURCE,
                     description="GuacaMol v1 validation split (ChEMBL 24-derived), 79.6k molecules"),
        DatasetEntry("guacamol:test", "guacamol/guacamol_v1_test.smiles", None, GUACAMOL_URL.format(13612757),
                     GUACAMOL_LICENCE, citation=GUACAMOL_CITE, md5="677b757ccec4809febd83850b43e1616",
                     size=11_590_126, checksum_source=GUACAMOL_MD5_SOURCE,
                     description="GuacaMol v1 test split (ChEMBL 24-derived), 238.7k molecules"),
        DatasetEntry("guacamol:all", "guacamol/guacamol_v1_all.smiles", None, GUACAMOL_URL.format(13612745),
                     GUACAMOL_LICENCE, citation=GUACAMOL_CITE, md5="7d45bc95c33c10cb96ef5e78c38ac0b6",
                     size=77_290_469, checksum_source=GUACAMOL_MD5_SOURCE,
                     description="all GuacaMol v1 molecules (ChEMBL 24-derived, standardised), 1.59M"),
        DatasetEntry("zinc250k", "zinc250k/250k_rndm_zinc_drugs_clean_3.csv", None, ZINC250K_URL,
                     "ZINC terms of use (free to use, cite ZINC); file from chemical_vae (Apache-2.0)",
                     smiles_col="smiles",
                     citation=("Gomez-Bombarelli et al., ACS Cent. Sci. 4(2):268-276 (2018); Irwin & Shoichet, "
                               "ZINC, J. Chem. Inf. Model. 45(1):177 (2005)"),
                     md5="b59078b2b04c6e9431280e3dc42048d5",
                     checksum_source="md5 used by TorchDrug's ZINC250k loader (not published by the authors)",
                     description="249,455 drug-like ZINC molecules with logP / QED / SAS (chemical VAE set)"),
    ]
}


@dataclass(frozen=True)
class HashesEntry:
    """Shipped novelty hashes of a dataset (:mod:`molgen.data.hashes`): the sorted distinct 64-bit
    hashes of its canonical SMILES under one policy, produced by one RDKit release, verified by sha256.
    Used only when the user's policy key, RDKit release and the dataset's sha256 all match."""

    dataset: str
    filename: str  # relative to data_dir()
    sha256: str
    policy_key: str  # molgen.chem.Policy.key
    rdkit_release: str  # YYYY.MM of the RDKit that canonicalised the molecules
    source_sha256: str  # the dataset file the hashes were computed from
    n: int  # distinct molecules (array length)
    hash_function: str = "blake2b-64"
    # the rows whose string is not canonical (MOSES novelty compares the train rows as given): an npz of
    # ``rows_only`` (row hashes) and ``canonical_only`` (their canonical hashes), sha256-pinned
    rows_delta: str = ""
    rows_delta_sha256: str = ""


SHIPPED_HASHES: dict[tuple[str, str], HashesEntry] = {
    (e.dataset, e.policy_key): e
    for e in [
        HashesEntry("moses:train", "moses/hashes/train-k1k1l1n0.npy",
                    "749e23ee3c00031cc517d3e02e13a233a398184717a61120a9c4861eea5b1304", "k1k1l1n0", "2026.09",
                    "786f0313aa6b9ba5514df685f885742a70ea8d86f1a4fa48115f7f80a634265c", 1_584_663,
                    rows_delta="moses/hashes/train-k1k1l1n0-rows.npz",
                    rows_delta_sha256="c9ce00d5f8cc55172b7889ea7f5750dc95b6e0e35cc2c216c31516c14aa71e36"),
    ]
}
ALIASES = {"moses": "moses:train", "moses:test-scaffolds": "moses:test_scaffolds", "moses:testsf": "moses:test_scaffolds",
           "guacamol": "guacamol:train", "zinc": "zinc250k", "zinc-250k": "zinc250k"}


class ChecksumError(ValueError, RuntimeError):
    """A file whose checksum does not match the catalog (corrupt, truncated or replaced)."""


class UnknownDatasetError(KeyError):
    """A dataset name the catalog does not know (the message lists the known ones)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DownloadError(ValueError, RuntimeError):
    """A download that could not finish (network error, interrupted, refused by the server)."""


def data_dir() -> Path:
    """``$MOLGEN_DATA`` or the repository's ``data/`` folder (the embedded default)."""
    env = os.environ.get("MOLGEN_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data"


def cache_dir() -> Path:
    """``$MOLGEN_CACHE`` or ``~/.cache/molgen``: downloads, tokenization caches, reference statistics."""
    d = Path(os.environ.get("MOLGEN_CACHE", Path.home() / ".cache" / "molgen"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def atomic_tmp(path: Path) -> Path:
    """A temporary sibling of ``path`` unique to this process, to write and then ``os.replace`` onto
    ``path`` (several processes or ranks may write the same cache file; a reader sees the old file or
    the whole new one)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def offline() -> bool:
    """``MOLGEN_OFFLINE=1`` (or ``molgen data get --offline``): never touch the network."""
    return os.environ.get("MOLGEN_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    return _digest(path, "sha256")


def _digest(path: str | Path, algo: str, chunk: int = 1 << 20) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_verified: set[Path] = set()


def verify(path: Path, sha256: str) -> Path:
    """``path`` if its sha256 is ``sha256`` (checked once per process), else :class:`ChecksumError`."""
    if path in _verified:
        return path
    got = sha256_file(path)
    if got != sha256:
        raise ChecksumError(f"{path}: sha256 {got} does not match the catalog ({sha256}); "
                            "the file is corrupt or was replaced. Delete it to download it again.")
    _verified.add(path)
    return path


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def is_named(name: str) -> bool:
    return canonical_name(name) in CATALOG


def looks_named(source: Any) -> bool:
    """A string meant as a catalog name (``moses:nope``, ``guacamol:x``), not a file path."""
    if not isinstance(source, str) or is_named(source):
        return isinstance(source, str) and is_named(source)
    prefix = source.split(":", 1)[0].lower()
    return ":" in source and prefix in {n.split(":", 1)[0] for n in CATALOG} and not Path(source).exists()


def entry(name: str) -> DatasetEntry:
    """The catalog entry of ``name`` (aliases accepted); an unknown name lists the known ones."""
    key = canonical_name(name)
    if key not in CATALOG:
        raise UnknownDatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(CATALOG))} "
                                  f"(aliases: {', '.join(sorted(ALIASES))})")
    return CATALOG[key]


def local_path(e: DatasetEntry) -> Path:
    """Where the file of ``e`` is (or will be): ``data/`` for embedded files present there, else the cache."""
    if e.embedded and (data_dir() / e.filename).exists():
        return data_dir() / e.filename
    return cache_dir() / "datasets" / e.filename


def _pin_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _check_local(e: DatasetEntry, path: Path) -> Path:
    """Verify a present file: the catalog sha256, or the sha256 recorded when an unpinned file was
    checked against its published md5 (``molgen data get NAME --allow-unpinned``)."""
    if e.sha256:
        return verify(path, e.sha256)
    pin = _pin_path(path)
    if not pin.exists():
        raise ChecksumError(f"{e.name}: {path} has not been verified: the catalog pins no sha256 for it "
                            f"(its source publishes {'md5 ' + e.md5 if e.md5 else 'no checksum'}); run "
                            f"`molgen data get {e.name} --allow-unpinned` to check it and record its sha256")
    return verify(path, pin.read_text().split()[0])


def resolve(name: str, *, allow_download: bool = False) -> tuple[Path, str]:
    """Path and SMILES column of a catalog dataset, verified. A missing file is an error naming the
    command that fetches it (``allow_download=True`` fetches a pinned file instead)."""
    e = entry(name)
    path = local_path(e)
    if not path.exists():
        if allow_download and e.sha256:
            fetch(e.name)
        else:
            raise FileNotFoundError(_missing_message(e, path))
    return _check_local(e, path), e.smiles_col


def _missing_message(e: DatasetEntry, path: Path) -> str:
    if offline():
        return (f"{e.name} is not downloaded and MOLGEN_OFFLINE is set: place {Path(e.filename).name} "
                f"(from {e.url}) at {path} by hand, then run `molgen data get {e.name}"
                f"{'' if e.sha256 else ' --allow-unpinned'}` to verify it")
    return (f"{e.name} is not downloaded: run `molgen data get {e.name}{'' if e.sha256 else ' --allow-unpinned'}` "
            f"(it goes to {path})")


def status(e: DatasetEntry) -> str:
    """``present`` / ``missing`` / ``unverified`` for ``molgen data list`` (no hashing)."""
    path = local_path(e)
    if not path.exists():
        return "missing"
    if not e.sha256 and not _pin_path(path).exists():
        return "unverified"
    return "present"


def fetch(name: str, *, allow_unpinned: bool = False, progress: bool = False) -> Path:
    """Download (or verify in place) the file of catalog dataset ``name``; returns its path.

    A file without a pinned sha256 is refused unless ``allow_unpinned``: it is then checked against the
    md5 its source publishes and its sha256 recorded next to it for later uses.
    """
    e = entry(name)
    path = local_path(e)
    if not e.sha256 and not allow_unpinned:
        raise ChecksumError(f"{e.name}: the catalog pins no sha256 for {e.url} (only "
                            f"{e.checksum_source if e.md5 else 'no checksum'}); pass "
                            "--allow-unpinned (Python: allow_unpinned=True) to accept a file checked "
                            f"{'against that md5' if e.md5 else 'by nothing'}")
    if path.exists():
        if e.sha256:
            return verify(path, e.sha256)
        _check_unpinned(e, path)
        return path
    if offline():
        raise FileNotFoundError(_missing_message(e, path))
    download(e.url, path, e.sha256, md5=e.md5, progress=progress, size=e.size,
             after=None if e.sha256 else lambda p: _check_unpinned(e, p, pin_for=path))
    return path


def _check_unpinned(e: DatasetEntry, path: Path, pin_for: Path | None = None) -> None:
    """md5 of an unpinned file against the published one; record its sha256 (``FILE.sha256``)."""
    if e.md5:
        got = _digest(path, "md5")
        if got != e.md5:
            raise ChecksumError(f"{path}: md5 {got} does not match the published {e.md5} ({e.checksum_source})")
    _pin_path(pin_for or path).write_text(f"{sha256_file(path)}  {(pin_for or path).name}\n")


def _bar(total: int | None, initial: int, desc: str, enabled: bool):
    if not enabled:
        return None
    return progress_bar(total=total, initial=initial, desc=desc, unit="B", unit_scale=True)


def download(url: str, dest: Path, sha256: str | None, *, md5: str | None = None, progress: bool = False,
             size: int | None = None, after: Callable[[Path], None] | None = None, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part`` and verify it before renaming.

    An existing ``dest.part`` (an interrupted earlier download) is continued with an HTTP ``Range``
    request; a server that ignores the range sends the whole file again. A checksum mismatch deletes
    the partial file. ``after(part)`` runs extra checks on the complete file before the rename.
    """
    if sha256 is None and md5 is None and after is None:
        raise ChecksumError(f"refusing to download {url} without a checksum to verify it against")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "molgen"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already complete: verify it
            resp = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if resp is not None:
        with resp:
            resumed = have > 0 and getattr(resp, "status", 200) == 206
            if not resumed:
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else size
            bar = _bar(total, have, Path(dest).name, progress)
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while block := resp.read(1 << 16):
                        f.write(block)
                        if bar is not None:
                            bar.update(len(block))
                if total is not None and length and part.stat().st_size < total:  # the server hung up early
                    raise ConnectionError(f"got {part.stat().st_size} of {total} bytes")
            except (OSError, http.client.HTTPException) as exc:  # connection lost, IncompleteRead
                raise DownloadError(f"{url}: interrupted after {part.stat().st_size} bytes "
                                    f"({type(exc).__name__}); run the same command again to continue "
                                    "from there") from None
            finally:
                if bar is not None:
                    bar.close()
    try:
        if sha256 is not None:
            got = sha256_file(part)
            if got != sha256:
                raise ChecksumError(f"{url}: sha256 {got} does not match the catalog ({sha256}); the download "
                                    "is corrupt or the file was replaced at the source. Nothing was kept.")
        elif after is None and md5 is not None:
            got = _digest(part, "md5")
            if got != md5:
                raise ChecksumError(f"{url}: md5 {got} does not match {md5}. Nothing was kept.")
        if after is not None:
            after(part)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    _verified.add(dest)
    return dest
