"""``Evaluator``: one evaluation pipeline for every generator and for any file of SMILES.

Reference statistics are prepared once per Evaluator (from shipped files, the disk cache, or computed)
and reused by every ``evaluate`` call; the RDKit work of the generated molecules runs in one pass over
a persistent worker pool, and ChemNet activations are computed once per distinct canonical SMILES.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgen.data.catalog import cache_dir
from molgen.data.hashes import HashSet, row_hashes
from molgen.data.io import read_smiles, source_hash
from molgen.errors import strict
from molgen.metrics import featurize as fz
from molgen.metrics import modes
from molgen.metrics import moses as M
from molgen.metrics.chemnet import frechet_distance, gaussian_stats
from molgen.metrics.generated import GeneratedSet, activations, featurize_generated
from molgen.metrics.guacamol import fcd_score, kl_divergences
from molgen.metrics.nll import NLLSummary, model_label, summarize_scores
from molgen.metrics.reference import ReferenceStats, cache_key, get_reference, nn_similarity, versions
from molgen.metrics.report import EvaluationReport
from molgen.parallel import map_chunks, resolve_n_jobs

log = logging.getLogger(__name__)
Source = str | Path | Sequence[str | None]


class Evaluator:
    """Evaluate generated SMILES against reference sets with the MOSES and GuacaMol definitions.

    Args:
        reference: the main reference (``FCD/Test`` ... and the property distributions): a catalog name
            (``moses:test``), a file, or a list of SMILES.
        train: the training set for ``Novelty`` (and the held-out molecules of the FCD floor).
        scaffold_reference: optional second reference for the ``.../TestSF`` metrics.
        k: the ``unique@k`` cut-offs.
        n_jobs: worker processes for RDKit and threads for ChemNet (``1``: all in-process, serial).
        device: torch device for ChemNet.
        extras: also compute the FCD floor and the mode-dropping diagnostics (``molgen.metrics.modes``:
            precision / recall / coverage at equal n, scaffold coverage, fingerprint k-means bin
            occupancy, FCD mean / covariance terms), each with its real-vs-real value at the same n.
        guacamol: also compute the GuacaMol distribution-learning scores.
        n_bins: k-means bins of the reference fingerprints for the bin-occupancy diagnostics.
        use_cache: read / write reference statistics under ``molgen.data.catalog.cache_dir()``.
    """

    @strict
    def __init__(self, reference: Source = 'moses:test', train: Source | None = None,
                 scaffold_reference: Source | None = None, *, k: Sequence[int] = (1000, 10000),
                 n_jobs: int = 1, device: str = 'cpu', extras: bool = True, guacamol: bool = True,
                 use_cache: bool = True, nll_n: int = 1000, n_bins: int = 64) -> None:
        self.reference = reference
        self.train = train
        self.scaffold_reference = scaffold_reference
        self.k = tuple(k)
        self.n_jobs = resolve_n_jobs(n_jobs)
        self.device = device
        self.extras = extras
        self.guacamol = guacamol
        self.use_cache = use_cache
        self.nll_n = nll_n
        self._refs: dict[str, ReferenceStats] = {}
        self._train_set: Any = None  # the train rows as 64-bit hashes (molgen.data.hashes.HashSet)
        self._train_list: list | None = None  # the train rows, read only when needed (the FCD floor)
        self._floor_act: np.ndarray | None = None
        self.prepare_seconds = 0.0
        self._timings: dict[str, float] = {}
        self.n_bins = n_bins
        self._bins: dict[str, Any] = {}

    # ---- references ------------------------------------------------------------------------------
    def prepare(self) -> Evaluator:
        """Load or compute all reference statistics now (otherwise done by the first ``evaluate``)."""
        t0 = time.perf_counter()
        comps = {'fcd', 'fp', 'counts', 'props'}
        if 'Test' not in self._refs:
            self._refs['Test'] = get_reference(self.reference, comps | ({'guac'} if self.guacamol else set()),
                                               n_jobs=self.n_jobs, device=self.device, use_cache=self.use_cache)
        if self.scaffold_reference is not None and 'TestSF' not in self._refs:
            self._refs['TestSF'] = get_reference(self.scaffold_reference, comps, n_jobs=self.n_jobs,
                                                 device=self.device, use_cache=self.use_cache)
        if self.train is not None and self._train_set is None:
            # MOSES novelty: train rows as given. moses:train ships them hashed (data/moses/hashes), so
            # no train molecule is read or standardised here; a file's hashes are cached by content.
            if not isinstance(self.train, (str, Path)):
                self._train_list = list(self.train)
            self._train_set = HashSet(row_hashes(self.train if self._train_list is None else self._train_list,
                                                 use_cache=self.use_cache))
        self.prepare_seconds += time.perf_counter() - t0
        return self

    @property
    def references(self) -> dict[str, ReferenceStats]:
        return self.prepare()._refs

    # ---- generated -------------------------------------------------------------------------------
    @strict
    def featurize(self, smiles: Sequence[str | None]) -> GeneratedSet:
        """All per-molecule features of a generated sample (one RDKit pass, ChemNet once per distinct SMILES)."""
        return featurize_generated(smiles, n_jobs=self.n_jobs, device=self.device, timings=self._timings)

    @strict
    def activations(self, smiles: Sequence[str]) -> np.ndarray:
        """ChemNet activations, computed once per distinct SMILES."""
        return activations(smiles, self.device, self.n_jobs)

    def _train_rows(self) -> list:
        if self._train_list is None:
            self._train_list = read_smiles(self.train)
        return self._train_list

    def _floor_activations(self, n: int) -> np.ndarray | None:
        """Activations of ``n`` held-out real molecules (a fixed shuffle of the train set), cached."""
        if self.train is None or n < 2:
            return None
        if self._train_list is not None:
            n = min(n, len(self._train_list))
        key = cache_key(source_hash(self.train)) if isinstance(self.train, (str, Path)) else 'list'
        path = cache_dir() / 'metrics' / f'floor-{key}.npy'
        if self._floor_act is None and path.exists() and isinstance(self.train, (str, Path)):
            self._floor_act = np.load(path, allow_pickle=False)
        have = 0 if self._floor_act is None else len(self._floor_act)
        if have < n:  # the train rows are read only here, when the cached activations are too few
            n = min(n, len(self._train_rows()))
        if have < n:
            order = np.random.default_rng(0).permutation(len(self._train_list))
            extra = [self._train_list[i] for i in order[have:n]]
            if len(extra) > 2000:
                log.info('FCD floor: ChemNet activations of %d held-out train molecules (cached afterwards)',
                         len(extra))
            feats = fz.merge(map_chunks(fz.featurize, extra, self.n_jobs, chunk_size=4000, what=('fcd',),
                                        generated=False))
            act = activations(feats.get('fcd', []), self.device, self.n_jobs, desc='FCD floor: ChemNet')
            self._floor_act = act if self._floor_act is None else np.concatenate([self._floor_act, act])
            if isinstance(self.train, (str, Path)):
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, self._floor_act)
        return self._floor_act[:n]

    # ---- evaluation --------------------------------------------------------------------------------
    @strict
    def evaluate(self, smiles: Source, model: Any = None, *, name: str | None = None) -> EvaluationReport:
        """Evaluate a sample (list of SMILES or a file). ``model`` adds its test-set NLL when it has one."""
        t0 = time.perf_counter()
        source_name = name or (str(smiles) if isinstance(smiles, (str, Path)) else None)
        if isinstance(smiles, (str, Path)):
            smiles = read_smiles(smiles)
        self._timings = {}
        self._guac_kl: dict[str, Any] | None = None
        refs = self.references
        t_prep = time.perf_counter()
        gen = self.featurize(smiles)
        t_feat = time.perf_counter()
        tm = self._timings
        tm['references'] = t_prep - t0
        tm['rdkit'] = t_feat - t_prep - tm['chemnet']
        m: dict[str, float] = {}

        def lap(name: str, t: float) -> float:
            now = time.perf_counter()
            tm[name] = tm.get(name, 0.0) + now - t
            return now
        m['valid'] = M.fraction_valid(gen)
        for k in self.k:
            m[f'unique@{k}'] = M.unique_at_k(gen, k)
        t = time.perf_counter()
        for label, ref in refs.items():
            for metric in (M.FCD(), M.SNN(), M.Frag(), M.Scaf()):
                key = f'{metric.name}/{label}'
                m[key] = metric(gen, ref)
                if metric.name in gen.notes:
                    gen.notes[key] = gen.notes.pop(metric.name)
                t = lap(metric.name, t)
        m['IntDiv'], m['IntDiv2'] = M.internal_diversity(gen)
        t = lap('IntDiv', t)
        m['Filters'] = M.fraction_filters(gen)
        for col, prop in enumerate(fz.PROPS):
            m[prop] = M.Wasserstein(col, prop)(gen, refs['Test'])
        if self._train_set is not None:
            m['Novelty'] = M.novelty(gen, self._train_set)
        t = lap('other', t)
        if self.guacamol:
            m.update(self._guacamol(gen, refs['Test'], m))
            t = lap('guacamol', t)
        if self.extras:
            m.update(self._extras(gen, refs))
            t = lap('extras', t)
        nll = None
        if model is not None:
            nll, reason = self.nll(model)
            if nll is None:
                gen.notes['NLL/Test'] = reason
            else:
                # likelihood first: it is the headline metric wherever the model has one; the molecules
                # that could not be scored are counted next to it, never silently dropped from its mean
                m = {'NLL/Test': nll.value, 'NLL/Test/n_scored': nll.n_scored,
                     'NLL/Test/n_unscored': nll.n_unscored, **m}
                gen.notes['NLL/Test'] = (nll.note() if nll.n_scored else
                                         f'{nll.label_text}; the model scored none of {nll.n} test molecules '
                                         f'({nll.counts_text()})')
        for key, v in m.items():  # every missing value says why
            if not np.isfinite(v) and key not in gen.notes:
                if gen.n_valid == 0:
                    gen.notes[key] = 'no valid molecules' if gen.n else 'no samples'
                elif key.startswith(('Frag', 'Scaf')):
                    gen.notes[key] = 'no fragments / scaffolds in the generated or the reference set'
                elif key == 'guacamol/FCD':
                    gen.notes[key] = 'FCD/Test is undefined'
                else:
                    gen.notes[key] = 'undefined for this input'
        wall = time.perf_counter() - t0
        meta = {
            'source': source_name,
            'n_requested': gen.n,
            'n_valid': gen.n_valid,
            'references': {label: {'name': r.name, 'n': r.n, 'source_hash': r.source_hash, 'statistics': r.origin}
                           for label, r in refs.items()},
            'train': (str(self.train) if isinstance(self.train, (str, Path)) else
                      (f'list[{len(self._train_list)}]' if self._train_list is not None else None)),
            'likelihood': nll.label if nll is not None else None,
            'NLL/Test': nll.meta() if nll is not None else None,
            'versions': _all_versions(),
            'wall_seconds': wall,
            'timings': dict(tm),
            'timestamp': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            'n_jobs': self.n_jobs,
            'device': self.device,
            'sample_preview': [s for s in gen.raw[:10]],
            'guacamol/KL': self._guac_kl,
        }
        return EvaluationReport(metrics=m, meta=meta, notes=dict(gen.notes),
                                properties=gen.props, reference_properties=refs['Test'].props)

    def _guacamol(self, gen: GeneratedSet, ref: ReferenceStats, m: dict[str, float]) -> dict[str, float]:
        """GuacaMol distribution-learning scores over the first 10,000 samples."""
        out: dict[str, float] = {}
        n = 10_000
        head_valid = gen.valid[:n]
        out['guacamol/validity'] = float(head_valid.mean()) if len(head_valid) else M.NAN
        canon_valid = gen.valid_canon[:n]
        uniq = list(dict.fromkeys(canon_valid))
        out['guacamol/uniqueness'] = len(uniq) / len(canon_valid) if canon_valid else M.NAN
        if self._train_set is not None:
            out['guacamol/novelty'] = (int((~self._train_set.contains_many(uniq)).sum()) / len(uniq)
                                       if uniq else M.NAN)
        if ref.guac is not None and len(uniq) >= 2:
            g = fz.merge(map_chunks(fz.featurize, uniq, self.n_jobs, chunk_size=2500, what=('guac', 'fp4096'),
                                    generated=False))
            kl = kl_divergences(ref.guac, ref.guac_sim, g['guac'], nn_similarity(g['fp4096']))
            out['guacamol/KL'] = kl.score
            self._guac_kl = kl.to_dict()  # per-descriptor KLs, kept in the report (meta 'guacamol/KL')
            if kl.note():
                gen.notes['guacamol/KL'] = kl.note()
        else:
            out['guacamol/KL'] = M.NAN
            gen.notes['guacamol/KL'] = 'needs at least 2 unique valid molecules'
        fcd = m.get('FCD/Test', M.NAN)
        out['guacamol/FCD'] = fcd_score(fcd) if np.isfinite(fcd) else M.NAN
        return out

    def _extras(self, gen: GeneratedSet, refs: dict[str, ReferenceStats]) -> dict[str, float]:
        """FCD floor and the mode-dropping diagnostics."""
        out: dict[str, float] = {}
        floor = self._floor_activations(gen.n_valid) if self.train is not None else None
        if floor is not None and len(floor) >= 2:
            g = gaussian_stats(floor)
            for label, ref in refs.items():
                out[f'FCDfloor/{label}'] = frechet_distance(ref.fcd_mu, ref.fcd_sigma, g['mu'], g['sigma'])
        else:
            gen.notes['FCDfloor'] = ('needs a train set (held-out real molecules)' if self.train is None
                                     else 'fewer than 2 valid molecules')
        out.update(self._modes(gen, refs))
        return out

    def _fp_bins(self, label: str, ref: ReferenceStats):
        """k-means bins of the reference fingerprints (fixed seed), fitted once per Evaluator."""
        if label not in self._bins:
            # the fit takes seconds; it is cached on disk with the reference statistics
            path = None
            if self.use_cache and ref.source_hash:
                path = cache_dir() / 'metrics' / f'bins-{cache_key(ref.source_hash)}-k{self.n_bins}-s0.npz'
            if path is not None and path.exists():
                with np.load(path, allow_pickle=False) as z:
                    self._bins[label] = modes.Bins.from_state(dict(z))
            else:
                self._bins[label] = modes.fingerprint_bins(ref.fp, self.n_bins, seed=0)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp.npz')
                    np.savez(tmp, **self._bins[label].state())
                    tmp.replace(path)
        return self._bins[label]

    def _modes(self, gen: GeneratedSet, refs: dict[str, ReferenceStats]) -> dict[str, float]:
        """Mode-dropping diagnostics (``molgen.metrics.modes``), each at equal sample sizes and with its
        real-vs-real value at the same n (keys ending in ``/real``).

        ``precision`` / ``recall`` / ``coverage``: the reference is subsampled to the generated n (at most
        5,000, seed 0). ``scaffolds/top100_coverage``: all valid samples, real value at n_valid.
        ``modes/bins_*``: k-means bins of reference fingerprints. ``FCD/<ref>/mean`` + ``FCD/<ref>/cov``
        sum to ``FCD/<ref>``.
        """
        out: dict[str, float] = {}
        ref = refs['Test']
        if gen.fp is not None and len(gen.fp) > 5 and ref.fp is not None:
            fake_v, real_v, n = modes.recall_coverage_at_equal_n(ref.fp, gen.fp, n_max=5000, k=5, seed=0)
            out.update(fake_v)
            out['modes/n'] = n
            for key, v in real_v.items():
                out[f'{key}/real'] = v
                if not np.isfinite(v):
                    gen.notes[f'{key}/real'] = f'needs a reference of at least 2 n = {2 * n} molecules'
        else:
            gen.notes['precision'] = 'needs more than 5 valid molecules'
        scafs = [s for s in (gen.scaf or []) if s is not None]
        out['scaffolds/unique'] = len(set(scafs)) / gen.n_valid if gen.n_valid else M.NAN
        if ref.scaf and gen.n_valid:
            out['scaffolds/top100_coverage'] = modes.scaffold_coverage(scafs, ref.scaf, 100)
            out['scaffolds/top100_coverage/real'] = modes.real_scaffold_coverage(ref.scaf, ref.n, gen.n_valid, 100)
        if gen.fp is not None and len(gen.fp) > 0 and ref.fp is not None and len(ref.fp) >= 20:
            bins = self._fp_bins('Test', ref)
            g, r = modes.bin_stats_at_equal_n(bins, modes.unpack_fp(gen.fp), ref.fp, seed=0,
                                              transform=modes.unpack_fp)
            out['modes/n_bins'] = bins.k
            for key in ('occupied', 'tv', 'js'):
                out[f'modes/bins_{key}'] = g[key]
                out[f'modes/bins_{key}/real'] = r[key]
            if not np.isfinite(r['tv']):
                gen.notes['modes/bins_occupied/real'] = 'the reference is smaller than the sample'
        for label, r_ in refs.items():
            if r_.fcd_mu is not None and gen.activations is not None and len(gen.activations) >= 2:
                out[f'FCD/{label}/mean'], out[f'FCD/{label}/cov'] = modes.fcd_terms(r_.fcd_mu, r_.fcd_sigma,
                                                                                    gen.activations)
        return out

    @strict
    def nll(self, model: Any) -> tuple[NLLSummary | None, str | None]:
        """Test-set NLL of ``model`` on ``nll_n`` reference molecules (a fixed random subset).

        Returns ``(summary, None)``, or ``(None, reason)`` for a model without a likelihood. The summary's
        mean is over the molecules the model scored; the others are counted by status.
        """
        caps = getattr(model, 'capabilities', ()) or ()
        if 'log_likelihood' not in caps or model_label(model) is None:
            return None, f'{type(model).__name__} has no likelihood'
        ref = read_smiles(self.reference) if isinstance(self.reference, (str, Path)) else list(self.reference)
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(ref), size=min(self.nll_n, len(ref)), replace=False))
        return summarize_scores(model.score([ref[i] for i in idx]), model), None


def _all_versions() -> dict[str, str]:
    v = versions()
    v['torch'] = torch.__version__
    v['machine'] = f'{platform.machine()} {platform.processor() or ""}'.strip()
    return v


def evaluate(smiles: Source, reference: Source = 'moses:test', **kwargs: Any) -> EvaluationReport:
    """One-shot helper: ``Evaluator(reference, **kwargs).evaluate(smiles)``."""
    model = kwargs.pop('model', None)
    return Evaluator(reference, **kwargs).evaluate(smiles, model=model)
