"""The proper distribution over token strings that every autoregressive string decoder shares.

    p(x) = prod_{t=1}^{|x|+1} p(x_t | x_<t),   x_{|x|+1} = <eos>,   |x| <= max_len

Special tokens (<pad>, <bos>, <unk>) get probability 0 and <eos> is forced after ``max_len``
symbols, so the probabilities of all strings of length 0..max_len sum to one (tested by
enumeration). :class:`StringDecoding` holds that logic once, for the transformer and the VAE
decoder: teacher-forced log-likelihood, the sampling loop (the network supplies one ``step``
function), and featurize / collate of id strings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from molgen.errors import TooLongError
from molgen.rowrandom import RowRandom
from molgen.tokenizers.base import Tokenizer

#: ``step(prev_tokens [n], t) -> logits [n, V]``: the network's next-token logits after ``t`` symbols.
StepFn = Callable[[Tensor, int], Tensor]
#: ``constrain(t, prev_tokens [n], log_probs [n, V]) -> log_probs [n, V]``: edits the normalised
#: next-token log-probs at step ``t`` before the draw (fragment-constrained generation).
Constrain = Callable[[int, Tensor, Tensor], Tensor]


def collate_ids(items: Sequence[Sequence[int]], tokenizer: Tokenizer) -> dict[str, Tensor]:
    """Pad id lists into ``{"ids": [B, T] with BOS ... EOS PAD..., "lengths": [B]}`` (the tokenizer's collate)."""
    return tokenizer.collate(items)


class StringDecoding(nn.Module):
    """Next-token normalisation, teacher-forced likelihood and ancestral sampling over id strings."""

    def __init__(self, tokenizer: Tokenizer, max_len: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.max_len = int(max_len)
        banned = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
        banned[[tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id]] = True
        self.register_buffer("banned", banned, persistent=False)

    # --- data ----------------------------------------------------------------------------------
    def featurize(self, canonical_smiles: str) -> list[int]:
        """Token ids of a canonical SMILES. Raises OOVError / TokenizeError / TooLongError."""
        ids = self.tokenizer.encode(canonical_smiles)
        if len(ids) > self.max_len:
            raise TooLongError(len(ids), self.max_len)
        return ids

    def collate(self, items: Sequence[Sequence[int]]) -> dict[str, Tensor]:
        return self.tokenizer.collate(items)

    def decode(self, ids: Tensor) -> list[str]:
        """Strings for sampled id rows [n, T] (tokens up to the first EOS)."""
        return [self.tokenizer.decode(row) for row in ids.cpu().tolist()]

    # --- distribution --------------------------------------------------------------------------
    def log_probs(self, logits: Tensor, n_emitted: Tensor | int) -> Tensor:
        """Normalized next-token log-probs: banned ids removed, <eos> forced once ``max_len`` symbols
        are out. ``n_emitted`` is an int or a tensor broadcastable to ``logits.shape[:-1]``."""
        logits = logits.float().masked_fill(self.banned, float("-inf"))
        at_max = torch.as_tensor(n_emitted, device=logits.device) >= self.max_len
        if bool(at_max.any()):
            only_eos = torch.full_like(logits, float("-inf"))
            only_eos[..., self.tokenizer.eos_id] = 0.0
            logits = torch.where(at_max.unsqueeze(-1), only_eos, logits)
        return torch.log_softmax(logits, dim=-1)

    def token_log_probs(self, logits: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher forcing: ``logits`` [B, T-1, V] computed from ``ids[:, :-1]``; returns per-target
        log p [B, T-1] (0 at padding) and the target mask (symbols and the EOS)."""
        tgt = ids[:, 1:]
        pos = torch.arange(tgt.shape[1], device=ids.device)  # symbols emitted before each target
        logp = self.log_probs(logits, pos[None, :])
        tok_lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        mask = tgt != self.tokenizer.pad_id
        return tok_lp.masked_fill(~mask, 0.0), mask

    @torch.no_grad()
    def sample(self, step: StepFn, n: int, *, device: torch.device, rng: RowRandom | None,
               temperature: float = 1.0, greedy: bool = False, constrain: Constrain | None = None,
               first_stream: int = 0) -> tuple[Tensor, Tensor]:
        """Ancestral sampling (or argmax with ``greedy``): ids [n, T] (BOS dropped, PAD after EOS) and
        log p(x) [n] at temperature 1 (the model's own probability of what was drawn), float64.

        Row i's token at step t is drawn from ``rng``'s stream ``first_stream + t`` for row i only (one
        uniform, inverse CDF), so a row's string does not depend on the batch it is drawn in. ``greedy``
        draws nothing (``rng`` may be None). ``constrain(t, prev, log_probs) -> log_probs`` edits the
        normalised next-token log-probs [n, V] before the draw (-inf forbids a token; ``prev`` [n] is
        the previous token, BOS at t = 0); the returned log p stays the model's own (unconstrained)."""
        if not greedy and rng is None:
            raise ValueError("ancestral sampling needs per-row random streams (rng)")
        if rng is not None and len(rng) != n:
            raise ValueError(f"{len(rng)} random streams for {n} rows")
        tok = self.tokenizer
        cur = torch.full((n,), tok.bos_id, dtype=torch.long, device=device)
        done = torch.zeros(n, dtype=torch.bool, device=device)
        ll = torch.zeros(n, dtype=torch.float64, device=device)
        out = []
        for t in range(self.max_len + 1):
            logp = self.log_probs(step(cur, t), t)
            lp = logp if constrain is None else constrain(t, cur, logp)
            if greedy:
                nxt = lp.argmax(-1)
            else:
                nxt = rng.categorical_logits(lp, first_stream + t, temperature)
            nxt = torch.where(done, torch.full_like(nxt, tok.pad_id), nxt)
            ll += torch.where(done, torch.zeros_like(ll), logp.gather(-1, nxt[:, None]).squeeze(-1).double())
            out.append(nxt)
            done |= nxt == tok.eos_id
            cur = nxt
            if bool(done.all()):
                break
        ids = torch.stack(out, 1) if out else torch.zeros((n, 0), dtype=torch.long, device=device)
        return ids, ll
