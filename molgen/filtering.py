"""Filter candidate molecules the way a medicinal chemist triages them, saying why each one went.

:func:`filter_molecules` takes a DataFrame (every column and the index kept), a Series or a list of
SMILES and returns the same rows, in order, with added columns: ``canonical`` (molgen's policy: RDKit
canonical SMILES of the largest fragment; None if invalid), the properties ``qed``, ``logp``, ``mw``,
``sa``, ``tpsa``, ``hbd``, ``hba``, ``rotb`` (rotatable bonds), ``keep`` (bool; written ``1`` / ``0`` in
text files, ``keep=1`` / ``keep=0`` on a ``.smi`` line: :mod:`molgen.data.io`) and ``reason``.

``reason`` lists **every** failed criterion, ``;``-separated, in the order below (empty when kept), so
a chemist sees all that is wrong with a molecule, not only the first thing:

1. ``invalid`` — does not parse (nothing else is checked for it);
2. ``duplicate`` — the same canonical molecule as an earlier row (the first occurrence is kept);
3. ``not_novel`` — in ``novel_against`` (a file, catalog name such as ``moses:train`` or a list);
4. ``mcf:<name>`` / ``pains:<name>`` — each structural alert matched (MOSES's MCF and PAINS lists,
   matched on the molecule with explicit hydrogens as MOSES does);
5. ``qed<0.5`` / ``mw>500`` ... — each property outside its ``ranges`` entry;
6. ``lipinski`` (more than one of MW > 500, logP > 5, HBD > 5, HBA > 10) / ``veber`` (rotatable bonds
   > 10 or TPSA > 140).

Nothing is removed from the returned table: select ``df[df.keep]`` for the survivors.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from rdkit import Chem
from rdkit.Chem import QED, Crippen, Descriptors, Lipinski, rdMolDescriptors, rdSubstructLibrary

from molgen.chem import DEFAULT_POLICY, quiet_rdkit, standardize
from molgen.data.hashes import HashSet, canonical_hashes
from molgen.data.io import smiles_column
from molgen.errors import ConfigError, strict
from molgen.metrics.featurize import alerts_dir, sascorer
from molgen.parallel import map_chunks

PROPERTIES = ("qed", "logp", "mw", "sa", "tpsa", "hbd", "hba", "rotb")
ALERTS = ("mcf", "pains")
RULES = ("lipinski", "veber")


@lru_cache(maxsize=1)
def alert_patterns() -> dict[str, list[tuple[str, Any]]]:
    """``{"mcf": [(name, pattern)], "pains": [...]}`` from the lists shipped in ``data/moses``."""
    mcf = pd.read_csv(alerts_dir() / "mcf.csv")
    pains = pd.read_csv(alerts_dir() / "wehi_pains.csv", names=["smarts", "names"])
    out: dict[str, list[tuple[str, Any]]] = {"mcf": [], "pains": []}
    for _, r in mcf.iterrows():
        out["mcf"].append((str(r["names"]).strip(), Chem.MolFromSmarts(str(r["smarts"]).strip())))
    for _, r in pains.iterrows():
        m = re.search(r"regId=([^(>]+)", str(r["names"]))
        out["pains"].append((m.group(1) if m else str(r["names"]).strip(), Chem.MolFromSmarts(str(r["smarts"]).strip())))
    return out


def molecule_properties(mol: Any) -> dict[str, float]:
    """QED, Crippen logP, molecular weight, SA score, TPSA, H-bond donors / acceptors, rotatable bonds."""
    return {"qed": QED.qed(mol), "logp": Crippen.MolLogP(mol), "mw": Descriptors.MolWt(mol),
            "sa": sascorer().calculateScore(mol), "tpsa": rdMolDescriptors.CalcTPSA(mol),
            "hbd": Lipinski.NumHDonors(mol), "hba": Lipinski.NumHAcceptors(mol),
            "rotb": rdMolDescriptors.CalcNumRotatableBonds(mol)}


def _properties_chunk(smiles: Sequence[str]) -> np.ndarray:
    """[k, len(PROPERTIES)] for canonical SMILES (runs in a worker for large inputs)."""
    with quiet_rdkit():
        rows = [molecule_properties(Chem.MolFromSmiles(s)) for s in smiles]
    return np.array([[r[k] for k in PROPERTIES] for r in rows], dtype=float).reshape(-1, len(PROPERTIES))


def _rule_fails(rule: str, p: dict[str, float]) -> bool:
    if rule == "lipinski":
        return sum([p["mw"] > 500, p["logp"] > 5, p["hbd"] > 5, p["hba"] > 10]) > 1
    return p["rotb"] > 10 or p["tpsa"] > 140  # veber


def _check_ranges(ranges: dict[str, Any] | None) -> dict[str, tuple[float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None]] = {}
    for key, bounds in (ranges or {}).items():
        if key not in PROPERTIES:
            raise ConfigError(f"ranges: unknown property {key!r}; accepted: {', '.join(PROPERTIES)}")
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2 or not all(
                b is None or (isinstance(b, (int, float)) and not isinstance(b, bool)) for b in bounds):
            raise ConfigError(f"ranges[{key!r}] must be (min, max) with None for an open end, got {bounds!r}")
        lo, hi = bounds
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"ranges[{key!r}]: min {lo} > max {hi}")
        out[key] = (lo, hi)
    return out


def _as_names(value: str | Sequence[str] | None, what: str, accepted: Sequence[str]) -> list[str]:
    if value is None or value is False:
        return []
    names = [value] if isinstance(value, str) else list(value)
    for n in names:
        if n not in accepted:
            raise ConfigError(f"{what}: unknown value {n!r}; accepted: {', '.join(accepted)}")
    return names


def _frame(data: Any, smiles_col: str | None) -> tuple[pd.DataFrame, str]:
    if hasattr(data, "to_frame") and hasattr(data, "canonical") and hasattr(data, "smiles"):  # a SampleResult
        data = data.to_frame()
        smiles_col = smiles_col or "smiles"
    if isinstance(data, pd.DataFrame):
        return data.copy(), smiles_column(data, smiles_col)
    if isinstance(data, pd.Series):
        return pd.DataFrame({"smiles": data}), "smiles"
    if isinstance(data, (str, bytes)):
        raise TypeError("filter_molecules takes a DataFrame, a Series or a list of SMILES, not a single string; "
                        f"for one molecule pass [{data!r}]")
    return pd.DataFrame({"smiles": list(data)}), "smiles"


def _reference_set(novel_against: Any, policy: Any, n_jobs: int = 1) -> Any:
    """The canonical molecules of ``novel_against`` as 64-bit hashes (:mod:`molgen.data.hashes`):
    shipped for ``moses:train`` under the default policy (no molecule standardised), else computed once
    (with a progress bar) and cached on disk for files and catalog names."""
    if isinstance(novel_against, (set, frozenset)):
        novel_against = list(novel_against)
    return HashSet(canonical_hashes(novel_against, policy, n_jobs=n_jobs))


@strict
def filter_molecules(data: Any, *, smiles_col: str | None = None, valid: bool = True, unique: bool = True,
                     novel_against: Any = None, alerts: str | Sequence[str] | None = ALERTS,
                     ranges: dict[str, tuple[float | None, float | None]] | None = None,
                     rules: str | Sequence[str] | None = (), policy: Any = None, n_jobs: int = 1) -> pd.DataFrame:
    """Every input row with ``canonical``, the properties, ``keep`` and ``reason`` (see the module docstring).

    ``alerts``: any of ``"mcf"``, ``"pains"`` (None or ``()`` for none); ``ranges``: ``{"qed": (0.5, None),
    "mw": (None, 500)}`` over :data:`PROPERTIES`; ``rules``: any of ``"lipinski"``, ``"veber"``;
    ``valid=False`` keeps invalid rows (no property can be computed for them), ``unique=False`` keeps
    duplicates. ``policy``: the :class:`~molgen.chem.Policy` for canonical forms (default molgen's).
    ``n_jobs`` > 1 computes the properties in worker processes (worth it above a few thousand rows).
    """
    policy = policy or DEFAULT_POLICY
    alert_names = _as_names(alerts, "alerts", ALERTS)
    rule_names = _as_names(rules, "rules", RULES)
    bounds = _check_ranges(ranges)
    df, col = _frame(data, smiles_col)
    reference = _reference_set(novel_against, policy, n_jobs) if novel_against is not None else None

    n = len(df)
    reasons: list[list[str]] = [[] for _ in range(n)]
    canonical: list[str | None] = []
    mols: list[Any] = []
    props = {k: np.full(n, np.nan) for k in PROPERTIES}
    seen: set[str] = set()
    with quiet_rdkit():
        for i, s in enumerate(df[col].tolist()):
            c = standardize(s, policy)[0] if isinstance(s, str) else None
            canonical.append(c)
            mol = Chem.MolFromSmiles(c) if c is not None else None
            mols.append(mol)
            if mol is None:
                if valid:
                    reasons[i].append("invalid")
                continue
            if unique:
                if c in seen:
                    reasons[i].append("duplicate")
                seen.add(c)
            if reference is not None and c in reference:
                reasons[i].append("not_novel")
        ok = [i for i, m in enumerate(mols) if m is not None]
        if ok:
            values = np.concatenate(map_chunks(_properties_chunk, [canonical[i] for i in ok], n_jobs,
                                               chunk_size=2000, desc="properties"))
            for j, k in enumerate(PROPERTIES):
                props[k][ok] = values[:, j]
        if alert_names:
            idx = [i for i, m in enumerate(mols) if m is not None]
            lib = rdSubstructLibrary.SubstructLibrary(rdSubstructLibrary.MolHolder(),
                                                      rdSubstructLibrary.PatternHolder())
            for i in idx:
                lib.AddMol(Chem.AddHs(mols[i]))
            if idx:
                for kind in alert_names:
                    for name, pattern in alert_patterns()[kind]:
                        for j in lib.GetMatches(pattern, maxResults=len(idx) + 1, numThreads=1):
                            reasons[idx[j]].append(f"{kind}:{name}")
    for i, m in enumerate(mols):
        if m is None:
            continue
        values = {k: props[k][i] for k in PROPERTIES}
        for key, (lo, hi) in bounds.items():
            if lo is not None and values[key] < lo:
                reasons[i].append(f"{key}<{lo:g}")
            if hi is not None and values[key] > hi:
                reasons[i].append(f"{key}>{hi:g}")
        reasons[i].extend(r for r in rule_names if _rule_fails(r, values))
    df["canonical"] = canonical
    for k in PROPERTIES:
        df[k] = props[k]
    df["keep"] = [not r for r in reasons]
    df["reason"] = [";".join(r) for r in reasons]
    df.attrs["filter"] = {"valid": valid, "unique": unique, "novel_against": None if novel_against is None else
                          (str(novel_against) if isinstance(novel_against, str) else "<list>"),
                          "alerts": alert_names, "ranges": {k: list(v) for k, v in bounds.items()},
                          "rules": rule_names}
    return df


@strict
def summary(df: pd.DataFrame) -> str:
    """``kept 412 of 1000; invalid 30, duplicate 10, pains 5, qed 120`` (a row counts once per criterion)."""
    counts: Counter[str] = Counter()
    for r in df["reason"]:
        if r:
            counts.update({x.split(":")[0].split("<")[0].split(">")[0] for x in r.split(";")})
    gone = ", ".join(f"{k} {v}" for k, v in counts.most_common())
    return f"kept {int(df['keep'].sum())} of {len(df)}" + (f"; removed for: {gone}" if gone else "")
