"""Property-conditioned generation: what a condition is, how a network sees it, how guidance mixes.

A conditional model is trained on molecules paired with property values: RDKit properties computed
from the molecule (:data:`PROPERTIES`: ``qed``, ``logp``, ``sa``, ``mw``, ``tpsa``) or any numeric
column of the user's file. :class:`ConditionSpace` (persisted in the model's config) holds the
property names and their training statistics: values are standardised with them, and a request
outside the training range is a warning that states the range.

The network sees ``[value * present, present]`` per property through a small MLP
(:class:`ConditionEmbedding`); a property that is absent (dropped in training, not requested at
sampling, NaN in the data) has ``present = 0``. Training drops the whole condition with probability
``cond_dropout`` and each property on its own with the same probability, so one network is the
conditional model p(x | c), every partial condition and the unconditional model p(x) at once: what
classifier-free guidance (Ho & Salimans 2022) needs. Guidance strength ``w`` combines per-position
log-probabilities as ``(1 + w) log p(x | c) - w log p(x)``, renormalised (:func:`guided_log_probs`);
``w = 0`` is the conditional model itself and guided samples (``w != 0``) have no tractable
likelihood.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from molgen.errors import ConfigError


def _qed(mol) -> float:
    from rdkit.Chem import QED

    return QED.qed(mol)


def _logp(mol) -> float:
    from rdkit.Chem import Crippen

    return Crippen.MolLogP(mol)


def _sa(mol) -> float:
    from molgen.metrics.featurize import _sascorer

    return _sascorer().calculateScore(mol)


def _mw(mol) -> float:
    from rdkit.Chem import Descriptors

    return Descriptors.MolWt(mol)


def _tpsa(mol) -> float:
    from rdkit.Chem import rdMolDescriptors

    return rdMolDescriptors.CalcTPSA(mol)


#: RDKit properties a model can be conditioned on without a data column (name -> function of a Mol).
PROPERTIES: dict[str, Callable[[Any], float]] = {"qed": _qed, "logp": _logp, "sa": _sa, "mw": _mw, "tpsa": _tpsa}


class ConditionWarning(UserWarning):
    """A requested property value lies outside the range the model was trained on."""


def _props_chunk(smiles: Sequence[str], names: Sequence[str]) -> np.ndarray:
    from molgen.chem.rdlog import quiet_rdkit
    from molgen.metrics.featurize import get_mol

    out = np.full((len(smiles), len(names)), np.nan, dtype=np.float64)
    with quiet_rdkit():
        for i, s in enumerate(smiles):
            mol = get_mol(s)
            if mol is None:
                continue
            for j, name in enumerate(names):
                try:
                    out[i, j] = PROPERTIES[name](mol)
                except Exception:  # one failing descriptor leaves NaN (= absent), never a lost row
                    pass
    return out


def compute_properties(smiles: Sequence[str], names: Sequence[str], *, n_jobs: int = 1) -> np.ndarray:
    """[N, k] RDKit property values, row-aligned with ``smiles`` (NaN where RDKit cannot compute one)."""
    from molgen.parallel import map_chunks

    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise ConfigError(f"unknown RDKit propert{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                          f"known: {', '.join(PROPERTIES)} (or a numeric column of the data file)")
    if not len(smiles):
        return np.zeros((0, len(names)))
    return np.concatenate(map_chunks(_props_chunk, list(smiles), n_jobs, chunk_size=5000, names=list(names)))


@dataclass
class ConditionSpace:
    """The properties a model is conditioned on and their training statistics (for standardising and
    for the range warning). Persisted as a plain dict in the model config (``condition``)."""

    names: list[str]
    mean: list[float]
    std: list[float]
    lo: list[float]
    hi: list[float]
    sources: list[str] = field(default_factory=list)  # "rdkit" or "column" per property

    @classmethod
    def fit(cls, names: Sequence[str], values: np.ndarray, sources: Sequence[str] | None = None) -> ConditionSpace:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(f"values must be [N, {len(names)}], got {values.shape}")
        stats = []
        for j, name in enumerate(names):
            col = values[:, j][np.isfinite(values[:, j])]
            if col.size < 2:
                raise ConfigError(f"condition {name!r}: fewer than 2 molecules have a finite value")
            stats.append((float(col.mean()), float(col.std()) or 1.0, float(col.min()), float(col.max())))
        mean, std, lo, hi = (list(x) for x in zip(*stats))
        return cls(list(names), mean, std, lo, hi, list(sources or property_sources(names)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConditionSpace:
        try:
            space = cls(**{k: [*v] for k, v in d.items()})
        except TypeError as e:
            raise ConfigError(f"bad condition space {dict(d)!r}: {e}") from None
        if not (len(space.names) == len(space.mean) == len(space.std) == len(space.lo) == len(space.hi)):
            raise ConfigError(f"condition space fields have different lengths: {dict(d)!r}")
        return space

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "mean": list(self.mean), "std": list(self.std),
                "lo": list(self.lo), "hi": list(self.hi), "sources": list(self.sources)}

    @property
    def k(self) -> int:
        return len(self.names)

    def ranges(self) -> dict[str, tuple[float, float]]:
        return {n: (lo, hi) for n, lo, hi in zip(self.names, self.lo, self.hi)}

    def check(self, condition: Mapping[str, float]) -> dict[str, float]:
        """A validated request: unknown properties are an error listing the trained ones; values must
        be finite numbers; a value outside the training range is a :class:`ConditionWarning`."""
        return self._validate(condition, warn=True)

    def _validate(self, condition: Mapping[str, float], *, warn: bool) -> dict[str, float]:
        if not isinstance(condition, Mapping) or not condition:
            raise ConfigError(f"a condition is a non-empty mapping of property: value, e.g. "
                              f"{{{self.names[0]!r}: ...}}; got {condition!r}")
        unknown = [k for k in condition if k not in self.names]
        if unknown:
            raise ConfigError(f"the model was not trained on {unknown}; it is conditioned on "
                              f"{', '.join(self.names)}")
        out = {}
        for name, v in condition.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ConfigError(f"condition {name}={v!r}: a finite number is needed")
            j = self.names.index(name)
            if warn and not self.lo[j] <= v <= self.hi[j]:
                warnings.warn(f"condition {name}={v:g} is outside the training range "
                              f"[{self.lo[j]:.4g}, {self.hi[j]:.4g}]: the model extrapolates",
                              ConditionWarning, stacklevel=4)
            out[name] = float(v)
        return out

    def standardize(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw [N, k] values (NaN = absent) -> (standardised values with 0 where absent, present mask)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, self.k)
        present = np.isfinite(values)
        z = (values - np.asarray(self.mean)) / np.asarray(self.std)
        return np.where(present, z, 0.0).astype(np.float32), present.astype(np.float32)

    def batch(self, condition: Mapping[str, float] | None, n: int, device: Any = "cpu") -> dict[str, Tensor]:
        """Batch keys ``cond`` / ``cond_present`` [n, k] for one request (None: unconditional)."""
        raw = np.full((1, self.k), np.nan)
        for name, v in (self._validate(condition, warn=False) if condition is not None else {}).items():
            raw[0, self.names.index(name)] = v
        z, present = self.standardize(raw)
        return {"cond": torch.from_numpy(z).to(device).expand(n, -1).contiguous(),
                "cond_present": torch.from_numpy(present).to(device).expand(n, -1).contiguous()}


class ConditionEmbedding(nn.Module):
    """``[value * present, present]`` per property -> an embedding [B, D] (SiLU MLP). All-absent
    input gives a learned 'null' embedding: the unconditional model of classifier-free guidance."""

    def __init__(self, k: int, d_model: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * k, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, values: Tensor, present: Tensor) -> Tensor:
        return self.net(torch.cat([values * present, present], dim=-1))


def drop_conditions(present: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Condition dropout for training: each row loses its whole condition with probability ``p`` and,
    with several properties, each property on its own with probability ``p`` too."""
    if p <= 0:
        return present
    B, k = present.shape
    keep = torch.rand(B, 1, device=present.device, generator=generator) >= p
    if k > 1:
        keep = keep & (torch.rand(B, k, device=present.device, generator=generator) >= p)
    return present * keep.to(present.dtype)


