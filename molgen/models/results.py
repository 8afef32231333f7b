"""What sampling returns: :class:`SampleResult`, and the canonicalisation of raw samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from molgen.chem import Policy, mol_to_smiles, standardize
from molgen.conditioning import condition_text
from molgen.data.io import row_ids
from molgen.drawing import draw
from molgen.errors import ConfigError, strict
from molgen.filtering import filter_molecules
from molgen.likelihood import LikelihoodLabel


@dataclass
class SampleResult:
    """``n`` samples, row-aligned.

    ``smiles`` are the decoded strings exactly as generated (invalid ones included: evaluation must
    see them to count validity); ``canonical`` is the canonical SMILES under the model's policy or
    None; ``log_likelihood`` is log p(string) under the model at temperature 1, in nats, where the
    family returns one, labelled by ``likelihood``. ``sampler`` says how they were drawn
    (``ancestral`` at temperature 1 is the model itself); ``seed`` reproduces them.
    """

    smiles: list[str]
    canonical: list[str | None]
    log_likelihood: np.ndarray | None = None
    temperature: float = 1.0
    sampler: str = "ancestral"
    seed: int | None = None
    likelihood: LikelihoodLabel | None = None
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
        # sample_000001, ...: molecule start + i of the run, 1-based
        df.insert(0, "id", row_ids(len(self), start=int(self.info.get("start", 0)) + 1))
        if self.log_likelihood is not None and self.likelihood is not None:
            df["log_likelihood"] = self.log_likelihood
            for k, v in self.likelihood.to_dict().items():
                df[f"likelihood_{k}"] = v
        df["sampler"] = self.sampler
        df["temperature"] = self.temperature
        if "condition" in self.info:  # conditional samples say what they were asked for
            df["condition"] = condition_text(self.info["condition"])
            df["guidance"] = self.info.get("guidance", 0.0)
        if "constraint" in self.info:  # fragment-constrained samples (molgen.fragments): what was asked, per row
            df["constraint"] = self.info["constraint"]
            df["fragments"] = ".".join(self.info["fragments"])
            df["contains_fragments"] = self.info["contains_fragments"]
            df["constraint_status"] = self.info["constraint_status"]  # ok / invalid / missing_fragments
            df["attempts"] = self.info["attempts"]
        return df

    def filter(self, **criteria: Any) -> pd.DataFrame:
        """:func:`molgen.filtering.filter_molecules` on these samples: every row with ``keep`` and ``reason``."""
        return filter_molecules(self, **criteria)

    def draw(self, n: int = 24, **options: Any):
        """An HTML grid of the first ``n`` samples with their values (:func:`molgen.drawing.draw`)."""
        return draw(self, n=n, **options)

    def _repr_html_(self) -> str:  # Jupyter: a summary line and the first molecules
        head = (f"<div>SampleResult: {len(self)} samples, validity {self.validity:.3f}, sampler {self.sampler}, "
                f"seed {self.seed}{', likelihood ' + str(self.likelihood) if self.likelihood else ''}</div>")
        return head + (self.draw(n=12)._repr_html_() if len(self) else "")


SampleResult.__init__ = strict(SampleResult.__init__)  # type: ignore[method-assign]


def canonical_rows(raw: list[Any], policy: Policy) -> tuple[list[str], list[str | None]]:
    """(SMILES as generated, canonical SMILES or None) for sampled strings or RDKit molecules."""
    smiles, canonical = [], []
    for x in raw:
        if x is None:
            s = ""
        elif isinstance(x, str):
            s = x
        else:  # an RDKit molecule from a graph family
            s = mol_to_smiles(x, policy) or ""
        smiles.append(s)
        canonical.append(standardize(s, policy)[0] if s else None)
    return smiles, canonical


def check_sample_arguments(n: Any, temperature: Any, batch_size: Any) -> None:
    """The argument checks every sampler shares (``GenerativeModel.sample``, fragment-constrained
    sampling): a ConfigError that says what is accepted."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ConfigError(f"n must be an integer >= 0, got {n!r}")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ConfigError(f"temperature must be a number > 0 (argmax is a different sampler), got {temperature!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
