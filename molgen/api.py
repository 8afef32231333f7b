"""The notebook-facing API: ``molgen.train``, ``molgen.load``, ``molgen.list_models``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molgen.errors import strict
from molgen.persistence import load_pretrained
from molgen.pretrained import resolve_model
from molgen.registry import BACKBONES, ENCODERS, MODELS, PRIORS, REPRESENTATIONS
from molgen.training.train import train

__all__ = ["list_components", "list_models", "load", "train"]


@strict
def load(path: str | Path, *, map_location: str = "cpu"):
    """Load a model directory written by ``molgen train`` / ``save_pretrained``, or a pretrained model
    that ships with molgen by name (``molgen.load("moses-transformer")``; ``molgen pretrained`` lists
    them; an existing path wins over a name). No pickle is involved."""
    return load_pretrained(resolve_model(path), map_location=map_location)


def list_models() -> list[dict[str, Any]]:
    """Registered generator families: capabilities, the likelihood kind of their default config (the
    object is the canonical string of the representation a model is trained on), config options."""
    rows = []
    for name, cls in MODELS.items():
        config = cls.config_class()
        kind = cls.likelihood_kind(config) if "log_likelihood" in cls.capabilities else None
        rows.append({"name": name, "capabilities": sorted(cls.capabilities), "likelihood_kind": kind,
                     "likelihood_unit": "nats/molecule" if kind else None,
                     "options": cls.config_class.accepted_keys(),
                     "description": (cls.__doc__ or "").strip().splitlines()[0]})
    return rows


def list_components() -> dict[str, list[str]]:
    """Registered components by category (what ``{name, args}`` specs and CLI choices accept)."""
    return {reg.category: reg.names() for reg in (REPRESENTATIONS, ENCODERS, PRIORS, BACKBONES)}
