"""Training curves of a run: ``curves.csv`` and ``curves.png`` in the run directory.

Read from Lightning's CSV log (``OUT/logs/metrics.csv``): training loss, validation NLL and learning
rate against molecules seen (steps where a run did not log molecules), plus every other numeric
column the family logs (its own diagnostics: KL, active units, critic gap, ...). Called at the end of
:func:`molgen.training.train.train`; a failure here never fails the training run (it is logged).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: x-axis columns, in order of preference
X_COLUMNS = ("molecules_seen", "train/molecules_seen", "step")


class CurveLogger(L.Callback):
    """Logs molecules seen (read from the run's :class:`~molgen.training.progress.TrainingProgress`) and
    the learning rate with the training metrics (every ``log_every`` steps, as the family's own values),
    so the curves have both."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = {"molecules_seen": float(self.progress.molecules)}
        if trainer.optimizers:
            values["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        for k, v in values.items():
            pl_module.log(k, v, on_step=True, on_epoch=False, batch_size=1)


def curve_logger(progress: Any) -> CurveLogger:
    """The :class:`CurveLogger` of a run's training progress."""
    return CurveLogger(progress)


def read_curves(log_dir: str | Path) -> pd.DataFrame:
    """One row per logged step (rows of the same step merged), numeric columns only, sorted by step."""
    path = Path(log_dir) / "metrics.csv"
    df = pd.read_csv(path)
    num = df.apply(pd.to_numeric, errors="coerce")
    num = num.dropna(axis=1, how="all")
    if "step" in num.columns:  # Lightning writes training and validation values of a step on separate rows
        num = num.groupby("step", as_index=False).first().sort_values("step")
        seen = num.get("molecules_seen")
        if seen is not None and seen.notna().sum() >= 1:  # validation rows: molecules seen by their step
            known = num[seen.notna()]
            num["molecules_seen"] = np.interp(num["step"], known["step"], known["molecules_seen"]).round()
    return num.reset_index(drop=True)


def _x_column(df: pd.DataFrame) -> str:
    for c in X_COLUMNS:
        if c in df.columns and df[c].notna().any():
            return c
    return df.columns[0]


def _order(columns: list[str]) -> list[str]:
    """Training loss first, then validation NLL, learning rate, then the family's diagnostics."""
    def rank(c: str) -> tuple[int, str]:
        low = c.lower()
        if low.startswith("train/") and ("loss" in low or "nll" in low):
            return 0, c
        if low == "val/nll":
            return 1, c
        if low == "lr":
            return 2, c
        return 3, c
    return sorted(columns, key=rank)


def plot_curves(df: pd.DataFrame, path: str | Path | None = None):
    """A grid of panels (one per logged quantity) against molecules seen; saved to ``path`` if given."""
    import matplotlib  # lazy: heavy, and only the PNG needs it

    if path is not None and "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: after the backend is chosen

    x = _x_column(df)
    skip = {x, *X_COLUMNS, "epoch"}
    cols = _order([c for c in df.columns if c not in skip and df[c].notna().sum() > 0])
    n = max(1, len(cols))
    ncol = min(3, n)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.8 * nrow), squeeze=False)
    for ax, c in zip(axes.flat, cols):
        d = df[[x, c]].dropna()
        ax.plot(d[x], d[c], marker="." if len(d) < 30 else None, lw=1)
        ax.set_title(c, fontsize=9)
        ax.set_xlabel(x.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
        if c.lower().startswith("lr") or "/lr" in c.lower():
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
        plt.close(fig)
    return fig


def write_curves(out: str | Path, log_dir: str | Path | None = None) -> tuple[Path, Path] | None:
    """Write ``out/curves.csv`` and ``out/curves.png`` from the run's CSV log; None (logged) on failure."""
    out = Path(out)
    log_dir = Path(log_dir) if log_dir is not None else out / "logs"
    try:
        df = read_curves(log_dir)
        csv, png = out / "curves.csv", out / "curves.png"
        df.to_csv(csv, index=False)
        plot_curves(df, png)
        return csv, png
    except Exception as e:  # curves are a convenience: never fail a finished training run over them
        log.warning("could not write training curves from %s: %s", log_dir, e)
        return None
