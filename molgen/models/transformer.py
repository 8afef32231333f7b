"""Autoregressive decoder-only transformer over SMILES or SELFIES tokens (exact likelihood).

    log p(x) = sum_{t=1}^{|x|+1} log p(x_t | x_<t),   x_{|x|+1} = <eos>

summed per molecule in nats. The output distribution is a proper distribution over token strings of
length 0..max_len: special tokens (<pad>, <bos>, <unk>) get probability 0 and <eos> is forced after
``max_len`` symbols, both in the likelihood and in sampling, so probabilities over all strings sum
to one (tested by enumeration).

Sampling uses a preallocated KV cache (one position per step); ``use_cache=False`` recomputes the
whole prefix every step and consumes the random stream identically (for tests and benchmarks).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.models.base import GenerativeModel
from molgen.nn.transformer import BackboneConfig, KVCache, TransformerBackbone
from molgen.registry import MODELS
from molgen.tokenizers.base import Tokenizer


@MODELS.register("transformer")
class TransformerModel(GenerativeModel):
    """GPT-style model: pre-LN, GELU, causal SDPA, tied embeddings, BOS/EOS, pad excluded from loss."""

    name = "transformer"
    capabilities = frozenset({"sample", "log_likelihood"})
    likelihood_kind = "exact"

    def __init__(self, tokenizer: Tokenizer, policy: Policy = DEFAULT_POLICY, max_len: int = 100,
                 d_model: int = 128, n_layers: int = 4, n_heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__(tokenizer, policy, max_len)
        self.hp = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "dropout": dropout}
        self.net = TransformerBackbone(BackboneConfig(
            vocab_size=tokenizer.vocab_size, max_positions=max_len + 1, d_model=d_model,
            n_layers=n_layers, n_heads=n_heads, dropout=dropout, causal=True))

    def config(self) -> dict[str, Any]:
        return {"max_len": self.max_len, **self.hp}

    # --- distribution --------------------------------------------------------------------------

    def token_log_probs(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-target log p [B, T-1] and target mask (True for symbols and the EOS, False for pad)."""
        ids = batch["ids"]
        inp, tgt = ids[:, :-1], ids[:, 1:]
        logits = self.net(inp)
        pos = torch.arange(inp.shape[1], device=ids.device)  # number of symbols emitted before target
        logp = self.next_token_log_probs(logits, pos[None, :])
        tok_lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        mask = tgt != self.tokenizer.pad_id
        return tok_lp.masked_fill(~mask, 0.0), mask

    def log_likelihood(self, batch: dict[str, Tensor], **kw: Any) -> Tensor:
        tok_lp, _ = self.token_log_probs(batch)
        return tok_lp.sum(-1)

    # --- training ------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        tok_lp, mask = self.token_log_probs(batch)
        n_tok = mask.sum()
        loss = -tok_lp.sum() / n_tok  # per-token mean: the per-molecule NLL divided by a constant-ish
        bs = batch["ids"].shape[0]
        self.log("train/nll_token", loss, prog_bar=True, batch_size=bs)
        self.log("train/nll_mol", -tok_lp.sum() / bs, batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        ll = self.log_likelihood(batch)
        self.log("val/nll", -ll.mean(), prog_bar=True, batch_size=ll.shape[0], sync_dist=True)

    # --- sampling ------------------------------------------------------------------------------
    def _sample_ids(self, n: int, temperature: float, generator: torch.Generator,
                    use_cache: bool = True, **kw: Any) -> tuple[list[list[int]], Tensor]:
        tok = self.tokenizer
        dev = self.device
        seq = torch.full((n, 1), tok.bos_id, dtype=torch.long, device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        ll = torch.zeros(n, dtype=torch.float64, device=dev)
        dtype = next(self.parameters()).dtype
        cache = KVCache(self.net.cfg, n, dev, dtype) if use_cache else None
        for t in range(self.max_len + 1):
            if cache is not None:
                logits = self.net(seq[:, -1:], cache)[:, -1]
            else:
                logits = self.net(seq)[:, -1]
            logp = self.next_token_log_probs(logits, t)  # t symbols emitted so far
            probs = F.softmax(logp / temperature, dim=-1) if temperature != 1.0 else logp.exp()
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            nxt = torch.where(done, torch.full_like(nxt, tok.pad_id), nxt)
            ll += torch.where(done, torch.zeros_like(ll), logp.gather(-1, nxt.clamp_min(0)[:, None]).squeeze(-1).double())
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == tok.eos_id
            if bool(done.all()):
                break
        out = [row[1:].tolist() for row in seq.cpu()]
        return out, ll
