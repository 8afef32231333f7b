"""molgen: molecular generative models with honest likelihoods and one evaluation pipeline.

Public API (imported lazily so ``import molgen`` is fast in a notebook)::

    model = molgen.train(model="transformer", data="moses", out="runs/tf", max_time=15)
    model = molgen.load("runs/tf")
    model.sample(1000, seed=0).smiles
    model.score(["CCO", "c1ccccc1"])          # DataFrame, one row per input
    molgen.Evaluator(reference="moses:test").evaluate(smiles)

This module is the package's one lazy boundary: ``import molgen`` loads nothing but the version, and
each public name above imports its module (and torch, RDKit, ...) on first use through
``__getattr__``, so a notebook or a script that needs one function does not pay for the rest. Every
other module of the package imports what it needs at its top. (``molgen --help`` is kept as fast by
the command dispatch of :mod:`molgen.cli.main`, which imports a command's module when it runs.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from molgen._version import __version__

_LAZY = {
    "train": ("molgen.api", "train"),
    "load": ("molgen.api", "load"),
    "list_models": ("molgen.api", "list_models"),
    "finetune": ("molgen.training.finetune", "finetune"),
    "filter_molecules": ("molgen.filtering", "filter_molecules"),
    "draw": ("molgen.drawing", "draw"),
    "write_molecules": ("molgen.data.io", "write_molecules"),
    "read_table": ("molgen.data.io", "read_table"),
    "Evaluator": ("molgen.metrics", "Evaluator"),
    "Policy": ("molgen.chem", "Policy"),
    "GenerativeModel": ("molgen.models.base", "GenerativeModel"),
    "SampleResult": ("molgen.models.results", "SampleResult"),
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from molgen.api import list_models, load, train  # noqa: F401
    from molgen.chem import Policy  # noqa: F401
    from molgen.data.io import read_table, write_molecules  # noqa: F401
    from molgen.drawing import draw  # noqa: F401
    from molgen.filtering import filter_molecules  # noqa: F401
    from molgen.metrics import Evaluator  # noqa: F401
    from molgen.models.base import GenerativeModel  # noqa: F401
    from molgen.models.results import SampleResult  # noqa: F401
    from molgen.training.finetune import finetune  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'molgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
