"""Mode-dropping diagnostics: what a sample misses of the reference, each next to its real-vs-real value.

Every number here depends on the sample size, so each is computed **at equal sample sizes** (the
reference subsampled to the generated n with a fixed seed) and reported with the same number for a
second, disjoint real sample of that n (``.../real``): a generator is judged against what real
molecules score at its n, not against 1. (Comparing 905 generated with 5,000 reference molecules alone
moves coverage of *real* molecules from 0.97 to 0.58.)

* :func:`recall_coverage_at_equal_n`: k-NN precision / recall (Kynkäänniemi et al. 2019) and coverage
  (Naeem et al. 2020) on Morgan fingerprints (Tanimoto distance), k = 5. Mode dropping shows as high
  precision with low recall / coverage.
* :func:`scaffold_coverage`: share of the 100 most common reference scaffolds present in the sample.
* :class:`Bins`: k-means bins (plain numpy, k-means++ with a fixed seed) fitted on reference points
  (fingerprints, or the GAN's training latents); occupancy (share of bins with at least one sample),
  total variation and Jensen-Shannon divergence of the sample's bin histogram against the reference's.
  One occupied bin is a collapse to one mode.
* :func:`fcd_terms`: the FCD split into its mean term ``|mu_g - mu_r|^2`` and covariance term
  ``tr(S_g + S_r - 2 (S_g S_r)^(1/2))`` (collapse inflates the covariance term).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from molgen.metrics.chemnet import frechet_distance, gaussian_stats
from molgen.metrics.fingerprints import precision_recall_coverage

NAN = float("nan")


# --- k-NN precision / recall / coverage ---------------------------------------------------------
def recall_coverage_at_equal_n(real: np.ndarray, fake: np.ndarray, *, n_max: int = 5000, k: int = 5,
                               seed: int = 0) -> tuple[dict[str, float], dict[str, float], int]:
    """(generated, real-vs-real, n): precision / recall / coverage with both sides of size ``n``.

    ``n = min(len(fake), len(real), n_max)``; ``fake`` and ``real`` (bit-packed fingerprints) are
    subsampled to ``n`` with ``seed``. The real-vs-real values compare that real subsample with a
    second, disjoint one of the same size (NaN when the reference has fewer than ``2 n`` molecules).
    """
    nan = {"precision": NAN, "recall": NAN, "coverage": NAN}
    n = min(len(fake), len(real), n_max)
    if n <= k:
        return dict(nan), dict(nan), n
    rng = np.random.default_rng(seed)
    f = fake if len(fake) == n else fake[np.sort(rng.choice(len(fake), n, replace=False))]
    r = real if len(real) == n else real[np.sort(rng.choice(len(real), n, replace=False))]
    gen = precision_recall_coverage(r, f, k=k)
    if len(real) < 2 * n:
        return gen, dict(nan), n
    perm = np.random.default_rng(seed + 1).permutation(len(real))
    r1, r2 = real[np.sort(perm[:n])], real[np.sort(perm[n:2 * n])]
    return gen, precision_recall_coverage(r1, r2, k=k), n


# --- scaffolds ----------------------------------------------------------------------------------
def top_scaffolds(ref_counts: dict[str, int], top: int = 100) -> list[str]:
    """The ``top`` most common reference scaffolds (ties broken by first occurrence)."""
    return [s for s, _ in Counter(ref_counts).most_common(top)]


def scaffold_coverage(scaffolds: Sequence[str | None], ref_counts: dict[str, int], top: int = 100) -> float:
    """Share of the ``top`` most common reference scaffolds that occur in ``scaffolds``."""
    best = top_scaffolds(ref_counts, top)
    if not best:
        return NAN
    have = {s for s in scaffolds if s is not None}
    return sum(s in have for s in best) / len(best)


def real_scaffold_coverage(ref_counts: dict[str, int], n_ref: int, n: int, top: int = 100, seed: int = 0) -> float:
    """Scaffold coverage of ``n`` real molecules drawn (without replacement, ``seed``) from a reference of
    ``n_ref`` molecules with these scaffold counts (molecules without a scaffold make up the rest)."""
    if not ref_counts or n < 1:
        return NAN
    names = list(ref_counts)
    counts = np.array([ref_counts[s] for s in names], dtype=np.int64)
    labels = np.repeat(np.arange(len(names) + 1), np.r_[counts, max(0, n_ref - int(counts.sum()))])
    pick = np.random.default_rng(seed).choice(len(labels), min(n, len(labels)), replace=False)
    drawn = [names[i] for i in labels[pick] if i < len(names)]
    return scaffold_coverage(drawn, ref_counts, top)


# --- k-means bins -------------------------------------------------------------------------------
def _float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float64)


def _sq_dist(x: np.ndarray, c: np.ndarray, x2: np.ndarray | None = None) -> np.ndarray:
    x2 = (x * x).sum(1) if x2 is None else x2
    return np.maximum(x2[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :], 0.0)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 30) -> np.ndarray:
    """Centres [k, d] of Lloyd's k-means with k-means++ seeding (fixed ``seed``); float32 input stays
    float32 (fingerprint bits), anything else is float64."""
    x = _float(x)
    n = len(x)
    if n == 0 or k < 1:
        raise ValueError(f"k-means needs points and k >= 1 (got {n} points, k = {k})")
    k = min(k, n)
    rng = np.random.default_rng(seed)
    x2 = (x * x).sum(1)
    centres = [x[rng.integers(n)]]
    d = _sq_dist(x, np.array(centres), x2)[:, 0]
    for _ in range(1, k):
        w = d.astype(np.float64)
        p = w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
        d = np.minimum(d, _sq_dist(x, centres[-1][None], x2)[:, 0])
    c = np.array(centres)
    for _ in range(iters):
        dist = _sq_dist(x, c, x2)
        a = dist.argmin(1)
        new = np.zeros_like(c)
        np.add.at(new, a, x)
        size = np.bincount(a, minlength=k)
        empty = size == 0
        new[~empty] /= size[~empty, None]
        if empty.any():  # re-seed empty clusters at the points farthest from their centres
            far = np.argsort(-dist[np.arange(n), a])[: int(empty.sum())]
            new[empty] = x[far]
        if np.allclose(new, c):
            c = new
            break
        c = new
    return c


def _js(p: np.ndarray, q: np.ndarray) -> float:
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log(a[nz] / b[nz])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


class Bins:
    """k-means bins over reference points; occupancy / TV / JS of a sample's bin histogram.

    ``fit`` points are the reference (fingerprint bits as 0/1 floats, or latents); the reference bin
    proportions are those of the fitted points. ``real`` (optional) are held-out real points used for
    the real-vs-real value at the sample's n.
    """

    def __init__(self, points: np.ndarray, k: int = 64, *, seed: int = 0, iters: int = 30) -> None:
        points = _float(points)
        self.k_requested = k
        self.seed = seed
        self.centres = kmeans(points, k, seed=seed, iters=iters)
        self.k = len(self.centres)
        self.ref_hist = self.histogram(points)

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Bins:
        """Bins saved with :meth:`state` (no refit: the same centres and reference proportions)."""
        self = cls.__new__(cls)
        self.centres = np.asarray(state["centres"])
        self.ref_hist = np.asarray(state["ref_hist"])
        self.k_requested, self.seed = int(state["k_requested"]), int(state["seed"])
        self.k = len(self.centres)
        return self

    def state(self) -> dict[str, np.ndarray]:
        return {"centres": self.centres, "ref_hist": self.ref_hist, "k_requested": np.array(self.k_requested),
                "seed": np.array(self.seed)}

    def assign(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Bin index of every row of ``x``."""
        x = _float(x).astype(self.centres.dtype, copy=False)
        out = np.empty(len(x), dtype=np.int64)
        for i in range(0, len(x), chunk):
            out[i:i + chunk] = _sq_dist(x[i:i + chunk], self.centres).argmin(1)
        return out

    def histogram(self, x: np.ndarray) -> np.ndarray:
        """Bin proportions [k] of the rows of ``x``."""
        if len(x) == 0:
            return np.full(self.k, np.nan)
        return np.bincount(self.assign(x), minlength=self.k) / len(x)

    def stats(self, x: np.ndarray) -> dict[str, float]:
        """``occupied`` (share of bins with >= 1 row), ``n_occupied``, ``tv`` and ``js`` (nats) against
        the reference proportions."""
        x = np.asarray(x)
        # drop rows with NaN (e.g. molecules the encoder could not featurize); callers count them
        if x.ndim == 2 and x.dtype.kind == "f":
            x = x[np.isfinite(x).all(1)]
        if len(x) == 0:
            return {"occupied": NAN, "n_occupied": 0, "tv": NAN, "js": NAN}
        h = self.histogram(x)
        return {"occupied": float((h > 0).mean()), "n_occupied": int((h > 0).sum()),
                "tv": float(0.5 * np.abs(h - self.ref_hist).sum()), "js": _js(h, self.ref_hist)}


