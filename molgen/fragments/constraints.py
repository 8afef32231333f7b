"""What a fragment constraint asks for, parsed and checked, and the check of every output row.

``scaffold`` (decorate; at its ``*`` attachment points or, without any, at any free hydrogen),
``linker`` (``FRAG1.FRAG2``, one ``*`` each) or ``extend`` (one ``*``): :func:`parse_constraint`
turns exactly one of them into a :class:`Constraint` (one-line :class:`~molgen.errors.ConfigError` s).
:func:`contains_fragments` is the check every sampled row goes through: the output parses and holds
every fragment (RDKit substructure match of each fragment with its ``*``s removed; a linker's two
fragments on disjoint atoms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem

from molgen.chem import quiet_rdkit, to_mol
from molgen.errors import ConfigError

#: the three constraints: option name -> what it does
CONSTRAINTS = {"scaffold": "decorate a scaffold (at its `*` attachment points, or at any free hydrogen)",
               "linker": "connect two fragments 'FRAG1.FRAG2' (one `*` each) by a generated linker",
               "extend": "grow a motif from its one `*` attachment point"}
#: the isotope that marks placeholder atoms in template molecules (never a real fragment's)
PLACEHOLDER_ISOTOPE = 77


@dataclass(frozen=True)
class Fragment:
    """One fragment: ``text`` as given; ``mol`` with its attachment points as bare ``*`` atoms (isotope
    and map number cleared); ``core`` the query for the output check (the ``*`` atoms removed)."""

    text: str
    mol: Any
    core: Any
    attachments: tuple[int, ...]

    @property
    def n_attachments(self) -> int:
        return len(self.attachments)


@dataclass(frozen=True)
class Constraint:
    """What was asked: ``kind`` (scaffold / linker / extend) and its fragments (two for a linker)."""

    kind: str
    fragments: tuple[Fragment, ...]
    query: Any = field(repr=False, default=None)  # one RDKit query: the cores, on disjoint atoms

    @property
    def text(self) -> str:
        return ".".join(f.text for f in self.fragments)


def parse_fragment(text: str, *, what: str = "fragment") -> Fragment:
    """A fragment SMILES, checked: parses, one connected piece, each ``*`` bonded to exactly one atom.
    Raises :class:`ConfigError` with a one-line reason."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what}: give a fragment SMILES, got {text!r}")
    text = text.strip()
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(text)
    if mol is None or mol.GetNumAtoms() == 0:
        raise ConfigError(f"{what}: invalid fragment SMILES {text!r} (RDKit cannot parse it)")
    if len(Chem.GetMolFrags(mol)) != 1:
        raise ConfigError(f"{what}: {text!r} is not one connected fragment"
                          + (" (two fragments to connect go to --linker 'FRAG1.FRAG2')" if what != "linker" else ""))
    dummies = []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0:
            if atom.GetDegree() != 1:
                raise ConfigError(f"{what}: each attachment point `*` in {text!r} must be bonded to exactly one atom")
            dummies.append(atom.GetIdx())
        elif atom.GetIsotope() == PLACEHOLDER_ISOTOPE:
            raise ConfigError(f"{what}: isotope {PLACEHOLDER_ISOTOPE} is reserved for template placeholders")
    if len(dummies) == mol.GetNumAtoms():
        raise ConfigError(f"{what}: {text!r} has no atoms besides attachment points")
    rw = Chem.RWMol(mol)
    for d in dummies:
        a = rw.GetAtomWithIdx(d)
        a.SetIsotope(0)
        a.SetAtomMapNum(0)
    mol = rw.GetMol()
    core = Chem.RWMol(mol)
    for d in sorted(dummies, reverse=True):
        core.RemoveAtom(d)
    core = core.GetMol()
    try:
        trial = Chem.Mol(core)
        with quiet_rdkit():
            Chem.SanitizeMol(trial)
        core = trial
    except Exception:  # e.g. an aromatic N that held the `*`: keep the parsed aromatic flags and bond types
        core.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(core)
    return Fragment(text, mol, core, tuple(dummies))


def parse_constraint(*, scaffold: str | None = None, linker: str | None = None,
                     extend: str | None = None) -> Constraint:
    """Exactly one of ``scaffold`` / ``linker`` / ``extend``, parsed and checked (one-line errors)."""
    given = {k: v for k, v in (("scaffold", scaffold), ("linker", linker), ("extend", extend)) if v is not None}
    if len(given) != 1:
        raise ConfigError("give exactly one of scaffold / linker / extend"
                          + (f" (got {', '.join(given)})" if given else ""))
    (kind, text), = given.items()
    if not isinstance(text, str):
        raise ConfigError(f"{kind} must be a SMILES string, got {type(text).__name__}")
    if kind == "linker":
        parts = [p for p in text.strip().split(".")]
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ConfigError(f"linker needs exactly two fragments 'FRAG1.FRAG2' (one `*` each), got {text!r}")
        frags = tuple(parse_fragment(p, what="linker") for p in parts)
        for f in frags:
            if f.n_attachments != 1:
                raise ConfigError(f"linker: each fragment needs exactly one attachment point `*` (where the linker "
                                  f"joins it); {f.text!r} has {f.n_attachments}")
    else:
        frags = (parse_fragment(text, what=kind),)
        if kind == "extend" and frags[0].n_attachments != 1:
            raise ConfigError(f"extend needs exactly one attachment point `*` (where the motif grows); "
                              f"{frags[0].text!r} has {frags[0].n_attachments}")
    query = frags[0].core if len(frags) == 1 else Chem.CombineMols(frags[0].core, frags[1].core)
    return Constraint(kind, frags, query)


def contains_fragments(smiles: Sequence[str | None], constraint: Constraint) -> np.ndarray:
    """[n] bool: the molecule parses and contains every fragment (substructure match of the fragments
    without their ``*``s; a linker's two fragments on disjoint atoms). None / invalid rows: False."""
    out = np.zeros(len(smiles), dtype=bool)
    for i, s in enumerate(smiles):
        mol = to_mol(s) if s else None
        if mol is not None:
            out[i] = bool(mol.HasSubstructMatch(constraint.query))
    return out

