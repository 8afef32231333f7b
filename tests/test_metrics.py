"""Metric definitions, edge cases, the fast paths against their slow references, reports and the CLI."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import cache_in

GOLDEN = Path(__file__).resolve().parent / 'data' / 'moses_golden'


@pytest.fixture(autouse=True, scope='module')
def _cache(tmp_path_factory):
    """One cache per module: a reference's statistics are computed once and reused by later tests."""
    yield from cache_in(tmp_path_factory, 'metrics-cache')


@pytest.fixture(scope='module')
def test_smiles() -> list[str]:
    from molgen.data.io import read_smiles

    return read_smiles('moses:test')[:3000]


@pytest.fixture(scope='module')
def ref200(test_smiles) -> list[str]:
    """The reference of most tests (its statistics are cached after the first use)."""
    return test_smiles[:200]


def small_evaluator(ref, **kw):
    from molgen.metrics import Evaluator

    kw.setdefault('extras', False)
    kw.setdefault('guacamol', False)
    kw.setdefault('n_jobs', 1)
    return Evaluator(reference=ref, **kw)


# ---- fast paths equal their references ----------------------------------------------------------------

def test_chemnet_activations_equal_fcd_torch(test_smiles):
    from fcd_torch import FCD
    from rdkit import Chem

    from molgen.metrics.chemnet import get_chemnet

    smi = [*test_smiles[:24], 'C', 'CC', 'Clc1ccccc1Br', 'C' * 120, 'C' * 400, 'O=[Si](O)c1ccc[nH]1', 'CC[Se]C']
    smi = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smi]
    want = FCD(device='cpu', n_jobs=1).get_predictions(smi)
    got = get_chemnet('cpu').activations(smi)
    assert got.shape == want.shape == (len(smi), 512)
    assert np.array_equal(got, want)  # fcd_torch's own activations, bit for bit


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

def test_invalid_inputs_count_in_the_denominator(ref200):
    r = small_evaluator(ref200).evaluate(['CCO', '', None, 'None', 'C1CC', 'c1ccccc1'])
    assert r['valid'] == pytest.approx(2 / 6)
    assert r.meta['n_requested'] == 6 and r.meta['n_valid'] == 2


def test_all_invalid_gives_zero_validity_and_nan_with_reasons(test_smiles, ref200):
    ev = small_evaluator(ref200, train=test_smiles[500:700])
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


def test_fcd_with_one_valid_molecule_is_nan_with_reason(ref200):
    from rdkit import DataStructs

    r = small_evaluator(ref200).evaluate(['CCO', 'bad'])
    assert math.isnan(r['FCD/Test'])
    assert '1 given' in r.notes['FCD/Test']
    # the other metrics still work: SNN of one molecule is its max Tanimoto to the reference
    assert r['SNN/Test'] == pytest.approx(max(DataStructs.BulkTanimotoSimilarity(_fps(['CCO'])[0], _fps(ref200))))


def test_uniqueness_counts_duplicates_written_differently_once(ref200):
    ev = small_evaluator(ref200, k=(3, 1000))
    r = ev.evaluate(['CCO', 'OCC', 'C(O)C', 'c1ccccc1', 'C1=CC=CC=C1', 'CCN'])
    assert r['unique@3'] == pytest.approx(1 / 3)       # first 3 valid are one molecule
    assert r['unique@1000'] == pytest.approx(3 / 6)    # fewer than k: over all 6 valid
    assert 'only 6 valid' in r.notes['unique@1000']


def test_novelty_uses_canonical_generated_against_train_as_given(ref200):
    train = ['CCO', 'c1ccccc1']
    ev = small_evaluator(ref200, train=train)
    r = ev.evaluate(['OCC', 'C1=CC=CC=C1', 'CCN', 'CCN'])
    assert r['Novelty'] == pytest.approx(1 / 3)


