"""Training callbacks: those ``molgen.train`` adds for every family (gradient clipping, the non-finite
guard) and those a family declares in ``default_callbacks`` (``molgen.train`` and fine-tuning add them
too): the VAE's collapse safeguards and latent diagnostics, the GAN's latent-bin tracking. They keep
what happens *around* the model's training steps out of the model. The training progress lives in
:mod:`.progress`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from molgen.models.vae_diagnostics import (
    latent_diagnostics,
    plot_history,
    reconstruction_matches,
    warn_on_collapse,
)
from molgen.training.progress import log_due

log = logging.getLogger(__name__)

#: what the VAE's ``validation_step`` returns per batch and :class:`VAEDiagnostics` keeps (diagnostics subset)
DIAG_KEYS = ("mu", "logvar", "rec", "kl", "h")


def fitting(trainer: L.Trainer | None) -> bool:
    """True inside ``trainer.fit`` (not a sanity check, not a stand-alone ``validate``)."""
    return trainer is not None and trainer.state.fn == "fit" and not trainer.sanity_checking


def log_root(trainer: L.Trainer) -> Path:
    """The folder next to the training logs where diagnostics files go (created)."""
    root = Path(trainer.log_dir or trainer.default_root_dir)
    root.mkdir(parents=True, exist_ok=True)
    return root


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


class NonFiniteGuard(L.Callback):
    """Stop on a NaN / inf training loss with a message naming the step, keeping the last good checkpoint.

    After every validation of a fit it writes ``<checkpoint dir>/last.ckpt`` when all parameters are
    finite (``molgen.train``'s ModelCheckpoint with ``save_top_k=0`` writes ``last.ckpt`` only when
    training ends); before a backward pass with a non-finite loss it raises :class:`FloatingPointError`,
    so no bad step reaches the weights or that file. ``molgen.train`` adds it for every family.
    """

    def __init__(self) -> None:
        self.saved: tuple[str, int] | None = None  # (path, step) of the last good checkpoint

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cb = trainer.checkpoint_callback
        if trainer.sanity_checking or cb is None or not getattr(cb, "dirpath", None):
            return
        if all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()):
            path = f"{cb.dirpath}/last.ckpt"
            trainer.save_checkpoint(path)
            self.saved = (path, trainer.global_step)

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            kept = (f"the last good checkpoint (step {self.saved[1]}) is kept at {self.saved[0]}" if self.saved
                    else "no checkpoint had been written yet")
            raise FloatingPointError(f"non-finite training loss ({float(loss.detach())}) at step {trainer.global_step} "
                                     f"of {type(pl_module).__name__}: training stopped; {kept}")


# --- the VAE: latent diagnostics and the collapse safeguards that act on them -------------------
class LatentSafeguard:
    """A VAE safeguard driven by the latent diagnostics of each validation (:class:`VAEDiagnostics` calls
    it): ``state()`` is recorded in the diagnostics entry, ``after_diagnostics`` reacts to it."""

    def state(self) -> dict[str, Any]:
        return {}

    def after_diagnostics(self, trainer: L.Trainer, vae: Any, buf: dict[str, Tensor], diag: dict[str, Any]) -> None:
        """React to one validation's diagnostics (``buf``: the subset's posteriors, :data:`DIAG_KEYS`)."""


class VAEDiagnostics(L.Callback):
    """Latent diagnostics at every validation on a fixed subset (the first ``diag_size`` validation
    molecules; greedy reconstruction of the first ``recon_size``), appended to ``vae.diagnostics_history``
    and logged as ``val/...``; collapse alarms are :class:`~molgen.errors.CollapseWarning` and the
    ``val/posterior_collapse`` / ``val/mixture_collapse`` flags; then the ``safeguards`` react (in order).
    At the end of a fit ``vae_diagnostics.json`` and ``vae_diagnostics.png`` go next to the training logs."""

    def __init__(self, safeguards: Sequence[LatentSafeguard] = ()) -> None:
        self.safeguards = list(safeguards)
        self.buffer: dict[str, list[Tensor]] = {}
        self.recon_targets: list[str] = []

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.buffer = {k: [] for k in DIAG_KEYS}
        self.recon_targets = []

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, dict) or "mu" not in outputs:
            return
        c = pl_module.config
        have = sum(x.shape[0] for x in self.buffer.get("mu", []))
        if have >= c.diag_size:
            return
        take = c.diag_size - have
        for key in DIAG_KEYS:
            self.buffer.setdefault(key, []).append(outputs[key][:take].detach().float())
        want = c.recon_size - len(self.recon_targets)
        if want > 0:
            self.recon_targets += pl_module.strings.decode(batch["ids"][:min(take, want), 1:])

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self.buffer.get("mu"):
            return
        vae, c = pl_module, pl_module.config
        buf = {k: torch.cat(v) for k, v in self.buffer.items()}
        diag = latent_diagnostics(vae.prior, buf["mu"], buf["logvar"], buf["kl"], buf["rec"],
                                  mi_threshold=c.mi_threshold)
        if self.recon_targets:
            n = len(self.recon_targets)
            decoded = vae.sample_decoder(buf["mu"][:n], None, greedy=True)
            diag["recon_accuracy"] = float(np.mean(reconstruction_matches(decoded, self.recon_targets, vae.policy)))
        diag.update(step=trainer.global_step, beta=vae.beta())
        for guard in self.safeguards:
            diag.update(guard.state())
        vae.diagnostics_history.append(diag)
        for key in ("rec", "kl", "elbo", "active_units", "mi", "recon_accuracy", "marginal_kl", "usage_perplexity",
                    "responsibility_entropy", "top_component_share"):
            if key in diag:
                vae.log(f"val/{key}", float(diag[key]), sync_dist=True)
        vae.log("val/posterior_collapse", float(diag["posterior_collapse"]))
        vae.log("val/mixture_collapse", float(diag["mixture_collapse"]))
        if diag["mi_at_cap"]:
            log.info("VAE: MI %.2f nats is at its log N = %.2f cap (read it as 'at least')", diag["mi"],
                     diag["mi_cap"])
        warn_on_collapse(diag)
        for guard in self.safeguards:
            guard.after_diagnostics(trainer, vae, buf, diag)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        """Write the diagnostics history as JSON and a PNG plot next to the training logs."""
        history = pl_module.diagnostics_history
        if not history or not trainer.is_global_zero:
            return
        root = log_root(trainer)
        (root / "vae_diagnostics.json").write_text(json.dumps(history, indent=1, default=float))
        try:
            plot_history(history, root / "vae_diagnostics.png")
        except Exception as e:  # a plotting failure must not lose a trained model
            log.warning("could not plot VAE diagnostics: %s", e)


class AggressiveEncoderPhase(L.Callback, LatentSafeguard):
    """He et al. 2019's aggressive phase (the VAE's ``aggressive``: off | on | auto): only the encoder moves
    on ``aggressive_inner`` of every ``aggressive_inner + 1`` optimizer steps (the decoder's and the prior's
    gradients are dropped, after clipping), until the validation MI stops increasing or
    ``aggressive_max_steps`` pass; ``auto`` switches it on when fewer than d_z/4 units are active at a
    validation. Logs ``train/aggressive`` (0 / 1) and records ``aggressive`` in each diagnostics entry."""

    def __init__(self) -> None:
        self.active = False
        self.done = False
        self.start = 0
        self.last_mi = -np.inf

    def setup(self, trainer: L.Trainer, pl_module: Any, stage: str) -> None:
        if stage == "fit":
            self.active, self.done, self.start, self.last_mi = pl_module.config.aggressive == "on", False, 0, -np.inf

    def state(self) -> dict[str, Any]:
        return {"aggressive": self.active}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if log_due(pl_module):
            pl_module.log("train/aggressive", float(self.active), batch_size=batch["ids"].shape[0])

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: Any, optimizer: Any) -> None:
        if not self.active:
            return
        c, step = pl_module.config, trainer.global_step
        if step - self.start >= c.aggressive_max_steps:
            self.stop("step budget reached")
            return
        if step % (c.aggressive_inner + 1) != c.aggressive_inner:
            for p in pl_module.generative_parameters():
                p.grad = None

    def after_diagnostics(self, trainer: L.Trainer, vae: Any, buf: dict[str, Tensor], diag: dict[str, Any]) -> None:
        mode = vae.config.aggressive
        if mode == "off" or self.done:
            return
        if self.active:
            if diag["mi"] <= self.last_mi + 1e-3:
                self.stop("validation MI stopped increasing")
            self.last_mi = diag["mi"]
        elif mode == "auto" and diag["active_units"] < vae.d_z / 4:
            self.active, self.start = True, trainer.global_step
            log.info("VAE: aggressive encoder phase on at step %d", self.start)
            self.last_mi = diag["mi"]

    def stop(self, why: str) -> None:
        if self.active:
            log.info("VAE: aggressive encoder phase off (%s)", why)
        self.active, self.done = False, True


class DeadComponentReseeding(LatentSafeguard):
    """The VAE's ``reseed_dead``: after each validation of a fit, mixture components used by less than
    ``reseed_threshold``/K of the subset move to random molecules' posteriors
    (``vae.reseed_dead_components``, VQ-style restarts)."""

    def after_diagnostics(self, trainer: L.Trainer, vae: Any, buf: dict[str, Tensor], diag: dict[str, Any]) -> None:
        if vae.config.reseed_dead and fitting(trainer):
            vae.reseed_dead_components(buf, diag)


# --- the GAN: latent-bin (mode-coverage) tracking ----------------------------------------------
class LatentBinTracking(L.Callback):
    """The LatentGAN's mode-coverage record: every ``occupancy_every`` batches, the latent-bin occupancy /
    TV / JS of generated latents against the training latents' bins (``gan.latent_bin_stats``), appended
    to ``gan.latent_history`` and logged straight to the logger as ``train/latent_bins_*`` (every point
    kept: GAN collapse comes and goes); at the end of the fit a final point and ``gan_diagnostics.json``
    (latent counts, history) next to the training logs."""

    def __init__(self) -> None:
        self.last_batch = -1

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        gan = pl_module
        n = gan.n_batches
        if gan.bins is None or n == self.last_batch or n % gan.config.occupancy_every:
            return
        self.last_batch = n
        stats = gan.latent_bin_stats(seed=gan.config.seed)
        step = trainer.global_step
        frac = gan.progress.fraction() if gan.progress is not None else None
        gan.latent_history.append({"batch": n, "optimizer_step": step, "progress": frac, **stats})
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({f"train/latent_bins_{k}": float(stats[k]) for k in ("occupied", "tv", "js")},
                                       step=step)

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        gan = pl_module
        if not trainer.is_global_zero:
            return
        if gan.bins is not None:
            gan.latent_history.append({"batch": gan.n_batches, "final": True,
                                       **gan.latent_bin_stats(seed=gan.config.seed)})
        (log_root(trainer) / "gan_diagnostics.json").write_text(json.dumps(
            {"latent_info": gan.latent_info, "latent_bins_history": gan.latent_history}, indent=1, default=float))
