"""Property-conditioned generation: what a condition is, how a network sees it, how guidance mixes.

A conditional model is trained on molecules paired with property values: RDKit properties computed
from the molecule (:data:`PROPERTIES`: ``qed``, ``logp``, ``sa``, ``mw``, ``tpsa``) or any numeric
column of the user's file. :class:`ConditionSpace` (persisted in the model's config) holds the
property names and their training statistics: values are standardised with them; a request outside
the training range is a warning that states the range, and one more than :data:`EXTRAPOLATION_SD`
training standard deviations outside it is refused unless extrapolation is asked for.
:func:`achieved_properties` measures what the samples of a request achieved (with the code that
computed the training labels).

The network sees ``[value * present, present]`` per property through a small MLP
(:class:`ConditionEmbedding`); a property that is absent (dropped in training, not requested at
sampling, NaN in the data) has ``present = 0``. Training drops the whole condition with probability
``cond_dropout`` and each property on its own with the same probability, so one network is the
conditional model p(x | c), every partial condition and the unconditional model p(x) at once: what
classifier-free guidance (Ho & Salimans 2022) needs. Guidance strength ``w`` combines per-position
log-probabilities as ``(1 + w) log p(x | c) - w log p(x)``, renormalised (:func:`~molgen.conditioning_nn.guided_log_probs`);
``w = 0`` is the conditional model itself and guided samples (``w != 0``) have no tractable
likelihood.

This module imports without torch, so a command line can read and check a condition before it loads
a model; the network parts (:class:`~molgen.conditioning_nn.ConditionEmbedding`,
:class:`~molgen.conditioning_nn.Conditioner`, condition dropout, the guidance formula and the training
items that carry a property row) are :mod:`molgen.conditioning_nn`, built on this module.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rdkit.Chem import QED, Crippen, Descriptors, rdMolDescriptors

from molgen.chem import DEFAULT_POLICY, canonicalize_many, quiet_rdkit
from molgen.data.io import file_smiles_column
from molgen.errors import CapabilityError, ConfigError, strict
from molgen.metrics.featurize import get_mol, sascorer
from molgen.parallel import map_chunks

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor

#: A request more than this many training standard deviations outside the training range [min, max]
#: is refused unless extrapolation is asked for (``extrapolate=True`` / ``--extrapolate``). The range
#: ends are the most extreme of the training molecules; past them the condition input leaves what the
#: network was trained on. Measured on moses-transformer-qed-logp (benchmarks/results/
#: conditional_guidance.md, w = 0, 200 samples a target): validity at the upper range end, 1, 2 and
#: 4 sd above it was 0.83, 0.78, 0.11, 0.00 for QED and 0.80, 0.67, 0.48, 0.13 for logP (whose
#: achieved mean stays at ~4.4 whatever is asked); the issue's qed=1.5 (5.8 sd) gave 0 valid. One sd
#: is the last step before validity falls apart, and it admits every value a property can take near
#: its range (QED up to 1.04, above its maximum of 1).
EXTRAPOLATION_SD = 1.0


def _sa(mol) -> float:
    return sascorer().calculateScore(mol)


#: RDKit properties a model can be conditioned on without a data column (name -> function of a Mol).
PROPERTIES: dict[str, Callable[[Any], float]] = {"qed": QED.qed, "logp": Crippen.MolLogP, "sa": _sa,
                                                 "mw": Descriptors.MolWt, "tpsa": rdMolDescriptors.CalcTPSA}


class ConditionWarning(UserWarning):
    """A requested property value lies outside the range the model was trained on."""


def _props_chunk(smiles: Sequence[str], names: Sequence[str]) -> np.ndarray:
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

    @strict
    def check(self, condition: Mapping[str, float], *, extrapolate: bool = False, cli: bool = False
              ) -> dict[str, float]:
        """A validated request: unknown properties are an error listing the trained ones; values must
        be finite numbers; a value outside the training range is a :class:`ConditionWarning`, and one
        more than :data:`EXTRAPOLATION_SD` training sd outside it is an error unless ``extrapolate``.
        ``cli``: messages in command-line syntax (``--condition qed=0.9``) instead of Python's
        (``condition={'qed': 0.9}``)."""
        if not isinstance(extrapolate, bool) or not isinstance(cli, bool):
            raise ConfigError(f"extrapolate and cli are True or False, got {extrapolate!r}, {cli!r}")
        return self._validate(condition, warn=True, extrapolate=extrapolate, cli=cli)

    def outside(self, name: str, value: float) -> float:
        """How far ``value`` lies outside the training range of ``name``, in training sd (0 inside)."""
        j = self.names.index(name)
        gap = self.lo[j] - value if value < self.lo[j] else value - self.hi[j] if value > self.hi[j] else 0.0
        return gap / self.std[j]

    def describe(self, name: str) -> str:
        """``training range [0.274, 0.948], mean 0.806, sd 0.0947`` for one property."""
        j = self.names.index(name)
        return (f"training range [{self.lo[j]:.4g}, {self.hi[j]:.4g}], mean {self.mean[j]:.4g}, "
                f"sd {self.std[j]:.3g}")

    def example(self, cli: bool = False) -> str:
        """A request this space accepts, in the caller's syntax (its first property at the training mean)."""
        return condition_syntax({self.names[0]: float(f"{self.mean[0]:.2g}")}, cli)

    def _validate(self, condition: Mapping[str, float], *, warn: bool, extrapolate: bool = True,
                  cli: bool = False) -> dict[str, float]:
        if not isinstance(condition, Mapping) or not condition:
            raise ConfigError(f"a condition is a non-empty mapping of property: value, e.g. "
                              f"{self.example(cli)}; got {condition!r}")
        unknown = [k for k in condition if k not in self.names]
        if unknown:
            raise ConfigError(f"{condition_syntax({k: condition[k] for k in unknown}, cli)}: the model was not "
                              f"trained on {unknown}; it is conditioned on {', '.join(self.names)} "
                              f"(e.g. {self.example(cli)})")
        out = {}
        for name, v in condition.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
                raise ConfigError(f"{condition_syntax({name: v}, cli)}: a finite number is needed")
            out[name] = float(v)
            sds = self.outside(name, float(v))
            if sds > EXTRAPOLATION_SD and not extrapolate:
                j = self.names.index(name)
                lo, hi = self.lo[j] - EXTRAPOLATION_SD * self.std[j], self.hi[j] + EXTRAPOLATION_SD * self.std[j]
                override = "add --extrapolate" if cli else "pass extrapolate=True"
                raise ConfigError(f"{condition_syntax({name: v}, cli)} is {sds:.1f} training sd outside the "
                                  f"{self.describe(name)}: the model has seen no molecule there and its samples "
                                  f"fall apart. Ask for {name} in [{lo:.3g}, {hi:.3g}] (the range +- "
                                  f"{EXTRAPOLATION_SD:g} sd), or {override} to sample it anyway")
            if warn and sds > 0:
                warnings.warn(f"{condition_syntax({name: v}, cli)} is outside the {self.describe(name)} "
                              f"({sds:.2g} sd beyond): the model extrapolates", ConditionWarning, stacklevel=5)
        return out

    def standardize(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw [N, k] values (NaN = absent) -> (standardised values with 0 where absent, present mask)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, self.k)
        present = np.isfinite(values)
        z = (values - np.asarray(self.mean)) / np.asarray(self.std)
        return np.where(present, z, 0.0).astype(np.float32), present.astype(np.float32)

    def batch(self, condition: Mapping[str, float] | None, n: int, device: Any = "cpu") -> dict[str, Tensor]:
        """Batch keys ``cond`` / ``cond_present`` [n, k] for one request (None: unconditional)."""
        import torch  # lazy: this module imports without torch (see the module docstring)

        raw = np.full((1, self.k), np.nan)
        for name, v in (self._validate(condition, warn=False) if condition is not None else {}).items():
            raw[0, self.names.index(name)] = v
        z, present = self.standardize(raw)
        return {"cond": torch.from_numpy(z).to(device).expand(n, -1).contiguous(),
                "cond_present": torch.from_numpy(present).to(device).expand(n, -1).contiguous()}


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
            number = float(value)
        except ValueError:
            raise ConfigError(f"--condition takes NAME=NUMBER (e.g. qed=0.9), got {item!r}") from None
        if name.strip() in out:
            raise ConfigError(f"--condition {name.strip()} is given twice ({name.strip()}={out[name.strip()]:g} "
                              f"and {item!r}); give each property once")
        out[name.strip()] = number
    return out


