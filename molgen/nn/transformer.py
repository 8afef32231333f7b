"""Pre-LN transformer backbone with SDPA attention and an optional preallocated KV cache.

Used causally by the autoregressive model and bidirectionally by masked diffusion. GELU MLPs, no
plain ReLU. Shapes: B batch, T time, D model width, H heads, Dh = D / H.

Block diffusion needs two more things, both opt-in keywords of ``forward`` that leave every other
call unchanged: explicit ``position_ids`` (a sequence that repeats positions: the noisy and the clean
stream of the same string) and an explicit boolean ``attn_mask`` [T, S] (True = attend). With a
cache and a mask, the T new keys/values are written at slots ``length .. length + T - 1`` and the
queries attend to slots ``0 .. length + T - 1`` under the mask; only the first ``cache_write`` of
them are kept (``cache.length`` advances by ``cache_write``), the rest are scratch that the next
write overwrites: how a noisy block attends to the cached clean prefix without entering the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from molgen.registry import BACKBONES


@dataclass
class BackboneConfig:
    vocab_size: int
    max_positions: int  # longest input sequence (incl. BOS)
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    causal: bool = True
    positions: str = "learned"  # "learned" absolute embeddings, or "rope" (rotary, relative)


POSITIONS = ("learned", "rope")


def rope_tables(max_positions: int, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos, sin [max_positions, head_dim / 2] of the rotary angles (Su et al., RoFormer)."""
    inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.arange(max_positions, dtype=torch.float32)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the two halves of the last dimension of ``x`` [B, H, T, Dh] by the angles [T, Dh / 2]."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class KVCache:
    """Per-layer key/value buffers [B, H, max_T, Dh], filled one step at a time during sampling."""

    def __init__(self, cfg: BackboneConfig, batch: int, device, dtype, extra: int = 0) -> None:
        """``extra`` slots beyond ``max_positions``: for inputs that repeat positions (a latent prefix)."""
        dh = cfg.d_model // cfg.n_heads
        self.capacity = cfg.max_positions + extra
        shape = (batch, cfg.n_heads, self.capacity, dh)
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layers)]
        self.length = 0


