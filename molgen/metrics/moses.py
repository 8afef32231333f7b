"""MOSES metric definitions (Polykovskiy et al. 2020, ``moses/metrics/metrics.py``) with the
``precalc(reference) / compute(generated, precalc)`` split.

Each metric's ``precalc`` takes a :class:`~molgen.metrics.reference.ReferenceStats` and returns the
small dict it needs; ``compute`` takes a :class:`GeneratedSet` (features of the generated molecules,
computed once for all metrics) and that dict. Every result is a float; a metric that is undefined for
the input (fewer than 2 molecules for FCD, no valid molecule, ...) returns NaN and records the reason in
``GeneratedSet.notes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from scipy.stats import wasserstein_distance

from molgen.metrics.chemnet import frechet_distance, gaussian_stats
from molgen.metrics.fingerprints import max_tanimoto, mean_tanimoto_powers, popcount
from molgen.metrics.generated import GeneratedSet, featurize_generated
from molgen.metrics.reference import ReferenceStats, get_reference

NAN = float('nan')


def generated_set(smiles: Sequence[str | None], n_jobs: int = 1, device: str = 'cpu') -> GeneratedSet:
    """Features of generated SMILES for standalone metric use (the Evaluator computes the same)."""
    return featurize_generated(smiles, n_jobs=n_jobs, device=device)


class Metric:
    """A metric with a reference: ``compute(generated, precalc(reference))``.

    ``precalc`` takes :class:`ReferenceStats` or a list of reference SMILES (its statistics are then
    computed, not cached); ``compute`` takes a :class:`GeneratedSet` or a list of generated SMILES.
    Precalculate once, compute for many samples.
    """

    name: ClassVar[str] = ''
    components: ClassVar[frozenset[str]] = frozenset()

    def precalc(self, ref: ReferenceStats | Sequence[str]) -> dict[str, Any]:
        return self._precalc(self._as_ref(ref))

    def compute(self, gen: GeneratedSet | Sequence[str | None], pre: dict[str, Any]) -> float:
        if not isinstance(gen, GeneratedSet):
            gen = generated_set(gen)
        return self._compute(gen, pre)

    def __call__(self, gen: GeneratedSet | Sequence[str | None], ref: ReferenceStats | Sequence[str]) -> float:
        return self.compute(gen, self.precalc(ref))

    def _as_ref(self, ref: ReferenceStats | Sequence[str]) -> ReferenceStats:
        if isinstance(ref, ReferenceStats):
            return ref
        return get_reference(list(ref), set(self.components), use_cache=False, use_shipped=False)

    def _precalc(self, ref: ReferenceStats) -> dict[str, Any]:
        return {}

    def _compute(self, gen: GeneratedSet, pre: dict[str, Any]) -> float:
        raise NotImplementedError


def fraction_valid(gen: GeneratedSet) -> float:
    """Valid samples / all samples (empty and None count as invalid)."""
    if gen.n == 0:
        gen.notes['valid'] = 'no samples'
        return NAN
    return gen.n_valid / gen.n


def unique_at_k(gen: GeneratedSet, k: int) -> float:
    """Distinct canonical SMILES among the first k valid samples / min(k, n_valid)."""
    canon = gen.valid_canon
    if not canon:
        gen.notes[f'unique@{k}'] = 'no valid molecules'
        return NAN
    if len(canon) < k:
        gen.notes[f'unique@{k}'] = f'only {len(canon)} valid molecules (< {k}); computed over all of them'
    head = canon[:k]
    return len(set(head)) / len(head)


def novelty(gen: GeneratedSet, train: Any) -> float:
    """Unique valid canonical SMILES not in train / unique valid (train SMILES compared as given).

    ``train``: a set of SMILES, or a :class:`molgen.data.hashes.HashSet` (the Evaluator's: 64-bit hashes
    of the train rows, looked up in bulk)."""
    uniq = set(gen.valid_canon)
    if not uniq:
        gen.notes['Novelty'] = 'no valid molecules'
        return NAN
    if hasattr(train, 'contains_many'):
        return int((~train.contains_many(list(uniq))).sum()) / len(uniq)
    return len(uniq - set(train)) / len(uniq)


def cos_similarity(ref_counts: dict, gen_counts: dict) -> float:
    """MOSES ``cos_similarity`` of two count dictionaries (NaN if either is empty)."""
    if len(ref_counts) == 0 or len(gen_counts) == 0:
        return NAN
    keys = list(set(ref_counts) | set(gen_counts))
    r = np.array([ref_counts.get(k, 0) for k in keys], dtype=np.float64)
    g = np.array([gen_counts.get(k, 0) for k in keys], dtype=np.float64)
    return float(np.dot(r, g) / (np.linalg.norm(r) * np.linalg.norm(g)))


class FCD(Metric):
    """Fréchet ChemNet distance between generated (valid, canonical) and reference activations."""

    name = 'FCD'
    components = frozenset({'fcd'})

    def _precalc(self, ref: ReferenceStats) -> dict[str, Any]:
        return {'mu': ref.fcd_mu, 'sigma': ref.fcd_sigma}

    def _compute(self, gen: GeneratedSet, pre: dict[str, Any]) -> float:
        if gen.activations is None or len(gen.activations) < 2:
            gen.notes['FCD'] = f'FCD needs at least 2 valid molecules ({gen.n_valid} given)'
            return NAN
        if pre.get('mu') is None:
            gen.notes['FCD'] = 'reference has fewer than 2 molecules'
            return NAN
        g = gaussian_stats(gen.activations)
        return frechet_distance(pre['mu'], pre['sigma'], g['mu'], g['sigma'])


class SNN(Metric):
    """Mean over valid generated molecules of the max Tanimoto (Morgan r2, 1024 bits) to the reference."""

    name = 'SNN'
    components = frozenset({'fp'})

    def _precalc(self, ref: ReferenceStats) -> dict[str, Any]:
        return {'fp': ref.fp, 'counts': popcount(ref.fp)}

    def _compute(self, gen: GeneratedSet, pre: dict[str, Any]) -> float:
        if gen.fp is None or len(gen.fp) == 0:
            gen.notes['SNN'] = 'no valid molecules'
            return NAN
        return float(np.mean(max_tanimoto(gen.fp, pre['fp'], pre['counts'])))


class Frag(Metric):
    """Cosine similarity of BRICS fragment counts."""

    name = 'Frag'
    components = frozenset({'counts'})

    def _precalc(self, ref: ReferenceStats) -> dict[str, Any]:
        return {'counts': ref.frag}

    def _compute(self, gen: GeneratedSet, pre: dict[str, Any]) -> float:
        return cos_similarity(pre['counts'], gen.frag or {})


class Scaf(Metric):
    """Cosine similarity of Bemis–Murcko scaffold counts (scaffolds with >= 2 rings)."""

    name = 'Scaf'
    components = frozenset({'counts'})

    def _precalc(self, ref: ReferenceStats) -> dict[str, Any]:
        return {'counts': ref.scaf}

    def _compute(self, gen: GeneratedSet, pre: dict[str, Any]) -> float:
        counts = Counter(s for s in (gen.scaf or []) if s is not None)
        return cos_similarity(pre['counts'], counts)


class Wasserstein(Metric):
    """1-D Wasserstein distance of one property between generated and reference."""

    components = frozenset({'props'})

    def __init__(self, column: int, name: str) -> None:
        self.column = column
        self.name = name  # type: ignore[misc]

    def _precalc(self, ref: ReferenceStats) -> dict[str, Any]:
        return {'values': ref.props[:, self.column]}

    def _compute(self, gen: GeneratedSet, pre: dict[str, Any]) -> float:
        if gen.props is None or len(gen.props) == 0:
            gen.notes[self.name] = 'no valid molecules'
            return NAN
        return float(wasserstein_distance(pre['values'], gen.props[:, self.column]))


def internal_diversity(gen: GeneratedSet) -> tuple[float, float]:
    """IntDiv and IntDiv2: 1 - mean over molecules of the (power-p) mean Tanimoto to all valid
    generated molecules, self included (MOSES ``internal_diversity``)."""
    if gen.fp is None or len(gen.fp) == 0:
        gen.notes['IntDiv'] = 'no valid molecules'
        return NAN, NAN
    m1, m2 = mean_tanimoto_powers(gen.fp)
    return float(1 - m1.mean()), float(1 - np.sqrt(m2).mean())


def fraction_filters(gen: GeneratedSet) -> float:
    """Valid molecules passing the MCF / PAINS / atom / charge / ring-size filters / valid."""
    if gen.filters is None or len(gen.filters) == 0:
        gen.notes['Filters'] = 'no valid molecules'
        return NAN
    return float(np.mean(gen.filters))