def condition_syntax(condition: Mapping[str, Any], cli: bool = False) -> str:
    """A request as its caller writes it: ``--condition qed=0.9`` (``cli``) or ``condition={'qed': 0.9}``."""
    def num(v: Any) -> str:
        return f"{v:g}" if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) else repr(v)

    if cli:
        return " ".join(f"--condition {k}={num(v)}" for k, v in condition.items())
    return "condition={" + ", ".join(f"{k!r}: {num(v)}" for k, v in condition.items()) + "}"


@strict
def check_request(space: ConditionSpace | None, condition: Mapping[str, float] | None, guidance: float | None, *,
                  extrapolate: bool = False, cli: bool = False, model: str = "this model",
                  capabilities: Sequence[str] = ()) -> tuple[dict[str, float] | None, float | None]:
    """Validated (condition, guidance) for a model with condition space ``space`` (None: unconditional):
    refused by an unconditional model, unknown properties listed, out-of-range values warned about and
    far-out ones refused unless ``extrapolate`` (:meth:`ConditionSpace.check`), guidance a number >= 0
    that needs a condition. What ``GenerativeModel.check_condition`` does, and what ``molgen sample``
    does with the condition space read from ``config.json`` before it loads the model; ``cli``: the
    messages speak command-line syntax. ``model`` and ``capabilities`` name the model in messages."""
    flag_c, flag_g = ("--condition", "--guidance") if cli else ("condition", "guidance")
    if condition is None and guidance is None:
        return None, None
    if space is None:
        caps = f" (capabilities: {', '.join(sorted(capabilities))})" if capabilities else ""
        raise CapabilityError(f"{model} is not conditional: {flag_c} / {flag_g} are not accepted{caps}; train a "
                              "conditional model with `molgen train --condition qed ...`")
    if condition is None:
        raise ConfigError(f"{flag_g} needs a {'--condition' if cli else 'condition'} (e.g. {space.example(cli)})")
    condition = space.check(condition, extrapolate=extrapolate, cli=cli)
    if guidance is not None and (isinstance(guidance, bool) or not isinstance(guidance, (int, float))
                                 or not 0 <= guidance < float("inf")):
        raise ConfigError(f"{flag_g} must be a number >= 0 (0: the conditional model), got {guidance!r}")
    return condition, (None if guidance is None else float(guidance))


