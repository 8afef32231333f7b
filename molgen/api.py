"""The notebook-facing API: ``molgen.train``, ``molgen.load``, ``molgen.list_models``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molgen.training.train import train

__all__ = ["list_models", "load", "train"]


def load(path: str | Path, map_location: str = "cpu"):
    """Load a model directory written by ``molgen train`` / ``save_pretrained`` (no pickle involved)."""
    from molgen.persistence import load_pretrained

    return load_pretrained(path, map_location=map_location)


def list_models() -> list[dict[str, Any]]:
    """Registered generator families with their capabilities and likelihood kind."""
    from molgen.registry import MODELS

    return [{"name": name, "capabilities": sorted(cls.capabilities), "likelihood_kind": cls.likelihood_kind,
             "description": (cls.__doc__ or "").strip().splitlines()[0]} for name, cls in MODELS.items()]
