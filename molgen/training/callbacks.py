"""Callbacks: a time-aware warmup + cosine learning-rate schedule and a throughput meter."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L


class WarmupCosine(L.Callback):
    """Linear warm-up, then cosine decay to ``min_ratio * lr``.

    Progress is ``max(step / total_steps, elapsed / max_time)``: with a wall-clock budget
    (``--max-time``) the decay still ends when the budget does, instead of being cut off at a high
    learning rate. Without a time budget it is the usual step-based schedule (deterministic).
    """

    def __init__(self, lr: float, warmup_steps: int = 100, total_steps: int | None = None,
                 max_time_s: float | None = None, min_ratio: float = 0.05) -> None:
        self.lr, self.warmup, self.total = lr, warmup_steps, total_steps
        self.max_time_s, self.min_ratio = max_time_s, min_ratio
        self._t0: float | None = None
        self._train_time = 0.0

    def progress(self, step: int) -> float:
        p = 0.0
        if self.total:
            p = max(p, (step - self.warmup) / max(1, self.total - self.warmup))
        if self.max_time_s:
            p = max(p, self._train_time / self.max_time_s)
        return min(1.0, max(0.0, p))

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * self.progress(step)))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        if self.total is None and trainer.max_steps and trainer.max_steps > 0:
            self.total = trainer.max_steps
        if self.total is None and not self.max_time_s:
            self.total = int(trainer.estimated_stepping_batches)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._train_time = time.perf_counter() - (self._t0 or time.perf_counter())
        lr = self.lr * self.factor(trainer.global_step)
        for opt in trainer.optimizers:
            for g in opt.param_groups:
                g["lr"] = lr
        pl_module.log("train/lr", lr, on_step=True, on_epoch=False, batch_size=1)


class Throughput(L.Callback):
    """Molecules and tokens per second of training (validation time excluded)."""

    def __init__(self) -> None:
        self.molecules = 0
        self.tokens = 0
        self.seconds = 0.0
        self._t: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._t is None:
            return
        self.seconds += time.perf_counter() - self._t
        ids = batch.get("ids") if isinstance(batch, dict) else None
        if ids is not None:
            self.molecules += int(ids.shape[0])
            self.tokens += int((ids[:, 1:] != 0).sum())
        self._t = None

    def summary(self) -> dict[str, float]:
        s = max(self.seconds, 1e-9)
        return {"train_seconds": round(self.seconds, 1), "molecules_seen": self.molecules,
                "molecules_per_s": round(self.molecules / s, 1), "tokens_per_s": round(self.tokens / s, 1)}