@strict
def achieved_properties(result: Any, condition: Mapping[str, float], *, limit: int | None = None
                        ) -> dict[str, dict[str, Any]]:
    """What the samples of a request achieved, per requested property: ``requested``, ``mean`` and
    ``sd`` (ddof 1) of the property over the valid samples, ``mae`` (mean |achieved - requested|),
    ``n_valid`` (valid samples), ``n_measured`` (those with a value), ``n``, ``validity`` and ``subset``
    (the number of valid samples measured where ``limit`` left some out, else None).

    ``result``: a :class:`~molgen.models.results.SampleResult` or its table (``canonical`` column, None /
    NaN where invalid). RDKit properties are computed on the canonical SMILES by the code that
    computed the training labels (:func:`property_table`, a few ms per molecule); a property read from
    a data-file column cannot be computed from a molecule: its entry has ``computable`` False and NaN
    numbers. ``limit``: measure only the first ``limit`` valid samples (independent draws, so an
    unbiased subset)."""
    if isinstance(result, Mapping) or not hasattr(result, "canonical"):
        raise ConfigError(f"result is a SampleResult or a table with a 'canonical' column, got {type(result).__name__}")
    if not isinstance(condition, Mapping):
        raise ConfigError(f"condition is a mapping of property: requested value, got {condition!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit is a positive integer or None, got {limit!r}")
    canonical = [c if isinstance(c, str) and c else None for c in list(result.canonical)]
    valid = [c for c in canonical if c is not None]
    n = len(canonical)
    rd = [k for k in condition if k in PROPERTIES]
    measured = valid[:limit] if limit is not None else valid
    table = property_table(rd, measured) if rd and measured else np.zeros((len(measured), len(rd)))
    out: dict[str, dict[str, Any]] = {}
    for name, requested in condition.items():
        row: dict[str, Any] = {"requested": float(requested), "computable": name in PROPERTIES,
                               "n": n, "n_valid": len(valid), "validity": len(valid) / n if n else float("nan"),
                               "subset": len(measured) if len(measured) < len(valid) else None}
        vals = table[:, rd.index(name)] if name in PROPERTIES else np.zeros(0)
        vals = vals[np.isfinite(vals)]
        row["n_measured"] = int(vals.size)
        row["mean"] = float(vals.mean()) if vals.size else float("nan")
        row["sd"] = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
        row["mae"] = float(np.abs(vals - float(requested)).mean()) if vals.size else float("nan")
        out[name] = row
    return out


