"""Masked (absorbing-state) discrete diffusion over SMILES / SELFIES tokens (MDLM-style), with a
per-molecule ELBO in nats.

**Canvas.** A string of n <= ``max_len`` symbols is written on a canvas of N = ``max_len + 1``
positions: the n symbols, then ``<eos>`` repeated to the end (eos-filled rather than eos + pads, so
the canvas alphabet is the symbols plus one terminator and "the string has ended" is one token).
A canvas is *valid* when it is symbols followed only by ``<eos>`` (at least one: position N - 1 is
always ``<eos>``); each string has exactly one valid canvas, and valid canvases decode to their
strings. ``<pad>``, ``<bos>`` and ``<unk>`` never appear.

**Forward process.** Every position is independently replaced by ``<mask>`` (an extra id = V, the
tokenizer's vocabulary size) with probability t, i.e. the log-linear schedule alpha_t = 1 - t.

**Denoiser.** The shared backbone without the causal mask, built with an input vocabulary of V + 1
(the V tokens and ``<mask>``). Its logits are tied to the input embedding, so they come out over
V + 1 ids; the ``<mask>`` column is dropped (``[..., :V]``): SUBS's "mask logit = -inf".
``p_theta(x_l | z_t)`` for a masked position l is then a softmax over the tokens the canvas rule
still allows given the *revealed* positions of z_t (a function of z_t only, so the bound stays valid):

* ``<pad>``, ``<bos>``, ``<unk>``: never;
* the last position, and any position after a revealed ``<eos>``: only ``<eos>`` (probability 1);
* a position before a revealed symbol: no ``<eos>``.

Unmasked positions are carried over (SUBS), so the loss involves masked positions only. The
denoiser takes an optional ``offset`` [B, 1, D] added to the input embeddings (the backbone's
``offset``): the hook a condition embedding will use (``_log_probs(z, offset=...)``).

**ELBO.** With alpha_t = 1 - t the continuous-time bound (MDLM / MD4) on the canonical canvas is

    -log p(x) <= E_{t~U(0,1]} E_{z_t} [ (1/t) sum_{l masked} -log p_theta(x_l | z_t) ]          (1)
              =  N * E_{k~U{1..N}} E_{m: |m| = k} [ (1/k) sum_{l in m} -log p_theta(x_l | x with m masked) ]  (2)

(2) is (1) with t integrated out given the mask m: given |m| = k the masked set is uniform and
int t^(k-1) (1-t)^(N-k) dt = 1 / (k C(N, k)). It is the same bound with bounded weights (1 <= N/k <= N,
where (1) has 1/t -> infinity and needs MDLM's eps = 1e-3 truncation, which (2) does not). The bound
covers every canvas position (MDLM ``compute_loss_on_pad_tokens=True``); forced positions cost 0.

Because every canvas decodes to exactly one string (cut at the first ``<eos>``), the model is a
proper distribution over strings of length <= ``max_len`` and
ELBO(x) <= log p(valid canvas of x) <= log p(string x): a bound on the canonical string.

* ``log_likelihood`` / ``score``: kind ``elbo-K`` (default K = ``elbo_samples``; ``kind="elbo"`` is the
  default, ``"elbo-256"`` another K): K mask draws per molecule, k stratified over {1..N}
  (k_j = 1 + floor(N (j + r_j) / K)), a uniform size-k mask per draw. All noise comes from generators
  seeded by the molecule's own tokens (``molgen.likelihood.row_seeds``): deterministic per molecule.
  Cost: K network calls per molecule. ``exact_elbo`` enumerates all 2^N - 1 masks (tiny canvases, tests).
* Training: the same estimator with one draw per molecule, k stratified across the batch
  (low-discrepancy, as MDLM's antithetic t), divided by N (a per-position loss for the optimiser).

**Sampling.** ``sampler="ancestral"`` (default) is MDLM's: T = ``sampling_steps`` steps (default N;
any T >= 1, e.g. N/2, N/4, N/8); from t = i/T to s = (i-1)/T every masked position is unmasked with
probability (t - s)/t and its token drawn from p_theta(x | z_t) at the temperature (1 by default).
The network runs only for rows whose canvas changed since its last call (the MDLM cache), so the
network calls per row are <= min(T, N). With T steps several positions can be drawn independently in
one step; the model the ELBO describes is the T -> infinity limit, in which exactly one uniformly
random masked position is revealed at a time. ``sampler="exact"`` samples that limit exactly (N
network calls per row; with the cache, the same as T = infinity). T = N ancestral is close to it
(tests measure both against a tiny training distribution). Sampled canvases that break the canvas
rule (possible when two positions are drawn in one step) are decoded by the stated rule: the tokens
before the first ``<eos>``. Samples come without log p (only a bound is tractable).

Per-call steps: ``model.set_sampling(steps=..., sampler=...)`` overrides the config for later
``sample`` calls (not saved); ``set_sampling()`` restores the config's values.

**Conditional** (``condition`` set, by ``molgen train --model diffusion --condition qed``): the
condition embedding is the backbone's input ``offset`` at every position; condition dropout in
training makes the same denoiser the unconditional model. ``score(condition=...)`` is the ELBO of
p(x | c). Classifier-free guidance mixes the per-position log-probs of p_theta(x_l | z_t, c) and
p_theta(x_l | z_t) (one doubled batch) as ``(1 + w) log p_c - w log p_u``, renormalised, *before*
the unmasking draw (Schiff et al. 2024); guided samples have no bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.conditioning import Conditioner, guided_log_probs, validate_condition_fields
from molgen.errors import ConfigError, check_choice, strict
from molgen.likelihood import resolve_k_kind, row_rand, row_seeds
from molgen.models.autoregressive import StringDecoding
from molgen.models.base import GenerativeModel
from molgen.models.config import ModelConfig
from molgen.registry import BACKBONES, MODELS
from molgen.training.optim import adamw_warmup_cosine
from molgen.training.progress import log_due

__all__ = ["DiffusionConfig", "DiffusionModel"]

SAMPLERS = ("ancestral", "exact")


@dataclass
class DiffusionConfig(ModelConfig):
    """Hyperparameters of masked diffusion. ``backbone``: a registered backbone spec (the family wires
    vocabulary V + 1, N = max_len + 1 positions and ``causal=False``)."""

    COMPONENTS = ("backbone",)

    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "transformer", "args": {}})
    sampler: str = "ancestral"          # ancestral (MDLM, sampling_steps steps) | exact (T -> infinity)
    sampling_steps: int | None = None   # None: the canvas length N = max_len + 1
    elbo_samples: int = 16              # mask draws per molecule in score() (kind elbo-K)
    val_elbo_samples: int = 4           # ... in validation during training
    mc_seed: int = 0                    # salt of the per-molecule Monte-Carlo seeds
    condition: dict[str, Any] = field(default_factory=dict)  # a ConditionSpace dict; empty: unconditional
    cond_dropout: float = 0.1           # probability of dropping the condition in training (guidance)

    def validate(self) -> None:
        super().validate()
        validate_condition_fields(self)
        check_choice("sampler", self.sampler, SAMPLERS)
        if self.sampling_steps is not None and (not isinstance(self.sampling_steps, int)
                                                or isinstance(self.sampling_steps, bool)
                                                or self.sampling_steps < 1):
            raise ConfigError(f"sampling_steps must be null (the canvas length) or an integer >= 1, "
                              f"got {self.sampling_steps!r}")
        for name in ("elbo_samples", "val_elbo_samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")


@MODELS.register("diffusion")
class DiffusionModel(GenerativeModel):
    """MDLM: absorbing <mask> noise, alpha_t = 1 - t, bidirectional backbone, SUBS, per-molecule ELBO."""

    name = "diffusion"
    capabilities = frozenset({"sample", "log_likelihood"})
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, *, representation: Any, policy: Policy = DEFAULT_POLICY) -> None:
        super().__init__(config, representation=representation, policy=policy)
        if representation is None:
            raise ConfigError("masked diffusion needs a fitted tokenizer as its representation")
        tok = representation
        self.V = int(tok.vocab_size)
        self.mask_id = self.V  # the extra input id
        self.strings = StringDecoding(tok, config.max_len)
        self.net = BACKBONES.build(config.backbone, vocab_size=self.V + 1, max_positions=self.canvas_len,
                                   causal=False)
        is_eos = torch.zeros(self.V, dtype=torch.bool)
        is_eos[tok.eos_id] = True
        symbol = torch.ones(self.V, dtype=torch.bool)
        symbol[[tok.pad_id, tok.bos_id, tok.unk_id, tok.eos_id]] = False
        self.register_buffer("_is_eos", is_eos, persistent=False)
        self.register_buffer("_is_symbol", symbol, persistent=False)
        self._sampling_override: dict[str, Any] = {}
        self.last_sample_stats: dict[str, Any] = {}
        self.conditioner = Conditioner.from_config(config, self.net.cfg.d_model)
        if self.conditioner is not None:
            self.capabilities = type(self).capabilities | {"conditional"}

    @property
    def canvas_len(self) -> int:
        """N = max_len + 1 positions: the symbols, then <eos> to the end."""
        return self.max_len + 1

    # --- data ----------------------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> list[int]:
        return self.strings.featurize(canonical_smiles)

    def collate(self, items: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        """``{"ids": [B, N] canvases (symbols, then <eos> to the end), "lengths": [B]}``."""
        N, eos = self.canvas_len, self.tokenizer.eos_id
        ids = np.full((len(items), N), eos, dtype=np.int64)
        lengths = np.fromiter((len(x) for x in items), dtype=np.int64, count=len(items))
        for i, x in enumerate(items):
            ids[i, :len(x)] = x
        return {"ids": torch.from_numpy(ids), "lengths": torch.from_numpy(lengths)}

    def decode(self, z: Tensor) -> list[str]:
        """Strings for canvases [n, N]: the tokens before the first <eos> (the decoding rule)."""
        return self.strings.decode(z)

    # --- denoiser ------------------------------------------------------------------------------
    def _allowed(self, z: Tensor) -> Tensor:
        """[B, N, V] tokens p_theta(x_l | z) may put mass on, from the revealed positions of z."""
        revealed_eos = z == self.tokenizer.eos_id
        revealed_sym = (z != self.mask_id) & ~revealed_eos
        # any revealed <eos> strictly before l / any revealed symbol strictly after l
        eos_before = (revealed_eos.cumsum(1) - revealed_eos.long()) > 0
        sym_after = (revealed_sym.flip(1).cumsum(1).flip(1) - revealed_sym.long()) > 0
        last = torch.zeros_like(eos_before)
        last[:, -1] = True
        allow_eos = ~sym_after | eos_before | last  # forced <eos> wins on an (invalid) mixed canvas
        allow_sym = ~eos_before & ~last
        return ((self._is_eos & allow_eos.unsqueeze(-1))
                | (self._is_symbol & allow_sym.unsqueeze(-1)))

    def _log_probs(self, z: Tensor, offset: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """[B, N, V] log p_theta(x_l | z) (float32) for noisy canvases ``z`` [B, N] (mask id = V).

        ``offset`` ([B, 1, D]) is added to the backbone's input embeddings (a condition embedding)."""
        logits = self.net(z, offset=offset)[..., :self.V].float()  # tied logits: drop the <mask> column
        if temperature != 1.0:
            logits = logits / temperature
        logits = logits.masked_fill(~self._allowed(z), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def _masked_nll(self, x: Tensor, mask: Tensor, offset: Tensor | None = None) -> Tensor:
        """[B] sum over masked positions of -log p_theta(x_l | z) with z = x masked at ``mask``."""
        z = x.masked_fill(mask, self.mask_id)
        logp = self._log_probs(z, offset)
        tok = logp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
        return -(tok.masked_fill(~mask, 0.0)).sum(-1)

    def _offset(self, batch: dict[str, Any], n: int) -> Tensor | None:
        """The batch's condition embedding as an input offset [n, 1, D] (None: unconditional family)."""
        if self.conditioner is None:
            return None
        return self.conditioner(batch, n, self.device)[:, None, :]

    @staticmethod
    def _masks_of_size(scores: Tensor, k: Tensor) -> Tensor:
        """Boolean masks with the ``k`` positions of smallest ``scores`` (uniform size-k subsets)."""
        ranks = scores.argsort(-1).argsort(-1)
        return ranks < k.unsqueeze(-1)

    # --- likelihood ----------------------------------------------------------------------------
    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        return resolve_k_kind(kind, prefix="elbo", default_k=config.elbo_samples, family="masked diffusion",
                              unit="mask draws")

    def log_likelihood(self, batch: dict[str, Any], *, kind: str | None = None) -> Tensor:
        """[B] ELBO on log p(string) in nats, K stratified mask draws per molecule (kind ``elbo-K``)."""
        kind = self.likelihood_kind(self.config, kind)
        return self.elbo(batch, int(kind.split("-")[1]), self._offset(batch, batch["ids"].shape[0]))

    def elbo(self, batch: dict[str, Any], k: int, offset: Tensor | None = None, chunk_rows: int = 4096) -> Tensor:
        """[B] ELBO estimate (2) with ``k`` draws per molecule, noise seeded by each molecule's tokens."""
        x = batch["ids"]
        B, N = x.shape
        seeds = row_seeds(x, self.tokenizer.pad_id, salt=self.config.mc_seed)
        r = row_rand(seeds, (k,), x.device)  # [B, k] stratum offsets
        counts = (1 + ((torch.arange(k, device=x.device) + r) * N / k).floor().long()).clamp(1, N)
        masks = self._masks_of_size(row_rand(seeds, (k, N), x.device, offset=1), counts)  # [B, k, N]
        xs = x.unsqueeze(1).expand(B, k, N).reshape(B * k, N)
        masks, counts = masks.reshape(B * k, N), counts.reshape(B * k)
        off = offset.repeat_interleave(k, 0) if offset is not None else None
        nll = torch.cat([self._masked_nll(xs[i:i + chunk_rows], masks[i:i + chunk_rows],
                                          off[i:i + chunk_rows] if off is not None else None)
                         for i in range(0, B * k, chunk_rows)])
        est = (N / counts.to(nll.dtype)) * nll  # [B k]
        return -est.view(B, k).mean(1)

    @torch.no_grad()
    def exact_elbo(self, batch: dict[str, Any], max_canvas: int = 14) -> Tensor:
        """[B] the ELBO (2) computed exactly by enumerating all 2^N - 1 masks (tiny canvases only)."""
        x = batch["ids"]
        B, N = x.shape
        if N > max_canvas:
            raise ConfigError(f"exact_elbo enumerates 2^N masks: canvas {N} > max_canvas {max_canvas}")
        total = torch.zeros(B, dtype=torch.float64, device=x.device)
        for k in range(1, N + 1):
            w = 1.0 / (k * math.comb(N, k))
            for pos in combinations(range(N), k):
                mask = torch.zeros(B, N, dtype=torch.bool, device=x.device)
                mask[:, list(pos)] = True
                total += w * self._masked_nll(x, mask).double()
        return -total

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim)

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(loss, per-molecule -ELBO estimates [B]): one mask per molecule, k stratified over the batch."""
        x = batch["ids"]
        B, N = x.shape
        u = (torch.randperm(B, device=x.device) + torch.rand((), device=x.device)) / B  # stratified in [0, 1)
        counts = (1 + (u * N).floor().long()).clamp(1, N)
        mask = self._masks_of_size(torch.rand(B, N, device=x.device), counts)
        nll = self._masked_nll(x, mask, self._offset(batch, B))
        neg_elbo = (N / counts.to(nll.dtype)) * nll
        return neg_elbo.mean() / N, neg_elbo.detach()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss, neg_elbo = self.training_loss(batch)
        if log_due(self):
            bs = neg_elbo.shape[0]
            self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
            self.log("train/nelbo", neg_elbo.mean(), batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        ll = self.elbo(batch, self.config.val_elbo_samples, self._offset(batch, batch["ids"].shape[0]))
        self.log("val/nll", -ll.mean(), prog_bar=True, batch_size=ll.shape[0], sync_dist=True)

    # --- sampling ------------------------------------------------------------------------------
    @strict
    def set_sampling(self, *, steps: int | None = None, sampler: str | None = None) -> DiffusionModel:
        """Override ``sampling_steps`` / ``sampler`` for later ``sample`` calls (not saved); no
        arguments restore the config's values. Returns the model."""
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ConfigError(f"steps must be an integer >= 1 (the canvas length is {self.canvas_len}), "
                              f"got {steps!r}")
        if sampler is not None:
            check_choice("sampler", sampler, SAMPLERS)
        self._sampling_override = {k: v for k, v in (("steps", steps), ("sampler", sampler)) if v is not None}
        return self

    @property
    def sampling_steps(self) -> int:
        """Steps of the ancestral sampler now (override, else config, else the canvas length)."""
        return int(self._sampling_override.get("steps") or self.config.sampling_steps or self.canvas_len)

    @property
    def sampler(self) -> str:
        return str(self._sampling_override.get("sampler") or self.config.sampler)

    def _sample(self, n: int, *, temperature: float, generator: torch.Generator, condition=None,
                guidance=None) -> tuple[list[str], None]:
        denoise = self._denoiser(n, condition, guidance, temperature)
        if self.sampler == "exact":
            z, nfe = self._sample_exact(n, generator, denoise)
        else:
            z, nfe = self._sample_ancestral(n, self.sampling_steps, generator, denoise)
        self.last_sample_stats = {"sampler": self.sampler, "steps": self.sampling_steps if self.sampler
                                  == "ancestral" else self.canvas_len, "rows": n, "network_rows": nfe,
                                  "nfe_per_row": nfe / max(n, 1)}
        return self.decode(z), None

    def _denoiser(self, n: int, condition: dict[str, float] | None, guidance: float | None,
                  temperature: float) -> Callable[[Tensor, Tensor], Tensor]:
        """``denoise(z [m, N], rows [m]) -> log p [m, N, V]`` at the temperature: the unconditional,
        conditional or guided model for the sampled rows ``rows`` of this call."""
        if self.conditioner is None:
            return lambda z, rows: self._log_probs(z, None, temperature)
        off_c = self.conditioner(self.conditioner.space.batch(condition, n, self.device), n, self.device)[:, None]
        w = float(guidance or 0.0)
        if not w:
            return lambda z, rows: self._log_probs(z, off_c[rows], temperature)
        off_u = self.conditioner({}, n, self.device)[:, None]

        def guided(z: Tensor, rows: Tensor) -> Tensor:
            lp = self._log_probs(torch.cat([z, z]), torch.cat([off_c[rows], off_u[rows]]))
            g = guided_log_probs(lp[:len(z)], lp[len(z):], w)
            return g if temperature == 1.0 else torch.log_softmax(g / temperature, dim=-1)

        return guided

    def _draw(self, logp: Tensor, generator: torch.Generator) -> Tensor:
        """One token per row of ``logp`` [M, V] (log-probs already at the sampling temperature)."""
        if logp.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long, device=logp.device)
        return torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)

    @torch.no_grad()
    def _sample_ancestral(self, n: int, steps: int, generator: torch.Generator,
                          denoise: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, int]:
        """MDLM ancestral sampling in ``steps`` steps with the network cache; (canvases, network rows)."""
        N, dev = self.canvas_len, self.device
        z = torch.full((n, N), self.mask_id, dtype=torch.long, device=dev)
        logp = torch.empty((n, N, self.V), device=dev)
        stale = torch.ones(n, dtype=torch.bool, device=dev)  # rows whose z changed since their last call
        network_rows = 0
        for i in range(steps, 0, -1):
            masked = z == self.mask_id
            if not bool(masked.any()):
                break
            p_unmask = 1.0 / i  # (t - s) / t with t = i/T, s = (i-1)/T; 1 at the last step
            unmask = masked & (torch.rand((n, N), generator=generator, device=dev) < p_unmask)
            rows = unmask.any(1)
            need = rows & stale  # the network runs only for rows that change now and changed before
            if bool(need.any()):
                idx = need.nonzero().squeeze(1)
                logp[idx] = denoise(z[idx], idx)
                stale[idx] = False
                network_rows += int(idx.numel())
            z[unmask] = self._draw(logp[unmask], generator)
            stale |= rows
        return z, network_rows

    @torch.no_grad()
    def _sample_exact(self, n: int, generator: torch.Generator,
                      denoise: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, int]:
        """The T -> infinity limit: one uniformly random masked position revealed per network call."""
        N, dev = self.canvas_len, self.device
        z = torch.full((n, N), self.mask_id, dtype=torch.long, device=dev)
        rows = torch.arange(n, device=dev)
        for _ in range(N):
            scores = torch.rand((n, N), generator=generator, device=dev).masked_fill(z != self.mask_id, -1.0)
            pos = scores.argmax(1)
            logp = denoise(z, rows)
            z[rows, pos] = self._draw(logp[rows, pos], generator)
        return z, n * N
