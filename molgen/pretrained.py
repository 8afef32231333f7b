"""Pretrained models that ship with molgen, loadable by name: ``molgen.load("moses-transformer")``.

A shipped model is an ordinary model directory (what ``save_pretrained`` writes: ``config.json``,
``model.safetensors``, ``representation.json``, ``metadata.json``, ``nested/``) in
``data/models/NAME/`` of the source tree, plus:

    MODEL_CARD.md        data, budget, metrics (likelihood first), sampler, licence, intended use
    evaluation.json      the Evaluator report of its samples
    shipped_check.json   validity / uniqueness of n samples drawn with a fixed seed at shipping time
                         (the test suite draws them again and compares)
    SHA256SUMS           sha256 of every other file, in ``sha256sum`` format (``sha256sum -c SHA256SUMS``)

``benchmarks/ship_model.py`` turns a training run into such a directory. The directories themselves
are the registry: there is no separate index that could disagree with them. ``MOLGEN_MODELS`` (a
folder holding NAME/ directories) replaces ``data/models`` as the place looked in, for installs that
do not carry the source tree.

Loading by name verifies the checksums of every file the model is built from (config, weights,
representation, metadata, nested models; a few MB) and refuses a corrupt model. An existing path
always wins over a name and is loaded as it is, without checksums.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from molgen.data.catalog import sha256_file
from molgen.errors import ModelFormatError
from molgen.persistence import read_config

__all__ = ["ENV", "PretrainedError", "check_shipped", "describe", "list_pretrained", "models_dir",
           "resolve_model", "shipped_names", "verify_checksums", "write_checksums"]

ENV = "MOLGEN_MODELS"
SUMS = "SHA256SUMS"
CARD = "MODEL_CARD.md"
EVALUATION = "evaluation.json"
CHECK = "shipped_check.json"
#: documentation next to the model: covered by SHA256SUMS but not needed to load it (not verified on load)
DOC_FILES = frozenset({CARD, EVALUATION, CHECK})
#: what every shipped directory holds (``representation.json`` too when config.json names a representation)
REQUIRED = ("config.json", "model.safetensors", "metadata.json", CARD, EVALUATION, CHECK, SUMS)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class PretrainedError(ModelFormatError):
    """An unknown shipped-model name or a shipped model that fails its checksums (one line in the CLI)."""


def models_dir() -> Path:
    """Where shipped models are looked for: ``$MOLGEN_MODELS`` if set, else ``data/models`` of the
    source tree the package was imported from (an editable install: ``pip install -e .``)."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "data" / "models"


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else models_dir()


