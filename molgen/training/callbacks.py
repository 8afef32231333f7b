"""Training callbacks that ``molgen.train`` adds (the training progress lives in :mod:`.progress`)."""

from __future__ import annotations

import lightning as L
import torch


class ClipGradNorm(L.Callback):
    """Clip the global gradient norm to ``max_norm`` before every optimizer step.

    The same as ``Trainer(gradient_clip_val=...)`` (it runs where Lightning clips, after the
    gradients are unscaled and, under DDP, averaged), but with torch's multi-tensor kernels: on CPU
    Lightning's call takes the per-tensor path (1.2 vs 0.9 ms per step for the quick-start model).
    """

    def __init__(self, max_norm: float) -> None:
        self.max_norm = float(max_norm)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, self.max_norm, foreach=True)
