"""The template molecule: the fragment(s) with chains of placeholder atoms where the model writes.

A placeholder is a carbon with the isotope :data:`~molgen.fragments.constraints.PLACEHOLDER_ISOTOPE`
(never a real fragment's). One chain per ``*`` (scaffold / extend), the linker chain between the two
fragments, or chains at chosen atoms of a bare scaffold (keyed ``SITE_KEY + atom``); written in the
model's representation (:mod:`molgen.fragments.writers`), the placeholder tokens become free spans.
"""

from __future__ import annotations

from collections.abc import Sequence

from rdkit import Chem

from molgen.chem import quiet_rdkit
from molgen.fragments.constraints import PLACEHOLDER_ISOTOPE, Constraint

#: ``chain`` key of a bare scaffold's decoration site: SITE_KEY + the site atom
SITE_KEY = 100_000


def is_placeholder(atom) -> bool:
    """A placeholder atom of a template molecule (a carbon with the placeholder isotope)."""
    return atom.GetAtomicNum() == 6 and atom.GetIsotope() == PLACEHOLDER_ISOTOPE


def _new_placeholder():
    a = Chem.Atom(6)
    a.SetIsotope(PLACEHOLDER_ISOTOPE)
    return a


def _to_placeholder(atom) -> None:
    atom.SetAtomicNum(6)
    atom.SetIsotope(PLACEHOLDER_ISOTOPE)
    atom.SetFormalCharge(0)
    atom.SetNumExplicitHs(0)
    atom.SetNoImplicit(False)
    atom.SetIsAromatic(False)


def _chain(rw, start: int, length: int, key: int = -1) -> int:
    """Grow a chain of ``length`` placeholders from the placeholder ``start`` (atom property ``chain`` =
    ``key`` on each); returns its last atom."""
    last = start
    rw.GetAtomWithIdx(start).SetIntProp("chain", key)
    for _ in range(length - 1):
        nxt = rw.AddAtom(_new_placeholder())
        rw.GetAtomWithIdx(nxt).SetIntProp("chain", key)
        rw.AddBond(last, nxt, Chem.BondType.SINGLE)
        last = nxt
    return last


def _sanitized(rw):
    mol = rw.GetMol()
    with quiet_rdkit():
        Chem.SanitizeMol(mol)
    return mol


def template_molecule(constraint: Constraint, lengths: Sequence[int] | None = None,
                      sites: dict[int, int] | None = None, head: int | None = None):
    """The fragment(s) with placeholder chains: one chain per ``*`` (scaffold / extend, ``lengths`` in
    attachment order), the linker chain between the two fragments (``lengths[0]``), or chains at
    ``sites`` {atom: length} of a bare scaffold. Lengths default to 1. ``head``: the chain (attachment
    number, or site atom) whose far end carries the atom property ``head`` (a writing rooted there
    starts with that chain)."""
    frags = constraint.fragments
    if constraint.kind == "linker":
        f1, f2 = frags
        rw = Chem.RWMol(Chem.CombineMols(f1.mol, f2.mol))
        off = f1.mol.GetNumAtoms()
        d1, d2 = f1.attachments[0], f2.attachments[0] + off
        b2 = rw.GetAtomWithIdx(d2).GetBonds()[0]
        a2, bond_type = b2.GetOtherAtomIdx(d2), b2.GetBondType()
        _to_placeholder(rw.GetAtomWithIdx(d1))
        last = _chain(rw, d1, int(lengths[0]) if lengths else 1)
        rw.AddBond(last, a2, bond_type)
        rw.RemoveAtom(d2)
        return _sanitized(rw)
    f = frags[0]
    rw = Chem.RWMol(f.mol)
    if f.attachments:
        for k, d in enumerate(f.attachments):
            _to_placeholder(rw.GetAtomWithIdx(d))
            end = _chain(rw, d, int(lengths[k]) if lengths else 1, k)
            if head == k:
                rw.GetAtomWithIdx(end).SetIntProp("head", 1)
    for atom_idx, length in (sites or {}).items():
        a = rw.GetAtomWithIdx(atom_idx)
        if a.GetNumExplicitHs():
            a.SetNumExplicitHs(a.GetNumExplicitHs() - 1)
        p = rw.AddAtom(_new_placeholder())
        rw.AddBond(atom_idx, p, Chem.BondType.SINGLE)
        end = _chain(rw, p, length, SITE_KEY + atom_idx)
        if head == atom_idx:
            rw.GetAtomWithIdx(end).SetIntProp("head", 1)
    return _sanitized(rw)

