"""Property-distribution plots of generated molecules against the reference (matplotlib).

Every histogram pair shares one set of bin edges spanning the **union** of both ranges (0.5-99.5th
percentile of each set, so generated molecules outside the reference range stay visible); integer-valued
properties get one bin per integer (no comb of empty bins); the bin count follows the smaller sample
(about 2 sqrt(n), 15-60). Titles carry the report's distance for that property (the Wasserstein
distance of the MOSES ``logP`` / ``SA`` / ``QED`` / ``weight`` metrics).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from molgen.metrics.featurize import PROPS

#: report metric holding the distance shown in each property's title
DISTANCE_KEYS = {'logP': 'logP', 'SA': 'SA', 'QED': 'QED', 'weight': 'weight'}
#: metrics drawn next to the histograms, one panel per scale (a distance and a 0-1 score never share an
#: axis): panel -> (metric, its real-vs-real counterpart at the same n or None), in drawing order
PANEL_KEYS = {
    'fcd': (('FCD/Test', 'FCDfloor/Test'), ('FCD/TestSF', 'FCDfloor/TestSF')),
    'scores': (('valid', None), ('unique@1000', None), ('unique@10000', None), ('Novelty', None),
               ('IntDiv', None), ('IntDiv2', None), ('Filters', None),
               ('SNN/Test', None), ('Frag/Test', None), ('Scaf/Test', None),
               ('SNN/TestSF', None), ('Frag/TestSF', None), ('Scaf/TestSF', None),
               ('precision', 'precision/real'), ('recall', 'recall/real'), ('coverage', 'coverage/real'),
               ('guacamol/KL', None), ('guacamol/FCD', None)),
    'nll': (('NLL/Test', None),),
}
PANEL_TITLES = {'fcd': 'FCD: a distance (lower is better)', 'scores': 'scores in [0, 1]',
                'nll': 'NLL of reference molecules (model)'}
PANEL_XLABELS = {'fcd': 'Fréchet ChemNet distance', 'scores': 'score', 'nll': 'nats/molecule'}
#: the former single summary panel's keys (kept for callers that read them)
SUMMARY_KEYS = (*PANEL_KEYS['fcd'], ('SNN/Test', None), ('Frag/Test', None), ('Scaf/Test', None))


def shared_bins(*samples: np.ndarray, max_bins: int = 60) -> np.ndarray:
    """Bin edges for several samples: the union of their central ranges, one bin per integer for
    integer-valued data, about 2 sqrt(n) bins (n the smallest sample) otherwise."""
    samples = tuple(np.asarray(s, dtype=float) for s in samples)
    samples = tuple(s[np.isfinite(s)] for s in samples if s is not None)
    samples = tuple(s for s in samples if len(s))
    if not samples:
        return np.linspace(0.0, 1.0, 11)
    lo = min(float(np.percentile(s, 0.5)) for s in samples)
    hi = max(float(np.percentile(s, 99.5)) for s in samples)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    if all(np.allclose(s, np.round(s)) for s in samples) and hi - lo <= 200:
        return np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.0, 1.0)
    n = min(len(s) for s in samples)
    k = int(np.clip(2 * math.sqrt(n), 15, max_bins))
    return np.linspace(lo, hi, k + 1)


def _title(name: str, metrics: dict[str, Any] | None) -> str:
    key = DISTANCE_KEYS.get(name)
    v = (metrics or {}).get(key) if key else None
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return name
    return f'{name}: Wasserstein distance {v:.3g}'


def _hist(ax: Any, col: int, name: str, gen: np.ndarray | None, ref: np.ndarray | None,
          metrics: dict[str, Any] | None) -> None:
    data = [(x[:, col], label) for x, label in ((ref, 'reference'), (gen, 'generated'))
            if x is not None and len(x)]
    if data:
        bins = shared_bins(*(d for d, _ in data))
        for d, label in data:
            ax.hist(d, bins=bins, density=True, alpha=0.5, label=f'{label} (n={len(d)})')
        ax.set_xlim(bins[0], bins[-1])
        ax.legend(fontsize=8)
    ax.set_title(_title(name, metrics), fontsize=10)
    ax.set_xlabel(name)
    ax.set_ylabel('density')


@contextlib.contextmanager
def _quiet():
    """Matplotlib / numpy warnings (empty slices, tight layout) stay out of notebook cells."""
    with warnings.catch_warnings(), np.errstate(all='ignore'):
        warnings.simplefilter('ignore')
        yield


def property_plots(gen: np.ndarray | None, ref: np.ndarray | None, folder: Path,
                   metrics: dict[str, Any] | None = None) -> list[Path]:
    """One histogram per property (density, shared bins, distance in the title); returns the written paths."""
    import matplotlib  # lazy: matplotlib only where a plot is drawn (it is slow to import)

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # lazy: after the Agg backend is chosen

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with _quiet():
        for col, name in enumerate(PROPS):
            fig, ax = plt.subplots(figsize=(5, 3.5))
            _hist(ax, col, name, gen, ref, metrics)
            fig.tight_layout()
            p = folder / f'{name}.png'
            fig.savefig(p, dpi=100)
            plt.close(fig)
            paths.append(p)
    return paths


def _number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def panel_rows(metrics: dict[str, Any] | None, panel: str) -> list[tuple[str, float, float | None]]:
    """(name, value, real-vs-real value or None) of the metrics of one panel that the report has."""
    metrics = metrics or {}
    rows = []
    for key, floor in PANEL_KEYS[panel]:
        v = metrics.get(key)
        if _number(v):
            f = metrics.get(floor) if floor else None
            rows.append((key, float(v), float(f) if _number(f) else None))
    return rows


def _panel(ax: Any, panel: str, rows: list[tuple[str, float, float | None]], notes: dict[str, str] | None) -> None:
    """Horizontal bars of one scale, the value at each bar's end, real-vs-real values as ticks."""
    y = np.arange(len(rows))
    values = [r[1] for r in rows]
    ax.barh(y, values, height=0.6, color='tab:orange', label='generated')
    floor = [(i, r[2]) for i, r in enumerate(rows) if r[2] is not None]
    if floor:
        ax.scatter([f for _, f in floor], [i for i, _ in floor], marker='|', s=300, color='k',
                   label='real vs real (same n)', zorder=3)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_ylim(max(len(rows), 3) - 0.5, -0.5)  # top to bottom; a single bar stays a bar, not a block
    if panel == 'scores':
        ax.set_xlim(0.0, 1.0)
    else:
        top = max([*values, *(f for _, f in floor)])
        ax.set_xlim(0.0, top * 1.25 if top > 0 else 1.0)
    lo, hi = ax.get_xlim()
    for i, v in enumerate(values):
        inside = v > lo + 0.8 * (hi - lo)
        ax.text(v - 0.01 * (hi - lo) if inside else v + 0.01 * (hi - lo), i, f'{v:.3g}', va='center',
                ha='right' if inside else 'left', fontsize=7)
    title = PANEL_TITLES[panel]
    note = (notes or {}).get('NLL/Test', '') if panel == 'nll' else ''
    if note:  # the likelihood's kind and object: "exact log p(canonical-smiles)"
        title = f"{title}\n{note.split(', nats/molecule')[0].split(';')[0]}"
    ax.set_title(title, fontsize=10)
    # the real-vs-real ticks are explained under the axis (a legend would cover bars)
    ax.set_xlabel(PANEL_XLABELS[panel] + ('   (black tick: real vs real, same n)' if floor else ''), fontsize=9)


