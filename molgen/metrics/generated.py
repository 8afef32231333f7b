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
from molgen.metrics.chemnet import CHEMNET_THREADS, get_chemnet
from molgen.parallel import get_pool, map_chunks

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


def activations(smiles: Sequence[str], device: str = 'cpu', n_threads: int = 1, desc: str | None = None) -> np.ndarray:
    """ChemNet activations [n, 512], computed once per distinct SMILES (``desc``: a progress bar)."""
    if len(smiles) == 0:
        return np.zeros((0, 512), np.float32)
    uniq, inverse = np.unique(np.asarray(smiles, dtype=object), return_inverse=True)
    act = get_chemnet(device).activations(list(uniq), n_threads=n_threads, desc=desc)
    return act[inverse]


def featurize_generated(smiles: Sequence[str | None], n_jobs: int = 1, device: str = 'cpu',
                        timings: dict[str, float] | None = None) -> GeneratedSet:
    """All per-molecule features of a generated sample: one RDKit pass (over the shared worker pool when
    ``n_jobs > 1``), ChemNet once per distinct SMILES. ``timings['chemnet']`` gets the ChemNet seconds.

    With a worker pool the pass is split in two: the canonical SMILES first (cheap), then the other
    features of the valid molecules run in the workers while ChemNet runs here, on one torch thread
    (:data:`~molgen.metrics.chemnet.CHEMNET_THREADS`). The molecules, and so every value, are those of
    a single pass: each feature is computed on the molecule parsed from its canonical SMILES.
    """
    smiles = list(smiles)
    chunk = max(MIN_CHUNK, -(-len(smiles) // (4 * n_jobs)))
    pool = get_pool(n_jobs) if n_jobs > 1 and len(smiles) > chunk else None
    if pool is None:
        parts = map_chunks(fz.featurize, smiles, n_jobs, chunk_size=chunk, what=GEN_FEATURES, generated=True)
        f = fz.merge(parts) if parts else {'valid': np.zeros(0, bool), 'canon': [], 'fcd': [], 'fp': None,
                                            'frag': Counter(), 'scaf': [], 'props': None, 'filters': None}
        t1 = time.perf_counter()
        act = activations(f['fcd'], device, CHEMNET_THREADS)
        t_chemnet = time.perf_counter() - t1
    else:
        f = fz.merge(map_chunks(fz.featurize, smiles, n_jobs, chunk_size=chunk, what=('canon', 'fcd'),
                                generated=True))
        canon = [c for c in f['canon'] if c is not None]
        rest = [k for k in GEN_FEATURES if k not in ('canon', 'fcd')]
        step = max(MIN_CHUNK, -(-len(canon) // (4 * n_jobs)))
        # submitted now, collected after ChemNet: canonical SMILES in, the features of their molecules out
        futures = [pool.submit(fz.featurize, canon[i:i + step], what=rest, generated=False)
                   for i in range(0, len(canon), step)]
        t1 = time.perf_counter()
        act = activations(f['fcd'], device, CHEMNET_THREADS)
        t_chemnet = time.perf_counter() - t1
        g = fz.merge([fut.result() for fut in futures])
        for k in rest:
            f[k] = g.get(k)
        if not canon:
            f.update(fp=np.zeros((0, fz.FP_BITS // 8), np.uint8), frag=Counter(), scaf=[],
                     props=np.zeros((0, len(fz.PROPS))), filters=np.zeros(0, bool))
    gen = GeneratedSet(raw=smiles, valid=f['valid'], canon=f['canon'], fcd_smiles=f['fcd'], fp=f['fp'],
                       frag=f['frag'], scaf=f['scaf'], props=f['props'], filters=f['filters'])
    gen.activations = act
    if timings is not None:
        timings['chemnet'] = t_chemnet
    return gen
