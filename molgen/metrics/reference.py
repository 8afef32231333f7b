"""Reference statistics: computed once per (data, package versions), cached on disk as npz + json.

Components: FCD mean/covariance of ChemNet activations, packed Morgan fingerprints (SNN, precision /
recall), BRICS fragment and scaffold counts (Frag, Scaf, scaffold coverage), property values (logP, SA,
QED, weight) and, for GuacaMol's KL score, descriptors and nearest-neighbour similarities of a 10,000
molecule subset. The cache key hashes the data with the rdkit / fcd_torch versions and
``METRICS_VERSION``. For the shipped MOSES sets, ``data/moses/stats/`` holds everything but the
fingerprints (sha256-checked against ``manifest.json``), so a fresh install only fingerprints them.
Nothing is pickled.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import rdkit
import torch

from molgen.data.catalog import cache_dir, data_dir, sha256_file
from molgen.data.io import read_smiles, source_hash
from molgen.metrics import featurize as fz
from molgen.metrics.chemnet import gaussian_stats, get_chemnet
from molgen.metrics.fingerprints import similarity_matrix
from molgen.parallel import map_chunks

log = logging.getLogger(__name__)
METRICS_VERSION = '1'
GUAC_N = 10_000
COMPONENTS = ('fcd', 'fp', 'counts', 'props', 'guac')


def versions() -> dict[str, str]:
    out = {'python': platform.python_version(), 'rdkit': rdkit.__version__, 'metrics': METRICS_VERSION}
    try:
        out['fcd_torch'] = version('fcd_torch')
    except Exception:  # pragma: no cover
        out['fcd_torch'] = 'unknown'
    try:
        out['molgen'] = version('molgen')
    except Exception:
        out['molgen'] = 'dev'
    return out


def cache_key(source_hash: str) -> str:
    v = versions()
    raw = f"{source_hash}|rdkit={v['rdkit']}|fcd_torch={v['fcd_torch']}|metrics={METRICS_VERSION}"
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


@dataclass
class ReferenceStats:
    """Everything the metrics need from one reference set."""

    name: str
    source_hash: str
    n: int = 0
    fcd_mu: np.ndarray | None = None
    fcd_sigma: np.ndarray | None = None
    fp: np.ndarray | None = None
    frag: dict[str, int] | None = None
    scaf: dict[str, int] | None = None
    props: np.ndarray | None = None
    guac: np.ndarray | None = None
    guac_sim: np.ndarray | None = None
    origin: dict[str, str] = field(default_factory=dict)

    def has(self, component: str) -> bool:
        return {'fcd': self.fcd_mu is not None, 'fp': self.fp is not None,
                'counts': self.frag is not None, 'props': self.props is not None,
                'guac': self.guac is not None}[component]

    # ---- persistence -------------------------------------------------------------------------
    def save(self, folder: Path, components: tuple[str, ...] = COMPONENTS) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for comp in components:
            if not self.has(comp):
                continue
            if comp == 'counts':
                with gzip.open(folder / 'counts.json.gz', 'wt') as f:
                    json.dump({'frag': self.frag, 'scaf': self.scaf}, f)
                continue
            arrays = {'fcd': {'mu': self.fcd_mu, 'sigma': self.fcd_sigma},
                      'fp': {'fp': self.fp},
                      'props': {'props': self.props},
                      'guac': {'guac': self.guac, 'guac_sim': self.guac_sim}}[comp]
            tmp = folder / f'{comp}.tmp.npz'
            np.savez_compressed(tmp, **arrays)
            tmp.replace(folder / f'{comp}.npz')
        meta = {'name': self.name, 'source_hash': self.source_hash, 'n': self.n, **versions()}
        (folder / 'meta.json').write_text(json.dumps(meta, indent=1))

    def load(self, folder: Path, origin: str) -> None:
        """Fill the components found in ``folder`` (missing files are simply skipped)."""
        if (folder / 'meta.json').exists():
            self.n = json.loads((folder / 'meta.json').read_text()).get('n', self.n)
        for comp in ('fcd', 'fp', 'props', 'guac'):
            p = folder / f'{comp}.npz'
            if not p.exists() or self.has(comp):
                continue
            with np.load(p, allow_pickle=False) as z:
                if comp == 'fcd':
                    self.fcd_mu, self.fcd_sigma = z['mu'], z['sigma']
                    if self.fcd_sigma.ndim == 1:  # shipped: upper triangle only
                        d = len(self.fcd_mu)
                        s = np.zeros((d, d))
                        s[np.triu_indices(d)] = self.fcd_sigma
                        self.fcd_sigma = s + np.triu(s, 1).T
                elif comp == 'fp':
                    self.fp = z['fp']
                elif comp == 'props':
                    self.props = (decode_sorted(z['props_base'], z['props_steps']) if 'props_steps' in z
                                  else z['props'].astype(np.float64))
                else:
                    self.guac, self.guac_sim = z['guac'].astype(np.float64), z['guac_sim'].astype(np.float64)
            self.origin[comp] = origin
        p = folder / 'counts.json.gz'
        if p.exists() and self.frag is None:
            with gzip.open(p, 'rt') as f:
                d = json.load(f)
            self.frag, self.scaf = d['frag'], d['scaf']
            self.origin['counts'] = origin


def encode_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compact, order-free storage of property columns (Wasserstein needs only the sorted values):
    per column the minimum (float64) and the uint32 steps between successive float32 offsets from it,
    which are small and compress ~3x better than the raw floats. Precision: float32 of ``v - min``."""
    base = values.min(0)
    off = np.sort((values - base).astype(np.float32), axis=0)
    bits = off.view(np.uint32)
    steps = np.diff(bits, axis=0, prepend=np.zeros((1, bits.shape[1]), np.uint32))
    return base, steps


