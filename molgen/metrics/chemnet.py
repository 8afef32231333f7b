"""ChemNet activations for the FCD, from ``fcd_torch`` itself, and the Fréchet distance.

The activations are ``fcd_torch.FCD.get_predictions`` (its model, weights and one-hot encoding, batches
of 512), so molgen's FCD is fcd_torch's by construction. molgen used to carry its own faster
re-implementation; measured against fcd_torch it was 1.21x faster and not bit-identical (max |diff|
7.6e-6; ``benchmarks/results/chemnet_molgen_own.md``), short of the 3x-and-bit-identical bar for
keeping a second implementation, so it was dropped. What stays is the Fréchet distance below (two
``eigh`` calls instead of ``scipy.linalg.sqrtm``) and ``gaussian_stats``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from scipy import linalg

from molgen.metrics.blas import single_threaded
from molgen.progress import progress_bar

BATCH_SIZE = 512  # fcd_torch's default; batches of another size can differ in the last float bits
#: torch threads for the ChemNet of generated samples. One: its LSTM steps are small products that two
#: threads share badly on a busy machine (measured on 2 shared cores: 1.75 s per 1,024 molecules on one
#: thread; 1.0 s on two while the second core was free, 6 s when it was not), and the Evaluator runs it
#: beside the RDKit worker processes instead. The activations are the same bits either way (tested).
CHEMNET_THREADS = int(os.environ.get('MOLGEN_CHEMNET_THREADS', '1'))


def weights_path() -> str:
    import fcd_torch  # lazy: fcd_torch (seconds to import) is loaded only when ChemNet is used

    return os.path.join(os.path.dirname(fcd_torch.__file__), 'ChemNet_v0.13_pretrained.pt')


class ChemNet:
    """ChemNet penultimate activations (512-d) of canonical SMILES, computed by ``fcd_torch``."""

    profile: dict[str, float]  # seconds spent, accumulated over calls (see benchmarks/evaluate.py)

    def __init__(self, device: str = 'cpu') -> None:
        from fcd_torch import FCD  # lazy: as in weights_path

        self.device = str(device)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            # canonize=False: molgen passes canonical SMILES already (its one canonicalization policy)
            self._fcd = FCD(device=self.device, n_jobs=1, batch_size=BATCH_SIZE, canonize=False)
        self.profile = {}

    def activations(self, smiles: Sequence[str], batch_size: int = BATCH_SIZE, n_threads: int | None = None,
                    desc: str | None = None) -> np.ndarray:
        """[n, 512] float32 activations of ``smiles`` (used as given: pass canonical SMILES); with
        ``desc``, a progress bar over chunks of 16 batches (the same batches, so the same bits)."""
        n = len(smiles)
        if n == 0:
            return np.zeros((0, 512), dtype=np.float32)
        old_threads = torch.get_num_threads()
        if n_threads:
            torch.set_num_threads(n_threads)
        t0 = time.perf_counter()
        try:
            self._fcd.batch_size = batch_size
            step = 16 * batch_size
            starts = range(0, n, step)
            if desc is not None and len(starts) > 1:
                starts = progress_bar(starts, desc=desc, total=len(starts), unit='chunk')
            parts = []
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # numpy's row_stack deprecation inside fcd_torch
                for i in starts:
                    parts.append(self._fcd.get_predictions(list(smiles[i:i + step])))
            out = np.concatenate(parts)
        finally:
            if n_threads:
                torch.set_num_threads(old_threads)
        self.profile['fcd_torch'] = self.profile.get('fcd_torch', 0.0) + time.perf_counter() - t0
        return np.asarray(out, dtype=np.float32)


@lru_cache(maxsize=2)
def get_chemnet(device: str = 'cpu') -> ChemNet:
    """One ChemNet per device and process."""
    return ChemNet(device)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians, ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    fcd_torch takes ``tr((S1 S2)^(1/2))`` from ``scipy.linalg.sqrtm``, which needs ~12 s for 512 x 512
    with scipy 1.17 here. For symmetric PSD ``S1, S2`` the same trace is the sum of square roots of the
    eigenvalues of the symmetric ``S1^(1/2) S2 S1^(1/2)``: two ``eigh`` calls, ~0.1 s, equal to
    sqrtm's trace to ~1e-9 relative (tested).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError('mean vectors / covariances have different shapes')
    diff = mu1 - mu2
    with single_threaded():  # molgen.metrics.blas: fast on a busy machine, the same bits everywhere
        w, v = linalg.eigh(sigma1)
        root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        lam = linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def gaussian_stats(act: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and covariance of activations (as fcd_torch's ``precalc``; one BLAS thread, see
    :mod:`molgen.metrics.blas`)."""
    with single_threaded():
        return {'mu': act.mean(0), 'sigma': np.cov(act.T)}
