"""Autoregressive decoder-only transformer over SMILES or SELFIES tokens (exact likelihood).

    log p(x) = sum_{t=1}^{|x|+1} log p(x_t | x_<t),   x_{|x|+1} = <eos>

summed per molecule in nats, over the proper string distribution of
:class:`~molgen.models.autoregressive.StringDecoding` (special tokens banned, <eos> forced after
``max_len`` symbols). Sampling uses a preallocated KV cache (one position per step);
``use_cache=False`` recomputes the whole prefix every step and draws the same per-row random numbers
(token t of row i from stream t of row i's :class:`~molgen.rowrandom.RowRandom`; for tests and benchmarks).

Conditional (``condition`` set, by ``molgen train --condition qed``): the condition embedding is a
prefix, added at the BOS position that every later position attends to, so log p(x | c) stays exact.
Classifier-free guidance runs the conditional and the unconditional model as one doubled batch
through the KV cache and mixes their next-token log-probs (:func:`molgen.conditioning_nn.guided_log_probs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.conditioning import validate_condition_fields
from molgen.conditioning_nn import Conditioner, guided_log_probs
from molgen.errors import ConfigError
from molgen.models.autoregressive import Constrain, StringDecoding
from molgen.models.base import GenerativeModel
from molgen.models.config import ModelConfig
from molgen.nn.transformer import KVCache
from molgen.registry import BACKBONES, MODELS
from molgen.rowrandom import RowRandom
from molgen.training.optim import adamw_warmup_cosine, global_token_mean
from molgen.training.progress import log_due


@dataclass
class TransformerConfig(ModelConfig):
    """``backbone``: a registered backbone spec (``transformer``: d_model, n_layers, n_heads, mlp_ratio,
    dropout); the family wires vocabulary size, positions and the causal mask. ``condition``: a
    :class:`~molgen.conditioning.ConditionSpace` dict (empty: unconditional), filled by ``molgen train
    --condition``; ``cond_dropout``: probability of dropping the condition in training (guidance)."""

    COMPONENTS = ("backbone",)

    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "transformer", "args": {}})
    condition: dict[str, Any] = field(default_factory=dict)
    cond_dropout: float = 0.1

    def validate(self) -> None:
        super().validate()
        validate_condition_fields(self)


@MODELS.register("transformer")
class TransformerModel(GenerativeModel):
    """GPT-style model: pre-LN, GELU, causal SDPA, tied embeddings, BOS/EOS, pad excluded from loss."""

    name = "transformer"
    capabilities = frozenset({"sample", "log_likelihood"})
    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig, *, representation: Any, policy: Policy = DEFAULT_POLICY,
                 backbone: nn.Module | None = None) -> None:
        """``backbone``: the built causal network (:meth:`build_components` makes it from the config's
        spec; given none, the constructor calls it)."""
        super().__init__(config, representation=representation, policy=policy)
        if representation is None:
            raise ConfigError("the transformer needs a fitted tokenizer as its representation")
        self.strings = StringDecoding(representation, config.max_len)
        self.net = backbone if backbone is not None else self.build_components(config, representation)["backbone"]
        self.conditioner = Conditioner.from_config(config, self.net.cfg.d_model)
        if self.conditioner is not None:
            self.capabilities = type(self).capabilities | {"conditional"}

    @classmethod
    def build_components(cls, config: TransformerConfig, representation: Any) -> dict[str, Any]:
        """The causal ``backbone`` from the config's spec, wired to the vocabulary and max_len + 1 positions."""
        if representation is None:
            raise ConfigError("the transformer needs a fitted tokenizer as its representation")
        return {"backbone": BACKBONES.build(config.backbone, vocab_size=representation.vocab_size,
                                            max_positions=config.max_len + 1, causal=True)}

    # --- data and likelihood -------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> list[int]:
        return self.strings.featurize(canonical_smiles)

    def collate(self, items):
        return self.strings.collate(items)

    @classmethod
    def likelihood_kind(cls, config: ModelConfig, kind: str | None = None) -> str:
        if kind not in (None, "exact"):
            raise ConfigError(f"the transformer reports one likelihood kind: exact; got {kind!r}")
        return "exact"

    def _prefix(self, batch: dict[str, Tensor], n: int, T: int) -> Tensor | None:
        """The condition embedding at the BOS position, as a [n, T, D] input offset (None: unconditional)."""
        if self.conditioner is None:
            return None
        emb = self.conditioner(batch, n, self.device)[:, None, :]
        return torch.cat([emb, emb.new_zeros(n, T - 1, emb.shape[-1])], 1) if T > 1 else emb

    def token_log_probs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        ids = batch["ids"]
        inp = ids[:, :-1]
        logits = self.net(inp, offset=self._prefix(batch, inp.shape[0], inp.shape[1]))
        return self.strings.token_log_probs(logits, ids)

    def log_likelihood(self, batch: dict[str, Tensor], *, kind: str | None = None) -> Tensor:
        self.likelihood_kind(self.config, kind)
        return self.token_log_probs(batch)[0].sum(-1)

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        return adamw_warmup_cosine(self, self.optim)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        tok_lp, mask = self.token_log_probs(batch)
        # per-token mean over the global batch (equal for 1 process and for DDP)
        loss = global_token_mean(-tok_lp.sum(), mask.sum(), self)
        if log_due(self):  # self.log costs; log only on the steps the logger writes
            self.log("train/nll_token", loss.detach(), prog_bar=True, batch_size=tok_lp.shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        ll = self.log_likelihood(batch)
        self.log("val/nll", -ll.mean(), prog_bar=True, batch_size=ll.shape[0], sync_dist=True)

    # --- sampling ------------------------------------------------------------------------------
    @property
    def writes_in_order(self) -> bool:
        """Token by token with the KV cache: ``_sample`` takes ``constrain``."""
        return True

    def _sample(self, n: int, *, temperature: float, rng: RowRandom, condition=None, guidance=None,
                constrain: Constrain | None = None, use_cache: bool = True) -> tuple[list[str], Tensor | None]:
        """Ancestral sampling; token t of row i from ``rng``'s stream t of row i. ``constrain`` edits the
        next-token log-probs (the guided ones with guidance); the returned log p is the model's own."""
        dtype = next(self.parameters()).dtype
        w = float(guidance or 0.0)
        # rows [0, n): the requested condition; with guidance also rows [n, 2n): the unconditional model
        m = 2 * n if w else n
        offset = None
        if self.conditioner is not None:
            req = self.conditioner.space.batch(condition, n, self.device)
            if w:
                req = {k: torch.cat([v, torch.zeros_like(v)]) for k, v in req.items()}
            offset = self.conditioner(req, m, self.device)[:, None, :]
        if use_cache:
            cache = KVCache(self.net.cfg, m, self.device, dtype)

            def logits_at(cur: Tensor, t: int) -> Tensor:
                return self.net(cur[:, None], cache, offset=offset if t == 0 else None)[:, -1]
        else:
            prefix: list[Tensor] = []

            def logits_at(cur: Tensor, t: int) -> Tensor:
                prefix.append(cur)
                x = torch.stack(prefix, 1)
                off = None if offset is None else torch.cat([offset, offset.new_zeros(m, t, offset.shape[-1])], 1)
                return self.net(x, offset=off)[:, -1]

        if w:
            def step(cur: Tensor, t: int) -> Tensor:
                lp = self.strings.log_probs(logits_at(torch.cat([cur, cur]), t), t)
                return guided_log_probs(lp[:n], lp[n:], w)
        else:
            step = logits_at
        ids, ll = self.strings.sample(step, n, device=self.device, rng=rng, temperature=temperature,
                                      constrain=constrain)
        # guided samples have no tractable likelihood; otherwise ll is log p(x) or log p(x | c)
        return self.strings.decode(ids), (None if w else ll)
