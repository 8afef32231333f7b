"""The GuacaMol KL-divergence score, pinned.

``guacamol`` is not installed in this environment, so the golden numbers come from
``tests/guacamol_reference.py``, a literal transcription of GuacaMol's own KL benchmark code; the test
checks (1) that transcription reproduces the pinned numbers, (2) molgen's functions and the whole
Evaluator match them, (3) a descriptor whose KL cannot be computed is noted, never scored as 0.
"""

import math

import numpy as np
import pytest

from tests import guacamol_reference as G

# KLDivBenchmark on fixed inputs: reference = moses:test[:300], sample = moses:test[1000:1250]
GOLDEN_SCORE = 0.938361535892572
GOLDEN_KL = {'BertzCT': 0.024211911932153163, 'MolLogP': 0.04849705917894871, 'MolWt': 0.011134190358465468,
             'TPSA': 0.188438623152074, 'NumHAcceptors': 0.022179177781034554, 'NumHDonors': 0.14568681273159773,
             'NumRotatableBonds': 0.05437844103192861, 'NumAliphaticRings': 0.07831261284487914,
             'NumAromaticRings': 0.020889715212986704, 'internal_similarity': 0.05749331372540244}


@pytest.fixture(scope='module')
def sets():
    from molgen.data.io import read_smiles

    test = read_smiles('moses:test')
    ref = G.canonicalize_list(test[:300], include_stereocenters=False)
    gen = test[1000:1250]
    return ref, gen


def test_transcribed_guacamol_reproduces_the_golden_values(sets):
    score, kl = G.kl_benchmark(*sets)
    assert score == pytest.approx(GOLDEN_SCORE, abs=1e-12)
    assert {k: float(v) for k, v in kl.items()} == pytest.approx(GOLDEN_KL, abs=1e-12)


def test_molgen_kl_functions_match_guacamol(sets):
    from molgen.metrics import featurize as fz
    from molgen.metrics.guacamol import continuous_kldiv, discrete_kldiv, kl_divergences
    from molgen.metrics.reference import nn_similarity

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(0.3, 1.2, size=200)
    assert continuous_kldiv(a, b) == pytest.approx(G.continuous_kldiv(a, b), abs=1e-12)
    ia, ib = rng.integers(0, 7, 300).astype(float), rng.integers(0, 9, 200).astype(float)
    assert discrete_kldiv(ia, ib) == pytest.approx(G.discrete_kldiv(ia, ib), abs=1e-12)

    ref, gen = sets
    uniq = sorted(set(G.canonicalize_list(gen, include_stereocenters=False)))
    r = fz.featurize(ref, ('guac', 'fp4096'), generated=False)
    g = fz.featurize(uniq, ('guac', 'fp4096'), generated=False)
    res = kl_divergences(r['guac'], nn_similarity(r['fp4096']), g['guac'], nn_similarity(g['fp4096']))
    assert not res.failed
    # descriptors exactly; the similarity KDE from float32 Tanimoto values to ~1e-9
    assert res.kl == pytest.approx(GOLDEN_KL, abs=1e-8)
    assert res.score == pytest.approx(GOLDEN_SCORE, abs=1e-9)


@pytest.mark.slow
def test_evaluator_reports_the_score_and_every_divergence(sets):
    from molgen.metrics import Evaluator

    ref, gen = sets
    report = Evaluator(reference=ref, extras=False, n_jobs=1, use_cache=False).evaluate(gen)
    assert report['guacamol/KL'] == pytest.approx(GOLDEN_SCORE, abs=1e-9)
    kl = report.meta['guacamol/KL']
    assert kl['kl'] == pytest.approx(GOLDEN_KL, abs=1e-8) and kl['failed'] == {}
    assert report.to_dict()['guacamol/KL']['kl']['internal_similarity'] == pytest.approx(GOLDEN_KL['internal_similarity'],
                                                                                         abs=1e-8)


def test_a_descriptor_that_cannot_be_computed_is_noted_not_scored_zero(sets):
    from molgen.metrics import Evaluator
    from molgen.metrics.guacamol import kl_divergences

    rng = np.random.default_rng(1)
    ref_desc, gen_desc = rng.normal(size=(50, 9)) + 5, rng.normal(size=(40, 9)) + 5
    gen_desc[:, 0] = 3.0  # every generated BertzCT equal: GuacaMol's KDE raises
    res = kl_divergences(ref_desc, rng.random(50), gen_desc, rng.random(40))
    assert math.isnan(res.score) and math.isnan(res.kl['BertzCT'])
    assert set(res.failed) == {'BertzCT'} and 'equal' in res.failed['BertzCT']
    assert all(np.isfinite(v) for k, v in res.kl.items() if k != 'BertzCT')
    assert 'BertzCT' in res.note()

    # through the Evaluator: ortho- and meta-xylene share their weight, so a KDE of two equal values
    ref, _ = sets
    report = Evaluator(reference=ref[:40], extras=False, n_jobs=1, use_cache=False).evaluate(
        ['Cc1ccccc1C', 'Cc1cccc(C)c1'])
    assert math.isnan(report['guacamol/KL'])
    failed = report.meta['guacamol/KL']['failed']
    assert 'MolWt' in failed and all(k in report.notes['guacamol/KL'] for k in failed)
    assert np.isfinite(report.meta['guacamol/KL']['kl']['NumHDonors'])  # the others are kept


def test_nonfinite_descriptor_values_are_set_to_zero_and_counted():
    from molgen.metrics.guacamol import kl_divergences

    rng = np.random.default_rng(2)
    ref_desc, gen_desc = rng.normal(size=(60, 9)), rng.normal(size=(60, 9))
    ref_sim, gen_sim = rng.random(60), rng.random(60)
    gen_desc[3, 2] = np.nan
    res = kl_divergences(ref_desc, ref_sim, gen_desc, gen_sim)
    assert res.nonfinite == {'MolWt (generated)': 1} and np.isfinite(res.score)
    fixed = gen_desc.copy()
    fixed[3, 2] = 0.0  # what GuacaMol's _calculate_pc_descriptors does
    assert res.score == kl_divergences(ref_desc, ref_sim, fixed, gen_sim).score
