"""Per-molecule chemistry for the metrics, one RDKit pass per molecule, run in worker processes.

Canonicalization follows MOSES (``moses.metrics.utils``), not molgen's training policy, so that the
numbers reproduce the published definitions: a sample is valid when ``Chem.MolFromSmiles`` parses and
sanitizes it (empty strings and ``None`` are invalid); its canonical form is ``Chem.MolToSmiles(mol)``
with no fragment stripping. Generated molecules are then re-parsed from their canonical SMILES (as MOSES
does) for fingerprints, fragments, scaffolds, properties and filters, and ChemNet reads the canonical
SMILES of that molecule (as fcd_torch re-canonicalizes).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from rdkit import Chem, RDConfig
from rdkit.Chem import QED, AllChem, Crippen, Descriptors, MolSurf, rdFingerprintGenerator, rdSubstructLibrary
from rdkit.Chem import rdMolDescriptors as rdmd
from rdkit.Chem.Scaffolds import MurckoScaffold

from molgen.chem import quiet_rdkit
from molgen.data.catalog import data_dir

FP_BITS = 1024
PROPS = ('logP', 'SA', 'QED', 'weight')
GUAC_DESCRIPTORS = ('BertzCT', 'MolLogP', 'MolWt', 'TPSA', 'NumHAcceptors', 'NumHDonors',
                    'NumRotatableBonds', 'NumAliphaticRings', 'NumAromaticRings')
ALLOWED_ATOMS = frozenset({'C', 'N', 'S', 'O', 'F', 'Cl', 'Br', 'H'})


def get_mol(s):
    """MOSES ``get_mol``: RDKit molecule or None (empty strings, None and unsanitizable input)."""
    if not isinstance(s, str) or len(s) == 0:
        return None
    mol = Chem.MolFromSmiles(s)
    if mol is None:
        return None
    try:
        Chem.SanitizeMol(mol)
    except ValueError:
        return None
    return mol


@lru_cache(maxsize=1)
def sascorer():
    """Ertl's SA score module from RDKit's Contrib folder (put on ``sys.path`` first, so it is imported here)."""
    path = os.path.join(RDConfig.RDContribDir, 'SA_Score')
    if path not in sys.path:
        sys.path.append(path)
    import sascorer as module  # type: ignore[import-not-found]  # lazy: on sys.path only from here

    return module


@lru_cache(maxsize=1)
def _morgan():
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FP_BITS)


@lru_cache(maxsize=1)
def _morgan4096():
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=4096)


def alerts_dir() -> Path:
    """Where MOSES's MCF and PAINS alert lists ship (``data/moses``)."""
    return data_dir() / 'moses'


@lru_cache(maxsize=1)
def _filter_patterns():
    """MCF + PAINS SMARTS, read as MOSES reads them."""
    mcf = pd.read_csv(alerts_dir() / 'mcf.csv')
    pains = pd.read_csv(alerts_dir() / 'wehi_pains.csv', names=['smarts', 'names'])
    smarts = list(pd.concat([mcf, pains], sort=True)['smarts'].values)
    return [Chem.MolFromSmarts(x) for x in smarts]


def _passes_simple(mol) -> bool:
    ring_info = mol.GetRingInfo()
    if ring_info.NumRings() != 0 and any(len(x) >= 8 for x in ring_info.AtomRings()):
        return False
    if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
        return False
    return all(atom.GetSymbol() in ALLOWED_ATOMS for atom in mol.GetAtoms())


def passes_filters_naive(mol) -> bool:
    """MOSES ``mol_passes_filters`` molecule by molecule (the slow reference, used in tests)."""
    if mol is None or not _passes_simple(mol):
        return False
    h_mol = Chem.AddHs(mol)
    if any(h_mol.HasSubstructMatch(p) for p in _filter_patterns()):
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