def shipped_names(root: str | Path | None = None) -> list[str]:
    """Names of the model directories under the models folder (hidden and temporary folders skipped)."""
    root = _root(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


# ---- checksums ------------------------------------------------------------------------------------
def _files(path: Path) -> list[str]:
    """Every regular file under ``path`` as a POSIX relative path, SHA256SUMS itself left out."""
    out = []
    for p in sorted(path.rglob("*")):
        if p.is_symlink():
            raise PretrainedError(f"{path}: {p.relative_to(path)} is a symbolic link; a shipped model holds "
                                  "plain files only")
        if p.is_file():
            rel = p.relative_to(path).as_posix()
            if rel != SUMS:
                out.append(rel)
    return out


def write_checksums(path: str | Path) -> Path:
    """Write ``path/SHA256SUMS`` over every other file (``sha256sum -c SHA256SUMS`` checks it)."""
    path = Path(path)
    lines = [f"{sha256_file(path / rel)}  {rel}" for rel in _files(path)]
    out = path / SUMS
    out.write_text("\n".join(lines) + "\n")
    return out


def read_checksums(path: str | Path) -> dict[str, str]:
    path = Path(path)
    f = path / SUMS
    if not f.is_file():
        raise PretrainedError(f"{path}: {SUMS} is missing, so the model cannot be verified; ship it with "
                              "benchmarks/ship_model.py (which writes it)")
    sums: dict[str, str] = {}
    for i, line in enumerate(f.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if m is None or m.group(2).startswith("/") or ".." in Path(m.group(2)).parts:
            raise PretrainedError(f"{f}: line {i} is not '<sha256>  <relative path>': {line[:80]!r}")
        sums[m.group(2)] = m.group(1)
    return sums


def verify_checksums(path: str | Path, *, docs: bool = False) -> None:
    """Refuse a model directory whose files differ from its SHA256SUMS. Without ``docs`` only the files
    the model is built from are checked (``MODEL_CARD.md``, ``evaluation.json`` and
    ``shipped_check.json`` are documentation); every such file must be listed, and every listed one
    must be there."""
    path = Path(path)
    sums = read_checksums(path)
    present = set(_files(path))
    wanted = {rel for rel in present | set(sums) if docs or rel not in DOC_FILES}
    missing = sorted(rel for rel in wanted if rel in sums and rel not in present)
    unlisted = sorted(rel for rel in wanted if rel not in sums)
    bad = sorted(rel for rel in wanted if rel in sums and rel in present and sha256_file(path / rel) != sums[rel])
    problems = ([f"changed: {', '.join(bad)}"] if bad else []) + \
               ([f"missing: {', '.join(missing)}"] if missing else []) + \
               ([f"not in {SUMS}: {', '.join(unlisted)}"] if unlisted else [])
    if problems:
        raise PretrainedError(f"shipped model {path.name} is corrupt ({'; '.join(problems)}) and was not "
                              f"loaded; restore {path} (in a git checkout: `git checkout -- {path}`) or ship it again")


# ---- the registry ---------------------------------------------------------------------------------
def _json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def card_description(card: Path) -> str:
    """The first line of the card's first paragraph that is not a heading (the one-line description)."""
    try:
        lines = card.read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        s = line.strip()
        if s and not s.startswith(("#", "<!--", "|", "```")):
            return s.lstrip("> ").strip()
    return ""


def check_shipped(path: str | Path) -> list[str]:
    """Problems of a shipped model directory (empty: complete, loadable config, checksums match)."""
    path = Path(path)
    problems = []
    if not NAME_RE.match(path.name):
        problems.append(f"name {path.name!r} is not a valid model name ({NAME_RE.pattern})")
    missing = [f for f in REQUIRED if not (path / f).is_file()]
    cfg = _json(path / "config.json")
    if cfg.get("representation") is not None and not (path / "representation.json").is_file():
        missing.append("representation.json")
    for sub in (cfg.get("nested") or {}).values():
        for f in ("config.json", "model.safetensors"):
            if not (path / str(sub) / f).is_file():
                missing.append(f"{sub}/{f}")
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if (path / "config.json").is_file():
        try:
            read_config(path)
        except ModelFormatError as e:
            problems.append(str(e))
    check = _json(path / CHECK)
    if (path / CHECK).is_file() and not {"n", "seed", "validity"} <= set(check):
        problems.append(f"{CHECK} lacks n / seed / validity")
    if (path / SUMS).is_file():
        try:
            verify_checksums(path, docs=True)
        except PretrainedError as e:
            problems.append(str(e))
    return problems


def describe(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """One row of :func:`list_pretrained` (read from the directory's JSON files and card, no torch)."""
    path = _root(root) / name
    cfg = _json(path / "config.json")
    meta = _json(path / "metadata.json")
    check = _json(path / CHECK)
    like = cfg.get("likelihood") or {}
    try:
        size: float | None = sum((path / rel).stat().st_size for rel in _files(path)) / 1e6
    except (OSError, PretrainedError):
        size = None
    return {"name": name, "family": cfg.get("model"), "representation": cfg.get("representation"),
            "likelihood_kind": like.get("kind"), "likelihood_object": like.get("object"),
            "likelihood_unit": like.get("unit"), "validity": check.get("validity"),
            "validity_n": check.get("n"), "n_parameters": (meta.get("training") or {}).get("n_parameters"),
            "size_mb": None if size is None else round(size, 2), "description": card_description(path / CARD), "path": str(path)}


def list_pretrained(*, verify: bool = False, root: str | Path | None = None) -> list[dict[str, Any]]:
    """The shipped models, one row each: name, family, representation, likelihood kind / object / unit,
    the validity recorded at shipping (and its n), parameters, size in MB, the card's description, path.
    ``verify``: also check every directory (files, checksums) and add ``status`` (``ok`` or the problems)."""
    rows = []
    for name in shipped_names(root):
        row = describe(name, root)
        if verify:
            problems = check_shipped(Path(row["path"]))
            row["status"] = "ok" if not problems else "; ".join(problems)
        rows.append(row)
    return rows


def resolve_model(path_or_name: str | Path, *, verify: bool = True) -> Path:
    """The model directory for ``path_or_name``: an existing path wins (returned as it is); else the
    shipped model of that name, its checksums verified; else a :class:`PretrainedError` listing the
    shipped names."""
    if not isinstance(path_or_name, (str, Path)):
        raise TypeError(f"a model is a directory or a shipped model name, got {type(path_or_name).__name__}")
    p = Path(path_or_name).expanduser()
    if p.exists():
        return p
    name = str(path_or_name)
    root = models_dir()
    names = shipped_names(root)
    if name in names:
        d = root / name
        if verify:
            verify_checksums(d)
        return d
    if names:
        shipped = f"shipped models: {', '.join(names)} (`molgen pretrained` lists them)"
    else:
        where = f"{root} (${ENV})" if os.environ.get(ENV) else str(root)
        shipped = f"no shipped models were found in {where}; set ${ENV} to a folder holding them"
    if not NAME_RE.match(name):  # a path, not a name: say so first
        raise PretrainedError(f"{name}: no such model directory" + (f" ({shipped})" if names else ""))
    raise PretrainedError(f"{name!r} is neither a model directory nor the name of a shipped model; {shipped}")
