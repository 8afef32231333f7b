"""One training-progress object that every schedule reads (learning rate, KL beta, ...).

``TrainingProgress`` is a Lightning callback that counts optimizer steps, molecules seen (over all
processes) and training seconds, stops the run when any budget is spent, and stores its counters in
the checkpoint, so a resumed run continues its schedules and budgets instead of restarting them.

``fraction`` is the share of the budget used: ``max(steps / max_steps, seconds / max_time_s,
molecules / max_molecules)`` (budgets that are not set are ignored; none set -> the trainer's
estimated number of steps). Under DDP the counters are summed over processes (seconds are rank
zero's), so every process reads the same fraction and stops at the same step. A budget in molecules seen gives the same model on every machine; a
wall-clock budget gives whatever the machine manages.

``TrainingBar`` replaces Lightning's progress bar: **one** bar per training run over the share of the
budget spent (whatever the budget is: steps, molecules, minutes or epochs), with the step, molecules
seen and the logged losses after it; no validation bars, no cursor moves. It is drawn by
:func:`molgen.progress.progress_bar`, so it is a widget in a notebook with ``ipywidgets``, one line
redrawn in place in a notebook without, a ``tqdm`` bar on a terminal, and off with ``molgen -q``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from molgen.progress import progress_bar


@dataclass(frozen=True)
class Budget:
    """What ends a training run: the first of its limits spent — optimizer steps, minutes of training
    (validation excluded), molecules seen (over all processes). None set: the epochs end it. The one
    declaration of a budget: ``train``'s ``max_steps`` / ``max_time`` / ``max_molecules`` options, and the
    benchmark's per-family budget (minutes, or molecules with a time cap)."""

    max_steps: int | None = None
    max_time: float | None = None  # minutes
    max_molecules: int | None = None

    @classmethod
    def from_options(cls, opts: Mapping[str, Any]) -> Budget:
        """The budget of a run's options (0 / None: not set)."""
        return cls(max_steps=opts.get("max_steps") or None, max_time=opts.get("max_time") or None,
                   max_molecules=opts.get("max_molecules") or None)

    @property
    def max_time_s(self) -> float | None:
        return self.max_time * 60 if self.max_time else None

    def is_set(self) -> bool:
        return any(v for v in asdict(self).values())

    def options(self) -> dict[str, Any]:
        """As training options (what a config or ``train(**options)`` takes)."""
        return asdict(self)

    def text(self, per: str = "") -> str:
        """In words, e.g. ``300,000 molecules seen per family (time cap 30 min)``; ``per``: what each run
        is (`` per family``)."""
        cap = f" (time cap {self.max_time:g} min)" if self.max_time else ""
        if self.max_molecules:
            return f"{self.max_molecules:,} molecules seen{per}{cap}"
        if self.max_steps:
            return f"{self.max_steps:,} optimizer steps{per}{cap}"
        if self.max_time:
            return f"{self.max_time:g} min of training{per}"
        return f"the epochs{per}"


