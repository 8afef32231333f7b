"""The generator contract every family implements.

A model owns its tokenizer and the chemistry policy it was trained under, so ``sample`` and ``score``
need nothing else. Capabilities are declared, not implied: a family without a likelihood (GAN) does
not have ``"log_likelihood"`` and asking for one raises :class:`CapabilityError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from molgen.chem import DEFAULT_POLICY, Policy, standardize
from molgen.tokenizers.base import Tokenizer

CAPABILITIES = frozenset({"sample", "log_likelihood", "encode", "decode", "conditional"})


class CapabilityError(NotImplementedError):
    """The model family does not support this operation (e.g. a likelihood from a GAN)."""


class TooLongError(ValueError):
    def __init__(self, n_tokens: int, max_len: int) -> None:
        super().__init__(f"{n_tokens} tokens > max_len {max_len}")
        self.n_tokens, self.max_len = n_tokens, max_len


@dataclass
class SampleResult:
    """``n`` samples, row-aligned.

    ``smiles`` are the decoded strings exactly as generated (invalid ones included: evaluation must
    see them to count validity); ``canonical`` is the canonical SMILES under the model's policy or
    None; ``log_likelihood`` is log p(string) under the model at temperature 1, in nats, where the
    family has one.
    """

    smiles: list[str]
    canonical: list[str | None]
    log_likelihood: np.ndarray | None = None
    temperature: float = 1.0
    sampler: str = "ancestral"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> np.ndarray:
        return np.array([c is not None for c in self.canonical], dtype=bool)

    @property
    def validity(self) -> float:
        return float(self.valid.mean()) if len(self) else float("nan")

    def __len__(self) -> int:
        return len(self.smiles)

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame({"smiles": self.smiles, "canonical": self.canonical, "valid": self.valid})
        if self.log_likelihood is not None:
            df["log_likelihood"] = self.log_likelihood
        return df


class GenerativeModel(L.LightningModule):
    """Base class: Lightning module + molgen's sampling / likelihood / persistence contract."""

    name: ClassVar[str] = "base"
    capabilities: ClassVar[frozenset[str]] = frozenset()
    likelihood_kind: ClassVar[str | None] = None
    #: True when ``featurize`` returns plain id lists that the DataModule may cache on disk.
    featurize_cacheable: ClassVar[bool] = True

    def __init__(self, tokenizer: Tokenizer, policy: Policy = DEFAULT_POLICY, max_len: int = 100) -> None:
        super().__init__()
        if not tokenizer.is_fitted:
            raise ValueError("the tokenizer has no vocabulary: fit it on training SMILES first")
        self.tokenizer = tokenizer
        self.policy = policy
        self.max_len = int(max_len)  # longest token string (without BOS/EOS) the model represents
        self.metadata: dict[str, Any] = {}
        self.optim_config: dict[str, Any] = {"lr": 1e-3, "weight_decay": 0.01, "betas": (0.9, 0.98)}
        # Token ids that are never emitted (pad, bos, unk): with them at probability 0 and <eos> forced
        # after max_len symbols, every string decoder is a proper distribution over strings.
        banned = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
        banned[[tokenizer.pad_id, tokenizer.bos_id, tokenizer.unk_id]] = True
        self.register_buffer("banned", banned, persistent=False)

    # --- what subclasses provide ---------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON-serializable init arguments (without tokenizer and policy) for ``from_pretrained``."""
        return {"max_len": self.max_len}

    def log_likelihood(self, batch: dict[str, Tensor], **kw: Any) -> Tensor:
        """[B] log p(x) in nats per molecule (log p, not NLL)."""
        raise CapabilityError(f"{self.name} has no likelihood (capabilities: {sorted(self.capabilities)})")

    def _sample_ids(self, n: int, temperature: float, generator: torch.Generator,
                    **kw: Any) -> tuple[list[list[int]], Tensor | None]:
        raise CapabilityError(f"{self.name} cannot sample")

    def configure_optimizers(self):
        """AdamW; weight decay on matrices only (not on biases, norms, embeddings' positions)."""
        decay = [p for n, p in self.named_parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.requires_grad and p.dim() < 2]
        cfg = self.optim_config
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg["lr"], betas=tuple(cfg["betas"]))

    # --- featurization (overridable: a graph encoder needs more than ids) ------------------------
    def featurize(self, canonical_smiles: str) -> Any:
        """One model input for a canonical SMILES. Raises OOVError / TokenizeError / TooLongError."""
        ids = self.tokenizer.encode(canonical_smiles)
        if len(ids) > self.max_len:
            raise TooLongError(len(ids), self.max_len)
        return ids

    def item_length(self, item: Any) -> int:
        """Size of one featurized item (tokens), used to batch items of similar length together."""
        return len(item)

    def collate(self, items: Sequence[Any]) -> dict[str, Tensor]:
        """Pad id lists into ``{"ids": [B, T] with BOS ... EOS PAD..., "lengths": [B]}``."""
        return collate_ids(items, self.tokenizer)

    def likelihood_label(self) -> str | None:
        """What ``score`` reports, e.g. ``"exact"`` or ``"iwae-50"`` (families refine the class kind)."""
        return self.likelihood_kind

    def next_token_log_probs(self, logits: Tensor, n_emitted: Tensor | int) -> Tensor:
        """Normalized next-token log-probs with banned ids removed and <eos> forced at max_len.

        ``n_emitted`` is the number of symbols already emitted (an int, or a tensor broadcastable to
        ``logits.shape[:-1]``).
        """
        logits = logits.float().masked_fill(self.banned, float("-inf"))
        at_max = torch.as_tensor(n_emitted, device=logits.device) >= self.max_len
        if bool(at_max.any()):
            only_eos = torch.full_like(logits, float("-inf"))
            only_eos[..., self.tokenizer.eos_id] = 0.0
            logits = torch.where(at_max.unsqueeze(-1), only_eos, logits)
        return torch.log_softmax(logits, dim=-1)

    # --- public API ----------------------------------------------------------------------------
    def require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise CapabilityError(
                f"model {self.name!r} does not support {capability!r}; it supports {sorted(self.capabilities)}")

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0, seed: int | None = None,
               batch_size: int | None = None, **kw: Any) -> SampleResult:
        """Draw ``n`` molecules x ~ p(x) (ancestral sampling; temperature 1 is the model itself)."""
        self.require("sample")
        if n < 0:
            raise ValueError("n must be >= 0")
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (argmax decoding is a different sampler)")
        was_training = self.training
        self.eval()
        if seed is None:  # still reproducible afterwards: the drawn seed is recorded in .info
            seed = int(torch.randint(0, 2**62, (1,)).item())
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        bs = batch_size or 1024
        ids: list[list[int]] = []
        lls: list[Tensor] = []
        try:
            for start in range(0, n, bs):
                out, ll = self._sample_ids(min(bs, n - start), temperature, g, **kw)
                ids.extend(out)
                if ll is not None:
                    lls.append(ll.detach().double().cpu())
        finally:
            self.train(was_training)
        smiles = [self.tokenizer.decode(x) for x in ids]
        canonical = [standardize(s, self.policy)[0] if s else None for s in smiles]
        ll = torch.cat(lls).numpy() if lls else None
        return SampleResult(smiles, canonical, ll, temperature, info={"seed": seed, "model": self.name})

    def score(self, smiles: Sequence[str | None], *, batch_size: int = 512, progress: bool = False,
              **kw: Any) -> pd.DataFrame:
        """Per-molecule log-likelihood table, one row per input, in order; never raises per row."""
        from molgen.scoring import score_smiles

        return score_smiles(self, smiles, batch_size=batch_size, progress=progress, **kw)

    def save_pretrained(self, path: str) -> None:
        from molgen.persistence import save_pretrained

        save_pretrained(self, path)

    @classmethod
    def from_pretrained(cls, path: str) -> GenerativeModel:
        from molgen.persistence import load_pretrained

        model = load_pretrained(path)
        if cls is not GenerativeModel and not isinstance(model, cls):
            raise TypeError(f"{path} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def collate_ids(items: Sequence[Sequence[int]], tokenizer: Tokenizer) -> dict[str, Tensor]:
    lengths = torch.tensor([len(x) for x in items], dtype=torch.long)
    T = int(lengths.max()) + 2 if len(items) else 2
    ids = torch.full((len(items), T), tokenizer.pad_id, dtype=torch.long)
    ids[:, 0] = tokenizer.bos_id
    for i, x in enumerate(items):
        ids[i, 1:1 + len(x)] = torch.as_tensor(x, dtype=torch.long)
        ids[i, 1 + len(x)] = tokenizer.eos_id
    return {"ids": ids, "lengths": lengths}
