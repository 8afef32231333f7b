"""Evaluation: MOSES and GuacaMol metrics, FCD floor, precision / recall / coverage, likelihood.

``from molgen.metrics import Evaluator``; importing this package is light (RDKit, torch and fcd_torch
are imported on first use).
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
