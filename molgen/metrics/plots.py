"""Property-distribution plots (PNG, matplotlib Agg) of generated molecules against the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def property_plots(gen: np.ndarray | None, ref: np.ndarray | None, folder: Path) -> list[Path]:
    """One histogram per property (density, shared bins); returns the written paths."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from molgen.metrics.featurize import PROPS

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for col, name in enumerate(PROPS):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        data = [(x[:, col], label) for x, label in ((ref, 'reference'), (gen, 'generated'))
                if x is not None and len(x)]
        if data:
            allv = np.concatenate([d for d, _ in data])
            bins = np.linspace(np.percentile(allv, 0.5), np.percentile(allv, 99.5), 60)
            for d, label in data:
                ax.hist(d, bins=bins, density=True, alpha=0.5, label=f'{label} (n={len(d)})')
            ax.legend()
        ax.set_xlabel(name)
        ax.set_ylabel('density')
        fig.tight_layout()
        p = folder / f'{name}.png'
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths.append(p)
    return paths
