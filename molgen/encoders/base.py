"""Encoder contract for the VAE: ``features(batch) -> h [B, feature_dim]``, ``head(h) -> (mu, logvar)``.

Splitting body and head lets the VampPrior put its pseudo-inputs at the head's input, which works the
same for token and graph encoders. An encoder that reads more than the token ids (``input_kind`` other
than ``"ids"``) makes that input itself: ``featurize`` one molecule, ``collate`` a batch of them (the
VAE puts it under ``batch[input_kind]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn


class GaussianHead(nn.Module):
    """h -> (mu, logvar) of q(z|x) = N(mu, diag exp(logvar)); logvar soft-clamped to [-12, 6]."""

    def __init__(self, feature_dim: int, d_z: int) -> None:
        super().__init__()
        self.mu = nn.Linear(feature_dim, d_z)
        self.logvar = nn.Linear(feature_dim, d_z)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        lv = self.logvar(h)
        lv = -3.0 + 9.0 * (lv / 9.0).tanh()  # in (-12, 6): keeps exp() finite early in training
        return self.mu(h), lv


class Encoder(nn.Module):
    """q(z|x): a feature extractor plus a :class:`GaussianHead`."""

    feature_dim: int
    input_kind: str = "ids"  # which batch entry the encoder reads: "ids" or "graph"

    def __init__(self, feature_dim: int, d_z: int) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.head = GaussianHead(feature_dim, d_z)

    def features(self, batch: dict) -> Tensor:
        raise NotImplementedError

    def featurize(self, canonical_smiles: str) -> Any:
        """The encoder's own input for one molecule (None: it reads the token ids the decoder gets)."""
        return None

    def collate(self, items: Sequence[Any]) -> Any:
        """One batch of :meth:`featurize` outputs (``batch[input_kind]``)."""
        raise NotImplementedError(f"{type(self).__name__} reads the token ids; it has no input of its own")

    def forward(self, batch: dict) -> tuple[Tensor, Tensor]:
        return self.head(self.features(batch))
