"""Evaluation: MOSES and GuacaMol metrics, FCD floor, precision / recall / coverage, likelihood.

``from molgen.metrics import Evaluator``: the public names below are loaded on first use (this face is
part of the package's lazy entry points, with ``molgen/__init__.py``). So importing one light
submodule, such as :mod:`molgen.metrics.featurize` (the RDKit descriptors that conditioning and
filtering share), does not import the evaluator and its torch / scipy / fcd_torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    'Evaluator': 'molgen.metrics.evaluator',
    'evaluate': 'molgen.metrics.evaluator',
    'EvaluationReport': 'molgen.metrics.report',
    'ReferenceStats': 'molgen.metrics.reference',
    'GeneratedSet': 'molgen.metrics.generated',
    'NLLSummary': 'molgen.metrics.nll',
    'Metric': 'molgen.metrics.moses',
    'ChemNet': 'molgen.metrics.chemnet',
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