class TrainingProgress(L.Callback):
    """Counts steps / molecules / seconds of training; ``fraction()`` in [0, 1]; stops at the budget."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.steps = 0
        self.molecules = 0
        self.tokens = 0
        self.seconds = 0.0
        self._estimated_steps: int | None = None
        self._t: float | None = None  # end of the previous training batch

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
        self._t = None
        if not self.budget.is_set():
            try:
                self._estimated_steps = int(trainer.estimated_stepping_batches)
            except Exception:  # infinite loaders
                self._estimated_steps = None
        if self.done():  # resumed with a budget that is already spent
            trainer.should_stop = True

    # Seconds are wall-clock time between consecutive training batches (data loading, the step and
    # Lightning's own work included), validation excluded: what a time budget should count.
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._t is None:
            self._t = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:
        self._t = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        dt = now - self._t if self._t is not None else 0.0
        self._t = now
        n_mol, n_tok = batch_size_of(batch)
        world = max(1, trainer.world_size)
        if world > 1:
            n_mol, n_tok, dt = _sum_over_ranks(pl_module, n_mol, n_tok, dt if trainer.is_global_zero else 0.0)
        self.steps += 1
        self.molecules += n_mol
        self.tokens += n_tok
        self.seconds += dt
        if self.done():
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "molecules": self.molecules, "tokens": self.tokens, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.molecules = int(state.get("molecules", 0))
        self.tokens = int(state.get("tokens", 0))
        self.seconds = float(state.get("seconds", 0.0))


class TrainingBar(ProgressBar):
    """One progress bar per training run (rank zero only): the share of the budget spent, then step,
    molecules seen and the progress-bar metrics (``self.log(..., prog_bar=True)``), refreshed every
    ``refresh_rate`` optimizer steps and after each validation."""

    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]"

    def __init__(self, refresh_rate: int = 10, desc: str = "training") -> None:
        super().__init__()
        self.refresh_rate = max(1, int(refresh_rate))
        self.desc = desc
        self._enabled = True
        self._bar: Any = None

    # --- Lightning's progress-bar interface ----------------------------------------------------
    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        if self._bar is not None:
            self._bar.write(sep.join(map(str, args)))
        else:
            print(*args, sep=sep, **kwargs)

    # --- the bar ---------------------------------------------------------------------------------
    def fraction(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """Share of the budget spent: the run's :class:`TrainingProgress`, else steps / estimated steps."""
        progress = getattr(pl_module, "progress", None)
        if isinstance(progress, TrainingProgress):
            return progress.fraction()
        try:
            total = float(trainer.estimated_stepping_batches)
        except Exception:  # infinite loaders
            return 0.0
        return min(1.0, trainer.global_step / total) if 0 < total < float("inf") else 0.0

    def postfix(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        parts = []
        progress = getattr(pl_module, "progress", None)
        if isinstance(progress, TrainingProgress):
            parts.append(f"step {progress.steps}, {progress.molecules:,} molecules")
        for k, v in self.get_metrics(trainer, pl_module).items():
            if k == "v_num":
                continue
            parts.append(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}")
        return ", ".join(parts)

    def _refresh(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix_str(self.postfix(trainer, pl_module), refresh=False)
        target = self.fraction(trainer, pl_module)
        if target > self._bar.n:
            self._bar.update(target - self._bar.n)  # redraws no more often than the bar's interval

    def _close(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.close()

    # --- Lightning hooks -------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        if not self._enabled:
            return
        # a resumed run starts where it was
        self._bar = progress_bar(total=1.0, initial=self.fraction(trainer, pl_module), desc=self.desc,
                                 bar_format=self.BAR_FORMAT)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        progress = getattr(pl_module, "progress", None)
        steps = progress.steps if isinstance(progress, TrainingProgress) else trainer.global_step
        if steps % self.refresh_rate == 0:
            self._refresh(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._refresh(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._refresh(trainer, pl_module)
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._close()


def _sum_over_ranks(module: L.LightningModule, n_mol: int, n_tok: int, seconds: float) -> tuple[int, int, float]:
    """Counts summed over all processes, seconds of rank zero (one collective per step): every rank
    then holds the same counters, so schedules agree and all stop at the same step."""
    if not (dist.is_available() and dist.is_initialized()):
        return n_mol, n_tok, seconds
    t = torch.tensor([n_mol, n_tok, seconds], dtype=torch.float64, device=module.device)
    dist.all_reduce(t)
    return int(t[0].item()), int(t[1].item()), float(t[2].item())


def log_due(module: L.LightningModule) -> bool:
    """True on the training steps whose ``self.log`` values reach the logger (every
    ``log_every_n_steps``-th step): log per-step training metrics only then (``self.log`` costs
    ~0.1 ms per call and its values on other steps are thrown away)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None:
        return False
    try:
        return bool(trainer._logger_connector.should_update_logs)
    except AttributeError:  # a Lightning without it: log every step, as before
        return True


def batch_size_of(batch: Any) -> tuple[int, int]:
    """(molecules, target tokens) of a collated batch (``ids`` [B, T] with BOS ... EOS PAD)."""
    if isinstance(batch, dict) and "ids" in batch:
        ids = batch["ids"]
        return int(ids.shape[0]), int((ids[:, 1:] != 0).sum())
    if isinstance(batch, dict) and "lengths" in batch:
        return int(batch["lengths"].shape[0]), int(batch["lengths"].sum())
    return 0, 0