def guided_log_probs(lp_cond: Tensor, lp_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance: normalised ``(1 + w) log p(x | c) - w log p(x)`` over the last axis.

    Tokens impossible under the conditional model stay impossible (no ``inf - inf``)."""
    if w == 0:
        return lp_cond
    impossible = ~torch.isfinite(lp_cond)
    lu = torch.where(torch.isfinite(lp_uncond), lp_uncond, torch.zeros_like(lp_uncond))
    mixed = (1 + w) * torch.where(impossible, torch.zeros_like(lp_cond), lp_cond) - w * lu
    return torch.log_softmax(mixed.masked_fill(impossible, float("-inf")), dim=-1)


def parse_condition(items: Sequence[str] | None) -> dict[str, float] | None:
    """CLI ``--condition qed=0.9 --condition logp=2.5`` -> ``{"qed": 0.9, "logp": 2.5}``."""
    if not items:
        return None
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--condition takes NAME=NUMBER (e.g. qed=0.9), got {item!r}") from None
    return out


# --- training data -----------------------------------------------------------------------------
def property_sources(names: Sequence[str]) -> list[str]:
    """Where each condition's values come from: ``"rdkit"`` (computed) or ``"column"`` (the data file)."""
    return ["rdkit" if n in PROPERTIES else "column" for n in names]


def property_table(names: Sequence[str], smiles: Sequence[str], *, data: Any = None, smiles_col: str | None = None,
                   policy: Any = None, n_jobs: int = 1) -> np.ndarray:
    """[N, k] raw values for canonical ``smiles``: RDKit properties computed, other names read from a
    numeric column of the ``data`` file (matched by canonical SMILES; the mean over duplicates)."""
    names = list(names)
    values = np.full((len(smiles), len(names)), np.nan)
    rd = [n for n in names if n in PROPERTIES]
    cols = [n for n in names if n not in PROPERTIES]
    if rd:
        values[:, [names.index(n) for n in rd]] = compute_properties(smiles, rd, n_jobs=n_jobs)
    if cols:
        values[:, [names.index(n) for n in cols]] = _column_values(cols, smiles, data, smiles_col, policy)
    return values


def _column_values(cols: list[str], smiles: Sequence[str], data: Any, smiles_col: str | None,
                   policy: Any) -> np.ndarray:
    import pandas as pd

    from molgen.chem import DEFAULT_POLICY, canonicalize_many
    from molgen.data.io import _pick_col

    if not isinstance(data, (str, Path)) or Path(data).suffix.lower() not in (".csv", ".tsv", ".parquet"):
        raise ConfigError(f"condition(s) {cols} are not RDKit properties ({', '.join(PROPERTIES)}), so they must "
                          f"be numeric columns of a .csv / .tsv / .parquet training file; data is {data!r}")
    path = Path(data)
    df = (pd.read_parquet(path) if path.suffix.lower() == ".parquet"
          else pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ","))
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ConfigError(f"{path.name} has no column(s) {missing}; columns: {', '.join(map(str, df.columns))}; "
                          f"RDKit properties: {', '.join(PROPERTIES)}")
    col = _pick_col(list(df.columns), smiles_col, path)
    canon = canonicalize_many(df[col].astype(str).tolist(), policy or DEFAULT_POLICY)
    table = pd.DataFrame({"canonical": canon, **{c: pd.to_numeric(df[c], errors="coerce") for c in cols}})
    means = table.dropna(subset=["canonical"]).groupby("canonical")[cols].mean()
    return means.reindex(list(smiles)).to_numpy(dtype=np.float64)


