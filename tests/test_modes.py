"""Mode-dropping diagnostics (molgen.metrics.modes) and their Evaluator keys."""

from __future__ import annotations

import numpy as np
import pytest

from molgen.metrics import modes


@pytest.fixture(scope="module")
def pool(moses_test_smiles) -> list[str]:
    """1,600 real molecules in a fixed random order (the test file is not shuffled)."""
    order = np.random.default_rng(7).permutation(len(moses_test_smiles))
    return [moses_test_smiles[i] for i in order[:1600]]


@pytest.fixture(scope="module")
def fps(pool) -> np.ndarray:
    from molgen.metrics.featurize import featurize

    return featurize(pool, what=("fp",), generated=False)["fp"]


def test_real_vs_real_at_equal_n_is_near_its_real_value_and_unequal_n_is_not(fps):
    ref, real_sample = fps[:1200], fps[1200:1500]  # 300 "generated" real molecules, disjoint from the reference
    gen, real, n = modes.recall_coverage_at_equal_n(ref, real_sample, n_max=5000, k=5, seed=0)
    assert n == 300
    assert real["coverage"] > 0.85 and real["recall"] > 0.8  # real vs real, both of size 300
    assert gen["coverage"] == pytest.approx(real["coverage"], abs=0.06)
    assert gen["recall"] == pytest.approx(real["recall"], abs=0.06)
    # what the Evaluator did before: 300 generated against the whole 1,200-molecule reference
    from molgen.metrics.fingerprints import precision_recall_coverage

    unequal = precision_recall_coverage(ref, real_sample, k=5)
    assert unequal["coverage"] < real["coverage"] - 0.1
    # too small a reference for a disjoint real sample of the same n: NaN, not a wrong number
    _, real_small, n_small = modes.recall_coverage_at_equal_n(fps[:400], real_sample, n_max=5000)
    assert n_small == 300 and np.isnan(real_small["coverage"])


def test_a_single_point_is_flagged_by_coverage_and_bins(fps):
    ref, one = fps[:1200], np.repeat(fps[1300:1301], 300, axis=0)
    gen, real, _ = modes.recall_coverage_at_equal_n(ref, one)
    assert gen["coverage"] < 0.02 and gen["recall"] < 0.02 and real["coverage"] > 0.85
    bins = modes.fingerprint_bins(ref, 64, seed=0)
    assert bins.k == 64
    g, r = modes.bin_stats_at_equal_n(bins, modes.unpack_fp(one), ref, transform=modes.unpack_fp)
    assert g["n_occupied"] == 1 and g["occupied"] == pytest.approx(1 / 64)
    assert r["occupied"] > 0.8 and g["tv"] > 0.8 > 0.3 > r["tv"]


def test_kmeans_finds_separated_clusters_with_a_fixed_seed():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    x = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in centres])
    found = modes.kmeans(x, 4, seed=3)
    assert np.allclose(np.sort(found, axis=0), np.sort(centres, axis=0), atol=0.1)
    np.testing.assert_array_equal(found, modes.kmeans(x, 4, seed=3))
    bins = modes.Bins(x, 4, seed=0)
    assert bins.stats(x)["tv"] == pytest.approx(0.0) and bins.stats(x)["occupied"] == 1.0
    assert bins.stats(x[:50])["n_occupied"] == 1
    assert bins.stats(np.full((3, 2), np.nan))["n_occupied"] == 0  # NaN rows are not points


def test_fcd_terms_sum_to_the_fcd_and_a_shift_is_all_mean():
    from molgen.metrics.chemnet import frechet_distance

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((400, 6))
    mu, sigma = ref.mean(0), np.cov(ref.T)
    act = rng.standard_normal((300, 6)) * 0.3 + 2.0  # shifted and shrunk (a collapse shrinks the covariance)
    m, c = modes.fcd_terms(mu, sigma, act)
    assert m + c == pytest.approx(frechet_distance(mu, sigma, act.mean(0), np.cov(act.T)))
    assert m == pytest.approx(float(((act.mean(0) - mu) ** 2).sum()))
    assert c > 1.0
    m2, c2 = modes.fcd_terms(mu, sigma, ref + 1.0)  # a pure shift: covariance term ~0
    assert c2 == pytest.approx(0.0, abs=1e-6) and m2 == pytest.approx(6.0)


def test_scaffold_coverage_and_its_real_value():
    counts = {f"s{i}": 200 - i for i in range(150)}
    assert modes.scaffold_coverage([f"s{i}" for i in range(50)] + [None], counts) == 0.5
    n_ref = sum(counts.values()) + 1000  # 1,000 molecules without a scaffold
    assert modes.real_scaffold_coverage(counts, n_ref, 5000) > 0.95
    assert modes.real_scaffold_coverage(counts, n_ref, 50) < 0.5


@pytest.mark.slow  # ~13 s (reference statistics + ChemNet); the Evaluator's extras also run in test_metrics
def test_evaluator_reports_every_diagnostic_with_its_real_value(pool):
    from molgen.metrics import Evaluator

    ref, sample = pool[:500], pool[500:650]
    ev = Evaluator(reference=ref, n_jobs=1, guacamol=False)
    r = ev.evaluate(sample)
    assert r["modes/n"] == 150 and r["modes/n_bins"] == 50  # k capped at a tenth of the reference
    for key in ("precision", "recall", "coverage", "scaffolds/top100_coverage", "modes/bins_occupied",
                "modes/bins_tv", "modes/bins_js"):
        assert np.isfinite(r[key]) and np.isfinite(r[f"{key}/real"]), key
    assert abs(r["coverage"] - r["coverage/real"]) < 0.1
    assert r["FCD/Test/mean"] + r["FCD/Test/cov"] == pytest.approx(r["FCD/Test"], rel=1e-6)
    table = r.mode_dropping()
    assert "| coverage | " in table and "real vs real (same n)" in table and "FCD/Test mean / covariance" in table
    collapsed = ev.evaluate([sample[0]] * 150)
    assert collapsed["coverage"] < 0.05 and collapsed["coverage/real"] > 0.8
    assert collapsed["modes/bins_occupied"] * collapsed["modes/n_bins"] == pytest.approx(1.0)
    assert collapsed["FCD/Test/cov"] > r["FCD/Test/cov"]
