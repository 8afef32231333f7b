"""GuacaMol distribution-learning scores (Brown et al. 2019, ``guacamol/distribution_learning_benchmark.py``).

KL-divergence score: for 4 continuous descriptors (BertzCT, MolLogP, MolWt, TPSA) a Gaussian-KDE KL
divergence evaluated on 1,000 points, for 5 integer descriptors a 10-bin histogram KL, and the KDE KL of
each set's nearest-neighbour similarity (ECFP4, 4096 bits); score = mean of exp(-KL). FCD score =
exp(-0.2 FCD). The formulas are GuacaMol's ``guacamol/utils/chemistry.py`` (``continuous_kldiv``,
``discrete_kldiv``); ``tests/test_guacamol_kl.py`` pins them against a transcription of that code.

Where a continuous descriptor's KDE is degenerate (one value, or all values equal: GuacaMol crashes with
an older SciPy and, with a newer one, gets a spike whose KL of ~50 scores ~0), the descriptor's KL is
reported as failed with the reason, and the score is undefined (NaN with a note) rather than that
descriptor silently counting as 0. Non-finite descriptor values are set to
0, as GuacaMol's ``_calculate_pc_descriptors`` does, and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import entropy, gaussian_kde

from molgen.metrics.featurize import GUAC_DESCRIPTORS


def continuous_kldiv(x_baseline: np.ndarray, x_sampled: np.ndarray) -> float:
    """KL(P_baseline || Q_sampled) of Gaussian KDEs on 1,000 points spanning both sets."""
    x_baseline = np.asarray(x_baseline, dtype=np.float64)
    x_sampled = np.asarray(x_sampled, dtype=np.float64)
    kde_p = gaussian_kde(x_baseline)
    kde_q = gaussian_kde(x_sampled)
    both = np.hstack([x_baseline, x_sampled])
    x_eval = np.linspace(both.min(), both.max(), num=1000)
    return float(entropy(kde_p(x_eval) + 1e-10, kde_q(x_eval) + 1e-10))


def discrete_kldiv(x_baseline: np.ndarray, x_sampled: np.ndarray) -> float:
    """KL of 10-bin density histograms (bins from the baseline; sampled values outside them are dropped)."""
    p, bins = np.histogram(x_baseline, bins=10, density=True)
    q, _ = np.histogram(x_sampled, bins=bins, density=True)
    return float(entropy(p + 1e-10, q + 1e-10))


@dataclass
class KLResult:
    """The GuacaMol KL score with every divergence it averages and the ones that could not be computed."""

    score: float
    kl: dict[str, float]                       # descriptor -> KL divergence (NaN where it failed)
    failed: dict[str, str] = field(default_factory=dict)  # descriptor -> why
    nonfinite: dict[str, int] = field(default_factory=dict)  # descriptor -> values set to 0

    def note(self) -> str | None:
        if not self.failed:
            return None
        return ("undefined: no KL divergence for " + "; ".join(f"{k} ({v})" for k, v in self.failed.items())
                + " (GuacaMol itself would stop with an error); the other divergences are in the report")

    def to_dict(self) -> dict:
        return {"kl": self.kl, "failed": self.failed, "nonfinite_set_to_0": self.nonfinite}


def kl_divergences(ref_desc: np.ndarray, ref_sim: np.ndarray, gen_desc: np.ndarray, gen_sim: np.ndarray
                   ) -> KLResult:
    """Per-descriptor KL divergences of GuacaMol's KL benchmark and its score (NaN if any failed)."""
    kl: dict[str, float] = {}
    failed: dict[str, str] = {}
    nonfinite: dict[str, int] = {}
    ref_desc, gen_desc = np.array(ref_desc, dtype=np.float64), np.array(gen_desc, dtype=np.float64)
    for name, arr in (("reference", ref_desc), ("generated", gen_desc)):
        bad = ~np.isfinite(arr)
        for i in np.flatnonzero(bad.any(axis=0)) if arr.ndim == 2 else []:
            nonfinite[f"{GUAC_DESCRIPTORS[i]} ({name})"] = int(bad[:, i].sum())
        arr[bad] = 0.0
    columns = [(name, ref_desc[:, i], gen_desc[:, i], continuous_kldiv if i < 4 else discrete_kldiv)
               for i, name in enumerate(GUAC_DESCRIPTORS)]
    columns.append(("internal_similarity", np.asarray(ref_sim, np.float64), np.asarray(gen_sim, np.float64),
                    continuous_kldiv))
    for name, ref, gen, f in columns:
        if f is continuous_kldiv:
            flat = [(w, x) for w, x in (("generated", gen), ("reference", ref)) if len(x) < 2 or np.ptp(x) == 0]
            if flat:  # a KDE of one value: old SciPy raises, new SciPy returns a spike (KL ~ 50, score ~ 0)
                w, x = flat[0]
                kl[name] = float("nan")
                failed[name] = (f"{len(x)} {w} value(s)" if len(x) < 2 else
                                f"all {len(x)} {w} values equal ({x[0]:g}): the KDE is degenerate")
                continue
        try:
            with np.errstate(all="ignore"):
                v = f(ref, gen)
            if not np.isfinite(v):
                raise FloatingPointError("non-finite divergence")
            kl[name] = v
        except Exception as exc:  # singular KDE, empty set: noted, never scored as 0
            kl[name] = float("nan")
            failed[name] = f"{type(exc).__name__}: {exc}"
    score = float("nan") if failed else float(np.mean([np.exp(-v) for v in kl.values()]))
    return KLResult(score, kl, failed, nonfinite)


def kl_score(ref_desc: np.ndarray, ref_sim: np.ndarray, gen_desc: np.ndarray, gen_sim: np.ndarray
             ) -> tuple[float, dict[str, float]]:
    """GuacaMol KL-divergence score and the per-descriptor divergences (see :func:`kl_divergences`)."""
    r = kl_divergences(ref_desc, ref_sim, gen_desc, gen_sim)
    return r.score, r.kl


def fcd_score(fcd: float) -> float:
    return float(np.exp(-0.2 * fcd))
