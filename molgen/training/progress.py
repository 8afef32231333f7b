"""One training-progress object that every schedule reads (learning rate, KL beta, ...).

``TrainingProgress`` is a Lightning callback that counts optimizer steps, molecules seen (over all
processes) and training seconds, stops the run when any budget is spent, and stores its counters in
the checkpoint, so a resumed run continues its schedules and budgets instead of restarting them.

``fraction`` is the share of the budget used: ``max(steps / max_steps, seconds / max_time_s,
molecules / max_molecules)`` (budgets that are not set are ignored; none set -> the trainer's
estimated number of steps). A budget in molecules seen gives the same model on every machine; a
wall-clock budget gives whatever the machine manages.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L


@dataclass
class Budget:
    max_steps: int | None = None
    max_time_s: float | None = None
    max_molecules: int | None = None

    def is_set(self) -> bool:
        return any(v for v in asdict(self).values())


class TrainingProgress(L.Callback):
    """Counts steps / molecules / seconds of training; ``fraction()`` in [0, 1]; stops at the budget."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.steps = 0
        self.molecules = 0
        self.tokens = 0
        self.seconds = 0.0
        self._estimated_steps: int | None = None
        self._t: float | None = None

    # --- what schedules read -------------------------------------------------------------------
    def fraction(self) -> float:
        b = self.budget
        parts = []
        if b.max_steps:
            parts.append(self.steps / b.max_steps)
        if b.max_time_s:
            parts.append(self.seconds / b.max_time_s)
        if b.max_molecules:
            parts.append(self.molecules / b.max_molecules)
        if not parts and self._estimated_steps:
            parts.append(self.steps / self._estimated_steps)
        return min(1.0, max(parts, default=0.0))

    def done(self) -> bool:
        b = self.budget
        return bool((b.max_steps and self.steps >= b.max_steps)
                    or (b.max_time_s and self.seconds >= b.max_time_s)
                    or (b.max_molecules and self.molecules >= b.max_molecules))

    def summary(self) -> dict[str, float]:
        s = max(self.seconds, 1e-9)
        return {"train_seconds": round(self.seconds, 1), "molecules_seen": int(self.molecules),
                "molecules_per_s": round(self.molecules / s, 1), "tokens_per_s": round(self.tokens / s, 1)}

    # --- Lightning hooks -----------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.progress = self  # the module's schedules read it

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.progress = self
        if not self.budget.is_set():
            try:
                self._estimated_steps = int(trainer.estimated_stepping_batches)
            except Exception:  # infinite loaders
                self._estimated_steps = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._t is not None:
            self.seconds += time.perf_counter() - self._t
            self._t = None
        n_mol, n_tok = batch_size_of(batch)
        world = max(1, trainer.world_size)
        self.steps += 1
        self.molecules += n_mol * world
        self.tokens += n_tok * world
        if self.done():
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "molecules": self.molecules, "tokens": self.tokens, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.molecules = int(state.get("molecules", 0))
        self.tokens = int(state.get("tokens", 0))
        self.seconds = float(state.get("seconds", 0.0))


def batch_size_of(batch: Any) -> tuple[int, int]:
    """(molecules, target tokens) of a collated batch (``ids`` [B, T] with BOS ... EOS PAD)."""
    if isinstance(batch, dict) and "ids" in batch:
        ids = batch["ids"]
        return int(ids.shape[0]), int((ids[:, 1:] != 0).sum())
    if isinstance(batch, dict) and "lengths" in batch:
        return int(batch["lengths"].shape[0]), int(batch["lengths"].sum())
    return 0, 0
