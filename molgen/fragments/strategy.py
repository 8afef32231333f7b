"""What the two samplers share: the :class:`Strategy` base and the per-row random choices.

Row i depends only on (seed, i): every per-row choice of the template (root atom, span lengths,
decoration sites) comes from a stream keyed by the same (seed, i) (:func:`row_uniforms`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from rdkit import Chem

from molgen.errors import ConfigError
from molgen.fragments.constraints import Constraint
from molgen.fragments.templates import TemplateBuilder, min_rest
from molgen.rowrandom import RowRandom

#: per-row span lengths (tokens) drawn uniformly from these ranges: decoration branches (infilling and
#: fixed-length spans), linkers (minimum before the hand-over in template completion; exact in infilling)
SPAN_LENGTHS = (1, 8)
LINKER_LENGTHS = (1, 8)


# --- per-row choices ---------------------------------------------------------------------------
def derived_seed(seed: int, *parts: Any) -> int:
    """A 62-bit seed of its own for one use of the run's ``seed`` (``parts`` name the use)."""
    h = hashlib.blake2b(":".join(map(str, (int(seed), *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & (2**62 - 1)


def uniform_ints(u: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Uniforms in (0, 1) -> integers in [lo, hi]."""
    return np.minimum(lo + np.floor(u * (hi - lo + 1)).astype(int), hi)


def row_uniforms(seed: int, rows: Sequence[int], attempt: int, width: int) -> np.ndarray:
    """[len(rows), width] uniforms in (0, 1) of the template choices, row i from a stream keyed by (seed, i)."""
    rr = RowRandom(derived_seed(seed, "fragment-template", attempt), rows)
    return rr.uniform(0, width).numpy()


def h_bearing_atoms(mol) -> list[int]:
    """H-bearing atoms, in canonical rank order."""
    ranks = list(Chem.CanonicalRankAtoms(mol))
    return sorted((a.GetIdx() for a in mol.GetAtoms() if a.GetTotalNumHs() > 0), key=lambda a: ranks[a])


def n_spans(constraint: Constraint) -> int:
    """Free spans of a constraint with attachment points: one per ``*`` (a linker: its one linker)."""
    return 1 if constraint.kind == "linker" else len(constraint.fragments[0].attachments)


class Strategy:
    """How one kind of family samples under a template; subclasses: template completion, infilling."""

    name = "base"
    sampler = "constrained"

    def __init__(self, model, constraint: Constraint, *, rooting: str, options: dict[str, Any]) -> None:
        self.model = model
        self.constraint = constraint
        self.options = options
        self.example: str | None = None
        self.builder = TemplateBuilder(constraint, model.tokenizer, rooting=rooting)
        self.check()

    def check(self) -> None:
        """Build the canonical template once: a fragment the vocabulary cannot write fails here."""
        t = self.builder.template()
        need = min_rest(t.items)[0]
        if need > self.model.max_len:
            raise ConfigError(f"{self.constraint.kind} {self.constraint.text!r} needs {need} tokens; the model "
                              f"writes at most {self.model.max_len}")

    def sample(self, rows: Sequence[int], *, seed: int, attempt: int, temperature: float) -> list[str]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ``info`` records: the strategy, one row's template (the first drawn), the rooting."""
        return {"strategy": self.name, "template": self.example or str(self.builder.template()),
                "rooting": self.builder.rooting}
