"""Golden values: molgen reproduces the MOSES reference implementation (``moses.get_all_metrics``) on
the fixed inputs of ``shared/data/moses_golden`` within the tolerances of its README.

The full run (11,000 samples, 20,000-molecule references, 200,000 train) is marked ``slow`` and
``golden``: it takes a few minutes on 2 cores the first time (far less once the reference statistics
are cached) and runs in CI through ``make test``. The default suite keeps a fast subset: the metrics of
the generated set alone (validity and uniqueness, with their denominators) on the full golden input.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

# Inputs and the MOSES reference values, copied from shared/data/moses_golden (README there).
GOLDEN = Path(os.environ.get('MOLGEN_GOLDEN', Path(__file__).resolve().parent / 'data' / 'moses_golden'))

ABS_1E3 = ('valid', 'unique@1000', 'unique@10000', 'Filters', 'Novelty', 'IntDiv', 'IntDiv2',
           'Frag/Test', 'Frag/TestSF')


def tolerance(key: str, expected: float) -> float:
    if key in ABS_1E3:
        return 1e-3
    if key.startswith('SNN'):
        return 5e-3
    if key.startswith('Scaf'):
        return 1e-2
    if key.startswith('FCD'):
        return 0.02 * abs(expected)
    return 0.05 * abs(expected)  # logP, SA, QED, weight


def golden_generated() -> list[str]:
    gen = (GOLDEN / 'generated.smi').read_text().split('\n')
    if gen and gen[-1] == '':
        gen = gen[:-1]
    return gen


def golden_inputs():
    from molgen.data.io import read_smiles

    gen = golden_generated()
    test = read_smiles('moses:test')
    test_sf = read_smiles('moses:test_scaffolds')
    train = read_smiles('moses:train')
    return gen, test, test_sf, train


def test_golden_validity_and_uniqueness_on_the_full_input():
    """The metrics that need no reference, on all 11,000 golden samples: empty lines and ``None`` count as
    invalid samples, randomized SMILES of one molecule count once."""
    from molgen.metrics import featurize as fz
    from molgen.metrics import moses as M
    from molgen.metrics.generated import GeneratedSet
    from molgen.parallel import map_chunks

    expected = json.loads((GOLDEN / 'expected.json').read_text())['metrics']
    gen = golden_generated()
    assert len(gen) == 11_000 and gen.count('') == 100 and gen.count('None') == 100
    f = fz.merge(map_chunks(fz.featurize, gen, 2, chunk_size=2750, what=('canon',)))
    g = GeneratedSet(raw=gen, valid=f['valid'], canon=f['canon'])
    got = {'valid': M.fraction_valid(g), 'unique@1000': M.unique_at_k(g, 1000),
           'unique@10000': M.unique_at_k(g, 10000)}
    for key, v in got.items():
        assert abs(v - expected[key]) <= tolerance(key, expected[key]), (key, v, expected[key])


@pytest.mark.slow
@pytest.mark.golden
def test_full_golden_run_matches_moses(monkeypatch):
    from molgen.metrics import Evaluator

    if os.environ.get('MOLGEN_GOLDEN_CACHE'):  # reuse reference statistics across runs (CI cache)
        monkeypatch.setenv('MOLGEN_CACHE', os.environ['MOLGEN_GOLDEN_CACHE'])

    expected = json.loads((GOLDEN / 'expected.json').read_text())['metrics']
    gen, test, test_sf, train = golden_inputs()
    assert len(gen) == 11_000
    ev = Evaluator(reference=test[:20000], scaffold_reference=test_sf[20000:40000], train=train[:200000],
                   n_jobs=2, extras=False, guacamol=False)
    report = ev.evaluate(gen)
    bad = []
    for key, want in expected.items():
        got = report.metrics[key]
        if not (math.isfinite(got) and abs(got - want) <= tolerance(key, want)):
            bad.append(f'{key}: got {got}, MOSES {want}')
    assert not bad, '\n'.join(bad)
    assert report.meta['n_requested'] == 11_000
