"""Benchmark of ``molgen.metrics.Evaluator`` on 30,000 SMILES against the full MOSES sets.

    python benchmarks/evaluate.py [--n 30000] [--n-jobs 2] [--ship-stats]

(a) first evaluation on a fresh install (empty cache), (b) later evaluations (cached reference
statistics), (c) ChemNet activations alone vs fcd_torch's own loop on the same molecules. Writes
``benchmarks/results/evaluate.json`` and ``.md`` with timings, peak memory, machine and versions.
``--ship-stats`` first (re)computes the shipped statistics under ``data/moses/stats/`` (FCD mean and
covariance, properties, fragment/scaffold counts, GuacaMol subset) with a sha256 manifest.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MOSES_SECONDS_25K = 20 * 60  # MOSES reference implementation, 25,000 SMILES vs full sets, 2 cores


def peak_rss_mb() -> float:
    self_ = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_, kids) / 1024


def ship_stats(n_jobs: int) -> None:
    from molgen.data.catalog import sha256_file
    from molgen.data.io import read_smiles, source_hash
    from molgen.metrics.reference import (
        ReferenceStats,
        compute_components,
        encode_sorted,
        shipped_dir,
        versions,
    )

    out = shipped_dir()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name in ('moses:test', 'moses:test_scaffolds'):
        t0 = time.perf_counter()
        folder_name = name.split(':')[1]
        stats = ReferenceStats(name=name, source_hash=source_hash(name))
        smiles = read_smiles(name)
        compute_components(stats, smiles, {'fcd', 'counts', 'props', 'guac'}, n_jobs)
        folder = out / folder_name
        folder.mkdir(exist_ok=True)
        iu = np.triu_indices(len(stats.fcd_mu))
        np.savez_compressed(folder / 'fcd.npz', mu=stats.fcd_mu, sigma=stats.fcd_sigma[iu])
        base, steps = encode_sorted(stats.props)
        np.savez_compressed(folder / 'props.npz', props_base=base, props_steps=steps)
        np.savez_compressed(folder / 'guac.npz', guac=stats.guac.astype(np.float32),
                            guac_sim=stats.guac_sim.astype(np.float32))
        with gzip.GzipFile(folder / 'counts.json.gz', 'wb', mtime=0) as f:
            f.write(json.dumps({'frag': stats.frag, 'scaf': stats.scaf}, sort_keys=True).encode())
        (folder / 'meta.json').write_text(json.dumps({'name': name, 'n': len(smiles), **versions()}, indent=1))
        v = versions()
        manifest[folder_name] = {'source_hash': stats.source_hash, 'rdkit': v['rdkit'],
                                 'fcd_torch': v['fcd_torch'], 'metrics': v['metrics'],
                                 'files': {f: sha256_file(folder / f) for f in
                                           ('fcd.npz', 'props.npz', 'guac.npz', 'counts.json.gz')}}
        print(f'{name}: statistics in {time.perf_counter() - t0:.0f} s', flush=True)
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')


def chemnet_vs_fcd_torch(smiles: list[str], n_jobs: int) -> dict:
    import torch
    from fcd_torch import FCD

    from molgen.metrics.chemnet import get_chemnet

    torch.set_num_threads(n_jobs)
    t0 = time.perf_counter()
    ref = FCD(device='cpu', n_jobs=1).get_predictions(smiles)
    t_ref = time.perf_counter() - t0
    net = get_chemnet('cpu')
    net.profile.clear()
    t0 = time.perf_counter()
    ours = net.activations(smiles, n_threads=n_jobs)
    t_ours = time.perf_counter() - t0
    return {'profile_seconds': dict(net.profile),'n': len(smiles), 'fcd_torch_seconds': t_ref, 'molgen_seconds': t_ours,
            'fcd_torch_mol_per_s': len(smiles) / t_ref, 'molgen_mol_per_s': len(smiles) / t_ours,
            'speedup': t_ref / t_ours, 'max_abs_diff': float(np.abs(ours - ref).max())}


def golden(args: argparse.Namespace) -> int:
    """The golden input (MOSES timed at ``seconds_moses_2_cores`` on it): first run with an empty
    cache, then a run with cached reference statistics; values against ``expected.json``."""
    sys.path.insert(0, str(ROOT / 'tests'))
    from test_metrics_golden import GOLDEN, golden_inputs, tolerance

    from molgen.metrics import Evaluator
    from molgen.metrics.chemnet import get_chemnet
    from molgen.metrics.reference import versions
    from molgen.parallel import shutdown_pools

    expected = json.loads((GOLDEN / 'expected.json').read_text())
    gen, test, test_sf, train = golden_inputs()
    cache = Path(tempfile.mkdtemp(prefix='molgen-bench-cache-'))
    os.environ['MOLGEN_CACHE'] = str(cache)
    kw = dict(reference=test[:20000], scaffold_reference=test_sf[20000:40000], train=train[:200000],
              n_jobs=args.n_jobs, extras=False, guacamol=False)
    res: dict = {'input': 'moses_golden', 'n_jobs': args.n_jobs, 'versions': versions(),
                 'machine': {'platform': platform.platform(), 'cpus': os.cpu_count(),
                             'loadavg_at_start': os.getloadavg()},
                 'moses_seconds': expected['seconds_moses_2_cores']}
    try:
        get_chemnet('cpu')
        t0 = time.perf_counter()
        r1 = Evaluator(**kw).evaluate(gen)
        res['first_seconds'] = time.perf_counter() - t0
        res['first_timings'] = r1.meta['timings']
        print(f"first (empty cache) {res['first_seconds']:.0f} s", flush=True)
        t0 = time.perf_counter()
        r2 = Evaluator(**kw).evaluate(gen)
        res['cached_seconds'] = time.perf_counter() - t0
        res['cached_timings'] = r2.meta['timings']
        print(f"cached {res['cached_seconds']:.0f} s", flush=True)
    finally:
        shutdown_pools()
        shutil.rmtree(cache, ignore_errors=True)
    res['machine']['loadavg_at_end'] = os.getloadavg()
    rows = []
    ok = True
    for k, want in expected['metrics'].items():
        got = r2.metrics[k]
        good = abs(got - want) <= tolerance(k, want)
        ok &= good
        rows.append(f'| {k} | {want:.6g} | {got:.6g} | {"yes" if good else "NO"} |')
    res['metrics'] = r2.metrics
    res['all_within_tolerance'] = ok
    res['identical_first_vs_cached'] = all(abs(r1.metrics[k] - v) <= 1e-9 * max(1, abs(v))
                                           for k, v in r2.metrics.items())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'evaluate_golden.json').write_text(json.dumps(res, indent=1) + '\n')
    m = res['moses_seconds']
    lines = [f"# Golden input: molgen vs MOSES (n_jobs={args.n_jobs})", '',
             f"Machine: {res['machine']['platform']}, {res['machine']['cpus']} CPUs, load average "
             f"{res['machine']['loadavg_at_start'][0]:.1f} / {res['machine']['loadavg_at_end'][0]:.1f} (start / end; "
             "other jobs shared the 2 cores). Versions: " + ', '.join(f'{k} {v}' for k, v in res['versions'].items()),
             '', f'| run | seconds | vs MOSES ({m:.0f} s) |', '|---|---:|---:|',
             f"| first, empty cache | {res['first_seconds']:.0f} | {m / res['first_seconds']:.1f}x |",
             f"| cached reference statistics | {res['cached_seconds']:.0f} | {m / res['cached_seconds']:.1f}x |",
             '', 'Stage seconds (cached run): ' + ', '.join(f'{k} {v:.1f}' for k, v in res['cached_timings'].items()),
             '', '| metric | MOSES | molgen | within tolerance |', '|---|---:|---:|---|', *rows]
    (out / 'evaluate_golden.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=30_000)
    ap.add_argument('--n-jobs', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=2, help='cached evaluations to time')
    ap.add_argument('--chemnet-n', type=int, default=5000, help='molecules for part (c)')
    ap.add_argument('--ship-stats', action='store_true')
    ap.add_argument('--golden', action='store_true', help='time the golden input instead (see golden())')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results'))
    args = ap.parse_args()
    if args.golden:
        return golden(args)

    if args.ship_stats:
        ship_stats(args.n_jobs)

    from molgen.data.io import read_smiles
    from molgen.metrics import Evaluator
    from molgen.metrics.reference import versions
    from molgen.parallel import shutdown_pools

    # generated: n molecules of the MOSES train set (not in the test sets) with some invalid lines
    train = read_smiles('moses:train')
    rng = np.random.default_rng(0)
    gen = [train[i] for i in rng.choice(len(train), args.n, replace=False)]
    for i in rng.choice(args.n, args.n // 100, replace=False):
        gen[i] = None if i % 2 else gen[i] + '(('
    results: dict = {'n_generated': args.n, 'n_jobs': args.n_jobs,
                     'machine': {'platform': platform.platform(), 'processor': platform.processor(),
                                 'cpus': os.cpu_count(), 'loadavg_at_start': os.getloadavg()},
                     'versions': versions()}
    cache = Path(tempfile.mkdtemp(prefix='molgen-bench-cache-'))
    os.environ['MOLGEN_CACHE'] = str(cache)
    kw = dict(reference='moses:test', scaffold_reference='moses:test_scaffolds', train='moses:train',
              n_jobs=args.n_jobs)
    try:
        t0 = time.perf_counter()
        ev = Evaluator(**kw)
        r = ev.evaluate(gen)
        results['a_first_seconds'] = time.perf_counter() - t0
        results['a_reference_seconds'] = ev.prepare_seconds
        results['a_timings'] = r.meta['timings']
        print(f"(a) first evaluation {results['a_first_seconds']:.1f} s", flush=True)
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            r2 = Evaluator(**kw).evaluate(gen)  # new Evaluator: statistics come from the disk cache
            runs.append(time.perf_counter() - t0)
            results['b_timings'] = r2.meta['timings']
        results['b_cached_seconds'] = runs
        results['b_best_seconds'] = min(runs)
        results['moses_estimate_seconds'] = MOSES_SECONDS_25K * args.n / 25_000
        results['b_speedup_vs_moses'] = results['moses_estimate_seconds'] / min(runs)
        results['metrics'] = {k: (v if np.isfinite(v) else None) for k, v in r2.metrics.items()}
        results['metrics_identical_a_b'] = all(
            (np.isnan(v) and np.isnan(r2.metrics[k])) or abs(v - r2.metrics[k]) <= 1e-9 * max(1, abs(v))
            for k, v in r.metrics.items())
        print(f"(b) cached evaluation {min(runs):.1f} s", flush=True)
    finally:
        shutdown_pools()
        shutil.rmtree(cache, ignore_errors=True)
    from molgen.chem import canonicalize

    canon = [c for c in (canonicalize(s) for s in gen[:args.chemnet_n * 2]) if c][:args.chemnet_n]
    results['c_chemnet'] = chemnet_vs_fcd_torch(canon, args.n_jobs)
    print(f"(c) ChemNet {results['c_chemnet']['speedup']:.2f}x fcd_torch", flush=True)
    results['peak_rss_mb'] = peak_rss_mb()
    results['machine']['loadavg_at_end'] = os.getloadavg()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'evaluate.json').write_text(json.dumps(results, indent=1) + '\n')
    c = results['c_chemnet']
    lines = [
        f"# molgen evaluate benchmark ({args.n} SMILES vs full MOSES test / test_scaffolds / train, "
        f"n_jobs={args.n_jobs})", '',
        f"Machine: {results['machine']['platform']}, {results['machine']['cpus']} CPUs, load average "
        f"{results['machine']['loadavg_at_start'][0]:.1f} at start / {results['machine']['loadavg_at_end'][0]:.1f} "
        "at end (other jobs on the machine slow every number). Versions: "
        + ', '.join(f'{k} {v}' for k, v in results['versions'].items()), '',
        '| part | result | target | met |', '|---|---|---|---|',
        f"| (a) first evaluation, empty cache | {results['a_first_seconds']:.0f} s | < 300 s | "
        f"{'yes' if results['a_first_seconds'] < 300 else 'no (x%.2f over)' % (results['a_first_seconds'] / 300)} |",
        f"| (b) cached evaluation | {results['b_best_seconds']:.0f} s ({results['b_speedup_vs_moses']:.1f}x MOSES "
        f"≈{results['moses_estimate_seconds']:.0f} s) | >= 10x | "
        f"{'yes' if results['b_speedup_vs_moses'] >= 10 else 'no (%.0f%% of target)' % (10 * results['b_speedup_vs_moses'])} |",
        f"| (c) ChemNet activations | {c['molgen_mol_per_s']:.0f} mol/s vs fcd_torch {c['fcd_torch_mol_per_s']:.0f} "
        f"mol/s = {c['speedup']:.2f}x, max diff {c['max_abs_diff']:.1e} | >= 3x, < 1e-5 | "
        f"{'yes' if c['speedup'] >= 3 and c['max_abs_diff'] < 1e-5 else 'no'} |",
        '', f"Peak RSS {results['peak_rss_mb']:.0f} MB. Stage timings (b): "
        + ', '.join(f'{k} {v:.1f} s' for k, v in results['b_timings'].items()),
        '', 'ChemNet profile (c), seconds: ' + ', '.join(f'{k} {v:.1f}' for k, v in c['profile_seconds'].items()),
    ]
    (out / 'evaluate.md').write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
