"""Molecule <-> PyG graph, losslessly for what RDKit canonical SMILES encode.

``mol_to_data`` gives a :class:`torch_geometric.data.Data` with

* ``x`` [n_atoms, ATOM_DIM] float: element one-hot (common organic elements + "other"), formal charge
  one-hot (-2..+2, clipped), aromatic flag, total #H one-hot (0..4), degree one-hot (0..5),
  chirality one-hot (none / CW / CCW / other), in-ring flag;
* ``edge_index`` [2, 2*n_bonds] (both directions) and ``edge_attr`` [2*n_bonds, EDGE_DIM] float:
  single / double / triple / aromatic one-hot, conjugated, in ring;

plus integer columns that make the graph invertible (``atomic_num``, ``formal_charge``, ``num_hs``,
``chiral_tag``, ``aromatic``, ``isotope``, ``bond_type``, ``bond_stereo``, ``stereo_atoms``).
``data_to_mol`` rebuilds the RDKit molecule from those columns; canonical SMILES round-trip (tested on
MOSES molecules, charges and aromatic rings included). Atoms and bonds keep RDKit's order, so
chirality tags (which are relative to the bond order around an atom) stay valid.
"""

from __future__ import annotations

import torch
from rdkit import Chem
from torch_geometric.data import Data

from molgen.registry import FEATURIZERS

ELEMENTS = ("C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "B", "Si", "Se", "H")
_ELEMENT_INDEX = {Chem.GetPeriodicTable().GetAtomicNumber(e): i for i, e in enumerate(ELEMENTS)}
CHARGES = (-2, -1, 0, 1, 2)
MAX_HS = 4
MAX_DEGREE = 5
CHIRAL_TAGS = (Chem.ChiralType.CHI_UNSPECIFIED, Chem.ChiralType.CHI_TETRAHEDRAL_CW,
               Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
BOND_TYPES = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)

ATOM_DIM = (len(ELEMENTS) + 1) + len(CHARGES) + 1 + (MAX_HS + 1) + (MAX_DEGREE + 1) + (len(CHIRAL_TAGS) + 1) + 1
EDGE_DIM = len(BOND_TYPES) + 2


def _one_hot(i: int, n: int) -> list[float]:
    v = [0.0] * n
    v[i] = 1.0
    return v


def atom_features(atom: Chem.Atom) -> list[float]:
    """The float feature vector of one atom (see module docstring for the layout)."""
    el = _ELEMENT_INDEX.get(atom.GetAtomicNum(), len(ELEMENTS))
    charge = min(max(atom.GetFormalCharge(), CHARGES[0]), CHARGES[-1]) - CHARGES[0]
    tag = atom.GetChiralTag()
    chi = CHIRAL_TAGS.index(tag) if tag in CHIRAL_TAGS else len(CHIRAL_TAGS)
    return (_one_hot(el, len(ELEMENTS) + 1) + _one_hot(charge, len(CHARGES)) + [float(atom.GetIsAromatic())]
            + _one_hot(min(atom.GetTotalNumHs(), MAX_HS), MAX_HS + 1)
            + _one_hot(min(atom.GetDegree(), MAX_DEGREE), MAX_DEGREE + 1)
            + _one_hot(chi, len(CHIRAL_TAGS) + 1) + [float(atom.IsInRing())])


def bond_features(bond: Chem.Bond) -> list[float]:
    """The float feature vector of one bond (bond type one-hot, conjugated, in ring)."""
    bt = bond.GetBondType()
    if bt not in BOND_TYPES:
        raise ValueError(f"unsupported bond type {bt}")
    return [*_one_hot(BOND_TYPES.index(bt), len(BOND_TYPES)), float(bond.GetIsConjugated()), float(bond.IsInRing())]


def mol_to_data(mol: Chem.Mol) -> Data:
    """PyG graph of an RDKit molecule (hydrogens implicit, as in its SMILES)."""
    atoms = list(mol.GetAtoms())
    x = torch.tensor([atom_features(a) for a in atoms], dtype=torch.float32).reshape(len(atoms), ATOM_DIM)
    src, dst, eattr, btype, bstereo, satoms, rank = [], [], [], [], [], [], []
    # Position of each bond in its atoms' bond lists: chirality tags are relative to that order.
    pos = {(a.GetIdx(), b.GetIdx()): r for a in atoms for r, b in enumerate(a.GetBonds())}
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        f = bond_features(b)
        src += [i, j]
        dst += [j, i]
        rank += [pos[(i, b.GetIdx())], pos[(j, b.GetIdx())]]
        eattr += [f, f]
        btype.append(BOND_TYPES.index(b.GetBondType()))
        bstereo.append(int(b.GetStereo()))
        sa = list(b.GetStereoAtoms())
        satoms.append(sa if len(sa) == 2 else [-1, -1])
    n_b = len(btype)
    return Data(
        x=x,
        edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, 2 * n_b),
        edge_attr=torch.tensor(eattr, dtype=torch.float32).reshape(2 * n_b, EDGE_DIM),
        atomic_num=torch.tensor([a.GetAtomicNum() for a in atoms], dtype=torch.long),
        formal_charge=torch.tensor([a.GetFormalCharge() for a in atoms], dtype=torch.long),
        num_hs=torch.tensor([a.GetTotalNumHs() for a in atoms], dtype=torch.long),
        chiral_tag=torch.tensor([int(a.GetChiralTag()) for a in atoms], dtype=torch.long),
        aromatic=torch.tensor([a.GetIsAromatic() for a in atoms], dtype=torch.bool),
        isotope=torch.tensor([a.GetIsotope() for a in atoms], dtype=torch.long),
        bond_type=torch.tensor(btype, dtype=torch.long),
        bond_stereo=torch.tensor(bstereo, dtype=torch.long),
        stereo_atoms=torch.tensor(satoms, dtype=torch.long).reshape(n_b, 2),
        bond_rank=torch.tensor(rank, dtype=torch.long),
        num_nodes=len(atoms),
    )


