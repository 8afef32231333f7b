"""Evaluation speed: molgen's ``Evaluator`` against the MOSES reference implementation, timed in the same
run on the same samples and the same reference sets.

    python benchmarks/evaluate.py [--n 5000] [--n-jobs 2] [--repeats 2] [--samples FILE] [--ship-stats]

Samples: ``--n`` molecules drawn from the shipped ``moses-transformer`` (seed 0, temperature 1), or the
lines of ``--samples``. References: the full MOSES test, test_scaffolds and train sets (the bytes MOSES
ships, checked by sha256).

- MOSES: ``moses.get_all_metrics(gen, n_jobs=N)`` in the peer environment that
  ``/work/shared/tools/moses_peer.sh`` builds (``--moses-python`` to point elsewhere), i.e. MOSES as it is
  normally run, with the test statistics it ships precomputed (its best case: nothing about the
  references is computed).
- molgen cold: a new ``Evaluator`` with an empty cache (a fresh install: shipped statistics, reference
  fingerprints computed), the same metrics as MOSES (``extras=False, guacamol=False``).
- molgen warm: a new ``Evaluator`` in the same process, reference statistics from the disk cache (best
  of ``--repeats``); then the default ``Evaluator`` (with the extras and GuacaMol scores) for reference.

Writes ``benchmarks/results/evaluate.json`` and ``.md``: seconds, the MOSES / molgen ratios, per-stage
timings, the metric values of both side by side (golden tolerances), load averages and machine info.
``--ship-stats`` first (re)computes the shipped statistics under ``data/moses/stats/`` (FCD mean and
covariance, properties, fragment/scaffold counts, GuacaMol subset) with a sha256 manifest. ``--golden``
times the golden input instead (against the MOSES time recorded with it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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



# The MOSES side runs in its own environment; this driver is written to a temporary file and run there.
MOSES_DRIVER = r"""
import json, sys, time
t0 = time.perf_counter()
import moses
from moses.dataset import get_dataset
t_import = time.perf_counter() - t0
gen = json.load(open(sys.argv[1]))
n_jobs = int(sys.argv[2])
import torch
torch.set_num_threads(n_jobs)
t0 = time.perf_counter()
metrics = moses.get_all_metrics(gen, n_jobs=n_jobs, device='cpu')
seconds = time.perf_counter() - t0
import rdkit, fcd_torch, importlib.metadata as md
print(json.dumps({'seconds': seconds, 'import_seconds': t_import,
                  'metrics': {k: float(v) for k, v in metrics.items()},
                  'versions': {'molsets': md.version('molsets'), 'rdkit': rdkit.__version__,
                               'torch': torch.__version__, 'fcd_torch': md.version('fcd_torch'),
                               'python': sys.version.split()[0]}}))
