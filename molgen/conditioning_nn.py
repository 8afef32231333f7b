"""The network side of property conditioning (torch): the condition embedding and the conditioner a
conditional family holds, condition dropout, the guidance formula, and the training items that carry
each molecule's property row.

Built on :mod:`molgen.conditioning` (the condition space, requests, property values), which imports
without torch so that reading and checking a condition (the CLI does it before loading a model) needs
none; nothing there imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molgen.conditioning import ConditionSpace


def drop_conditions(present: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Condition dropout for training: each row loses its whole condition with probability ``p`` and,
    with several properties, each property on its own with probability ``p`` too."""
    if p <= 0:
        return present
    B, k = present.shape
    keep = torch.rand(B, 1, device=present.device, generator=generator) >= p
    if k > 1:
        keep = keep & (torch.rand(B, k, device=present.device, generator=generator) >= p)
    return present * keep.to(present.dtype)


def guided_log_probs(lp_cond: Tensor, lp_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance: normalised ``(1 + w) log p(x | c) - w log p(x)`` over the last axis.

    Tokens impossible under the conditional model stay impossible (no ``inf - inf``)."""
    if w == 0:
        return lp_cond
    impossible = ~torch.isfinite(lp_cond)
    lu = torch.where(torch.isfinite(lp_uncond), lp_uncond, torch.zeros_like(lp_uncond))
    mixed = (1 + w) * torch.where(impossible, torch.zeros_like(lp_cond), lp_cond) - w * lu
    return torch.log_softmax(mixed.masked_fill(impossible, float("-inf")), dim=-1)


class ConditionEmbedding(nn.Module):
    """``[value * present, present]`` per property -> an embedding [B, D] (SiLU MLP). All-absent
    input gives a learned 'null' embedding: the unconditional model of classifier-free guidance."""

    def __init__(self, k: int, d_model: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * k, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, values: Tensor, present: Tensor) -> Tensor:
        return self.net(torch.cat([values * present, present], dim=-1))


class Conditioner(nn.Module):
    """What a conditional family holds: the :class:`ConditionSpace` and the embedding, plus the two
    things it does with them: an input offset for a batch (with condition dropout while training)
    and the batch keys for a user's request."""

    def __init__(self, space: ConditionSpace, d_model: int, dropout: float) -> None:
        super().__init__()
        self.space = space
        self.dropout = float(dropout)
        self.emb = ConditionEmbedding(space.k, d_model)

    @classmethod
    def from_config(cls, config: Any, d_model: int) -> Conditioner | None:
        """None for an unconditional config (``condition`` empty)."""
        if not getattr(config, "condition", None):
            return None
        return cls(ConditionSpace.from_dict(config.condition), d_model, config.cond_dropout)

    def forward(self, batch: Mapping[str, Any], n: int, device: Any) -> Tensor:
        """[n, D] embedding of the batch's condition (absent keys: the unconditional embedding)."""
        values, present = batch.get("cond"), batch.get("cond_present")
        if values is None or present is None:
            values = present = torch.zeros(n, self.space.k, device=device)
        if self.training:
            present = drop_conditions(present, self.dropout)
        return self.emb(values.float(), present.float())


class ConditionedItems:
    """Wraps a model's featurize / collate / item_length so each item carries its property row and
    each batch gains ``cond`` / ``cond_present`` (used by ``molgen.train`` for conditional models)."""

    def __init__(self, model: Any, space: ConditionSpace, smiles: Sequence[str], values: np.ndarray) -> None:
        self.model, self.space = model, space
        z, present = space.standardize(values)
        self.rows = {s: (z[i], present[i]) for i, s in enumerate(smiles)}

    def featurize(self, canonical_smiles: str) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
        return self.model.featurize(canonical_smiles), self.rows[canonical_smiles]

    def collate(self, items: Sequence[Any]) -> dict[str, Any]:
        batch = self.model.collate([x for x, _ in items])
        batch["cond"] = torch.from_numpy(np.stack([c[0] for _, c in items]))
        batch["cond_present"] = torch.from_numpy(np.stack([c[1] for _, c in items]))
        return batch

    def item_length(self, item: Any) -> int:
        return self.model.item_length(item[0])
