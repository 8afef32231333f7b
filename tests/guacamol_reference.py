"""Test-only transcription of GuacaMol's KL-divergence benchmark (``guacamol`` is not installed here).

Transcribed from BenevolentAI/guacamol ``guacamol/utils/chemistry.py`` (``continuous_kldiv``,
``discrete_kldiv``, ``calculate_pc_descriptors``, ``_calculate_pc_descriptors``,
``calculate_internal_pairwise_similarities``, ``get_fingerprints``, ``canonicalize_list``) and
``guacamol/distribution_learning_benchmark.py`` (``KLDivBenchmark.assess_model``: descriptor order,
continuous for the first 4, discrete for the next 5, internal similarity, score = mean exp(-KL)).
Only change: ``scipy.histogram`` (removed from SciPy) is ``numpy.histogram``, which it aliased.
Kept deliberately literal and slow; molgen's pipeline is checked against it.
"""

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import AllChem
from rdkit.ML.Descriptors import MoleculeDescriptors
from scipy.stats import entropy, gaussian_kde

RDLogger.logger().setLevel(RDLogger.CRITICAL)  # as guacamol.utils.chemistry does

PC_DESCRIPTOR_SUBSET = ['BertzCT', 'MolLogP', 'MolWt', 'TPSA', 'NumHAcceptors', 'NumHDonors',
                        'NumRotatableBonds', 'NumAliphaticRings', 'NumAromaticRings']


def canonicalize_list(smiles_list, include_stereocenters=True):
    out = []
    for s in smiles_list:
        mol = Chem.MolFromSmiles(s)
        if mol is not None:
            out.append(Chem.MolToSmiles(mol, isomericSmiles=include_stereocenters))
    seen, unique = set(), []  # guacamol.utils.data.remove_duplicates: first occurrence, order kept
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def continuous_kldiv(X_baseline, X_sampled):
    kde_P = gaussian_kde(X_baseline)
    kde_Q = gaussian_kde(X_sampled)
    x_eval = np.linspace(np.hstack([X_baseline, X_sampled]).min(), np.hstack([X_baseline, X_sampled]).max(), num=1000)
    P = kde_P(x_eval) + 1e-10
    Q = kde_Q(x_eval) + 1e-10
    return entropy(P, Q)


def discrete_kldiv(X_baseline, X_sampled):
    P, bins = np.histogram(X_baseline, bins=10, density=True)
    P += 1e-10
    Q, _ = np.histogram(X_sampled, bins=bins, density=True)
    Q += 1e-10
    return entropy(P, Q)


def _calculate_pc_descriptors(smiles, pc_descriptors):
    calc = MoleculeDescriptors.MolecularDescriptorCalculator(pc_descriptors)
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    _fp = np.array(calc.CalcDescriptors(mol))
    mask = np.isfinite(_fp)
    if (mask == 0).sum() > 0:
        _fp[~mask] = 0
    return _fp


def calculate_pc_descriptors(smiles, pc_descriptors):
    output = []
    for i in smiles:
        d = _calculate_pc_descriptors(i, pc_descriptors)
        if d is not None:
            output.append(d)
    return np.array(output)


def calculate_internal_pairwise_similarities(smiles_list):
    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles_list) if m is not None]
    fps = [AllChem.GetMorganFingerprintAsBitVect(m, 2, 4096) for m in mols]
    nfps = len(fps)
    similarities = np.zeros((nfps, nfps))
    for i in range(1, nfps):
        sims = DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i])
        similarities[i, :i] = sims
        similarities[:i, i] = sims
    return similarities


def kl_benchmark(training_set_molecules, molecules):
    """``KLDivBenchmark.assess_model`` on given molecules: (score, kldivs). The reference list is used as
    given (GuacaMol first draws a random subset of the training set with seed 42)."""
    unique_molecules = set(canonicalize_list(molecules, include_stereocenters=False))
    d_sampled = calculate_pc_descriptors(unique_molecules, PC_DESCRIPTOR_SUBSET)
    d_chembl = calculate_pc_descriptors(training_set_molecules, PC_DESCRIPTOR_SUBSET)
    kldivs = {}
    for i in range(4):
        kldivs[PC_DESCRIPTOR_SUBSET[i]] = continuous_kldiv(X_baseline=d_chembl[:, i], X_sampled=d_sampled[:, i])
    for i in range(4, 9):
        kldivs[PC_DESCRIPTOR_SUBSET[i]] = discrete_kldiv(X_baseline=d_chembl[:, i], X_sampled=d_sampled[:, i])
    chembl_sim = calculate_internal_pairwise_similarities(training_set_molecules).max(axis=1)
    sampled_sim = calculate_internal_pairwise_similarities(unique_molecules).max(axis=1)
    kldivs['internal_similarity'] = continuous_kldiv(X_baseline=chembl_sim, X_sampled=sampled_sim)
    partial_scores = [np.exp(-score) for score in kldivs.values()]
    return sum(partial_scores) / len(partial_scores), kldivs