"""


def moses_python(given: str | None) -> str:
    if given:
        return given
    out = subprocess.run(['bash', '/work/shared/tools/moses_peer.sh'], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def moses_data_matches(python: str) -> dict[str, bool]:
    """The MOSES package's own data files are byte-identical to molgen's catalog entries."""
    from molgen.data.catalog import entry, sha256_file

    folder = subprocess.run([python, '-c', 'import moses.dataset, os; print(os.path.dirname(moses.dataset.__file__))'],
                            check=True, capture_output=True, text=True).stdout.strip()
    return {name: sha256_file(Path(folder) / 'data' / f'{name.split(":")[1]}.csv.gz') == entry(name).sha256
            for name in ('moses:train', 'moses:test', 'moses:test_scaffolds')}


def run_moses(python: str, gen: list, n_jobs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        driver = Path(tmp) / 'moses_driver.py'
        driver.write_text(MOSES_DRIVER)
        gen_path = Path(tmp) / 'gen.json'
        gen_path.write_text(json.dumps(gen))
        env = {**os.environ, 'OMP_NUM_THREADS': str(n_jobs), 'MKL_NUM_THREADS': str(n_jobs)}
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        out = subprocess.run([python, str(driver), str(gen_path), str(n_jobs)], check=True, capture_output=True,
                             text=True, env=env, cwd=tmp)
        wall = time.perf_counter() - t0
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res['process_seconds'] = wall
    res['loadavg'] = [load0, os.getloadavg()[0]]
    return res


def draw_samples(n: int) -> tuple[list[str | None], dict]:
    import molgen

    model = molgen.load('moses-transformer')
    t0 = time.perf_counter()
    res = model.sample(n, seed=0)
    info = {'source': 'moses-transformer, seed 0, temperature 1', 'sampling_seconds': time.perf_counter() - t0}
    return list(res.smiles), info


def timed_evaluate(kw: dict, gen: list) -> tuple[float, object, list[float]]:
    from molgen.metrics import Evaluator

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    report = Evaluator(**kw).evaluate(gen)
    return time.perf_counter() - t0, report, [load0, os.getloadavg()[0]]


def load_text(load: list[float]) -> str:
    return f'{load[0]:.1f} / {load[1]:.1f}'


def metric_rows(moses_m: dict, ours: dict) -> tuple[list[str], bool]:
    sys.path.insert(0, str(ROOT / 'tests'))
    from test_metrics_golden import tolerance

    rows, ok = [], True
    for k, want in moses_m.items():
        got = ours.get(k, float('nan'))
        good = bool(np.isfinite(got) and abs(got - want) <= tolerance(k, want))
        ok &= good
        rows.append(f'| {k} | {want:.6g} | {got:.6g} | {"yes" if good else "NO"} |')
    return rows, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--n', type=int, default=5000, help='samples drawn from moses-transformer')
    ap.add_argument('--samples', default=None, help='a .smi file of samples instead of drawing them')
    ap.add_argument('--n-jobs', type=int, default=2)
    ap.add_argument('--repeats', type=int, default=2, help='warm evaluations to time (the best counts)')
    ap.add_argument('--moses-python', default=None, help='python of the MOSES peer (default: moses_peer.sh)')
    ap.add_argument('--skip-moses', action='store_true', help='time molgen only (no ratio)')
    ap.add_argument('--ship-stats', action='store_true')
    ap.add_argument('--golden', action='store_true', help='time the golden input instead (see golden())')
    ap.add_argument('--out', default=str(ROOT / 'benchmarks' / 'results'))
    args = ap.parse_args()
    if args.golden:
        return golden(args)
    if args.ship_stats:
        ship_stats(args.n_jobs)

    import _common
    from _common import write_results

    from molgen.chem import quiet_rdkit
    from molgen.metrics.chemnet import get_chemnet
    from molgen.parallel import shutdown_pools

    if args.samples:
        from molgen.data.io import read_smiles

        gen = read_smiles(args.samples)
        sample_info = {'source': str(args.samples)}
    else:
        gen, sample_info = draw_samples(args.n)
    gen = [s if s is not None else '' for s in gen]
    results: dict = {'n_generated': len(gen), 'n_jobs': args.n_jobs, 'samples': sample_info,
                     'references': {'test': 'moses:test (176,074)', 'test_scaffolds': 'moses:test_scaffolds (176,226)',
                                    'train': 'moses:train (1,584,663)'},
                     'loadavg_at_start': os.getloadavg()}
    print(f'{len(gen)} samples ({sample_info["source"]})', flush=True)

    if not args.skip_moses:
        py = moses_python(args.moses_python)
        results['moses_data_identical'] = moses_data_matches(py)
        mo = run_moses(py, gen, args.n_jobs)
        results['moses'] = mo
        print(f"MOSES get_all_metrics {mo['seconds']:.1f} s (process {mo['process_seconds']:.1f} s)", flush=True)

    cache = Path(tempfile.mkdtemp(prefix='molgen-bench-cache-'))
    os.environ['MOLGEN_CACHE'] = str(cache)
    kw = dict(reference='moses:test', scaffold_reference='moses:test_scaffolds', train='moses:train',
              n_jobs=args.n_jobs, extras=False, guacamol=False)
    try:
        with quiet_rdkit():
            get_chemnet.cache_clear()
            cold, r1, load1 = timed_evaluate(kw, gen)
            results['molgen_cold'] = {'seconds': cold, 'timings': r1.meta['timings'], 'loadavg': load1}
            print(f'molgen cold (empty cache) {cold:.1f} s', flush=True)
            warm = []
            for _ in range(args.repeats):
                t, r2, load2 = timed_evaluate(kw, gen)
                warm.append(t)
                if t <= min(warm):
                    results['molgen_warm'] = {'seconds': t, 'timings': r2.meta['timings'], 'loadavg': load2}
            results['molgen_warm']['all_seconds'] = warm
            print(f'molgen warm (cached references) {min(warm):.1f} s', flush=True)
            t, r3, load3 = timed_evaluate({**kw, 'extras': True, 'guacamol': True}, gen)
            t, r3, load3 = timed_evaluate({**kw, 'extras': True, 'guacamol': True}, gen) if args.repeats > 1 else (t, r3, load3)
            results['molgen_warm_full'] = {'seconds': t, 'timings': r3.meta['timings'], 'loadavg': load3,
                                           'n_metrics': len(r3.metrics)}
            print(f'molgen warm, default Evaluator (extras + GuacaMol) {t:.1f} s', flush=True)
    finally:
        shutdown_pools()
        shutil.rmtree(cache, ignore_errors=True)
    results['metrics'] = {k: (v if np.isfinite(v) else None) for k, v in r2.metrics.items()}
    results['metrics_identical_cold_warm'] = all(
        (np.isnan(v) and np.isnan(r2.metrics[k])) or v == r2.metrics[k] for k, v in r1.metrics.items())
    results['peak_rss_mb'] = peak_rss_mb()
    results['loadavg_at_end'] = os.getloadavg()

    n = len(gen)
    rows = []
    notes = []
    if 'moses' in results:
        m = results['moses']['seconds']
        results['speedup_cold'] = m / cold
        results['speedup_warm'] = m / min(warm)
        mrows, ok = metric_rows(results['moses']['metrics'], r2.metrics)
        results['values_within_golden_tolerance'] = ok
        rows.append({'run': 'MOSES get_all_metrics (its shipped test statistics)', 'seconds': m, 'vs MOSES': '1x',
                     'load average': load_text(results['moses']['loadavg'])})
        notes.append('MOSES ' + ', '.join(f'{k} {v}' for k, v in results['moses']['versions'].items())
                     + f"; its data files are byte-identical to molgen's: {results['moses_data_identical']}; "
                     f"`import moses` {results['moses']['import_seconds']:.1f} s, not counted.")
    else:
        m = None

    def ratio(t: float) -> str:
        return f'{m / t:.1f}x' if m else ''
    rows.append({'run': 'molgen cold: new Evaluator, empty cache (fresh install)', 'seconds': cold,
                 'vs MOSES': ratio(cold), 'load average': load_text(load1)})
    rows.append({'run': f'molgen warm: new Evaluator, cached references (best of {len(warm)})', 'seconds': min(warm),
                 'vs MOSES': ratio(min(warm)), 'load average': load_text(results['molgen_warm']['loadavg'])})
    rows.append({'run': f"molgen warm, default Evaluator (+ extras and GuacaMol: {len(r3.metrics)} values)",
                 'seconds': results['molgen_warm_full']['seconds'], 'vs MOSES': ratio(results['molgen_warm_full']['seconds']),
                 'load average': load_text(load3)})
    notes.insert(0, f"{n} samples ({sample_info['source']}) against the full MOSES test (176,074), test_scaffolds "
                 f"and train (1.58M) sets, n_jobs={args.n_jobs} for both (worker processes; torch threads). Same "
                 "metrics for MOSES and the first two molgen rows (`extras=False, guacamol=False`). The machine "
                 "is shared (2 cores): the load averages (1 min, at start / end of each run) show how busy it was.")
    for label, key in (('cold', 'molgen_cold'), ('warm', 'molgen_warm'), ('warm default', 'molgen_warm_full')):
        notes.append(f'Stage seconds, molgen {label}: '
                     + ', '.join(f'{k} {v:.1f}' for k, v in results[key]['timings'].items()))
    notes.append(f"Peak RSS {results['peak_rss_mb']:.0f} MB; cold and warm values identical: "
                 f"{results['metrics_identical_cold_warm']}.")
    if m:
        notes.append('\n'.join(['Values (molgen warm vs MOSES, golden-test tolerances):', '',
                                 '| metric | MOSES | molgen | within tolerance |', '|---|---:|---:|---|', *mrows]))
    results['command'] = 'python ' + ' '.join(['benchmarks/evaluate.py', *sys.argv[1:]])
    notes.append(f"Command: `{results['command']}`.")
    title = (f"molgen evaluate vs MOSES, same run: {n} samples, full MOSES references, n_jobs={args.n_jobs}"
             + (f": {results['speedup_warm']:.1f}x warm, {results['speedup_cold']:.1f}x cold" if m else ''))
    _common.RESULTS = Path(args.out)
    _, md = write_results('evaluate', results, rows, title, notes)
    print(md.read_text())
    return 0


if __name__ == '__main__':
    sys.exit(main())
