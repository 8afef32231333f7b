"""Features of a generated sample: :class:`GeneratedSet` and the one function that computes it.

Both the metric definitions (``molgen.metrics.moses``, for standalone use on a list of SMILES) and the
:class:`~molgen.metrics.evaluator.Evaluator` use :func:`featurize_generated`; neither imports the other.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from molgen.metrics import featurize as fz

GEN_FEATURES = ('canon', 'fcd', 'fp', 'frag', 'scaf', 'props', 'filters')
MIN_CHUNK = 500  # molecules per worker task (smaller chunks cost more in transfer than they gain)


@dataclass
class GeneratedSet:
    """Features of one generated sample, computed once and shared by all metrics."""

    raw: list
    valid: np.ndarray                    # [n] bool
    canon: list                          # [n] canonical SMILES or None
    fcd_smiles: list[str] = field(default_factory=list)  # [n_valid]
    fp: np.ndarray | None = None         # [n_valid, 128] packed Morgan r2/1024
    frag: Counter | None = None
    scaf: list | None = None             # [n_valid] scaffold or None
    props: np.ndarray | None = None      # [n_valid, 4]
    filters: np.ndarray | None = None    # [n_valid] bool
    activations: np.ndarray | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.raw)

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    @property
    def valid_canon(self) -> list[str]:
        return [c for c in self.canon if c is not None]


def activations(smiles: Sequence[str], device: str = 'cpu', n_threads: int = 1) -> np.ndarray:
    """ChemNet activations [n, 512], computed once per distinct SMILES."""
    from molgen.metrics.chemnet import get_chemnet

    if len(smiles) == 0:
        return np.zeros((0, 512), np.float32)
    uniq, inverse = np.unique(np.asarray(smiles, dtype=object), return_inverse=True)
    act = get_chemnet(device).activations(list(uniq), n_threads=n_threads)
    return act[inverse]


def featurize_generated(smiles: Sequence[str | None], n_jobs: int = 1, device: str = 'cpu',
                        timings: dict[str, float] | None = None) -> GeneratedSet:
    """All per-molecule features of a generated sample: one RDKit pass (over the shared worker pool when
    ``n_jobs > 1``), ChemNet once per distinct SMILES. ``timings['chemnet']`` gets the ChemNet seconds."""
    from molgen.parallel import map_chunks

    smiles = list(smiles)
    parts = map_chunks(fz.featurize, smiles, n_jobs, chunk_size=max(MIN_CHUNK, -(-len(smiles) // (4 * n_jobs))),
                       what=GEN_FEATURES, generated=True)
    f = fz.merge(parts) if parts else {'valid': np.zeros(0, bool), 'canon': [], 'fcd': [], 'fp': None,
                                        'frag': Counter(), 'scaf': [], 'props': None, 'filters': None}
    gen = GeneratedSet(raw=smiles, valid=f['valid'], canon=f['canon'], fcd_smiles=f['fcd'], fp=f['fp'],
                       frag=f['frag'], scaf=f['scaf'], props=f['props'], filters=f['filters'])
    t0 = time.perf_counter()
    gen.activations = activations(gen.fcd_smiles, device, n_jobs)
    if timings is not None:
        timings['chemnet'] = time.perf_counter() - t0
    return gen
