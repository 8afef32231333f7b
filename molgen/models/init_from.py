"""Starting a family from a trained transformer (``molgen train --init-from``): weights copied where
the names and shapes match. Diffusion (the same backbone, bidirectional) and the VAE's transformer
decoder use it; the representation and ``max_len`` must be the source's (the same strings)."""

from __future__ import annotations

from typing import Any

import torch

from molgen.errors import ConfigError


@torch.no_grad()
def copy_transformer_weights(model: Any, source: Any, *, family: str) -> dict[str, list[str]]:
    """Copy ``source``'s (a trained transformer) weights into ``model`` where name and shape match; a
    token embedding with fewer rows goes into the first rows (diffusion's extra ``<mask>`` row keeps
    its init). Returns ``{"copied", "partially_copied", "skipped", "unused"}`` parameter names
    (``skipped``: the model's, left at their init; ``unused``: the source's that match nothing)."""
    if getattr(source, "name", None) != "transformer":
        kind = getattr(source, "name", type(source).__name__)
        raise ConfigError(f"init_from must be a trained transformer model; got a {kind!r} model")
    mine, theirs = model.tokenizer, source.representation
    if theirs is None or type(mine) is not type(theirs) or mine.state_key != theirs.state_key:
        raise ConfigError(
            f"init_from: the transformer's representation ({getattr(theirs, 'name', None)}, vocabulary "
            f"{getattr(theirs, 'vocab_size', '?')}) differs from this model's ({getattr(mine, 'name', None)}, "
            f"vocabulary {mine.vocab_size}); train the {family} model on the transformer's representation")
    if source.max_len != model.max_len:
        raise ConfigError(f"init_from: the transformer's max_len {source.max_len} differs from this model's "
                          f"{model.max_len}")
    src = source.state_dict()
    dst = model.state_dict()
    report: dict[str, list[str]] = {"copied": [], "partially_copied": [], "skipped": [], "unused": []}
    for name, t in dst.items():
        s = src.get(name)
        if s is None:
            report["skipped"].append(name)
        elif s.shape == t.shape:
            t.copy_(s.to(t.dtype))
            report["copied"].append(name)
        elif (s.dim() == t.dim() and s.shape[1:] == t.shape[1:] and s.shape[0] < t.shape[0]
              and name.endswith("tok_emb.weight")):
            t[:s.shape[0]].copy_(s.to(t.dtype))
            report["partially_copied"].append(name)
        else:
            report["skipped"].append(name)
    report["unused"] = [n for n in src if n not in dst]
    model.load_state_dict(dst)
    return report
