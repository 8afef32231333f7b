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

#: report metric holding the distance shown in each property's title
DISTANCE_KEYS = {'logP': 'logP', 'SA': 'SA', 'QED': 'QED', 'weight': 'weight'}
#: distance-like metrics drawn in the summary panel, with their real-vs-real counterpart where there is one
SUMMARY_KEYS = (('FCD/Test', 'FCDfloor/Test'), ('FCD/TestSF', 'FCDfloor/TestSF'), ('SNN/Test', None),
                ('Frag/Test', None), ('Scaf/Test', None))


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
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from molgen.metrics.featurize import PROPS

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


def report_figure(gen: np.ndarray | None, ref: np.ndarray | None, metrics: dict[str, Any] | None = None):
    """One figure: the four property histograms and a panel of the distance metrics (generated vs the
    real-vs-real floor at the same n where the report has one). Shown inline in a notebook."""
    import matplotlib.pyplot as plt

    from molgen.metrics.featurize import PROPS

    with _quiet():
        fig, axes = plt.subplots(1, len(PROPS) + 1, figsize=(4.0 * (len(PROPS) + 1), 3.4))
        for col, name in enumerate(PROPS):
            _hist(axes[col], col, name, gen, ref, metrics)
        ax = axes[-1]
        rows = [(k, (metrics or {}).get(k), (metrics or {}).get(f) if f else None) for k, f in SUMMARY_KEYS]
        rows = [r for r in rows if isinstance(r[1], (int, float)) and math.isfinite(r[1])]
        if rows:
            y = np.arange(len(rows))
            ax.barh(y, [r[1] for r in rows], color='tab:orange', label='generated')
            floor = [(i, r[2]) for i, r in enumerate(rows) if isinstance(r[2], (int, float)) and math.isfinite(r[2])]
            if floor:
                ax.scatter([f for _, f in floor], [i for i, _ in floor], marker='|', s=300, color='k',
                           label='real vs real (same n)')
            ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
            ax.invert_yaxis()
            ax.legend(fontsize=7)
        ax.set_title('distances and similarities', fontsize=10)
        fig.tight_layout()
    return fig
