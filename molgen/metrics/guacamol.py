"""GuacaMol distribution-learning scores (Brown et al. 2019, ``guacamol/distribution_learning_benchmark.py``).

KL-divergence score: for 4 continuous descriptors (BertzCT, MolLogP, MolWt, TPSA) a Gaussian-KDE KL
divergence evaluated on 1,000 points, for 5 integer descriptors a 10-bin histogram KL, and the KDE KL of
each set's nearest-neighbour similarity (ECFP4, 4096 bits); score = mean of exp(-KL). FCD score =
exp(-0.2 FCD).
"""

from __future__ import annotations

import numpy as np


def continuous_kldiv(x_baseline: np.ndarray, x_sampled: np.ndarray) -> float:
    from scipy.stats import entropy, gaussian_kde

    x_baseline = np.asarray(x_baseline, dtype=np.float64) + 1e-5
    x_sampled = np.asarray(x_sampled, dtype=np.float64) + 1e-5
    kde_p = gaussian_kde(x_baseline)
    kde_q = gaussian_kde(x_sampled)
    both = np.hstack([x_baseline, x_sampled])
    x_eval = np.linspace(both.min(), both.max(), num=1000)
    return float(entropy(kde_p(x_eval) + 1e-10, kde_q(x_eval) + 1e-10))


def discrete_kldiv(x_baseline: np.ndarray, x_sampled: np.ndarray) -> float:
    from scipy.stats import entropy

    p, bins = np.histogram(x_baseline, bins=10, density=True)
    q, _ = np.histogram(x_sampled, bins=bins, density=True)
    return float(entropy(p + 1e-10, q + 1e-10))


def kl_score(ref_desc: np.ndarray, ref_sim: np.ndarray, gen_desc: np.ndarray, gen_sim: np.ndarray
             ) -> tuple[float, dict[str, float]]:
    """GuacaMol KL-divergence score and the per-descriptor divergences."""
    from molgen.metrics.featurize import GUAC_DESCRIPTORS

    kl: dict[str, float] = {}
    for i, name in enumerate(GUAC_DESCRIPTORS):
        f = continuous_kldiv if i < 4 else discrete_kldiv
        try:
            kl[name] = f(ref_desc[:, i], gen_desc[:, i])
        except Exception:  # singular KDE (e.g. all values equal): GuacaMol would crash; score it 0
            kl[name] = float('inf')
    try:
        kl['internal_similarity'] = continuous_kldiv(ref_sim, gen_sim)
    except Exception:
        kl['internal_similarity'] = float('inf')
    scores = [np.exp(-v) for v in kl.values()]
    return float(np.mean(scores)), kl


def fcd_score(fcd: float) -> float:
    return float(np.exp(-0.2 * fcd))