def unpack_fp(packed: np.ndarray) -> np.ndarray:
    """0/1 float32 matrix of bit-packed fingerprints."""
    return np.unpackbits(packed, axis=1).astype(np.float32)


def fingerprint_bins(ref_fp: np.ndarray, k: int = 64, *, n_fit: int = 10_000, seed: int = 0) -> Bins:
    """Bins fitted on up to ``n_fit`` reference fingerprints (a seeded subsample); ``k`` is capped at a
    tenth of the fitted points (at least 2), so a 200-molecule reference gets 20 bins."""
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.permutation(len(ref_fp))[:n_fit])
    k_eff = max(2, min(k, len(fit_idx) // 10))
    return Bins(unpack_fp(ref_fp[fit_idx]), k_eff, seed=seed)


def bin_stats_at_equal_n(bins: Bins, gen_points: np.ndarray, real_pool: np.ndarray, *, seed: int = 0,
                         transform=None) -> tuple[dict[str, float], dict[str, float]]:
    """(generated, real-vs-real) bin statistics; the real value uses ``len(gen_points)`` rows drawn
    without replacement from ``real_pool`` with ``seed`` (NaN when the pool is smaller).
    ``transform`` maps the drawn pool rows to points (e.g. :func:`unpack_fp`)."""
    gen = bins.stats(gen_points)
    n = len(gen_points)
    if n == 0 or len(real_pool) < n:
        return gen, {"occupied": NAN, "n_occupied": 0, "tv": NAN, "js": NAN}
    pick = np.sort(np.random.default_rng(seed).choice(len(real_pool), n, replace=False))
    real = real_pool[pick]
    return gen, bins.stats(transform(real) if transform is not None else real)


# --- FCD terms ----------------------------------------------------------------------------------
def fcd_terms(mu_ref: np.ndarray, sigma_ref: np.ndarray, act: np.ndarray) -> tuple[float, float]:
    """(mean term, covariance term) of the FCD of activations ``act`` against (mu, sigma); they sum to
    :func:`molgen.metrics.chemnet.frechet_distance`."""
    if act is None or len(act) < 2 or mu_ref is None:
        return NAN, NAN
    g = gaussian_stats(act)
    diff = np.asarray(g["mu"], np.float64) - np.asarray(mu_ref, np.float64)
    mean_term = float(diff @ diff)
    total = frechet_distance(mu_ref, sigma_ref, g["mu"], g["sigma"])
    return mean_term, total - mean_term
