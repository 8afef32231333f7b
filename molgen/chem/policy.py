"""The one standardization / canonicalization policy used by training, scoring and every metric.

Policy (written down once, stored in every saved model's metadata):

1. Parse with RDKit and sanitize. Anything that fails is ``invalid_smiles``; nothing raises.
2. Keep the largest fragment (by heavy-atom count, ties broken by canonical SMILES), so salts and
   solvents (``CC(=O)O.[Na+]``) become the parent molecule. Switch: ``largest_fragment``.
3. Optionally neutralize charges where a neutral form exists (``neutralize``; off by default because
   zwitterions, nitro groups and quaternary N are real chemistry).
4. Isotopes are kept (``keep_isotopes``), stereo is kept (``keep_stereo``) unless switched off.
5. Output: RDKit canonical SMILES, aromatic form (``Chem.MolToSmiles`` defaults).

The MOSES data has no stereo, salts or charges beyond real ones, so this default reproduces MOSES
canonical strings exactly.

Scoring can apply more on request, one named step at a time (:func:`restandardize`, the names of
:data:`STANDARDIZATIONS`), and reports which ones changed each molecule.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from rdkit import Chem
from rdkit.Chem.MolStandardize import rdMolStandardize

from molgen.chem.rdlog import quiet_rdkit
from molgen.errors import OptionError, check_options, strict

MAX_SMILES_CHARS = 10_000  # longer inputs are refused before RDKit sees them (hostile input guard)
#: a SMILES is printable ASCII without spaces; anything else (an inner space or tab, Unicode, control
#: characters) is invalid, because RDKit silently reads only the part before it
_SMILES_CHARS = re.compile(r"[!-~]+")


class Status(str, enum.Enum):
    """Per-row outcome of standardization; scoring adds tokenizer/model statuses on top."""

    OK = "ok"
    INVALID = "invalid_smiles"
    TOO_LONG = "too_long"
    ERROR = "error"


@dataclass(frozen=True)
class Policy:
    """Standardization switches; ``Policy()`` is the project default."""

    keep_stereo: bool = True
    largest_fragment: bool = True
    neutralize: bool = False
    keep_isotopes: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    @strict
    def from_dict(cls, d: dict) -> Policy:
        """A policy from its ``to_dict`` form; an unknown switch is an error that lists the known ones."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise OptionError(f"unknown policy switch(es) {', '.join(unknown)}; accepted: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**d)

    @property
    def key(self) -> str:
        """Short stable string for cache keys."""
        return "".join(f"{k[0]}{int(v)}" for k, v in sorted(self.to_dict().items()))


Policy.__init__ = strict(Policy.__init__)  # type: ignore[method-assign]  # unknown switches list the known ones


DEFAULT_POLICY = Policy()
_uncharger = None

#: the standardisations scoring can apply on request, in the fixed order of the score table's
#: ``standardized`` column: "stereo" (stereo removed), "charge" (neutralised where a neutral form
#: exists), "isotope" (isotope labels removed)
STANDARDIZATIONS = ("stereo", "charge", "isotope")


def to_mol(smiles: str | None):
    """RDKit molecule or None: never raises, never logs. Empty / None / non-strings give None."""
    if not isinstance(smiles, str):
        return None
    s = smiles.strip()
    if not s or len(s) > MAX_SMILES_CHARS:
        return None
    if not _SMILES_CHARS.fullmatch(s):  # RDKit would read "CCO name", "CCO\u200b" or "CCÖ" as a prefix
        return None
    with quiet_rdkit():
        try:
            mol = Chem.MolFromSmiles(s)
        except Exception:
            return None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def _largest_fragment(mol):
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(frags) == 1:
        return mol
    return max(frags, key=lambda m: (m.GetNumHeavyAtoms(), Chem.MolToSmiles(m)))