def passes_filters(mols: Sequence) -> np.ndarray:
    """MOSES filters for many molecules: the alerts are searched with an RDKit SubstructLibrary.

    The library screens each alert with pattern fingerprints before the full match, which is exact
    (a screen only rules out molecules that cannot match) and ~5x faster than matching every alert
    against every molecule.
    """
    ok = np.array([m is not None and _passes_simple(m) for m in mols], dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return ok
    lib = rdSubstructLibrary.SubstructLibrary(rdSubstructLibrary.MolHolder(), rdSubstructLibrary.PatternHolder())
    for i in idx:
        lib.AddMol(Chem.AddHs(mols[i]))
    hit: set[int] = set()
    for p in _filter_patterns():
        hit.update(lib.GetMatches(p, maxResults=len(idx) + 1, numThreads=1))
    for j in hit:
        ok[idx[j]] = False
    for i in np.flatnonzero(ok):
        s = Chem.MolToSmiles(mols[i], isomericSmiles=False)
        if not s or Chem.MolFromSmiles(s) is None:
            ok[i] = False
    return ok


def fragments(mol) -> list[str]:
    """BRICS fragments as canonical SMILES (MOSES ``fragmenter``)."""
    return Chem.MolToSmiles(AllChem.FragmentOnBRICSBonds(mol)).split('.')


def scaffold(mol, min_rings: int = 2) -> str | None:
    """Bemis–Murcko scaffold SMILES, or None if it has fewer than ``min_rings`` rings (MOSES)."""
    # The scaffold keeps every ring: too few rings is the same answer without Murcko pruning, which
    # takes minutes on a 10,000-atom chain.
    if len(Chem.GetSymmSSSR(mol)) < min_rings:
        return None
    try:
        scaf = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    n_rings = scaf.GetRingInfo().NumRings()
    smi = Chem.MolToSmiles(scaf)
    if smi == '' or n_rings < min_rings:
        return None
    return smi


def properties(mol) -> tuple[float, float, float, float]:
    """logP (Crippen), SA (Ertl), QED, molecular weight: the MOSES property set."""
    return (Crippen.MolLogP(mol), sascorer().calculateScore(mol), QED.qed(mol), Descriptors.MolWt(mol))


def _qed_properties(mol, n_alerts: int):
    """``rdkit.Chem.QED.properties(mol)`` for a molecule without explicit hydrogens (QED removes them
    first) with the structural-alert count given: the same expressions, in the same order."""
    return QED.QEDproperties(
        MW=rdmd._CalcMolWt(mol),
        ALOGP=Crippen.MolLogP(mol),
        HBA=sum(len(mol.GetSubstructMatches(pattern)) for pattern in QED.Acceptors if mol.HasSubstructMatch(pattern)),
        HBD=rdmd.CalcNumHBD(mol),
        PSA=MolSurf.TPSA(mol),
        ROTB=rdmd.CalcNumRotatableBonds(mol, rdmd.NumRotatableBondsOptions.Strict),
        AROM=len(Chem.GetSSSR(Chem.DeleteSubstructs(Chem.Mol(mol), QED.AliphaticRings))),
        ALERTS=n_alerts,
    )


def properties_many(mols: Sequence) -> np.ndarray:
    """[n, 4] :func:`properties` of many molecules, the same values, each descriptor computed once.

    QED's 116 structural alerts are searched with one RDKit SubstructLibrary over the chunk (pattern
    screens first, exact; as for the MOSES filters) instead of 116 matches per molecule, and QED's own
    logP and weight are reused where its molecule (hydrogens removed) is the molecule itself.
    """
    out = np.zeros((len(mols), len(PROPS)), dtype=np.float64)
    if not mols:
        return out
    bare = [Chem.RemoveHs(m) for m in mols]
    lib = rdSubstructLibrary.SubstructLibrary(rdSubstructLibrary.MolHolder(), rdSubstructLibrary.PatternHolder())
    for m in bare:
        lib.AddMol(m)
    alerts = np.zeros(len(mols), dtype=np.int64)
    for pattern in QED.StructuralAlerts:
        alerts[np.asarray(lib.GetMatches(pattern, maxResults=len(bare) + 1, numThreads=1), dtype=np.int64)] += 1
    sa = sascorer()
    for i, (m, b) in enumerate(zip(mols, bare)):
        qp = _qed_properties(b, int(alerts[i]))
        same = b.GetNumAtoms() == m.GetNumAtoms()  # no hydrogen removed: QED's molecule is this one
        out[i] = (qp.ALOGP if same else Crippen.MolLogP(m), sa.calculateScore(m), QED.qed(b, qedProperties=qp),
                  qp.MW if same else Descriptors.MolWt(m))
    return out


def guacamol_descriptors(mol) -> list[float]:
    return [float(getattr(Descriptors, name)(mol)) for name in GUAC_DESCRIPTORS]


def featurize(smiles: Sequence[str | None], what: Sequence[str], generated: bool = True) -> dict:
    """Features of one chunk of SMILES (runs in a worker). ``what`` selects among
    ``canon, fcd, fp, frag, scaf, props, filters, guac, fp4096``.

    Returns row-aligned ``valid`` and ``canon`` for all inputs, and the other features for the valid
    rows only, in order.
    """
    with quiet_rdkit():
        return _featurize(smiles, set(what), generated)


def _featurize(smiles: Sequence[str | None], what: set[str], generated: bool) -> dict:
    valid = np.zeros(len(smiles), dtype=bool)
    canon: list[str | None] = []
    mols = []
    need_canon = generated or 'canon' in what
    for i, s in enumerate(smiles):
        m = get_mol(s)
        if m is None:
            canon.append(None)
            continue
        c = Chem.MolToSmiles(m) if need_canon else None
        if generated:
            m = get_mol(c)
            if m is None:  # pragma: no cover - canonical SMILES that do not parse back
                canon.append(None)
                continue
        valid[i] = True
        canon.append(c)
        mols.append(m)
    out: dict = {'valid': valid, 'canon': canon if 'canon' in what or generated else None}
    if 'fcd' in what:
        out['fcd'] = [Chem.MolToSmiles(m) for m in mols]
    if 'fp' in what:
        gen = _morgan()
        fps = np.zeros((len(mols), FP_BITS), dtype=np.uint8)
        for j, m in enumerate(mols):
            fps[j] = gen.GetFingerprintAsNumPy(m)
        out['fp'] = np.packbits(fps, axis=1)
    if 'fp4096' in what:
        gen = _morgan4096()
        fps = np.zeros((len(mols), 4096), dtype=np.uint8)
        for j, m in enumerate(mols):
            fps[j] = gen.GetFingerprintAsNumPy(m)
        out['fp4096'] = np.packbits(fps, axis=1)
    if 'frag' in what:
        out['frag'] = Counter(f for m in mols for f in fragments(m))
    if 'scaf' in what:
        out['scaf'] = [scaffold(m) for m in mols]
    if 'props' in what:
        out['props'] = properties_many(mols)
    if 'filters' in what:
        out['filters'] = passes_filters(mols)
    if 'guac' in what:
        out['guac'] = np.array([guacamol_descriptors(m) for m in mols], dtype=np.float64).reshape(
            -1, len(GUAC_DESCRIPTORS))
    return out


def merge(parts: list[dict]) -> dict:
    """Concatenate chunk results from :func:`featurize` (row order kept)."""
    out: dict = {}
    if not parts:
        return out
    for key in parts[0]:
        vals = [p[key] for p in parts]
        if vals[0] is None:
            out[key] = None
        elif isinstance(vals[0], np.ndarray):
            out[key] = np.concatenate(vals, axis=0)
        elif isinstance(vals[0], Counter):
            total: Counter = Counter()
            for v in vals:
                total.update(v)
            out[key] = total
        else:
            out[key] = [x for v in vals for x in v]
    return out
