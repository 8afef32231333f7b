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

:class:`GraphRepresentation` (registered as the ``graph`` representation) makes these graphs a
:class:`~molgen.representation.Representation`: a molecule is a *labelled graph*, atoms in the order of
its canonical SMILES, each atom labelled by a fitted vocabulary of atom types and each bond by its type.
torch_geometric is imported where a graph is built (it costs seconds; string models never need it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from rdkit import Chem

from molgen.chem import quiet_rdkit
from molgen.errors import OOVError, TokenizeError
from molgen.registry import FEATURIZERS, REPRESENTATIONS
from molgen.representation import (
    BRACKET_ATOM,
    FORMAT,
    FORMAT_VERSION,
    Representation,
    check_state,
    token_writes,
)

if TYPE_CHECKING:
    from torch_geometric.data import Data

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
    from torch_geometric.data import Data  # lazy: seconds to import, needed by graph families only

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


# --- the graph representation ----------------------------------------------------------------------
#: bond labels, spelt as SMILES bonds, in the order of :data:`BOND_TYPES`
BOND_LABELS = ("-", "=", "#", ":")
_CHIRAL_MARK = {Chem.ChiralType.CHI_TETRAHEDRAL_CCW: "@", Chem.ChiralType.CHI_TETRAHEDRAL_CW: "@@"}
_MARK_CHIRAL = {v: k for k, v in _CHIRAL_MARK.items()}
#: the unit a double bond with E/Z stereo is out of vocabulary as: SMILES's directional bond
STEREO_BOND = "/"


def atom_label(atom: Chem.Atom) -> str:
    """An atom's label, spelt as the SMILES bracket atom it writes: isotope, element (lower case when
    aromatic), chirality, hydrogen count, charge (``[CH3]``, ``[cH]``, ``[C@@H]``, ``[O-]``, ``[13CH3]``).
    A chirality other than tetrahedral (``@SP1``, ``@TB5``) is a :class:`TokenizeError`."""
    tag = atom.GetChiralTag()
    if tag != Chem.ChiralType.CHI_UNSPECIFIED and tag not in _CHIRAL_MARK:
        raise TokenizeError(f"the graph representation writes tetrahedral chirality only, not {tag}")
    sym = atom.GetSymbol().lower() if atom.GetIsAromatic() else atom.GetSymbol()
    hs, q = atom.GetTotalNumHs(), atom.GetFormalCharge()
    h = "" if hs == 0 else "H" if hs == 1 else f"H{hs}"
    charge = "" if q == 0 else "+" if q == 1 else "-" if q == -1 else f"{q:+d}"
    return f"[{atom.GetIsotope() or ''}{sym}{_CHIRAL_MARK.get(tag, '')}{h}{charge}]"


def parse_atom_label(label: str) -> dict[str, Any]:
    """The columns of :func:`mol_to_data` an atom label stands for (the inverse of :func:`atom_label`):
    ``atomic_num``, ``formal_charge``, ``num_hs``, ``chiral_tag``, ``aromatic``, ``isotope``."""
    m = BRACKET_ATOM.match(label)
    if not m or m.group(1):
        raise ValueError(f"not an atom label: {label!r}")
    _bond, isotope, element, chiral, hs, charge = m.groups()
    try:
        z = Chem.GetPeriodicTable().GetAtomicNumber(element.capitalize())
    except RuntimeError:
        raise ValueError(f"not an atom label: {label!r} (unknown element {element!r})") from None
    if chiral and chiral not in _MARK_CHIRAL:
        raise ValueError(f"not an atom label: {label!r} (chirality {chiral!r})")
    if charge:
        sign = 1 if charge[0] == "+" else -1
        q = sign * (int(charge.lstrip("+-")) if charge.lstrip("+-") else len(charge))
    else:
        q = 0
    return {"atomic_num": z, "formal_charge": q, "num_hs": int(hs[1:] or 1) if hs else 0,
            "chiral_tag": int(_MARK_CHIRAL.get(chiral, Chem.ChiralType.CHI_UNSPECIFIED)),
            "aromatic": element.islower(), "isotope": int(isotope or 0)}


@REPRESENTATIONS.register("graph")
class GraphRepresentation(Representation):
    """Molecules as labelled graphs (PyG :class:`~torch_geometric.data.Data`, :func:`mol_to_data`'s columns
    plus ``atom_type``: each atom's index in the fitted atom vocabulary).

    The object a likelihood over these items is a probability of is the ``labelled-graph``: atoms in the
    order of the molecule's canonical SMILES, each with its label (:func:`atom_label`), and the bonds with
    theirs (:data:`BOND_LABELS`). An atom type never seen in training is out of vocabulary (status
    ``oov_token:[Se]``), and so is a double bond with E/Z stereo (``oov_token:/``: the labels carry no
    bond stereo; ``strip_stereo`` scores the stereo-free graph). A batch holds the PyG ``graph`` and
    dense ``atoms`` [B, N] (atom type, -1 past a molecule's atoms), ``bonds`` [B, N, N] (0: none, k:
    ``BOND_LABELS[k - 1]``) and ``n_atoms`` [B]."""

    name = "graph"
    kind = "graph"
    likelihood_object = "labelled-graph"
    bond_labels = BOND_LABELS

    def __init__(self, atom_types: Sequence[str] | None = None) -> None:
        self._set_vocabulary(atom_types or [])

    def _set_vocabulary(self, atom_types: Sequence[str]) -> None:
        self.atom_types: list[str] = list(atom_types)
        self._atoms = [parse_atom_label(t) for t in self.atom_types]  # a corrupt label fails here
        self.stoi = {t: i for i, t in enumerate(self.atom_types)}

    @property
    def is_fitted(self) -> bool:
        return bool(self.atom_types)

    def fit(self, smiles: Iterable[str]) -> GraphRepresentation:
        """The atom vocabulary of the training molecules (by frequency, then alphabetically)."""
        counts: Counter[str] = Counter()
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                continue
            try:
                counts.update(atom_label(a) for a in mol.GetAtoms())
            except TokenizeError:
                continue
        self._set_vocabulary(sorted(counts, key=lambda t: (-counts[t], t)))
        return self

    # --- items ---------------------------------------------------------------------------------
    def _mol(self, canonical_smiles: str) -> Chem.Mol:
        mol = Chem.MolFromSmiles(canonical_smiles)
        if mol is None:
            raise TokenizeError(f"cannot parse {canonical_smiles!r} into a graph")
        return mol

    def encode(self, canonical_smiles: str) -> Data:
        """The labelled graph of a canonical SMILES; OOVError lists unseen atom types (and ``/`` for E/Z
        bond stereo), TokenizeError a bond or chirality no label writes (dative bonds, ``@SP1``)."""
        mol = self._mol(canonical_smiles)
        labels = [atom_label(a) for a in mol.GetAtoms()]
        unknown = [t for t in labels if t not in self.stoi]
        for b in mol.GetBonds():
            if b.GetBondType() not in BOND_TYPES:
                raise TokenizeError(f"the graph representation has no label for a {b.GetBondType()} bond "
                                    f"(in {canonical_smiles!r})")
            if b.GetStereo() != Chem.BondStereo.STEREONONE:
                unknown.append(STEREO_BOND)
        if unknown:
            raise OOVError(unknown)
        data = mol_to_data(mol)
        data.atom_type = torch.tensor([self.stoi[t] for t in labels], dtype=torch.long)
        return data

    def item(self, atom_types: Sequence[int], bonds: Iterable[tuple[int, int, int]]) -> Data:
        """The item of a generated labelled graph: atom type ids, and bonds as ``(i, j, k)`` (atoms i < j,
        bond label ``BOND_LABELS[k]``); every column :meth:`decode` reads is filled from the labels."""
        from torch_geometric.data import Data  # lazy: seconds to import, needed by graph families only

        cols = [self._atoms[int(t)] for t in atom_types]
        bonds = [(int(i), int(j), int(k)) for i, j, k in bonds]
        rank = [0] * len(cols)  # each bond's position in its atoms' bond lists, as data_to_mol adds them
        src, dst, pos = [], [], []
        for i, j, _k in bonds:
            src += [i, j]
            dst += [j, i]
            pos += [rank[i], rank[j]]
            rank[i] += 1
            rank[j] += 1
        n, n_b = len(cols), len(bonds)
        return Data(
            edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, 2 * n_b),
            **{c: torch.tensor([a[c] for a in cols], dtype=torch.bool if c == "aromatic" else torch.long)
               for c in ("atomic_num", "formal_charge", "num_hs", "chiral_tag", "aromatic", "isotope")},
            bond_type=torch.tensor([k for _i, _j, k in bonds], dtype=torch.long),
            bond_stereo=torch.zeros(n_b, dtype=torch.long),
            stereo_atoms=torch.full((n_b, 2), -1, dtype=torch.long),
            bond_rank=torch.tensor(pos, dtype=torch.long),
            atom_type=torch.tensor([int(t) for t in atom_types], dtype=torch.long),
            num_nodes=n,
        )

    def decode(self, item: Data) -> Chem.Mol | None:
        """The RDKit molecule of a graph, or None when its labels make no molecule (a valence RDKit refuses;
        said by the sample's invalid row, not by RDKit's log)."""
        with quiet_rdkit():
            try:
                return data_to_mol(item)
            except (ValueError, RuntimeError):  # RDKit's MolSanitizeException is a ValueError
                return None

    def collate(self, items: Sequence[Data]) -> dict[str, Any]:
        from torch_geometric.data import Batch  # lazy: seconds to import, needed by graph families only

        n = torch.tensor([int(d.num_nodes) for d in items], dtype=torch.long)
        N = int(n.max()) if len(items) else 0
        atoms = torch.full((len(items), N), -1, dtype=torch.long)
        bonds = torch.zeros((len(items), N, N), dtype=torch.long)
        for b, d in enumerate(items):
            atoms[b, :int(d.num_nodes)] = d.atom_type
            i, j = d.edge_index[0, 0::2], d.edge_index[1, 0::2]
            bonds[b, i, j] = bonds[b, j, i] = d.bond_type + 1
        return {"graph": Batch.from_data_list(list(items)), "atoms": atoms, "bonds": bonds, "n_atoms": n}

    def item_length(self, item: Data) -> int:
        return int(item.num_nodes)

    def size(self, canonical_smiles: str) -> int:
        """Number of (heavy) atoms."""
        return self._mol(canonical_smiles).GetNumAtoms()

    def seed_material(self, item: Data) -> bytes:
        """The labelled graph itself: atom type ids and ``(i, j, bond label)`` per bond."""
        i, j = item.edge_index[0, 0::2].tolist(), item.edge_index[1, 0::2].tolist()
        return repr((item.atom_type.tolist(), list(zip(i, j, item.bond_type.tolist())))).encode()

    # --- vocabulary facts ----------------------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        return {"atom_types": len(self.atom_types), "bond_types": len(BOND_LABELS), "atom_dim": ATOM_DIM,
                "edge_dim": EDGE_DIM}

    def describe(self) -> str:
        return f"atom types {len(self.atom_types)}, bond types {len(BOND_LABELS)}"

    def known_elements(self) -> frozenset[str]:
        table = Chem.GetPeriodicTable()
        return frozenset(table.GetElementSymbol(a["atomic_num"]) for a in self._atoms)

    def expressible(self) -> frozenset[str]:
        """Charge, isotope and (tetrahedral) stereo as the atom labels write them; never E/Z."""
        return frozenset().union(*(token_writes(t) for t in self.atom_types))

    # --- state ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name,
                "atom_types": self.atom_types, "bond_types": list(BOND_LABELS)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GraphRepresentation:
        check_state(d, cls)
        if list(d.get("bond_types", BOND_LABELS)) != list(BOND_LABELS):
            raise ValueError(f"graph representation state is corrupt: bond labels {d.get('bond_types')!r}, "
                             f"this molgen writes {list(BOND_LABELS)}")
        return cls(atom_types=d.get("atom_types") or [])