class SelfAttention(nn.Module):
    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout
        self.causal = cfg.causal

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                key_padding_mask: Tensor | None = None, rope: tuple[Tensor, Tensor] | None = None,
                attn_mask: Tensor | None = None) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # [B,H,T,Dh]
        if rope is not None:  # rotary positions: keys are cached already rotated
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        p = self.dropout if self.training else 0.0
        if attn_mask is not None:  # an explicit boolean mask (True = attend), causal flag ignored
            if cache is not None:  # write all T at length.. (the backbone keeps only cache_write of them)
                t0 = cache.length
                cache.k[layer][:, :, t0:t0 + T] = k
                cache.v[layer][:, :, t0:t0 + T] = v
                k, v = cache.k[layer][:, :, : t0 + T], cache.v[layer][:, :, : t0 + T]
                p = 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        elif cache is not None:
            # Incremental decoding: write this step's keys/values, attend to everything so far.
            t0 = cache.length
            if self.causal and T > 1 and t0 > 0:
                raise ValueError("a cached causal step takes one new position at a time after the prompt")
            cache.k[layer][:, :, t0:t0 + T] = k
            cache.v[layer][:, :, t0:t0 + T] = v
            k, v = cache.k[layer][:, :, : t0 + T], cache.v[layer][:, :, : t0 + T]
            # one query attends to every cached key: no mask; a multi-token prompt at t0 = 0 is causal
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal and T > 1)
        elif key_padding_mask is not None and not self.causal:
            mask = key_padding_mask[:, None, None, :]  # True = attend
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0,
                key_padding_mask: Tensor | None = None, rope: tuple[Tensor, Tensor] | None = None,
                attn_mask: Tensor | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), cache, layer, key_padding_mask, rope, attn_mask))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerBackbone(nn.Module):
    """Token embeddings (+ learned positions, or rotary ones in attention) -> N pre-LN blocks ->
    final LN -> tied output logits."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        if cfg.positions not in POSITIONS:
            raise ValueError(f"unknown positions {cfg.positions!r}; accepted: {', '.join(POSITIONS)}")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positions == "learned":
            self.pos_emb = nn.Embedding(cfg.max_positions, cfg.d_model)
        else:
            cos, sin = rope_tables(cfg.max_positions, cfg.d_model // cfg.n_heads)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)
        # GPT-2 style: scale residual projections by depth so the residual stream starts small.
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init(m: nn.Module) -> None:
        # N(0, 0.02) also for the tied embedding: N(0, 1) would give initial logits of size ~D.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids: Tensor, cache: KVCache | None = None,
                key_padding_mask: Tensor | None = None, offset: Tensor | None = None, *,
                position_ids: Tensor | None = None, attn_mask: Tensor | None = None,
                cache_write: int | None = None) -> Tensor:
        """ids [B, T] -> logits [B, T, V]. With a cache, positions continue from ``cache.length``.

        ``offset`` ([B, T, D] or broadcastable, e.g. a condition embedding [B, 1, D]) is added to the
        input embeddings: how conditional families inject a condition without a second backbone.

        ``position_ids`` [T] (long) replace the consecutive positions; ``attn_mask`` (bool, True =
        attend, [T, S] or broadcastable to [B, H, T, S], S = T, or ``cache.length + T`` with a cache)
        replaces the causal / bidirectional rule. With a cache and a mask only the first
        ``cache_write`` new positions (default all) stay in the cache (see the module docstring)."""
        _B, T = ids.shape
        t0 = cache.length if cache is not None else 0
        if position_ids is None and t0 + T > self.cfg.max_positions:
            raise ValueError(f"sequence of {t0 + T} positions exceeds max_positions={self.cfg.max_positions}")
        if cache is not None and t0 + T > cache.capacity:
            raise ValueError(f"{t0 + T} cached positions exceed the cache's {cache.capacity}")
        if attn_mask is not None and key_padding_mask is not None:
            raise ValueError("give attn_mask or key_padding_mask, not both")
        if cache_write is not None and (cache is None or attn_mask is None or not 0 <= cache_write <= T):
            raise ValueError(f"cache_write (0..{T}) needs a cache and an attn_mask")
        if position_ids is not None and position_ids.shape != (T,):  # values < max_positions: the caller's
            raise ValueError(f"position_ids must have shape [{T}], got {tuple(position_ids.shape)}")
        x = self.tok_emb(ids)
        rope = None
        if self.cfg.positions == "learned":
            pos = position_ids if position_ids is not None else torch.arange(t0, t0 + T, device=ids.device)
            x = x + self.pos_emb(pos)
        elif position_ids is not None:
            rope = (self.rope_cos[position_ids], self.rope_sin[position_ids])
        else:
            rope = (self.rope_cos[t0:t0 + T], self.rope_sin[t0:t0 + T])
        if offset is not None:
            x = x + offset
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i, key_padding_mask, rope, attn_mask)
        if cache is not None:
            cache.length += T if cache_write is None else cache_write
        return self.ln_f(x) @ self.tok_emb.weight.T  # tied embeddings


@BACKBONES.register("transformer")
def transformer_backbone(vocab_size: int, max_positions: int, causal: bool = True, d_model: int = 128,
                         n_layers: int = 4, n_heads: int = 4, mlp_ratio: int = 4,
                         dropout: float = 0.1, positions: str = "learned") -> TransformerBackbone:
    """The registry entry: ``vocab_size``, ``max_positions`` and ``causal`` are wired by the family."""
    if d_model % n_heads:
        raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
    return TransformerBackbone(BackboneConfig(vocab_size=vocab_size, max_positions=max_positions, d_model=d_model,
                                              n_layers=n_layers, n_heads=n_heads, mlp_ratio=mlp_ratio,
                                              dropout=dropout, causal=causal, positions=positions))
