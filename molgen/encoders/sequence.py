"""Bidirectional GRU over SMILES/SELFIES token ids -> pooled features -> q(z|x)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from molgen.encoders.base import Encoder
from molgen.registry import ENCODERS


@ENCODERS.register("sequence")
class SequenceEncoder(Encoder):
    """Embedding -> n-layer bi-GRU (packed, so padding is ignored) -> [h_fwd, h_bwd] -> Linear+GELU."""

    input_kind = "ids"

    def __init__(self, vocab_size: int, d_z: int, pad_id: int = 0, emb_dim: int = 64, hidden: int = 128,
                 n_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(hidden, d_z)
        self.emb = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.rnn = nn.GRU(emb_dim, hidden, num_layers=n_layers, batch_first=True, bidirectional=True,
                          dropout=dropout if n_layers > 1 else 0.0)
        self.proj = nn.Linear(2 * hidden, hidden)

    def features(self, batch: dict) -> Tensor:
        ids: Tensor = batch["ids"]  # [B, T] BOS x EOS PAD
        lengths = (batch["lengths"] + 2).cpu()  # BOS + symbols + EOS
        packed = pack_padded_sequence(self.emb(ids), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.rnn(packed)  # [2 * n_layers, B, H]
        h = torch.cat([h[-2], h[-1]], dim=-1)
        return F.gelu(self.proj(h))
