"""Metric definitions, edge cases, the fast paths against their slow references, reports and the CLI."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parent / 'data' / 'moses_golden'


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv('MOLGEN_CACHE', str(tmp_path / 'cache'))


@pytest.fixture(scope='module')
def test_smiles() -> list[str]:
    from molgen.data.io import read_smiles

    return read_smiles('moses:test')[:3000]


def small_evaluator(ref, **kw):
    from molgen.metrics import Evaluator

    kw.setdefault('extras', False)
    kw.setdefault('guacamol', False)
    return Evaluator(reference=ref, n_jobs=1, **kw)


# ---- fast paths equal their references ----------------------------------------------------------------

def test_chemnet_activations_equal_fcd_torch(test_smiles):
    from fcd_torch import FCD
    from rdkit import Chem

    from molgen.metrics.chemnet import get_chemnet

    smi = [*test_smiles[:60], 'C', 'CC', 'Clc1ccccc1Br', 'C' * 120, 'C' * 400, 'O=[Si](O)c1ccc[nH]1', 'CC[Se]C']
    smi = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smi]
    want = FCD(device='cpu', n_jobs=1).get_predictions(smi)
    got = get_chemnet('cpu').activations(smi, batch_size=16)
    assert got.shape == want.shape == (len(smi), 512)
    assert np.abs(got - want).max() < 1e-5


def test_frechet_distance_equals_fcd_torch():
    from fcd_torch.utils import calculate_frechet_distance

    from molgen.metrics.chemnet import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 20)), rng.normal(0.3, 1.2, size=(200, 20)) @ rng.normal(size=(20, 20))
    args = (a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert frechet_distance(*args) == pytest.approx(calculate_frechet_distance(*args), rel=1e-8)


def _fps(smiles):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    return [AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=1024) for s in smiles]


def _packed(smiles):
    from molgen.metrics.featurize import featurize

    return featurize(smiles, ('fp',))['fp']


def test_max_and_mean_tanimoto_equal_rdkit_bulk(test_smiles):
    from rdkit import DataStructs

    from molgen.metrics.fingerprints import max_tanimoto, mean_tanimoto_powers

    gen, ref = test_smiles[:150], test_smiles[200:900]
    fg, fr = _fps(gen), _fps(ref)
    want_max = np.array([max(DataStructs.BulkTanimotoSimilarity(f, fr)) for f in fg])
    got_max = max_tanimoto(_packed(gen), _packed(ref), block=64)
    assert np.abs(got_max - want_max).max() < 1e-6
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fg) for f in fg])
    m1, m2 = mean_tanimoto_powers(_packed(gen), chunk=64)
    assert np.abs(m1 - sims.mean(1)).max() < 1e-6
    assert np.abs(m2 - (sims ** 2).mean(1)).max() < 1e-6


def test_filter_library_equals_naive_matching_including_alert_hits(test_smiles):
    from rdkit import Chem

    from molgen.metrics.featurize import passes_filters, passes_filters_naive

    alerts = ['O=C1C(=Cc2ccccc2)SC(=S)N1', 'Oc1ccccc1O', 'c1ccc(N=Nc2ccccc2)cc1', 'O=C1C=CC(=O)C=C1',
              'C=CC#N', 'CC(=O)OO', 'NNc1ccccc1', 'C1CCCCCCC1', 'C[N+](C)(C)C', 'CP(C)C', 'OCCS(=O)(=O)F',
              'O=C(C=Cc1ccccc1)c1ccccc1', 'Nc1ccc(N)cc1', 'c1ccc2c(c1)ccc1ccccc12']
    mols = [Chem.MolFromSmiles(s) for s in test_smiles[:300] + alerts]
    want = np.array([passes_filters_naive(m) for m in mols])
    got = passes_filters(mols)
    assert (~want).sum() >= 8  # the alert set really triggers alerts
    assert (got == want).all()


# ---- definitions and edge cases -----------------------------------------------------------------------

def test_invalid_inputs_count_in_the_denominator(test_smiles):
    ev = small_evaluator(test_smiles[:200])
    r = ev.evaluate(['CCO', '', None, 'None', 'C1CC', 'c1ccccc1'])
    assert r['valid'] == pytest.approx(2 / 6)
    assert r.meta['n_requested'] == 6 and r.meta['n_valid'] == 2


def test_all_invalid_gives_zero_validity_and_nan_with_reasons(test_smiles):
    ev = small_evaluator(test_smiles[:200], train=test_smiles[500:700])
    r = ev.evaluate(['', None, 'xyz', 'C1CC'])
    assert r['valid'] == 0.0
    for key in ('unique@1000', 'FCD/Test', 'SNN/Test', 'IntDiv', 'Filters', 'logP', 'Novelty'):
        assert math.isnan(r[key]), key
    assert 'at least 2' in r.notes['FCD/Test']
    assert r.notes['unique@1000'] == 'no valid molecules'
    assert all(k in r.notes for k, v in r.metrics.items() if not math.isfinite(v))
    d = r.to_dict()
    assert d['metrics']['FCD/Test'] is None  # JSON-safe
    json.dumps(d)


def test_fcd_with_one_valid_molecule_is_nan_with_reason(test_smiles):
    r = small_evaluator(test_smiles[:200]).evaluate(['CCO', 'bad'])
    assert math.isnan(r['FCD/Test'])
    assert '1 given' in r.notes['FCD/Test']
    assert r['SNN/Test'] > 0  # the other metrics still work


def test_uniqueness_counts_duplicates_written_differently_once(test_smiles):
    ev = small_evaluator(test_smiles[:200], k=(3, 1000))
    r = ev.evaluate(['CCO', 'OCC', 'C(O)C', 'c1ccccc1', 'C1=CC=CC=C1', 'CCN'])
    assert r['unique@3'] == pytest.approx(1 / 3)       # first 3 valid are one molecule
    assert r['unique@1000'] == pytest.approx(3 / 6)    # fewer than k: over all 6 valid
    assert 'only 6 valid' in r.notes['unique@1000']


def test_novelty_uses_canonical_generated_against_train_as_given(test_smiles):
    train = ['CCO', 'c1ccccc1']
    ev = small_evaluator(test_smiles[:200], train=train)
    r = ev.evaluate(['OCC', 'C1=CC=CC=C1', 'CCN', 'CCN'])
    assert r['Novelty'] == pytest.approx(1 / 3)


def test_unit_level_golden_slice_matches_direct_moses_definitions(test_smiles):
    """A 300-sample slice of the golden input, checked against MOSES formulas written out directly."""
    from fcd_torch import FCD
    from rdkit import Chem, DataStructs
    from scipy.spatial.distance import cosine
    from scipy.stats import wasserstein_distance

    from molgen.metrics.chemnet import frechet_distance
    from molgen.metrics.featurize import fragments, scaffold

    gen = (GOLDEN / 'generated.smi').read_text().split('\n')[:300]
    ref = test_smiles[:600]
    r = small_evaluator(ref, k=(100, 1000)).evaluate(gen)
    mols = [Chem.MolFromSmiles(s) if s else None for s in gen]
    valid = [m for m in mols if m is not None]
    assert r['valid'] == pytest.approx(len(valid) / 300)
    canon = [Chem.MolToSmiles(m) for m in valid]
    assert r['unique@100'] == pytest.approx(len(set(canon[:100])) / 100)
    vm = [Chem.MolFromSmiles(c) for c in canon]
    rm = [Chem.MolFromSmiles(s) for s in ref]
    fg, fr = _fps(canon), _fps(ref)
    snn = np.mean([max(DataStructs.BulkTanimotoSimilarity(f, fr)) for f in fg])
    assert r['SNN/Test'] == pytest.approx(snn, abs=1e-6)
    sims = np.array([DataStructs.BulkTanimotoSimilarity(f, fg) for f in fg])
    assert r['IntDiv'] == pytest.approx(1 - sims.mean(), abs=1e-6)
    assert r['IntDiv2'] == pytest.approx(1 - np.sqrt((sims ** 2).mean(1)).mean(), abs=1e-6)

    def cos(a, b):
        keys = sorted(set(a) | set(b))
        return 1 - cosine([a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys])

    from collections import Counter
    fa = Counter(f for m in rm for f in fragments(m))
    fb = Counter(f for m in vm for f in fragments(m))
    assert r['Frag/Test'] == pytest.approx(cos(fa, fb), abs=1e-9)
    sa = Counter(s for s in map(scaffold, rm) if s)
    sb = Counter(s for s in map(scaffold, vm) if s)
    assert r['Scaf/Test'] == pytest.approx(cos(sa, sb) if sa and sb else 0.0, abs=1e-9)
    def props(m):
        from rdkit.Chem import QED, Crippen, Descriptors

        from molgen.metrics.featurize import _sascorer
        return Crippen.MolLogP(m), _sascorer().calculateScore(m), QED.qed(m), Descriptors.MolWt(m)

    pr, pg = np.array([props(m) for m in rm]), np.array([props(m) for m in vm])
    for i, key in enumerate(('logP', 'SA', 'QED', 'weight')):
        assert r[key] == pytest.approx(wasserstein_distance(pr[:, i], pg[:, i]), rel=1e-9)
    # fcd_torch's activations (its sqrtm takes ~12 s; frechet_distance is tested against it above)
    fcd_torch = FCD(device='cpu', n_jobs=1)
    a, b = fcd_torch.get_predictions(ref), fcd_torch.get_predictions(canon)
    fcd = frechet_distance(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert r['FCD/Test'] == pytest.approx(fcd, rel=1e-4)


def test_metric_precalc_compute_split_works_standalone(test_smiles):
    from molgen.metrics.moses import SNN, Wasserstein

    ref, gen = test_smiles[:300], [*test_smiles[400:450], 'bad']
    r = small_evaluator(ref).evaluate(gen)
    pre = SNN().precalc(ref)
    assert SNN().compute(gen, pre) == pytest.approx(r['SNN/Test'])
    assert Wasserstein(3, 'weight')(gen, ref) == pytest.approx(r['weight'])


# ---- extras, GuacaMol, likelihood, cache ---------------------------------------------------------------

class FakeModel:
    capabilities = frozenset({'sample', 'log_likelihood'})
    likelihood_kind = 'exact'

    def score(self, smiles):
        return pd.DataFrame({'input': smiles, 'canonical': smiles,
                             'status': ['ok'] * (len(smiles) - 1) + ['invalid_smiles'],
                             'log_likelihood': [-20.0] * (len(smiles) - 1) + [float('nan')],
                             'nll_per_token': 0.5, 'n_tokens': 40, 'likelihood_kind': 'exact'})


class NoLikelihood:
    capabilities = frozenset({'sample'})
    likelihood_kind = None


def test_extras_guacamol_and_nll(test_smiles, tmp_path):
    from molgen.metrics import Evaluator

    ev = Evaluator(reference=test_smiles[:800], train=test_smiles[1000:3000], n_jobs=1, nll_n=50)
    gen = test_smiles[2000:2400]
    r = ev.evaluate(gen, model=FakeModel())
    assert r['NLL/Test'] == pytest.approx(20.0)
    assert r.meta['likelihood_kind'] == 'exact'
    assert '1 of 50' in r.notes['NLL/Test']
    assert 0 < r['FCDfloor/Test'] < 20 and math.isfinite(r['FCD/Test'])
    assert r['guacamol/FCD'] == pytest.approx(math.exp(-0.2 * r['FCD/Test']))
    assert 0.5 < r['guacamol/KL'] <= 1.0  # real molecules vs real molecules
    assert r['guacamol/novelty'] == 0.0    # gen is a slice of train
    assert r['precision'] > 0.5 and r['recall'] > 0.5
    # mode dropping: one molecule repeated has low recall and coverage
    collapsed = ev.evaluate([test_smiles[2000]] * 400, model=NoLikelihood())
    assert collapsed['recall'] < 0.1 and collapsed['coverage'] < 0.1
    assert 'NLL/Test' not in collapsed.metrics and 'no likelihood' in collapsed.notes['NLL/Test']
    paths = r.plot(tmp_path / 'plots')
    assert len(paths) == 4 and all(p.stat().st_size > 1000 for p in paths)


def test_reference_statistics_are_cached_on_disk(test_smiles):
    from molgen.metrics.reference import get_reference

    a = get_reference(test_smiles[:300], {'fcd', 'fp', 'counts', 'props'})
    assert set(a.origin.values()) == {'computed'}
    b = get_reference(test_smiles[:300], {'fcd', 'fp', 'counts', 'props'})
    assert set(b.origin.values()) == {'cache'}
    assert np.allclose(a.fcd_sigma, b.fcd_sigma) and (a.fp == b.fp).all() and a.scaf == b.scaf
    c = get_reference(test_smiles[:301], {'fcd'})
    assert c.origin['fcd'] == 'computed'  # different data, different key


def test_parallel_pool_gives_the_same_values(test_smiles):
    from molgen.metrics import Evaluator

    gen = [*test_smiles[1000:1150], '', None, 'C1CC']
    kw = dict(reference=test_smiles[:300], extras=False, guacamol=False)
    r1 = Evaluator(n_jobs=1, **kw).evaluate(gen)
    r2 = Evaluator(n_jobs=2, **kw).evaluate(gen)
    r3 = Evaluator(n_jobs=2, **kw).evaluate(gen)  # the pool is reused, not respawned
    for key, v in r1.metrics.items():
        assert r2[key] == pytest.approx(v, rel=1e-6, abs=1e-9), key
        assert r3[key] == pytest.approx(v, rel=1e-6, abs=1e-9), key


def test_report_formats(test_smiles, tmp_path):
    r = small_evaluator(test_smiles[:200]).evaluate([*test_smiles[300:340], 'bad'])
    df = r.to_frame()
    assert list(df.columns) == ['metric', 'value', 'note'] and 'SNN/Test' in set(df.metric)
    md = r.to_markdown()
    assert '| valid |' in md and 'n requested 41' in md
    d = json.loads(r.to_json(tmp_path / 'r.json'))
    assert d['n_valid'] == 40 and d['sample_preview'][0] == test_smiles[300]
    assert {'rdkit', 'torch', 'fcd_torch', 'python'} <= set(d['versions'])
    assert d['wall_seconds'] > 0 and 'timestamp' in d


def test_cli_evaluate_writes_report_and_table(test_smiles, tmp_path, capsys):
    from molgen.cli import evaluate as cli

    ref = tmp_path / 'ref.smi'
    ref.write_text('\n'.join(test_smiles[:300]) + '\n')
    inp = tmp_path / 'gen.smi'
    inp.write_text('\n'.join([*test_smiles[400:450], 'None', '', 'C1CC', 'CCO']) + '\n')
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / 'report.json'
    rc = cli.run(parser.parse_args([str(inp), '--reference', str(ref), '--train', str(ref), '-o', str(out),
                                    '--plots', str(tmp_path / 'plots'), '--no-guacamol']))
    assert rc == 0
    text = capsys.readouterr().out
    assert '| FCD/Test |' in text and '| Novelty |' in text
    d = json.loads(out.read_text())
    assert d['n_requested'] == 54 and d['n_valid'] == 51
    assert (tmp_path / 'plots' / 'QED.png').exists()
    assert cli.run(parser.parse_args([str(tmp_path / 'missing.smi')])) == 2