def standardize_mol(mol, policy: Policy = DEFAULT_POLICY):
    """Apply the policy to an RDKit molecule; returns a new molecule or None."""
    global _uncharger
    if mol is None:
        return None
    with quiet_rdkit():
        try:
            changed = False
            if policy.largest_fragment:
                parent = _largest_fragment(mol)
                changed, mol = parent is not mol, parent
            if policy.neutralize:
                if _uncharger is None:
                    _uncharger = rdMolStandardize.Uncharger()
                mol, changed = _uncharger.uncharge(mol), True
            if not policy.keep_isotopes:
                mol, changed = Chem.Mol(mol), True
                for atom in mol.GetAtoms():
                    atom.SetIsotope(0)
            if not policy.keep_stereo:
                mol, changed = Chem.Mol(mol), True
                Chem.RemoveStereochemistry(mol)
            if changed:  # the parse already sanitized an unmodified molecule
                Chem.SanitizeMol(mol)
        except Exception:
            return None
    return mol


def mol_to_smiles(mol, policy: Policy = DEFAULT_POLICY) -> str | None:
    if mol is None:
        return None
    with quiet_rdkit():
        try:
            return Chem.MolToSmiles(mol, isomericSmiles=policy.keep_stereo or policy.keep_isotopes)
        except Exception:
            return None


def _get_uncharger():
    global _uncharger
    if _uncharger is None:
        _uncharger = rdMolStandardize.Uncharger()
    return _uncharger


def _strip_isotopes(mol):
    mol = Chem.Mol(mol)
    for atom in mol.GetAtoms():
        atom.SetIsotope(0)
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)  # a centre that was chiral only by its label
    return mol


def _strip_stereo(mol):
    mol = Chem.Mol(mol)
    Chem.RemoveStereochemistry(mol)
    return mol


# applied in this order (charges first, as the policy does); reported in STANDARDIZATIONS order
_STEPS = (("charge", lambda mol: _get_uncharger().uncharge(mol)), ("isotope", _strip_isotopes),
          ("stereo", _strip_stereo))


def restandardize(canonical: str, changes: Iterable[str], policy: Policy = DEFAULT_POLICY
                  ) -> tuple[str | None, tuple[str, ...]]:
    """``canonical`` with the asked :data:`STANDARDIZATIONS` applied, canonical again under ``policy``,
    and the ones that changed the molecule (in :data:`STANDARDIZATIONS` order); ``(None, ())`` when
    RDKit fails. Neutralising uses RDKit's ``rdMolStandardize.Uncharger``: charged acids and amines
    become neutral, a genuinely charged species (quaternary ammonium, a nitro group) stays as it is.

    Why: a library may hold what a model's training data lacked (stereo, salts' charged forms,
    labelled atoms); scoring the standardised molecule is the user's explicit, reported choice."""
    changes = set(changes)
    check_options("standardizations", changes, STANDARDIZATIONS)
    mol = to_mol(canonical)
    if mol is None:
        return None, ()
    done = []
    with quiet_rdkit():
        try:
            before = Chem.MolToSmiles(mol)
            for name, step in _STEPS:
                if name in changes:
                    mol = step(mol)
                    after = Chem.MolToSmiles(mol)
                    if after != before:
                        done.append(name)
                    before = after
        except Exception:
            return None, ()
    out, status = standardize(before, policy)
    if status is not Status.OK:
        return None, ()
    return out, tuple(c for c in STANDARDIZATIONS if c in done)


def standardize(smiles: str | None, policy: Policy = DEFAULT_POLICY) -> tuple[str | None, Status]:
    """Canonical SMILES under ``policy`` and a status; never raises."""
    if not isinstance(smiles, str) or not smiles.strip():
        return None, Status.INVALID
    if len(smiles) > MAX_SMILES_CHARS:
        return None, Status.TOO_LONG
    try:
        mol = standardize_mol(to_mol(smiles), policy)
        out = mol_to_smiles(mol, policy)
    except Exception:  # pragma: no cover - defensive: RDKit C++ errors surface as RuntimeError
        return None, Status.ERROR
    if not out:
        return None, Status.INVALID
    return out, Status.OK


def canonicalize(smiles: str | None, policy: Policy = DEFAULT_POLICY) -> str | None:
    """Canonical SMILES under ``policy`` or None for anything that does not parse."""
    return standardize(smiles, policy)[0]


def canonicalize_many(smiles: Iterable[str | None], policy: Policy = DEFAULT_POLICY) -> list[str | None]:
    """Row-aligned canonical SMILES (None where invalid)."""
    return [canonicalize(s, policy) for s in smiles]