class Conditioner(nn.Module):
    """What a conditional family holds: the :class:`ConditionSpace` and the embedding, plus the two
    things it does with them: an input offset for a batch (with condition dropout while training)
    and the batch keys for a user's request."""

    def __init__(self, space: ConditionSpace, d_model: int, dropout: float) -> None:
        super().__init__()
        self.space = space
        self.dropout = float(dropout)
        self.emb = ConditionEmbedding(space.k, d_model)

    @classmethod
    def from_config(cls, config: Any, d_model: int) -> Conditioner | None:
        """None for an unconditional config (``condition`` empty)."""
        if not getattr(config, "condition", None):
            return None
        return cls(ConditionSpace.from_dict(config.condition), d_model, config.cond_dropout)

    def forward(self, batch: Mapping[str, Any], n: int, device: Any) -> Tensor:
        """[n, D] embedding of the batch's condition (absent keys: the unconditional embedding)."""
        values, present = batch.get("cond"), batch.get("cond_present")
        if values is None or present is None:
            values = present = torch.zeros(n, self.space.k, device=device)
        if self.training:
            present = drop_conditions(present, self.dropout)
        return self.emb(values.float(), present.float())


def validate_condition_fields(config: Any) -> None:
    """Shared ``validate`` for configs with ``condition`` / ``cond_dropout`` fields."""
    if config.condition:
        ConditionSpace.from_dict(config.condition)
    if not 0.0 <= float(config.cond_dropout) < 1.0:
        raise ConfigError(f"cond_dropout must be in [0, 1), got {config.cond_dropout!r}")


class ConditionedItems:
    """Wraps a model's featurize / collate / item_length so each item carries its property row and
    each batch gains ``cond`` / ``cond_present`` (used by ``molgen.train`` for conditional models)."""

    def __init__(self, model: Any, space: ConditionSpace, smiles: Sequence[str], values: np.ndarray) -> None:
        self.model, self.space = model, space
        z, present = space.standardize(values)
        self.rows = {s: (z[i], present[i]) for i, s in enumerate(smiles)}

    def featurize(self, canonical_smiles: str) -> tuple[Any, tuple[np.ndarray, np.ndarray]]:
        return self.model.featurize(canonical_smiles), self.rows[canonical_smiles]

    def collate(self, items: Sequence[Any]) -> dict[str, Any]:
        batch = self.model.collate([x for x, _ in items])
        batch["cond"] = torch.from_numpy(np.stack([c[0] for _, c in items]))
        batch["cond_present"] = torch.from_numpy(np.stack([c[1] for _, c in items]))
        return batch

    def item_length(self, item: Any) -> int:
        return self.model.item_length(item[0])
