"""Masked (absorbing-state) discrete diffusion over SMILES / SELFIES tokens (MDLM-style), with a
per-molecule ELBO in nats; and block diffusion (``block_size``): autoregressive over blocks of the
canvas, masked diffusion inside a block, with the autoregressive shift (block size 1 is the
transformer exactly).

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
before the first ``<eos>``. Samples come without log p (the left-to-right sampler excepted, below).

Two more one-position samplers choose *which* free position to reveal by another rule, the token
still drawn from p_theta(x_l | z) at the temperature: ``left-to-right`` (the first free position)
and ``confidence`` (the free position with the largest top probability, GenMol's / MaskGIT's order).
Each defines its own distribution over strings; the ELBO describes the random order only.
``left-to-right`` has an exact, tractable likelihood, kind ``exact-ltr`` (``exact-ltr-bB``): log q(x)
= sum_l log p_theta(x_l | x_<l revealed, the rest masked), b network passes per molecule (MDLM: N),
and it is the default kind of a model configured with that sampler; its samples come with it (as
the transformer's, tested equal to ``score``). It also writes positions in order, so fragment
template completion (``molgen.fragments``) drives it through a ``constrain`` hook as it drives the
transformer. Measured at the quick-start budget (b = 2 initialised from the
transformer, ``benchmarks/results/block_diffusion_recipe.md``): validity 0.93 left to right, 0.41
random order, 0.53 by confidence.

Random numbers come from the per-row streams of :class:`~molgen.rowrandom.RowRandom` (``rng``): at
ancestral step k (0-based) the unmasking coins are stream 2k and the token draws stream 2k + 1, one
column per canvas position (the exact sampler: position choice 2k, token 2k + 1), so a molecule does
not depend on the batch it is drawn in (``sample(20, seed)`` is the first 20 of ``sample(50, seed)``).

Per-call steps: ``model.set_sampling(steps=..., sampler=...)`` overrides the config for later
``sample`` calls (not saved); ``set_sampling()`` restores the config's values.

**Infilling** (the hook fragment-constrained generation builds on): ``_sample(..., canvas=C)`` /
``_sample_canvases`` take an [n, N] long tensor of initial canvases, free positions holding the mask
id V and fixed positions a symbol or ``<eos>`` id (position N - 1 free or ``<eos>``). Every sampler
starts from it and only ever writes free positions, so fixed positions never change. Fixed
positions are revealed tokens: the denoiser conditions on them and the canvas rule uses them (no
``<eos>`` before a fixed symbol, only ``<eos>`` after a fixed ``<eos>``). A block model's network
sees a fixed position only from its own block on (it cannot look ahead); the canvas rule still
applies from the start.

**Conditional** (``condition`` set, by ``molgen train --model diffusion --condition qed``): the
condition embedding is the backbone's input ``offset`` at every position; condition dropout in
training makes the same denoiser the unconditional model. ``score(condition=...)`` is the ELBO of
p(x | c). Classifier-free guidance mixes the per-position log-probs of p_theta(x_l | z_t, c) and
p_theta(x_l | z_t) (one doubled batch) as ``(1 + w) log p_c - w log p_u``, renormalised, *before*
the unmasking draw (Schiff et al. 2024); guided samples have no bound. The same holds for block
models (the doubled batch goes through the KV cache).

**Block diffusion** (``block_size`` = b in 1..N; Arriola et al. 2025, BD3-LM, with the
autoregressive shift of Gong et al. 2024, DiffuGPT). ``None`` is MDLM above, unchanged.

* Network: the transformer's backbone (input vocabulary V + 1, N positions), trained with an
  explicit attention mask. Input positions 0..N-1 hold the *clean stream* [BOS, x_1, ..., x_{N-1}]
  (x = the canvas; x_l is canvas position l - 1); the output at input position i predicts canvas
  target x_{i+1}, exactly as the transformer. Blocks partition the targets: block j is targets
  jb+1..min((j+1)b, N) (canvas positions jb..min((j+1)b, N) - 1). The inputs whose outputs predict
  block j form its *noisy group*: input positions jb..(j+1)b-1 holding [x_{jb} (clean; BOS for
  j = 0), z_{jb+1}, ..., z_{(j+1)b-1}] (z: the block's masked targets replaced by ``<mask>``).
* Attention: the clean stream is causal token by token (the transformer; its keys and values are
  the sampler's KV cache). A noisy-group token of block j attends to clean inputs at positions
  < jb and to every token of its own group. Training and scoring run one forward pass over the
  2N-token concatenation [noisy stream; clean stream] with a boolean [2N, 2N] mask and repeated
  position ids (b = 1: the plain causal forward, which is the same computation).
* p(x_l | group): SUBS and the canvas rule as above, from what the group is given: the clean
  prefix and the block's revealed targets (an ``<eos>`` anywhere earlier forces ``<eos>``; the last
  canvas position is ``<eos>``; a revealed symbol later in the block forbids ``<eos>``). The block's
  last target is never an input of its own group: the denoiser may ignore revealed information
  and the bound stays a bound.
* Bound, exact over blocks: log p(x) = sum_j log p(x_Bj | x_<Bj) >= sum_j ELBO_j, ELBO_j being (2)
  with N replaced by the block's length b_j (uniform size-k masks, k over 1..b_j, weight b_j / k).
  Kind ``elbo-K-bB`` (``kind="elbo-64"`` picks K): K draws per molecule, each masking every block at
  once (one 2N forward per draw), k stratified over 1..b_j per block, per-molecule seeds as above.
  With b = 1 every block is one target, k = 1, weight 1: the bound is the exact autoregressive
  log-likelihood and the model is the transformer.
* Training: one draw per molecule, k stratified across the batch per block, loss = -sum_j ELBO_j / N.
* Sampling (KV cache), block by block: ``steps_per_block`` ancestral MDLM steps inside a block
  (default b; ``set_sampling(steps=...)`` overrides it per block), or ``sampler="exact"`` (one
  position per call, the T -> infinity model). A finished block's clean tokens enter the cache in
  the same network call as the next block's first denoising step (one forward over both, causal
  inside the clean chunk), so a block costs ``steps_per_block`` calls (fewer when a step reveals
  nothing). It stops once every row has an ``<eos>`` (the canvas rule forces ``<eos>`` after it).
  Random streams: token draws of block j are stream j (one column per position in the block), the
  coins / position choice of block j at step s stream N (s + 1) + j; with b = 1 token t is stream t,
  as the transformer's sampler, which b = 1 therefore reproduces string for string.
* ``init_from_transformer(model)`` copies a trained transformer's weights (its embedding into the
  first V rows; ``molgen train --model diffusion --init-from DIR|NAME``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.conditioning import validate_condition_fields
from molgen.conditioning_nn import Conditioner, guided_log_probs
from molgen.errors import CapabilityError, ConfigError, check_choice, strict
from molgen.likelihood import resolve_k_kind, row_rand, row_seeds
from molgen.models.autoregressive import Constrain, StringDecoding
from molgen.models.base import GenerativeModel
from molgen.models.config import ModelConfig
from molgen.models.init_from import copy_transformer_weights
from molgen.nn.transformer import KVCache
from molgen.registry import BACKBONES, MODELS
from molgen.rowrandom import RowRandom
from molgen.training.optim import adamw_warmup_cosine
from molgen.training.progress import log_due

__all__ = ["DiffusionConfig", "DiffusionModel"]

SAMPLERS = ("ancestral", "exact", "left-to-right", "confidence")
ONE_POSITION_SAMPLERS = ("exact", "left-to-right", "confidence")  # one free position revealed per network call


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


@dataclass
class DiffusionConfig(ModelConfig):
    """Hyperparameters of masked diffusion. ``backbone``: a registered backbone spec (the family wires
    vocabulary V + 1, N = max_len + 1 positions and the attention rule). ``block_size``: None for
    MDLM, b in 1..N for block diffusion with the autoregressive shift (b = 1: the transformer)."""

    COMPONENTS = ("backbone",)

    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "transformer", "args": {}})
    sampler: str = "ancestral"          # ancestral (MDLM, sampling_steps steps) | exact (T -> infinity) |
                                        # left-to-right | confidence (one position per call, chosen by order)
    sampling_steps: int | None = None   # None: the canvas length N = max_len + 1 (MDLM only)
    elbo_samples: int = 16              # mask draws per molecule in score() (kind elbo-K)
    val_elbo_samples: int = 4           # ... in validation during training
    mc_seed: int = 0                    # salt of the per-molecule Monte-Carlo seeds
    condition: dict[str, Any] = field(default_factory=dict)  # a ConditionSpace dict; empty: unconditional
    cond_dropout: float = 0.1           # probability of dropping the condition in training (guidance)
    block_size: int | None = None       # None: MDLM; b in 1..max_len + 1: block diffusion (AR over blocks)
    steps_per_block: int | None = None  # block models: ancestral steps inside a block (None: b)

    def validate(self) -> None:
        super().validate()
        validate_condition_fields(self)
        check_choice("sampler", self.sampler, SAMPLERS)
        if self.sampling_steps is not None and not _is_count(self.sampling_steps):
            raise ConfigError(f"sampling_steps must be null (the canvas length) or an integer >= 1, "
                              f"got {self.sampling_steps!r}")
        for name in ("elbo_samples", "val_elbo_samples"):
            v = getattr(self, name)
            if not _is_count(v):
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        n = self.max_len + 1
        if self.block_size is not None:
            if not _is_count(self.block_size) or self.block_size > n:
                raise ConfigError(f"block_size must be null (MDLM) or an integer in 1..max_len + 1 = {n} "
                                  f"(1: the transformer), got {self.block_size!r}")
            if self.sampling_steps is not None:
                raise ConfigError("sampling_steps is the MDLM sampler's; a block model takes steps_per_block "
                                  "(ancestral steps inside each block)")
        if self.steps_per_block is not None:
            if self.block_size is None:
                raise ConfigError("steps_per_block needs block_size (block diffusion); MDLM takes sampling_steps")
            if not _is_count(self.steps_per_block):
                raise ConfigError(f"steps_per_block must be null (the block size) or an integer >= 1, "
                                  f"got {self.steps_per_block!r}")


@MODELS.register("diffusion")
class DiffusionModel(GenerativeModel):
    """MDLM or block diffusion: absorbing <mask> noise, SUBS; per-molecule ELBO or exact left-to-right log q."""

    name = "diffusion"
    capabilities = frozenset({"sample", "log_likelihood"})
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig, *, representation: Any, policy: Policy = DEFAULT_POLICY,
                 backbone: nn.Module | None = None) -> None:
        """``backbone``: the built denoiser network (:meth:`build_components` makes it from the config's
        spec; given none, the constructor calls it)."""
        super().__init__(config, representation=representation, policy=policy)
        if representation is None:
            raise ConfigError("masked diffusion needs a fitted tokenizer as its representation")
        tok = representation
        self.V = int(tok.vocab_size)
        self.mask_id = self.V  # the extra input id
        self.strings = StringDecoding(tok, config.max_len)
        N = self.canvas_len
        self.net = backbone if backbone is not None else self.build_components(config, representation)["backbone"]
        is_eos = torch.zeros(self.V, dtype=torch.bool)
        is_eos[tok.eos_id] = True
        symbol = torch.ones(self.V, dtype=torch.bool)
        symbol[[tok.pad_id, tok.bos_id, tok.unk_id, tok.eos_id]] = False
        self.register_buffer("_is_eos", is_eos, persistent=False)
        self.register_buffer("_is_symbol", symbol, persistent=False)
        if config.block_size is not None:
            b = int(config.block_size)
            self.blocks = [(lo, min(lo + b, N)) for lo in range(0, N, b)]  # canvas ranges [lo, hi)
            pos = torch.arange(N)
            self.register_buffer("_blk_len", torch.tensor([hi - lo for lo, hi in self.blocks]), persistent=False)
            self.register_buffer("_blk_of", pos // b, persistent=False)
            self.register_buffer("_group_start", pos % b == 0, persistent=False)
            self.register_buffer("_pos2", torch.cat([pos, pos]), persistent=False)
            self.register_buffer("_bd_mask", self._training_mask(N, b), persistent=False)
        self._sampling_override: dict[str, Any] = {}
        self.last_sample_stats: dict[str, Any] = {}
        self.conditioner = Conditioner.from_config(config, self.net.cfg.d_model)
        if self.conditioner is not None:
            self.capabilities = type(self).capabilities | {"conditional"}

    @classmethod
    def build_components(cls, config: DiffusionConfig, representation: Any) -> dict[str, Any]:
        """The ``backbone`` from the config's spec: input vocabulary V + 1 (``<mask>``), N = max_len + 1
        positions, bidirectional (MDLM) or with the block models' explicit attention mask (causal)."""
        if representation is None:
            raise ConfigError("masked diffusion needs a fitted tokenizer as its representation")
        return {"backbone": BACKBONES.build(config.backbone, vocab_size=int(representation.vocab_size) + 1,
                                            max_positions=config.max_len + 1, causal=config.block_size is not None)}

    @property
    def canvas_len(self) -> int:
        """N = max_len + 1 positions: the symbols, then <eos> to the end."""
        return self.max_len + 1

    @property
    def block_size(self) -> int | None:
        """b (block diffusion) or None (MDLM)."""
        return self.config.block_size

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
    def _allowed(self, z: Tensor, lo: int = 0, hi: int | None = None) -> Tensor:
        """[B, N, V] tokens p_theta(x_l | z) may put mass on, from the revealed positions of z (only
        positions lo..hi-1 of the canvas with ``lo`` / ``hi``)."""
        revealed_eos = z == self.tokenizer.eos_id
        revealed_sym = (z != self.mask_id) & ~revealed_eos
        # any revealed <eos> strictly before l / any revealed symbol strictly after l
        eos_before = (revealed_eos.cumsum(1) - revealed_eos.long()) > 0
        sym_after = (revealed_sym.flip(1).cumsum(1).flip(1) - revealed_sym.long()) > 0
        last = torch.zeros_like(eos_before)
        last[:, -1] = True
        return self._allowed_tokens(eos_before[:, lo:hi], sym_after[:, lo:hi], last[:, lo:hi])

    def _allowed_tokens(self, eos_before: Tensor, sym_after: Tensor, last: Tensor) -> Tensor:
        allow_eos = ~sym_after | eos_before | last  # forced <eos> wins on an (invalid) mixed canvas
        allow_sym = ~eos_before & ~last
        return ((self._is_eos & allow_eos.unsqueeze(-1))
                | (self._is_symbol & allow_sym.unsqueeze(-1)))

    def _log_probs(self, z: Tensor, offset: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """[B, N, V] log p_theta(x_l | z) (float32) for noisy canvases ``z`` [B, N] (mask id = V).

        ``offset`` ([B, 1, D]) is added to the backbone's input embeddings (a condition embedding).
        Block models: the canvas z is its own clean prefix (:meth:`_block_log_probs` with x = z)."""
        if self.block_size is not None:
            return self._block_log_probs(z, z, offset, temperature)
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

    # --- block diffusion: network and denoiser -------------------------------------------------
    @staticmethod
    def _training_mask(N: int, b: int) -> Tensor:
        """[2N, 2N] attention (True = attend) of [noisy stream; clean stream], positions 0..N-1 each:
        noisy token i (group g = i // b) sees clean tokens < g b and its own group; clean token i sees
        clean tokens <= i."""
        i = torch.arange(N)
        g = i // b
        noisy_noisy = g[:, None] == g[None, :]
        noisy_clean = i[None, :] < (g * b)[:, None]
        clean_clean = i[None, :] <= i[:, None]
        top = torch.cat([noisy_noisy, noisy_clean], 1)
        bottom = torch.cat([torch.zeros(N, N, dtype=torch.bool), clean_clean], 1)
        return torch.cat([top, bottom], 0)

    def _inputs(self, z: Tensor) -> Tensor:
        """[B, N] network inputs of a canvas: [BOS, z_0, ..., z_{N-2}] (input i predicts canvas i)."""
        bos = torch.full_like(z[:, :1], self.tokenizer.bos_id)
        return torch.cat([bos, z[:, :-1]], 1)

    def _block_logits(self, z: Tensor, x: Tensor, offset: Tensor | None = None) -> Tensor:
        """[B, N, V] logits for every canvas target from its block's noisy group (``z``: x with masked
        targets; ``x``: the clean canvas, of which the group sees the prefix before the block)."""
        N, b = self.canvas_len, self.block_size
        xin = self._inputs(x)
        if b == 1:  # each group is one clean token: the noisy stream is the clean one, causal
            return self.net(xin, offset=offset)[..., :self.V].float()
        zin = torch.where(self._group_start, xin, self._inputs(z))  # a group starts with a clean token
        out = self.net(torch.cat([zin, xin], 1), offset=offset, position_ids=self._pos2, attn_mask=self._bd_mask)
        return out[:, :N, :self.V].float()

    def _block_allowed(self, z: Tensor, x: Tensor) -> Tensor:
        """[B, N, V] the canvas rule per block, from what a group is given: the clean prefix of ``x``
        before the block and the block's revealed targets in ``z`` (later blocks are not seen)."""
        N, b = self.canvas_len, self.block_size
        nb, eos = len(self.blocks), self.tokenizer.eos_id
        pad = nb * b - N
        zp = torch.cat([z, z.new_full((z.shape[0], pad), self.mask_id)], 1).view(-1, nb, b)
        rev_eos = zp == eos
        rev_sym = (zp != self.mask_id) & ~rev_eos
        eos_in_block = (rev_eos.cumsum(-1) - rev_eos.long()) > 0
        sym_after = ((rev_sym.flip(-1).cumsum(-1).flip(-1) - rev_sym.long()) > 0).view(-1, nb * b)[:, :N]
        x_eos = (x == eos).long().cumsum(1)  # eos count of the clean canvas up to each position
        starts = torch.arange(nb, device=x.device) * b
        prefix_eos = torch.where(starts > 0, x_eos[:, (starts - 1).clamp(min=0)], 0) > 0  # [B, nb]
        eos_before = (eos_in_block | prefix_eos.unsqueeze(-1)).view(-1, nb * b)[:, :N]
        last = torch.zeros_like(eos_before)
        last[:, -1] = True
        return self._allowed_tokens(eos_before, sym_after, last)

    def _block_log_probs(self, z: Tensor, x: Tensor, offset: Tensor | None = None,
                         temperature: float = 1.0) -> Tensor:
        """[B, N, V] log p_theta(x_l | x_<B(l), z_B(l)) for every canvas position (float32)."""
        logits = self._block_logits(z, x, offset)
        if temperature != 1.0:
            logits = logits / temperature
        logits = logits.masked_fill(~self._block_allowed(z, x), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def _block_token_nll(self, x: Tensor, mask: Tensor, offset: Tensor | None = None) -> Tensor:
        """[B, N] -log p_theta(x_l | group) at the masked positions (0 elsewhere), z = x masked at ``mask``."""
        logp = self._block_log_probs(x.masked_fill(mask, self.mask_id), x, offset)
        tok = logp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
        return -(tok.masked_fill(~mask, 0.0))

    def _block_masks(self, scores: Tensor, counts: Tensor) -> Tensor:
        """Boolean [..., N]: in each block j the ``counts[..., j]`` positions of smallest ``scores``."""
        N, b, nb = self.canvas_len, self.block_size, len(self.blocks)
        lead = scores.shape[:-1]
        pad = scores.new_full((*lead, nb * b - N), 2.0)  # after every score in [0, 1): never chosen
        s = torch.cat([scores, pad], -1).view(*lead, nb, b)
        mask = s.argsort(-1).argsort(-1) < counts.unsqueeze(-1)
        return mask.view(*lead, nb * b)[..., :N]

    def _block_weights(self, counts: Tensor) -> Tensor:
        """[..., N] per-position weight b_j / k_j of the block each position belongs to."""
        w = self._blk_len.to(torch.float32) / counts.to(torch.float32)
        return w[..., self._blk_of]

    # --- likelihood ----------------------------------------------------------------------------
    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        """``elbo-K`` (MDLM) / ``elbo-K-bB`` (block models): the bound on the random-order model;
        ``exact-ltr`` / ``exact-ltr-bB``: the exact log-likelihood of the left-to-right sampler. The
        default follows the configured sampler (``left-to-right``: the exact one)."""
        b = getattr(config, "block_size", None)
        tail = "" if b is None else f"-b{b}"
        if kind is None and config.sampler == "left-to-right":
            kind = "exact-ltr"
        base = kind
        if isinstance(kind, str) and tail and kind.endswith(tail):
            base = kind[:-len(tail)]
        if base == "exact-ltr":
            return base + tail
        family = "masked diffusion" if b is None else f"block diffusion (block size {b})"
        try:
            return resolve_k_kind(base, prefix="elbo", default_k=config.elbo_samples, family=family,
                                  unit="mask draws") + tail
        except ConfigError:
            raise ConfigError(f"{family} reports kind 'elbo' (K = {config.elbo_samples} mask draws), 'elbo-K'"
                              f"{f' or {chr(39)}elbo-K{tail}{chr(39)}' if tail else ''} (K >= 1), or 'exact-ltr'"
                              f"{f' / {chr(39)}exact-ltr{tail}{chr(39)}' if tail else ''} (the left-to-right sampler's exact "
                              f"log-likelihood); got {kind!r}") from None

    def log_likelihood(self, batch: dict[str, Any], *, kind: str | None = None) -> Tensor:
        """[B] in nats: the ELBO on log p(string), K stratified mask draws per molecule (kind
        ``elbo-K``, ``elbo-K-bB`` for block models), or the left-to-right sampler's exact log q(string)
        (``exact-ltr[-bB]``, :meth:`left_to_right_log_likelihood`)."""
        kind = self.likelihood_kind(self.config, kind)
        offset = self._offset(batch, batch["ids"].shape[0])
        if kind.startswith("exact-ltr"):
            return self.left_to_right_log_likelihood(batch, offset)
        return self.elbo(batch, int(kind.split("-")[1]), offset)

    def left_to_right_log_likelihood(self, batch: dict[str, Any], offset: Tensor | None = None) -> Tensor:
        """[B] log q(x) of the ``left-to-right`` sampler, exactly: sum over canvas positions l of
        log p_theta(x_l | the positions before l revealed, l and later masked), inside each block for
        block models (b forward passes; MDLM: N). Every canvas decodes to one string and the canvas
        rule forces ``<eos>`` after the first, so this is log q(string). No Monte Carlo."""
        x = batch["ids"]
        B, N = x.shape
        b = self.block_size or N
        within = torch.arange(N, device=x.device) % b  # position inside its block
        total = torch.zeros(B, dtype=torch.float32, device=x.device)
        for i in range(b):
            z = x.masked_fill((within >= i).expand(B, N), self.mask_id)
            logp = (self._block_log_probs(z, x, offset) if self.block_size is not None
                    else self._log_probs(z, offset))
            tok = logp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
            total += tok[:, within == i].sum(-1)
        return total

    def elbo(self, batch: dict[str, Any], k: int, offset: Tensor | None = None, chunk_rows: int = 4096) -> Tensor:
        """[B] ELBO estimate (2) with ``k`` draws per molecule, noise seeded by each molecule's tokens."""
        if self.block_size is not None:
            return self._block_elbo(batch, k, offset, chunk_rows)
        x = batch["ids"]
        B, N = x.shape
        seeds = row_seeds(x, self.representation, salt=self.config.mc_seed)
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

    def _block_elbo(self, batch: dict[str, Any], k: int, offset: Tensor | None, chunk_rows: int) -> Tensor:
        """[B] sum over blocks of ELBO_j, ``k`` draws per molecule, every block masked in each draw."""
        x = batch["ids"]
        B, N = x.shape
        nb = len(self.blocks)
        if self.block_size == 1:  # every draw masks every (one-target) block: one draw is the exact value
            k = 1
        seeds = row_seeds(x, self.representation, salt=self.config.mc_seed)
        r = row_rand(seeds, (k, nb), x.device)  # [B, k, nb] stratum offsets per block
        bl = self._blk_len
        strata = torch.arange(k, device=x.device)[:, None]
        counts = torch.minimum(1 + ((strata + r) * bl / k).floor().long(), bl).clamp(min=1)
        masks = self._block_masks(row_rand(seeds, (k, N), x.device, offset=1), counts)  # [B, k, N]
        w = self._block_weights(counts).reshape(B * k, N)
        xs = x.unsqueeze(1).expand(B, k, N).reshape(B * k, N)
        masks = masks.reshape(B * k, N)
        off = offset.repeat_interleave(k, 0) if offset is not None else None
        nll = torch.cat([self._block_token_nll(xs[i:i + chunk_rows], masks[i:i + chunk_rows],
                                               off[i:i + chunk_rows] if off is not None else None)
                         for i in range(0, B * k, chunk_rows)])
        est = (w * nll).sum(-1)  # [B k]
        return -est.view(B, k).mean(1)

    @torch.no_grad()
    def exact_elbo(self, batch: dict[str, Any], max_canvas: int = 14) -> Tensor:
        """[B] the ELBO (2) computed exactly by enumerating all 2^N - 1 masks (tiny canvases only);
        block models: all 2^b_j - 1 masks of every block (the bound is a sum over blocks)."""
        x = batch["ids"]
        B, N = x.shape
        spans = self.blocks if self.block_size is not None else [(0, N)]
        if max(hi - lo for lo, hi in spans) > max_canvas:
            raise ConfigError(f"exact_elbo enumerates 2^N masks: canvas {N} > max_canvas {max_canvas}")
        total = torch.zeros(B, dtype=torch.float64, device=x.device)
        for lo, hi in spans:
            n = hi - lo
            for k in range(1, n + 1):
                w = 1.0 / (k * math.comb(n, k))
                for pos in combinations(range(lo, hi), k):
                    mask = torch.zeros(B, N, dtype=torch.bool, device=x.device)
                    mask[:, list(pos)] = True
                    nll = (self._block_token_nll(x, mask).sum(-1) if self.block_size is not None
                           else self._masked_nll(x, mask))
                    total += w * nll.double()
        return -total

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim)

    def training_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(loss, per-molecule -ELBO estimates [B]): one mask per molecule, k stratified over the batch
        (per block for block models)."""
        x = batch["ids"]
        B, N = x.shape
        if self.block_size is not None:
            nb = len(self.blocks)
            perm = torch.rand(nb, B, device=x.device).argsort(1).T  # [B, nb]: a permutation per block
            u = (perm + torch.rand(nb, device=x.device)) / B  # stratified in [0, 1) per block
            counts = torch.minimum(1 + (u * self._blk_len).floor().long(), self._blk_len)
            mask = self._block_masks(torch.rand(B, N, device=x.device), counts)
            nll = self._block_token_nll(x, mask, self._offset(batch, B))
            neg_elbo = (self._block_weights(counts) * nll).sum(-1)
            return neg_elbo.mean() / N, neg_elbo.detach()
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
        """val/nll: the model's default likelihood kind (``exact-ltr`` for a left-to-right sampler, else
        the bound with ``val_elbo_samples`` draws)."""
        offset = self._offset(batch, batch["ids"].shape[0])
        if self.likelihood_kind(self.config).startswith("exact-ltr"):
            ll = self.left_to_right_log_likelihood(batch, offset)
        else:
            ll = self.elbo(batch, self.config.val_elbo_samples, offset)
        self.log("val/nll", -ll.mean(), prog_bar=True, batch_size=ll.shape[0], sync_dist=True)

    # --- initialisation from a transformer -------------------------------------------------------
    @torch.no_grad()
    def init_from_transformer(self, source: GenerativeModel) -> dict[str, Any]:
        """Copy a trained transformer's weights where the shapes match; its token embedding [V, D] goes
        into the first V rows of this model's [V + 1, D] (the ``<mask>`` row keeps its init). The
        representation (vocabulary and settings) and ``max_len`` must be the source's. Returns
        ``{"copied", "partially_copied", "skipped", "unused"}`` parameter names (``skipped``: this
        model's, left at their init; ``unused``: the source's that match nothing here)."""
        return copy_transformer_weights(self, source, family="diffusion")

    # --- sampling ------------------------------------------------------------------------------
    @strict
    def set_sampling(self, *, steps: int | None = None, sampler: str | None = None) -> DiffusionModel:
        """Override ``sampling_steps`` (block models: ``steps_per_block``) / ``sampler`` for later
        ``sample`` calls (not saved); no arguments restore the config's values. Returns the model."""
        if steps is not None and not _is_count(steps):
            what = (f"the block size is {self.block_size}" if self.block_size
                    else f"the canvas length is {self.canvas_len}")
            raise ConfigError(f"steps must be an integer >= 1 ({what}), got {steps!r}")
        if sampler is not None:
            check_choice("sampler", sampler, SAMPLERS)
        self._sampling_override = {k: v for k, v in (("steps", steps), ("sampler", sampler)) if v is not None}
        return self

    @property
    def sampling_steps(self) -> int:
        """Steps of the ancestral sampler now (override, else config, else the canvas length); block
        models: steps per block (override, else ``steps_per_block``, else the block size)."""
        if self.block_size is not None:
            return int(self._sampling_override.get("steps") or self.config.steps_per_block or self.block_size)
        return int(self._sampling_override.get("steps") or self.config.sampling_steps or self.canvas_len)

    @property
    def sampler_name(self) -> str:
        """The diffusion sampler in use (``ancestral``, ``exact``, ``left-to-right``, ``confidence``):
        each samples another distribution, so every sample records which."""
        return self.sampler

    @property
    def writes_in_order(self) -> bool:
        """True when sampling reveals the canvas positions left to right, one per network call (sampler
        ``left-to-right``), as an autoregressive model writes: a ``constrain`` hook (fragment template
        completion) can then edit each position's log-probs before its draw, as for the transformer."""
        return self.sampler == "left-to-right"

    @property
    def sampler(self) -> str:
        return str(self._sampling_override.get("sampler") or self.config.sampler)

    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                constrain=None, canvas: Tensor | None = None) -> tuple[list[str], Tensor | None]:
        """``n`` strings and, for a model configured (and sampling) ``left-to-right`` at temperature 1
        without guidance or a canvas, their exact log q (its default kind ``exact-ltr``; under
        ``constrain`` the unconstrained model's, as the transformer); otherwise no log p.
        ``canvas``: [n, N] initial canvases for infilling (free positions = the mask id V, fixed ones a
        token id)."""
        z, ll = self._draw(n, temperature=temperature, rng=rng, condition=condition, guidance=guidance,
                           constrain=constrain, canvas=canvas)
        # labelled by the model's default kind: returned only when that is exact-ltr (the configured sampler)
        own = (self.writes_in_order and self.config.sampler == "left-to-right" and temperature == 1.0
               and not guidance and canvas is None)
        return self.decode(z), ll if own else None

    def _sample_canvases(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                         constrain=None, canvas: Tensor | None = None) -> Tensor:
        """[n, N] sampled canvases (what :meth:`_sample` decodes); ``canvas`` as in :meth:`_sample`,
        whose fixed positions come back unchanged. Sets ``last_sample_stats``."""
        return self._draw(n, temperature=temperature, rng=rng, condition=condition, guidance=guidance,
                          constrain=constrain, canvas=canvas)[0]

    @torch.no_grad()
    def _draw(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
              constrain=None, canvas: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """([n, N] canvases, [n] float64 sum of the drawn tokens' log p_theta at temperature 1 (the
        ancestral sampler: zeros)). Sets ``last_sample_stats``."""
        if constrain is not None and (not self.writes_in_order or canvas is not None):
            raise CapabilityError(f"diffusion samples under a token constraint only with sampler 'left-to-right' "
                                  f"and no canvas (this model samples with {self.sampler!r}: "
                                  f"set_sampling(sampler='left-to-right')); otherwise it infills a canvas "
                                  f"(_sample(..., canvas=[n, N] with the mask id at free positions))")
        if len(rng) != n:
            raise ValueError(f"{len(rng)} random streams for {n} rows")
        z = self._start_canvas(n, canvas)
        if self.block_size is not None:
            group_lp, m = self._group_denoiser(n, condition, guidance)
            z, calls, ll = self._sample_blocks(z, rng, group_lp, m, temperature, constrain)
            self.last_sample_stats = {"sampler": self.sampler, "block_size": self.block_size,
                                      "steps_per_block": self.block_size if self.sampler in ONE_POSITION_SAMPLERS
                                      else self.sampling_steps, "rows": n, "network_calls": calls,
                                      "network_rows": calls * n, "nfe_per_row": float(calls if n else 0)}
            return z, ll
        denoise = self._denoiser(n, condition, guidance, temperature)
        ll = torch.zeros(n, dtype=torch.float64, device=z.device)
        if self.sampler in ONE_POSITION_SAMPLERS:
            z, nfe, ll = self._sample_exact(z, rng, denoise, constrain)
        else:
            z, nfe = self._sample_ancestral(z, self.sampling_steps, rng, denoise)
        self.last_sample_stats = {"sampler": self.sampler, "steps": self.sampling_steps if self.sampler
                                  == "ancestral" else self.canvas_len, "rows": n, "network_rows": nfe,
                                  "nfe_per_row": nfe / max(n, 1)}
        return z, ll

    def _start_canvas(self, n: int, canvas: Tensor | None) -> Tensor:
        """The initial canvases: all ``<mask>``, or a checked copy of ``canvas``."""
        N = self.canvas_len
        if canvas is None:
            return torch.full((n, N), self.mask_id, dtype=torch.long, device=self.device)
        if (not isinstance(canvas, Tensor) or canvas.dtype not in (torch.int64, torch.int32)
                or tuple(canvas.shape) != (n, N)):
            raise ConfigError(f"canvas must be a [{n}, {N}] integer tensor (mask id {self.mask_id} at free positions), "
                              f"got {type(canvas).__name__} {tuple(getattr(canvas, 'shape', ()))}")
        z = canvas.to(device=self.device, dtype=torch.long).clone()
        fixed = z != self.mask_id
        ok = torch.zeros(self.V + 1, dtype=torch.bool, device=z.device)
        ok[:self.V] = self._is_symbol | self._is_eos
        if bool((z < 0).any() or (z > self.mask_id).any()) or not bool(ok[z[fixed]].all()):
            raise ConfigError(f"canvas holds ids outside the symbols, <eos> ({self.tokenizer.eos_id}) and the mask "
                              f"id ({self.mask_id}); <pad>, <bos> and <unk> cannot be fixed")
        if bool((fixed[:, -1] & (z[:, -1] != self.tokenizer.eos_id)).any()):
            raise ConfigError(f"canvas position {N - 1} (the last) is always <eos>: leave it free or fix <eos>")
        return z

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

    @staticmethod
    def _inverse_cdf(logp: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
        """[M] one token per row of ``logp`` [M, V] by the inverse CDF of the uniforms ``u`` [M], as
        :meth:`RowRandom.categorical_logits` does with its own uniform (the same draw, bit for bit)."""
        if logp.shape[0] == 0:
            return torch.zeros(0, dtype=torch.long, device=logp.device)
        lp = logp.float() / temperature if temperature != 1.0 else logp.float()
        cdf = torch.softmax(lp, dim=-1).double().cumsum(-1)
        target = u.to(cdf.device).double().unsqueeze(-1) * cdf[:, -1:]
        return torch.searchsorted(cdf, target).squeeze(-1).clamp_(max=logp.shape[-1] - 1)

    @torch.no_grad()
    def _sample_ancestral(self, z: Tensor, steps: int, rng: RowRandom,
                          denoise: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, int]:
        """MDLM ancestral sampling from canvases ``z`` in ``steps`` steps with the network cache;
        (canvases, network rows). Step k: unmasking coins from stream 2k, tokens from 2k + 1."""
        n, N = z.shape
        logp = torch.empty((n, N, self.V), device=z.device)
        stale = torch.ones(n, dtype=torch.bool, device=z.device)  # rows whose z changed since their last call
        network_rows = 0
        for k, i in enumerate(range(steps, 0, -1)):
            masked = z == self.mask_id
            if not bool(masked.any()):
                break
            p_unmask = 1.0 / i  # (t - s) / t with t = i/T, s = (i-1)/T; 1 at the last step
            unmask = masked & (rng.uniform(2 * k, N).to(z.device) < p_unmask)
            rows = unmask.any(1)
            need = rows & stale  # the network runs only for rows that change now and changed before
            if bool(need.any()):
                idx = need.nonzero().squeeze(1)
                logp[idx] = denoise(z[idx], idx)
                stale[idx] = False
                network_rows += int(idx.numel())
            u = rng.uniform(2 * k + 1, N).to(z.device)
            z[unmask] = self._inverse_cdf(logp[unmask], u[unmask])
            stale |= rows
        return z, network_rows

    def _next_position(self, masked: Tensor, logp: Tensor, u: Tensor) -> Tensor:
        """[m] the free position each row reveals next (one-position samplers; rows without a free
        position get 0, which the callers ignore): ``exact`` a uniformly random one (the uniforms
        ``u`` [m, P]), ``left-to-right`` the first, ``confidence`` the one whose predictive
        distribution ``logp`` [m, P, V] has the largest top probability (MaskGIT / GenMol order; the
        token is still drawn from it at the temperature)."""
        if self.sampler == "exact":
            scores = u
        elif self.sampler == "left-to-right":
            scores = -torch.arange(masked.shape[1], device=masked.device, dtype=torch.float).expand(masked.shape)
        else:
            scores = logp.max(-1).values
        return scores.masked_fill(~masked, float("-inf")).argmax(1)

    @torch.no_grad()
    def _sample_exact(self, z: Tensor, rng: RowRandom, denoise: Callable[[Tensor, Tensor], Tensor],
                      constrain: Constrain | None = None) -> tuple[Tensor, int, Tensor]:
        """One masked position revealed per network call, chosen by :meth:`_next_position` (``exact``:
        uniformly at random, the T -> infinity limit; step k: the position from stream 2k, the token
        from 2k + 1); (canvases, network rows, [n] sum of the drawn tokens' log-probs)."""
        N = z.shape[1]
        network_rows = 0
        ll = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
        for k in range(N):
            masked = z == self.mask_id
            rows = masked.any(1).nonzero().squeeze(1)  # rows with a free position left
            if rows.numel() == 0:
                break
            logp = denoise(z[rows], rows)
            pos = self._next_position(masked[rows], logp, rng.uniform(2 * k, N).to(z.device)[rows])
            u = rng.uniform(2 * k + 1, 1).to(z.device)[rows, 0]
            lp = logp[torch.arange(len(rows), device=z.device), pos]
            draw = lp if constrain is None else self._constrained(constrain, z, k, lp)  # left to right: position k
            tok = self._inverse_cdf(draw, u)
            z[rows, pos] = tok
            ll[rows] += lp.gather(-1, tok[:, None]).squeeze(-1).double()
            network_rows += int(rows.numel())
        return z, network_rows, ll

    # --- block diffusion: sampling with the KV cache -------------------------------------------
    def _group_mask(self, t0: int, lo: int, hi: int, device) -> Tensor:
        """[hi - t0, hi] attention of one cached call: clean inputs t0..lo-1 (entering the cache) are
        causal, the noisy group lo..hi-1 sees everything up to hi - 1."""
        q = torch.arange(t0, hi, device=device)[:, None]
        key = torch.arange(hi, device=device)[None, :]
        return (key <= q) | (q >= lo)

    def _cached_group_log_probs(self, cache: KVCache, z: Tensor, lo: int, hi: int,
                                offset: Tensor | None = None) -> Tensor:
        """[m, hi - lo, V] log p(x_l | group) for the canvas positions lo..hi-1 of one block, through the
        KV cache: the clean inputs not yet cached (positions ``cache.length``..lo-1, read from ``z``,
        which must be clean before ``lo``) enter the cache in the same forward as the noisy group."""
        t0 = cache.length
        if t0 > lo:
            raise ValueError(f"the cache holds {t0} positions, past the block at {lo}")
        zin = self._inputs(z)[:, t0:hi]
        # b = 1: the group is the clean token at lo, attending causally: it enters the cache as itself
        keep = lo - t0 + (1 if self.block_size == 1 else 0)
        out = self.net(zin, cache, offset=offset, position_ids=torch.arange(t0, hi, device=z.device),
                       attn_mask=self._group_mask(t0, lo, hi, z.device), cache_write=keep)
        logits = out[:, lo - t0:, :self.V].float()
        logits = logits.masked_fill(~self._allowed(z, lo, hi), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def _group_denoiser(self, n: int, condition: dict[str, float] | None, guidance: float | None
                        ) -> tuple[Callable[[KVCache, Tensor, int, int], Tensor], int]:
        """(``group_lp(cache, z [n, N], lo, hi) -> log p [n, hi - lo, V]`` at temperature 1, the cache's
        rows): the unconditional, conditional or guided model (guided: a doubled batch in the cache)."""
        w = float(guidance or 0.0)
        off = None
        if self.conditioner is not None:
            off = self.conditioner(self.conditioner.space.batch(condition, n, self.device), n, self.device)[:, None]
            if w:
                off = torch.cat([off, self.conditioner({}, n, self.device)[:, None]])
        if not w:
            return (lambda cache, z, lo, hi: self._cached_group_log_probs(cache, z, lo, hi, off)), n

        def guided(cache: KVCache, z: Tensor, lo: int, hi: int) -> Tensor:
            lp = self._cached_group_log_probs(cache, torch.cat([z, z]), lo, hi, off)
            return guided_log_probs(lp[:n], lp[n:], w)

        return guided, 2 * n

    @torch.no_grad()
    def _constrained(self, constrain: Constrain, z: Tensor, t: int, lp: Tensor) -> Tensor:
        """``constrain(t, previous token, log p [n, V])`` for canvas position ``t``, which every row writes
        now (the previous token: BOS at t = 0), as the autoregressive sampler calls it."""
        prev = z[:, t - 1] if t > 0 else torch.full_like(z[:, 0], self.tokenizer.bos_id)
        return constrain(t, prev, lp)

    def _sample_blocks(self, z: Tensor, rng: RowRandom, group_lp: Callable[[KVCache, Tensor, int, int], Tensor],
                       m: int, temperature: float, constrain: Constrain | None = None
                       ) -> tuple[Tensor, int, Tensor]:
        """Block by block through the KV cache, ``sampling_steps`` ancestral steps per block (or a
        one-position sampler); ``constrain`` (left to right only) edits each position's log-probs before
        its draw. Returns (canvases, network calls, [n] sum of the drawn tokens' log-probs at
        temperature 1, before ``constrain``). See the module docstring for the random streams."""
        N = z.shape[1]
        ll = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
        one_position = self.sampler in ONE_POSITION_SAMPLERS
        eos = self.tokenizer.eos_id
        cache = KVCache(self.net.cfg, m, z.device, next(self.parameters()).dtype)
        calls = 0
        for j, (lo, hi) in enumerate(self.blocks):
            bj = hi - lo
            steps = bj if one_position else self.sampling_steps
            lp = None  # the group's log-probs, valid until a position of the block is revealed
            for s in range(steps):
                masked = z[:, lo:hi] == self.mask_id
                if not bool(masked.any()):
                    break
                if not one_position and s == steps - 1:  # the last step reveals every free position (p = 1)
                    reveal = masked
                elif one_position:  # one free position per row, by the sampler's order
                    if lp is None:
                        lp = group_lp(cache, z, lo, hi)
                        calls += 1
                    pick = self._next_position(masked, lp, rng.uniform(N * (s + 1) + j, bj).to(z.device))
                    reveal = torch.zeros_like(masked).scatter_(1, pick[:, None], True) & masked
                else:  # MDLM: each free position with probability (t - s) / t = 1 / (steps - s)
                    reveal = masked & (rng.uniform(N * (s + 1) + j, bj).to(z.device) < 1.0 / (steps - s))
                if not bool(reveal.any()):
                    continue
                if lp is None:
                    lp = group_lp(cache, z, lo, hi)
                    calls += 1
                rows, cols = reveal.nonzero(as_tuple=True)
                tok_u = rng.uniform(j, bj).to(z.device)[rows, cols]
                draw = lp
                if constrain is not None:  # left to right, no canvas: every row writes position lo + s now
                    draw = lp.clone()
                    draw[:, s] = self._constrained(constrain, z, lo + s, lp[:, s])
                tok = self._inverse_cdf(draw[rows, cols], tok_u, temperature)
                z[rows, lo + cols] = tok
                ll.index_add_(0, rows, lp[rows, cols].gather(-1, tok[:, None]).squeeze(-1).double())
                if bj > 1:  # the group changed (b = 1: the group is x_lo alone, which did not)
                    lp = None
            if bool((z[:, :hi] == eos).any(1).all()):  # every row has ended: <eos> is forced after it
                rest = z[:, hi:]
                rest.masked_fill_(rest == self.mask_id, eos)
                break
        return z, calls, ll
