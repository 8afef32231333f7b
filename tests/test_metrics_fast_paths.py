"""The faster evaluation paths give the values of the plain ones, bit for bit: QED / logP / weight
computed together, the RDKit pass split around ChemNet, int8 Tanimoto counts, one BLAS thread."""

from __future__ import annotations

import numpy as np
import pytest

EXPLICIT_H = ["[2H]C([2H])([2H])Oc1ccccc1", "[H][H]", "C[C@]([H])(N)O", "[H]N=c1cc[nH]cc1",
              "O=C(O)c1ccccc1.[Na+]"]


def _mols(smiles):
    from rdkit import Chem

    from molgen.metrics import featurize as fz

    mols = [fz.get_mol(s) for s in smiles]
    return [fz.get_mol(Chem.MolToSmiles(m)) for m in mols if m is not None]


def test_properties_many_equals_properties_one_by_one(moses_test_smiles):
    from molgen.metrics import featurize as fz

    mols = _mols(moses_test_smiles[:300] + EXPLICIT_H)
    one = np.array([fz.properties(m) for m in mols])
    assert np.array_equal(fz.properties_many(mols), one)
    assert fz.properties_many([]).shape == (0, len(fz.PROPS))


def test_rdkit_pass_beside_chemnet_equals_the_single_pass(moses_test_smiles):
    """n_jobs=2 (canonical SMILES first, the other features in the workers while ChemNet runs) and
    n_jobs=1 (one pass in-process) give the same features."""
    from molgen.metrics.generated import featurize_generated

    smiles = [*moses_test_smiles[:500], "", None, "C1CC", "OCC", "CCO", *EXPLICIT_H]  # > one 500-row chunk
    a = featurize_generated(smiles, n_jobs=1)
    b = featurize_generated(smiles, n_jobs=2)
    assert a.canon == b.canon and a.fcd_smiles == b.fcd_smiles and a.scaf == b.scaf
    assert list(a.frag.items()) == list(b.frag.items())
    for key in ("valid", "fp", "props", "filters", "activations"):
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


@pytest.mark.parametrize("kind", ["int8", "float"])
def test_max_tanimoto_products_are_exact(kind, monkeypatch):
    from molgen.metrics import fingerprints as F

    rng = np.random.default_rng(0)
    gen = np.packbits(rng.random((70, 1024)) < 0.05, axis=1)
    gen = np.concatenate([gen, gen[:5], np.zeros((1, 128), np.uint8)])  # duplicates and an empty one
    ref = np.packbits(rng.random((500, 1024)) < rng.uniform(0.01, 0.1, (500, 1)), axis=1)
    ref[0] = 0
    bits_g, bits_r = np.unpackbits(gen, axis=1).astype(float), np.unpackbits(ref, axis=1).astype(float)
    c = bits_g @ bits_r.T
    denom = bits_g.sum(1)[:, None] + bits_r.sum(1)[None, :] - c
    with np.errstate(invalid="ignore"):
        want = np.nan_to_num(c / denom, nan=1.0).max(1)
    monkeypatch.setattr(F, "_count_product", lambda: kind)
    assert np.array_equal(F.max_tanimoto(gen, ref, block=64), want)


def test_frechet_distance_does_not_depend_on_the_blas_threads():
    from molgen.metrics.blas import openblas_controls, single_threaded
    from molgen.metrics.chemnet import frechet_distance, gaussian_stats

    rng = np.random.default_rng(0)
    a, b = gaussian_stats(rng.normal(size=(800, 64))), gaussian_stats(rng.normal(size=(600, 64)) + 0.1)
    values, old = set(), [get() for get, _ in openblas_controls()]
    try:
        for n in (1, 2, 3):
            for _, set_ in openblas_controls():
                set_(n)
            values.add(frechet_distance(a["mu"], a["sigma"], b["mu"], b["sigma"]))
    finally:
        for (_, set_), n in zip(openblas_controls(), old):
            set_(n)
    with single_threaded():
        assert all(get() == 1 for get, _ in openblas_controls())
    assert len(values) == 1