def smiles_to_data(smiles: str) -> Data:
    """PyG graph of a SMILES string; raises ValueError when RDKit cannot parse it."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"invalid SMILES {smiles!r}")
    return mol_to_data(mol)


def data_to_mol(data: Data, sanitize: bool = True) -> Chem.Mol:
    """Rebuild the RDKit molecule from a graph made by :func:`mol_to_data` (inverse up to canonical form)."""
    rw = Chem.RWMol()
    for k in range(int(data.num_nodes)):
        a = Chem.Atom(int(data.atomic_num[k]))
        a.SetFormalCharge(int(data.formal_charge[k]))
        a.SetNumExplicitHs(int(data.num_hs[k]))
        a.SetNoImplicit(True)  # #H is stored exactly; RDKit must not add more
        a.SetIsAromatic(bool(data.aromatic[k]))
        a.SetChiralTag(Chem.ChiralType.values[int(data.chiral_tag[k])])
        if int(data.isotope[k]):
            a.SetIsotope(int(data.isotope[k]))
        rw.AddAtom(a)
    ei = data.edge_index
    for b in range(int(data.bond_type.numel())):
        i, j = int(ei[0, 2 * b]), int(ei[1, 2 * b])
        bt = BOND_TYPES[int(data.bond_type[b])]
        rw.AddBond(i, j, bt)
        bond = rw.GetBondBetweenAtoms(i, j)
        if bt == Chem.BondType.AROMATIC:
            bond.SetIsAromatic(True)
    _restore_chirality(rw, data)
    for b in range(int(data.bond_type.numel())):  # stereo atoms need every bond in place first
        stereo = int(data.bond_stereo[b])
        s0, s1 = (int(v) for v in data.stereo_atoms[b])
        if stereo and s0 >= 0:
            bond = rw.GetBondBetweenAtoms(int(ei[0, 2 * b]), int(ei[1, 2 * b]))
            bond.SetStereoAtoms(s0, s1)
            bond.SetStereo(Chem.BondStereo.values[stereo])
    mol = rw.GetMol()
    if sanitize:
        Chem.SanitizeMol(mol)
        Chem.AssignStereochemistry(mol, cleanIt=False, force=True)  # keep stored E/Z labels
    return mol


def _parity(perm: list[int]) -> int:
    """0 for an even permutation of range(n), 1 for odd."""
    perm, odd = list(perm), 0
    for i in range(len(perm)):
        while perm[i] != i:
            j = perm[i]
            perm[i], perm[j] = perm[j], perm[i]
            odd ^= 1
    return odd


def _restore_chirality(rw: Chem.RWMol, data: Data) -> None:
    """Flip chiral tags whose neighbour order in the rebuilt molecule is an odd permutation of the source's."""
    ei, rank = data.edge_index, data.bond_rank
    for a in rw.GetAtoms():
        tag = a.GetChiralTag()
        if tag not in (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW):
            continue
        i = a.GetIdx()
        src_rank = {int(ei[1, e]): int(rank[e]) for e in (ei[0] == i).nonzero().flatten().tolist()}
        order = [src_rank[b.GetOtherAtomIdx(i)] for b in a.GetBonds()]  # source rank of each new position
        if _parity(order):
            a.SetChiralTag(Chem.ChiralType.CHI_TETRAHEDRAL_CCW if tag == Chem.ChiralType.CHI_TETRAHEDRAL_CW
                           else Chem.ChiralType.CHI_TETRAHEDRAL_CW)


def data_to_smiles(data: Data) -> str:
    """Canonical SMILES of a graph made by :func:`mol_to_data`.

    One extra parse: RDKit's canonical writer depends on stereo perception state set by the SMILES
    parser (ring cis/trans centres such as ``C[C@H]1CC[C@@H](O)CC1`` are otherwise written in their
    equivalent, non-canonical form); the molecule itself is already identical (same InChI).
    """
    smi = Chem.MolToSmiles(data_to_mol(data))
    mol = Chem.MolFromSmiles(smi)
    return Chem.MolToSmiles(mol) if mol is not None else smi


class GraphFeaturizer:
    """Callable SMILES -> Data with the inverse attached; the registry entry for graph inputs."""

    atom_dim = ATOM_DIM
    edge_dim = EDGE_DIM

    def __call__(self, smiles: str) -> Data:
        return smiles_to_data(smiles)

    @staticmethod
    def inverse(data: Data) -> str:
        return data_to_smiles(data)


FEATURIZERS.register("graph")(GraphFeaturizer)
