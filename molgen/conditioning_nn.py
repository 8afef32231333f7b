"""The network parts of property conditioning (torch ``nn.Module`` s), apart from
:mod:`molgen.conditioning` so that reading and checking a condition (the CLI does it before loading a
model) needs no torch. ``molgen.conditioning`` re-exports both names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from molgen.conditioning import ConditionSpace, drop_conditions


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

