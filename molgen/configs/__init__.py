"""The shipped training recipes (``<name>.yaml``), package data: ``molgen train --config quickstart`` finds
them in an installed wheel as in the checkout, never through the repository's folders.

Light on purpose (no torch, RDKit or pandas): the CLI resolves a config name before training starts.
"""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    """The folder of the shipped configs (this package)."""
    return Path(__file__).resolve().parent


def config_names() -> list[str]:
    """The names of the shipped configs (``molgen train --config NAME``), sorted."""
    return sorted(p.stem for p in config_dir().glob("*.yaml"))


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file: ``name_or_path`` itself if that file exists, else the shipped config of that name
    (``quickstart`` or ``quickstart.yaml``); anything else is an error that lists the shipped names."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = str(name_or_path)
    for cand in (config_dir() / name, config_dir() / f"{name}.yaml"):
        if cand.is_file() and cand.suffix == ".yaml" and cand.parent == config_dir():
            return cand
    raise FileNotFoundError(f"config {name!r} not found: give a path or one of molgen's configs: "
                            f"{', '.join(config_names())}")
