"""Evaluation reports: values, what was measured (n requested / n valid, versions, wall time, sample
preview) and why a value is missing (``notes``); as a dict, JSON, a DataFrame, markdown, and plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molgen.errors import strict
from molgen.metrics.plots import property_plots, report_figure


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if math.isfinite(v) else None  # JSON has no NaN: missing values are null + a note
    if isinstance(v, np.integer):
        return int(v)
    return v


@dataclass
class EvaluationReport:
    metrics: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    properties: np.ndarray | None = field(default=None, repr=False)
    reference_properties: np.ndarray | None = field(default=None, repr=False)

    def __getitem__(self, key: str) -> float:
        return self.metrics[key]

    def to_dict(self) -> dict[str, Any]:
        """Metrics, metadata and notes (NaN becomes None; the note says why)."""
        return _clean({'metrics': self.metrics, **self.meta, 'notes': self.notes})

    @strict
    def to_json(self, path: str | Path | None = None, indent: int = 1) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + '\n')
        return text

    def to_frame(self):
        """One row per metric: ``metric``, ``value``, ``note``."""
        return pd.DataFrame([{'metric': k, 'value': v, 'note': self.notes.get(k, '')}
                             for k, v in self.metrics.items()])

    def nll_line(self) -> str | None:
        """``NLL/Test  20.70  (exact log p(canonical-smiles), nats/molecule; 1000 scored, 3 unscored: ...)``."""
        if 'NLL/Test' not in self.metrics:
            return None
        v = self.metrics['NLL/Test']
        val = 'NaN' if v is None or not math.isfinite(v) else f'{v:.2f}'
        return f"NLL/Test  {val}  ({self.notes.get('NLL/Test', '')})"

    def to_markdown(self) -> str:
        """The NLL with its full label (when there is one), counts and wall time, then the table."""
        head = (f"n requested {self.meta.get('n_requested')}, n valid {self.meta.get('n_valid')}, "
                f"wall {self.meta.get('wall_seconds', float('nan')):.1f} s")
        nll = self.nll_line()
        lines = [*([nll] if nll else []), head, '', '| metric | value | note |', '|---|---:|---|']
        for k, v in self.metrics.items():
            if v is None or not math.isfinite(v):
                val = 'NaN'
            elif isinstance(v, (int, np.integer)):
                val = str(int(v))
            else:
                val = f'{v:.4f}'
            lines.append(f'| {k} | {val} | {self.notes.get(k, "")} |')
        for k, note in self.notes.items():  # metrics not computed at all (too few molecules): say why
            if k not in self.metrics:
                lines.append(f'| {k} | – | {note} |')
        return '\n'.join(lines)

    def mode_dropping(self) -> str:
        """The mode-dropping diagnostics as a markdown table: generated value next to the real-vs-real
        value at the same n (``molgen.metrics.modes``); empty when they were not computed."""
        keys = [k for k in self.metrics if k.endswith('/real')]
        if not keys:
            return ''

        def fmt(v: Any) -> str:
            return 'NaN' if v is None or not math.isfinite(v) else f'{v:.4f}'

        lines = [f"mode dropping at n = {self.metrics.get('modes/n', self.meta.get('n_valid'))} "
                 f"({int(self.metrics.get('modes/n_bins', 0))} fingerprint bins)", '',
                 '| diagnostic | generated | real vs real (same n) |', '|---|---:|---:|']
        for k in keys:
            base = k[:-len('/real')]
            lines.append(f'| {base} | {fmt(self.metrics.get(base))} | {fmt(self.metrics[k])} |')
        for label in sorted({k.split('/')[1] for k in self.metrics if k.startswith('FCD/') and k.endswith('/mean')}):
            lines.append(f"| FCD/{label} mean / covariance terms | {fmt(self.metrics[f'FCD/{label}/mean'])} / "
                         f"{fmt(self.metrics[f'FCD/{label}/cov'])} | FCDfloor/{label} "
                         f"{fmt(self.metrics.get(f'FCDfloor/{label}'))} |")
        return '\n'.join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    @strict
    def plot(self, folder: str | Path | None = None):
        """Histograms of logP / SA / QED / weight against the reference (shared bins over both ranges, the
        distance in each title). With ``folder``: one PNG each, their paths returned; without: one figure
        that also shows the distance metrics (inline in a notebook)."""
        if folder is None:
            return report_figure(self.properties, self.reference_properties, self.metrics, self.notes)
        return property_plots(self.properties, self.reference_properties, Path(folder), self.metrics)


EvaluationReport.__init__ = strict(EvaluationReport.__init__)  # type: ignore[method-assign]
