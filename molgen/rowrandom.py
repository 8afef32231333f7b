"""Random numbers per sampled molecule, independent of batch size and of the other rows.

``model.sample(n, seed=s)`` gives molecule ``i`` from its own stream, keyed by ``(s, i)``: the first 20
molecules of ``sample(50, seed=s)`` are ``sample(20, seed=s)``, whatever ``batch_size``, shard or
process drew them. A stateful generator cannot do that (its numbers depend on how many rows came
before), so the numbers are counter-based: a 32-bit integer hash (murmur3's finaliser, three
rounds) of (row key, stream, counter), computed with vectorised integer ops on the row's device.

A family's sampler asks for numbers by *stream*: an integer that names one use (e.g. the step t of
an autoregressive loop, or ``2 * step + 1`` for a second draw in the same step). The same
(row, stream, column) always gives the same number, so a family must use a new stream for each
independent draw of a row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["RowRandom"]

_M32 = 0xFFFFFFFF
_GOLD = 0x9E3779B9


def _fmix32(h: Tensor) -> Tensor:
    """murmur3's 32-bit finaliser on int64 tensors holding values in [0, 2^32) (products wrap; masked)."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def _row_keys(seed: int, rows: Sequence[int]) -> tuple[list[int], list[int]]:
    """Two 32-bit keys per row from blake2b(seed, row): independent streams for nearby rows and seeds."""
    k0, k1 = [], []
    for r in rows:
        h = int.from_bytes(hashlib.blake2b(f"{int(seed)}:{int(r)}".encode(), digest_size=8).digest(), "little")
        k0.append(h & _M32)
        k1.append(h >> 32)
    return k0, k1


class RowRandom:
    """Counter-based uniform / normal / categorical draws, one independent stream per sample row.

    ``RowRandom(seed, rows)``: ``rows`` are the global indices of this batch's molecules in the
    sampling call (``range(start, start + n)``). :meth:`subset` keeps the streams of some rows.
    """

    def __init__(self, seed: int, rows: Sequence[int] | range, device: torch.device | str = "cpu") -> None:
        k0, k1 = _row_keys(seed, rows)
        self.seed = int(seed)
        self.device = torch.device(device)
        self._k0 = torch.tensor(k0, dtype=torch.int64, device=self.device)
        self._k1 = torch.tensor(k1, dtype=torch.int64, device=self.device)

    @classmethod
    def _from_keys(cls, seed: int, k0: Tensor, k1: Tensor) -> RowRandom:
        out = cls.__new__(cls)
        out.seed, out.device, out._k0, out._k1 = seed, k0.device, k0, k1
        return out

    def __len__(self) -> int:
        return int(self._k0.numel())

    def subset(self, index: Tensor | Sequence[int]) -> RowRandom:
        """The streams of rows ``index`` (a long index or a boolean mask over this batch's rows)."""
        index = torch.as_tensor(index, device=self.device)
        return RowRandom._from_keys(self.seed, self._k0[index], self._k1[index])

    def repeat_interleave(self, k: int) -> RowRandom:
        """Each row's stream ``k`` times in a row (rows drawn k times, e.g. one per candidate)."""
        return RowRandom._from_keys(self.seed, self._k0.repeat_interleave(k), self._k1.repeat_interleave(k))

    def to(self, device: torch.device | str) -> RowRandom:
        return RowRandom._from_keys(self.seed, self._k0.to(device), self._k1.to(device))

    def _bits(self, stream: int, width: int) -> Tensor:
        """[n, width] 32-bit hashes of (row key, stream, column)."""
        s = _fmix32(torch.tensor((int(stream) * _GOLD + 0x632BE5AB) & _M32, dtype=torch.int64))
        col = torch.arange(width, dtype=torch.int64, device=self.device)
        h = _fmix32((self._k0 ^ s.to(self.device))[:, None] ^ ((col * 0x27D4EB2F) & _M32))
        h = _fmix32(h ^ self._k1[:, None])
        return _fmix32(h ^ ((col + 0x165667B1) & _M32))

    def uniform(self, stream: int, width: int = 1) -> Tensor:
        """[n, width] float32 uniforms in (0, 1), never exactly 0 or 1."""
        return ((self._bits(stream, width) >> 8).to(torch.float32) + 0.5) / float(1 << 24)

    def normal(self, stream: int, width: int = 1) -> Tensor:
        """[n, width] float32 standard normals (Box-Muller on two uniform columns per value)."""
        u = self.uniform(stream, 2 * width).double()
        r = torch.sqrt(-2.0 * torch.log(u[:, :width]))
        return (r * torch.cos(2.0 * torch.pi * u[:, width:])).float()

    def categorical(self, probs: Tensor, stream: int) -> Tensor:
        """[n] one index per row of ``probs`` [n, V] (non-negative, unnormalised allowed) by the inverse
        CDF of one uniform; an index of probability 0 is never drawn.

        ``probs`` [n, *S, V] (e.g. one distribution per position): [n, *S] indices, the distribution at
        flat position j of a row drawn with column j of the row's stream (``uniform(stream, prod(S))``),
        so the draw at a position does not depend on the other positions or rows."""
        if probs.dim() < 2 or probs.shape[0] != len(self):
            raise ValueError(f"probs of shape {list(probs.shape)} for {len(self)} random streams: expected "
                             f"[{len(self)}, ..., V]")
        inner = probs.shape[1:-1]
        if probs.shape[0] == 0 or probs.numel() == 0:
            return torch.zeros(probs.shape[:-1], dtype=torch.long, device=probs.device)
        width = int(torch.Size(inner).numel())
        cdf = probs.double().reshape(len(self), width, probs.shape[-1]).cumsum(-1)
        target = self.uniform(stream, width).to(cdf.device).double().unsqueeze(-1) * cdf[..., -1:]
        idx = torch.searchsorted(cdf, target).squeeze(-1)
        return idx.clamp_(max=probs.shape[-1] - 1).reshape(probs.shape[:-1])

    def categorical_logits(self, log_probs: Tensor, stream: int, temperature: float = 1.0) -> Tensor:
        """[n] (or [n, *S]) one index per row of (unnormalised) log-probabilities [n, (*S,) V] at a temperature."""
        lp = log_probs.float() / temperature if temperature != 1.0 else log_probs.float()
        return self.categorical(torch.softmax(lp, dim=-1), stream)