def test_unit_level_golden_slice_matches_direct_moses_definitions(ref200, tmp_path, monkeypatch):
    """A 300-sample slice of the golden input, checked against MOSES formulas written out directly."""
    from rdkit import Chem, DataStructs
    from scipy.spatial.distance import cosine
    from scipy.stats import wasserstein_distance

    from molgen.metrics import chemnet
    from molgen.metrics.chemnet import frechet_distance
    from molgen.metrics.featurize import fragments, scaffold

    # record every ChemNet activation (ChemNet itself equals fcd_torch: first test) and compute the
    # reference statistics afresh, so the FCD below is rebuilt from the molecules that went in
    seen: dict[str, np.ndarray] = {}
    orig = chemnet.ChemNet.activations

    def spy(self, smiles, *args, **kwargs):
        out = orig(self, smiles, *args, **kwargs)
        seen.update(zip(smiles, out))
        return out

    monkeypatch.setattr(chemnet.ChemNet, 'activations', spy)
    monkeypatch.setenv('MOLGEN_CACHE', str(tmp_path / 'cache'))
    gen = (GOLDEN / 'generated.smi').read_text().split('\n')[:300]
    ref = ref200
    r = small_evaluator(ref, k=(100, 1000)).evaluate(gen)
    mols = [Chem.MolFromSmiles(s) if s else None for s in gen]
    valid = [m for m in mols if m is not None]
    assert 200 < len(valid) < 300  # the slice has invalid rows
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

        from molgen.metrics.featurize import sascorer
        return Crippen.MolLogP(m), sascorer().calculateScore(m), QED.qed(m), Descriptors.MolWt(m)

    pr, pg = np.array([props(m) for m in rm]), np.array([props(m) for m in vm])
    for i, key in enumerate(('logP', 'SA', 'QED', 'weight')):
        assert r[key] == pytest.approx(wasserstein_distance(pr[:, i], pg[:, i]), rel=1e-9)
    # FCD: all valid generated molecules (duplicates included) vs the reference, both as canonical SMILES
    a = np.array([seen[Chem.MolToSmiles(m)] for m in rm])
    b = np.array([seen[c] for c in canon])
    fcd = frechet_distance(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert r['FCD/Test'] == pytest.approx(fcd, rel=1e-4)


def test_metric_precalc_compute_split_works_standalone(test_smiles, ref200):
    from molgen.metrics.moses import SNN, Wasserstein

    gen = [*test_smiles[400:450], 'bad']
    r = small_evaluator(ref200).evaluate(gen)
    pre = SNN().precalc(ref200)
    assert SNN().compute(gen, pre) == pytest.approx(r['SNN/Test'])
    assert Wasserstein(3, 'weight')(gen, ref200) == pytest.approx(r['weight'])


def test_metrics_modules_have_no_import_cycles():
    """No module of molgen.metrics imports (at any depth, lazily or not) one that imports it back."""
    import ast

    import molgen.metrics as pkg

    folder = Path(pkg.__file__).parent
    graph: dict[str, set[str]] = {}
    for f in folder.glob('*.py'):
        name = f'molgen.metrics.{f.stem}' if f.stem != '__init__' else 'molgen.metrics'
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('molgen.metrics'):
                deps.add(node.module)
                deps.update(f'{node.module}.{a.name}' for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith('molgen.metrics'))
        graph[name] = deps
    for name in graph:
        graph[name] = {d for d in graph[name] if d in graph and d != 'molgen.metrics' and d != name}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(d == goal or (d not in seen and not seen.add(d) and reaches(d, goal, seen))
                   for d in graph[start])

    cycles = [n for n in graph if reaches(n, n, set())]
    assert cycles == []
    assert 'molgen.metrics.evaluator' not in graph['molgen.metrics.moses']


# ---- extras, GuacaMol, cache ------------------------------------------------------------------------

class NoLikelihood:
    """A GAN-like model: it samples, it has no likelihood."""

    capabilities = frozenset({'sample'})

    def likelihood_label(self):
        return None

    def score(self, smiles):  # pragma: no cover - must never be called
        raise AssertionError('score() called on a model without a likelihood')


def test_reference_against_itself_gives_the_exact_values(ref200, tmp_path):
    """The reference evaluated as a sample (train = reference): every distance is 0 and every
    similarity, precision, recall and coverage 1; then one molecule repeated (mode collapse) has the
    recall and coverage computed directly with RDKit."""
    from rdkit import DataStructs

    from molgen.metrics import Evaluator

    ev = Evaluator(reference=ref200, train=ref200, n_jobs=1)
    r = ev.evaluate(ref200)
    exact = {'valid': 1.0, 'unique@1000': 1.0, 'SNN/Test': 1.0, 'Frag/Test': 1.0, 'Scaf/Test': 1.0,
             'logP': 0.0, 'SA': 0.0, 'QED': 0.0, 'weight': 0.0, 'Novelty': 0.0, 'guacamol/validity': 1.0,
             'guacamol/uniqueness': 1.0, 'guacamol/novelty': 0.0, 'guacamol/KL': 1.0, 'precision': 1.0,
             'recall': 1.0, 'coverage': 1.0, 'scaffolds/top100_coverage': 1.0}
    for key, want in exact.items():
        assert r[key] == pytest.approx(want, abs=1e-9), key
    # the FCD floor uses the train set shuffled: the same molecules, so the same statistics
    assert r['FCD/Test'] == pytest.approx(0.0, abs=1e-3) and r['FCDfloor/Test'] == pytest.approx(0.0, abs=1e-3)
    assert r['guacamol/FCD'] == pytest.approx(math.exp(-0.2 * r['FCD/Test']))

    x = 5
    collapsed = ev.evaluate([ref200[x]] * 200, model=NoLikelihood())
    fr = _fps(ref200)
    dist_rr = 1 - np.array([DataStructs.BulkTanimotoSimilarity(f, fr) for f in fr])
    radius = np.sort(dist_rr, axis=1)[:, 5]  # 5th neighbour, self excluded
    dist_x = dist_rr[x]
    assert collapsed['precision'] == 1.0
    assert collapsed['recall'] == pytest.approx(np.mean(dist_x == 0))
    assert collapsed['coverage'] == pytest.approx(np.mean(dist_x <= radius))
    assert collapsed['recall'] < 0.05 and collapsed['unique@1000'] == pytest.approx(1 / 200)
    assert 'NLL/Test' not in collapsed.metrics and 'no likelihood' in collapsed.notes['NLL/Test']
    assert collapsed.meta['likelihood'] is None and 'likelihood_kind' not in collapsed.meta
    paths = r.plot(tmp_path / 'plots')
    assert len(paths) == 4 and all(p.stat().st_size > 1000 for p in paths)


def test_reference_statistics_are_cached_on_disk(test_smiles, tmp_path, monkeypatch):
    from molgen.metrics.reference import get_reference

    monkeypatch.setenv('MOLGEN_CACHE', str(tmp_path / 'cache'))
    a = get_reference(test_smiles[:100], {'fcd', 'fp', 'counts', 'props'})
    assert set(a.origin.values()) == {'computed'}
    b = get_reference(test_smiles[:100], {'fcd', 'fp', 'counts', 'props'})
    assert set(b.origin.values()) == {'cache'}
    assert np.allclose(a.fcd_sigma, b.fcd_sigma) and (a.fp == b.fp).all() and a.scaf == b.scaf
    c = get_reference(test_smiles[:101], {'fcd'})
    assert c.origin['fcd'] == 'computed'  # different data, different key


def test_parallel_pool_gives_the_same_values(test_smiles, ref200, monkeypatch):
    from molgen.metrics import featurize as fz
    from molgen.metrics import generated
    from molgen.parallel import get_pool

    gen = [*test_smiles[1000:1150], '', None, 'C1CC']
    serial = fz.featurize(gen, generated.GEN_FEATURES)
    # the Evaluator's features over 4 chunks in 2 worker processes equal one serial pass, row order kept
    monkeypatch.setattr(generated, 'MIN_CHUNK', 40)
    pool = get_pool(2)
    g = small_evaluator(ref200, n_jobs=2).featurize(gen)
    assert get_pool(2) is pool  # the shared pool is reused, not respawned
    assert np.array_equal(g.valid, serial['valid']) and g.canon == serial['canon']
    assert g.fcd_smiles == serial['fcd'] and g.scaf == serial['scaf'] and g.frag == serial['frag']
    for key in ('fp', 'props', 'filters'):
        assert np.array_equal(getattr(g, key), serial[key]), key
    # ChemNet on 2 threads gives the activations of 1 thread
    one = generated.activations(g.fcd_smiles[:20], n_threads=1)
    assert np.abs(g.activations[:20] - one).max() < 1e-5


# ---- likelihood: labelled, with its denominators ------------------------------------------------------

STATUSES = ['too_long', 'oov_token:Br,Cl', 'ok', 'invalid_smiles', 'oov_token:Br', 'error']


class ScoredModel:
    """A model with a likelihood whose ``score`` returns known rows: one of every status, then ``ok``
    rows; row i of an ``ok`` row has log p = -(10 + i) nats. ``row_kind`` overrides the label kind of the
    rows (a VAE's model label says ``elbo`` while its rows say ``iwae-50``)."""

    capabilities = frozenset({'sample', 'log_likelihood'})

    def __init__(self, kind='exact', obj='canonical-smiles', row_kind=None, statuses=STATUSES):
        from molgen.likelihood import LikelihoodLabel

        self.label = LikelihoodLabel(kind, obj)
        self.row_kind = row_kind or [kind]
        self.statuses = statuses
        self.seen: list[str] = []

    def likelihood_label(self):
        return self.label

    def score(self, smiles):
        n = len(smiles)
        self.seen = list(smiles)
        status = (list(self.statuses) + ['ok'] * n)[:n]
        kinds = (self.row_kind * n)[:n]
        return pd.DataFrame({
            'input': smiles, 'canonical': smiles, 'status': status,
            'log_likelihood': [-(10.0 + i) if s == 'ok' else float('nan') for i, s in enumerate(status)],
            'nll_per_token': 0.5, 'n_tokens': 40, 'likelihood_kind': kinds,
            'likelihood_object': self.label.object, 'likelihood_unit': self.label.unit})


def test_nll_is_labelled_from_the_rows_and_counts_unscored_molecules(ref200, tmp_path):
    model = ScoredModel()
    ev = small_evaluator(ref200, nll_n=20)
    r = ev.evaluate(['CCO', 'c1ccccc1'], model=model)
    # the model scored 20 reference molecules, a fixed subset in reference order
    assert len(model.seen) == 20 and model.seen == [s for s in ref200 if s in set(model.seen)]
    ok = [2, *range(6, 20)]
    want = np.mean([10.0 + i for i in ok])
    assert list(r.metrics)[:3] == ['NLL/Test', 'NLL/Test/n_scored', 'NLL/Test/n_unscored']
    assert r['NLL/Test'] == pytest.approx(want)
    assert r['NLL/Test/n_scored'] == 15 and r['NLL/Test/n_unscored'] == 5
    assert r.meta['likelihood'] == {'kind': 'exact', 'object': 'canonical-smiles', 'unit': 'nats/molecule'}
    assert 'likelihood_kind' not in r.meta
    nm = r.meta['NLL/Test']
    assert nm['n'] == 20 and nm['n_scored'] == 15 and nm['n_unscored'] == 5
    assert nm['unscored'] == {'oov_token': 2, 'too_long': 1, 'invalid_smiles': 1, 'error': 1}
    assert nm['oov_tokens'] == {'Br': 2, 'Cl': 1}
    first = r.to_markdown().splitlines()[0]
    assert first == (f'NLL/Test  {want:.2f}  (exact log p(canonical-smiles), nats/molecule; 15 scored, '
                     '5 unscored: oov_token 2, too_long 1, invalid_smiles 1, error 1; '
                     'mean over scored molecules only)')
    assert str(r).splitlines()[0] == first
    assert '| NLL/Test/n_unscored | 5 |' in r.to_markdown()
    d = json.loads(r.to_json(tmp_path / 'r.json'))
    assert d['likelihood']['kind'] == 'exact' and d['NLL/Test']['unscored']['too_long'] == 1


def test_nll_label_is_what_the_rows_say_and_must_be_one():
    import molgen.metrics.nll as N

    ev_rows = ['CCO'] * 8
    vae = ScoredModel(kind='elbo', row_kind=['iwae-50'])
    s = N.summarize_scores(vae.score(ev_rows), vae)
    assert s.label == {'kind': 'iwae-50', 'object': 'canonical-smiles', 'unit': 'nats/molecule'}
    assert s.n_scored == 3 and s.unscored == {'oov_token': 2, 'too_long': 1, 'invalid_smiles': 1, 'error': 1}
    mixed = ScoredModel(row_kind=['iwae-50', 'elbo'], statuses=[])
    with pytest.raises(ValueError, match='different likelihood labels'):
        N.summarize_scores(mixed.score(ev_rows), mixed)
    # nothing scored: NaN with the model's own label, every row counted
    none = ScoredModel(obj='canonical-selfies', statuses=['too_long'] * 8)
    s = N.summarize_scores(none.score(ev_rows), none)
    assert math.isnan(s.value) and s.n_scored == 0 and s.unscored == {'too_long': 8}
    assert s.label_text == 'exact log p(canonical-selfies), nats/molecule'
    # an 'ok' row without a number is not silently averaged
    df = ScoredModel(statuses=[]).score(ev_rows)
    df.loc[3, 'log_likelihood'] = float('nan')
    s = N.summarize_scores(df, None)
    assert s.n_scored == 7 and s.unscored == {'nan_log_likelihood': 1}
    assert s.value == pytest.approx(np.mean([10.0 + i for i in range(8) if i != 3]))


def test_nll_of_a_model_that_scores_nothing_is_nan_with_the_counts(ref200):
    ev = small_evaluator(ref200, nll_n=10)
    r = ev.evaluate(['CCO', 'c1ccccc1'], model=ScoredModel(statuses=['too_long'] * 6 + ['oov_token:Si'] * 4))
    assert math.isnan(r['NLL/Test']) and r['NLL/Test/n_scored'] == 0 and r['NLL/Test/n_unscored'] == 10
    assert 'scored none of 10' in r.notes['NLL/Test'] and 'too_long 6, oov_token 4' in r.notes['NLL/Test']
    assert r.meta['NLL/Test']['oov_tokens'] == {'Si': 4}


# ---- reports and the CLI ------------------------------------------------------------------------------

def test_report_formats(test_smiles, ref200, tmp_path):
    r = small_evaluator(ref200).evaluate([*test_smiles[300:340], 'bad'])
    df = r.to_frame()
    assert list(df.columns) == ['metric', 'value', 'note'] and list(df.metric) == list(r.metrics)
    md = r.to_markdown()
    assert md.splitlines()[0].startswith('n requested 41, n valid 40')  # no NLL line without a model
    assert f"| valid | {40 / 41:.4f} |" in md
    d = json.loads(r.to_json(tmp_path / 'r.json'))
    assert d['n_valid'] == 40 and d['sample_preview'][0] == test_smiles[300]
    assert d['metrics'] == pytest.approx(r.metrics)
    assert {'rdkit', 'torch', 'fcd_torch', 'python'} <= set(d['versions'])
    assert d['wall_seconds'] > 0 and 'timestamp' in d


def test_cli_evaluate_writes_report_and_table(test_smiles, tmp_path, capsys):
    from molgen.cli import evaluate as cli

    ref = tmp_path / 'ref.smi'
    ref.write_text('\n'.join(test_smiles[:100]) + '\n')
    inp = tmp_path / 'gen.smi'
    inp.write_text('\n'.join([*test_smiles[80:100], 'None', '', 'C1CC', 'CCO']) + '\n')
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / 'report.json'
    rc = cli.run(parser.parse_args([str(inp), '--reference', str(ref), '--train', str(ref), '-o', str(out),
                                    '--plots', str(tmp_path / 'plots'), '--no-guacamol']))
    assert rc == 0
    text = capsys.readouterr().out
    assert '| FCD/Test |' in text and '| Novelty | 0.0476 |' in text  # CCO is the one novel molecule of 21
    d = json.loads(out.read_text())
    assert d['n_requested'] == 24 and d['n_valid'] == 21
    assert (tmp_path / 'plots' / 'QED.png').exists()
    assert cli.run(parser.parse_args([str(tmp_path / 'missing.smi')])) == 2