def format_achieved(achieved: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per property of :func:`achieved_properties`, e.g.
    ``qed: requested 0.90, achieved 0.84 ± 0.07 over 912 valid (validity 0.912)``."""
    def num(v: float) -> str:  # 2 decimals (1 from 100 on: a molecular weight)
        return "n/a" if not math.isfinite(v) else f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"

    lines = []
    for name, a in achieved.items():
        asked = num(a["requested"])
        if math.isfinite(a["requested"]) and float(asked) != a["requested"]:
            asked = f"{a['requested']:g}"  # shown as asked, not rounded
        valid = f"{a['n_valid']} valid (validity {a['validity']:.3f})"
        if not a["computable"]:
            got = f"not computable from a molecule (a data-file column); {valid}"
        elif not a["n_measured"]:
            got = f"nothing to measure: {valid}"
        else:
            over = f"the first {a['subset']} of " if a.get("subset") else ""
            got = f"{num(a['mean'])}{' ± ' + num(a['sd']) if math.isfinite(a['sd']) else ''} over {over}{valid}"
        lines.append(f"{name}: requested {asked}, achieved {got}")
    return lines


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
    col = file_smiles_column(list(df.columns), smiles_col, path)
    canon = canonicalize_many(df[col].astype(str).tolist(), policy or DEFAULT_POLICY)
    table = pd.DataFrame({"canonical": canon, **{c: pd.to_numeric(df[c], errors="coerce") for c in cols}})
    means = table.dropna(subset=["canonical"]).groupby("canonical")[cols].mean()
    return means.reindex(list(smiles)).to_numpy(dtype=np.float64)


def validate_condition_fields(config: Any) -> None:
    """Shared ``validate`` for configs with ``condition`` / ``cond_dropout`` fields."""
    if config.condition:
        ConditionSpace.from_dict(config.condition)
    if not 0.0 <= float(config.cond_dropout) < 1.0:
        raise ConfigError(f"cond_dropout must be in [0, 1), got {config.cond_dropout!r}")


def condition_text(condition: dict[str, float]) -> str:
    """``{"qed": 0.9, "logp": 2.5}`` -> ``"qed=0.9;logp=2.5"`` (the score table's condition column)."""
    return ";".join(f"{k}={v:g}" for k, v in condition.items())
