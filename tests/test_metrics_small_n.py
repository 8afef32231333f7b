"""Evaluation at any n: with fewer valid molecules than a metric needs, the table says why a value is
missing (a NaN with a note, or a row for a metric that could not be computed at all)."""

import math

import pytest


@pytest.fixture(scope='module')
def evaluator(moses_test_smiles):
    from molgen.metrics import Evaluator

    return Evaluator(reference=moses_test_smiles[:200], train=moses_test_smiles[500:800], n_jobs=1)


@pytest.mark.parametrize('n_valid', [0, 1, 2, 4])
def test_every_missing_value_says_why(evaluator, moses_test_smiles, n_valid):
    gen = ['not a smiles', *moses_test_smiles[1000:1000 + n_valid]]
    report = evaluator.evaluate(gen)
    missing = [k for k, v in report.metrics.items() if v is None or not math.isfinite(v)]
    assert all(report.notes.get(k) for k in missing), [k for k in missing if not report.notes.get(k)]
    if n_valid < 2:
        assert 'FCD/Test' in missing and math.isnan(report['guacamol/KL'])
    if n_valid == 1:
        assert report.notes['FCD/Test'] == 'FCD needs at least 2 valid molecules (1 given)'
    table = report.to_markdown()
    rows = {line.split('|')[1].strip(): line for line in table.splitlines() if line.startswith('| ')}
    for k in missing:
        assert report.notes[k] in rows[k]
    # metrics that were not computed at all still get a row that says why
    assert 'precision' in rows and 'needs more than 5 valid molecules' in rows['precision']
    if n_valid < 2:
        assert 'FCDfloor' in rows and 'fewer than 2 valid molecules' in rows['FCDfloor']
    else:
        assert math.isfinite(report['FCDfloor/Test'])