def report_figure(gen: np.ndarray | None, ref: np.ndarray | None, metrics: dict[str, Any] | None = None,
                  notes: dict[str, str] | None = None):
    """One figure (shown inline in a notebook): the four property histograms on the first row; below them
    one panel per scale of the report's metrics — FCD (an unbounded distance, with the real-vs-real
    floor at the same n where the report has one), the 0-1 scores (validity, uniqueness, novelty, IntDiv,
    SNN / Frag / Scaf, ...) on a fixed [0, 1] axis, and the NLL in nats per molecule (its kind and
    object in the title when ``notes`` carry them). Panels without values are left out."""
    import matplotlib.pyplot as plt  # lazy: matplotlib only where a plot is drawn

    panels = [(p, rows) for p in PANEL_KEYS if (rows := panel_rows(metrics, p))]
    n_cols = 2 * len(PROPS)  # a histogram is two grid columns wide
    weight = {'fcd': 1, 'scores': 2, 'nll': 1}  # the score panel (most rows) gets the most width
    hist_h = 3.4
    panel_h = max(2.2, 0.8 + 0.24 * max((len(r) for _, r in panels), default=0))
    with _quiet():
        fig = plt.figure(figsize=(4.0 * len(PROPS), hist_h + (panel_h if panels else 0.0)))
        gs = fig.add_gridspec(2, n_cols, height_ratios=[hist_h, panel_h]) if panels else fig.add_gridspec(1, n_cols)
        for col, name in enumerate(PROPS):
            _hist(fig.add_subplot(gs[0, 2 * col:2 * col + 2]), col, name, gen, ref, metrics)
        total, start = sum(weight[p] for p, _ in panels), 0
        for i, (p, rows) in enumerate(panels):
            end = n_cols if i == len(panels) - 1 else start + max(2, round(n_cols * weight[p] / total))
            _panel(fig.add_subplot(gs[1, start:end]), p, rows, notes)
            start = end
        fig.tight_layout()
    return fig
