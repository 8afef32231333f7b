"""What a likelihood number is: its kind, the object it is a probability of, and its unit.

One :class:`LikelihoodLabel` per number, produced by the model (``model.likelihood_label(kind)``) and
copied verbatim into ``config.json``, ``molgen models`` / ``info``, score rows and summaries,
``SampleResult`` and the Evaluator's ``NLL/Test`` entry, so they can never disagree.

Monte-Carlo estimators (ELBO, IWAE-K, diffusion ELBO, dequantization bounds) draw their noise from
per-row generators (:func:`row_randn`, :func:`row_rand`) seeded by :func:`row_seeds` from the molecule's
own seed material (:meth:`molgen.representation.Representation.seed_material`) and a salt, so a molecule
gets the same number alone, duplicated, or anywhere in any file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from molgen.errors import ConfigError
from molgen.representation import Representation

OBJECTS = ("canonical-smiles", "canonical-kekule-smiles", "canonical-selfies", "labelled-graph", "molecule")
UNIT = "nats/molecule"


@dataclass(frozen=True)
class LikelihoodLabel:
    """``kind`` (``exact``, ``elbo``, ``iwae-50``, ...), ``object`` (what it is a probability of), ``unit``.

    All kinds are log p or lower bounds on log p (so -value is an upper bound on the NLL).
    """

    kind: str
    object: str
    unit: str = UNIT

    def __post_init__(self) -> None:
        if self.object not in OBJECTS:
            raise ValueError(f"likelihood object must be one of {OBJECTS}, got {self.object!r}")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind} log p({self.object}), {self.unit}"


def row_seeds(rows: Tensor | Iterable[Any], representation: Representation, salt: int = 0) -> list[int]:
    """A 63-bit seed per molecule from ``representation.seed_material(row)`` and ``salt``; ``rows`` are
    the molecules as the family holds them (the rows of an id tensor [B, T], a list of graphs).

    Depends only on the row itself, never on its neighbours, batch size or position. The hashed bytes
    are laid out as ``repr((salt, material))`` once was for id lists, so string models keep their numbers.
    """
    if torch.is_tensor(rows):
        rows = rows.detach().cpu().tolist()  # one transfer, then plain lists
    prefix = f"({int(salt)}, ".encode()
    out = []
    for row in rows:
        h = hashlib.blake2b(prefix + representation.seed_material(row) + b")", digest_size=8).digest()
        out.append(int.from_bytes(h, "little") >> 1)
    return out


def row_randn(seeds: list[int], shape: tuple[int, ...], device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32, offset: int = 0) -> Tensor:
    """Standard normal noise [B, *shape], row b drawn from its own generator seeded ``seeds[b] + offset``."""
    rows = []
    for s in seeds:
        g = torch.Generator().manual_seed((s + offset) % (2**63))
        rows.append(torch.randn(shape, generator=g, dtype=torch.float32))
    if not rows:
        return torch.zeros((0, *shape), device=device, dtype=dtype)
    return torch.stack(rows).to(device=device, dtype=dtype)


def row_rand(seeds: list[int], shape: tuple[int, ...], device: torch.device | str = "cpu",
             offset: int = 0) -> Tensor:
    """Uniform [0, 1) noise [B, *shape], per-row generators as in :func:`row_randn`."""
    rows = [torch.rand(shape, generator=torch.Generator().manual_seed((s + offset) % (2**63))) for s in seeds]
    return torch.stack(rows).to(device) if rows else torch.zeros((0, *shape), device=device)


def resolve_k_kind(kind: str | None, *, prefix: str, default_k: int, fixed: tuple[str, ...] = (),
                   family: str, unit: str = "samples") -> str:
    """The kind of a K-sample estimator: None -> ``{prefix}-{default_k}``; ``prefix`` or ``prefix-K``
    (K >= 1); or one of the family's ``fixed`` kinds. Anything else is a ConfigError listing them."""
    if kind is None:
        return f"{prefix}-{default_k}"
    if kind in fixed:
        return kind
    head, dash, k = str(kind).partition("-")
    if head == prefix and (not dash or (k.isdigit() and int(k) >= 1)):
        return f"{prefix}-{k or default_k}"
    accepted = [repr(f) for f in fixed] + [f"'{prefix}' (K = {default_k} {unit})", f"'{prefix}-K' (K >= 1)"]
    raise ConfigError(f"{family} reports kind {', '.join(accepted[:-1])} or {accepted[-1]}; got {kind!r}")