def decode_sorted(base: np.ndarray, steps: np.ndarray) -> np.ndarray:
    bits = np.cumsum(steps, axis=0, dtype=np.uint32)
    return bits.view(np.float32).astype(np.float64) + base


def shipped_dir() -> Path:
    return data_dir() / 'moses' / 'stats'


def load_shipped(stats: ReferenceStats) -> None:
    """Fill components from ``data/moses/stats/<name>/`` when its manifest matches the data hash."""
    manifest = shipped_dir() / 'manifest.json'
    if not manifest.exists():
        return
    entries = json.loads(manifest.read_text())
    now = versions()
    for folder_name, entry in entries.items():
        if entry['source_hash'] != stats.source_hash:
            continue
        # Another statistics format or ChemNet implementation: compute afresh instead (RDKit drift
        # between releases moves these numbers far less than the tolerances, and is recorded in origin).
        if entry.get('metrics') != now['metrics'] or entry.get('fcd_torch') != now['fcd_torch']:
            return
        folder = shipped_dir() / folder_name
        for fname, digest in entry['files'].items():
            if sha256_file(folder / fname) != digest:
                raise RuntimeError(f'{folder / fname}: sha256 does not match manifest.json; the shipped '
                                   'reference statistics are corrupt (delete them to recompute)')
        stats.load(folder, origin=f"shipped (rdkit {entry.get('rdkit')})")
        return


def compute_components(stats: ReferenceStats, smiles: list, components: set[str], n_jobs: int,
                       device: str = 'cpu', batch_size: int = 4096) -> None:
    """Compute the requested components from the reference SMILES (as given)."""
    what = set()
    if 'fcd' in components:
        what.add('fcd')
    if 'fp' in components:
        what.add('fp')
    if 'counts' in components:
        what |= {'frag', 'scaf'}
    if 'props' in components:
        what.add('props')
    if what:
        feats = fz.merge(map_chunks(fz.featurize, smiles, n_jobs, chunk_size=4000, what=tuple(what),
                                    generated=False, desc=f'reference statistics: RDKit ({len(smiles)} molecules)'))
        stats.n = len(smiles)
        if 'fcd' in what:
            act = get_chemnet(device).activations(feats['fcd'], batch_size=batch_size, n_threads=n_jobs,
                                                  desc='reference statistics: ChemNet')
            g = gaussian_stats(act)
            stats.fcd_mu, stats.fcd_sigma = g['mu'], g['sigma']
        if 'fp' in what:
            stats.fp = feats['fp']
        if 'frag' in what:
            stats.frag = dict(feats['frag'])
            stats.scaf = dict(Counter(s for s in feats['scaf'] if s is not None))
        if 'props' in what:
            stats.props = feats['props']
        for c in components - {'guac'}:
            stats.origin[c] = 'computed'
    if 'guac' in components:
        rng = np.random.default_rng(42)
        idx = rng.choice(len(smiles), size=min(GUAC_N, len(smiles)), replace=False) if len(smiles) else []
        sub = [smiles[i] for i in sorted(idx)]
        g = fz.merge(map_chunks(fz.featurize, sub, n_jobs, chunk_size=2000, what=('guac', 'fp4096'),
                                generated=False, desc=f'reference statistics: GuacaMol ({len(sub)} molecules)'))
        stats.guac = g.get('guac')
        stats.guac_sim = nn_similarity(g['fp4096']) if g else None
        stats.origin['guac'] = 'computed'


def nn_similarity(fp4096: np.ndarray) -> np.ndarray:
    """GuacaMol's internal similarity: per molecule, max Tanimoto to any *other* molecule of the set."""
    if len(fp4096) < 2:
        return np.zeros(len(fp4096))
    out = np.zeros(len(fp4096))
    for i in range(0, len(fp4096), 2048):
        s = similarity_matrix(fp4096[i:i + 2048], fp4096)
        rows = torch.arange(s.shape[0])
        s[rows, rows + i] = 0.0
        out[i:i + 2048] = s.max(1).values.double().numpy()
    return out


def get_reference(source, components: set[str], *, n_jobs: int = 1, device: str = 'cpu',
                  use_cache: bool = True, use_shipped: bool = True, smiles_col: str | None = None) -> ReferenceStats:
    """Reference statistics for ``source`` (catalog name, file or list), from shipped files, the disk
    cache or computed (and then cached)."""
    h = source_hash(source, smiles_col)
    name = source if isinstance(source, str) else (str(source) if isinstance(source, Path) else f'list[{len(source)}]')
    stats = ReferenceStats(name=name, source_hash=h)
    folder = cache_dir() / 'metrics' / f'ref-{cache_key(h)}'
    if use_shipped:
        load_shipped(stats)
    if use_cache:
        stats.load(folder, origin='cache')
    missing = {c for c in components if not stats.has(c)}
    if missing:
        t0 = time.perf_counter()
        smiles = read_smiles(source, smiles_col) if isinstance(source, (str, Path)) else list(source)
        if len(smiles) > 2000:  # seconds to minutes: say what happens (small lists stay quiet)
            log.info('reference statistics of %s: computing %s for %d molecules (%s)', name,
                     ', '.join(sorted(missing)), len(smiles), 'cached afterwards' if use_cache else 'not cached')
        compute_components(stats, smiles, missing, n_jobs, device)
        if use_cache:
            stats.save(folder, tuple(sorted(missing)))
        if len(smiles) > 2000:
            log.info('reference statistics of %s: done in %.0f s', name, time.perf_counter() - t0)
    return stats
