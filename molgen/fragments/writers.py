"""Writing a template molecule as tokens of the model's representation, placeholders marked.

Kekulé SMILES for a Kekulé model, aromatic SMILES, or SELFIES (whose spans have fixed lengths: branch
sizes precede branches), by RDKit, rooted where the template builder asks. For SELFIES,
:func:`selfies_unsafe_runs` finds the placeholder runs a ring closure spans (SELFIES counts that
distance in atoms, so a span there that writes another number of atoms moves the closure).
"""

from __future__ import annotations

from typing import Any

import selfies as sf
from rdkit import Chem
from selfies.grammar_rules import get_index_from_selfies, process_branch_symbol, process_ring_symbol

from molgen.errors import CapabilityError, ConfigError
from molgen.fragments.constraints import PLACEHOLDER_ISOTOPE
from molgen.fragments.placeholders import is_placeholder
from molgen.tokenizers.smiles import SMILES_REGEX


def selfies_unsafe_runs(tokens: list[str], placeholder: list[bool]) -> list[int]:
    """The first atom (derivation order) of each placeholder run that a ring closure spans: a ring bond
    written after the run from an atom after it to an atom before it (SELFIES counts that distance in
    atoms)."""
    atom_of: dict[int, int] = {}
    rings: list[tuple[int, int]] = []  # (target atom, ring-closing atom)
    count = 0

    def walk(i: int, end: int, prev: int) -> None:
        nonlocal count
        while i < min(end, len(tokens)):
            tok = tokens[i]
            if "ch" == tok[-4:-2]:  # [Branch1], [=Branch2], ...
                _, n = process_branch_symbol(tok)
                q = get_index_from_selfies(*tokens[i + 1:i + 1 + n])
                i += 1 + n
                walk(i, i + q + 1, prev)
                i += q + 1
            elif "ng" == tok[-4:-2]:  # [Ring1], [=Ring2], ...
                _, n, _ = process_ring_symbol(tok)
                q = get_index_from_selfies(*tokens[i + 1:i + 1 + n])
                rings.append((max(0, prev - (q + 1)), prev))
                i += 1 + n
            else:
                atom_of[i] = prev = count
                count += 1
                i += 1

    walk(0, len(tokens), -1)
    out, i = [], 0
    while i < len(tokens):
        if placeholder[i]:
            j = i
            while j < len(tokens) and placeholder[j]:
                j += 1
            first, last = atom_of.get(i, -1), atom_of.get(j - 1, -1)
            if any(t < first and p > last for t, p in rings):
                out.append(first)
            i = j
        else:
            i += 1
    return out


def _atom_order(mol) -> list[int]:
    return [int(x) for x in mol.GetProp("_smilesAtomOutputOrder").strip("[]").split(",") if x.strip()]


class Writer:
    """Writes a template molecule as tokens of one representation, placeholders marked."""

    name = "smiles"
    kekule = False
    #: spans end by syntax (SMILES) or have fixed lengths (SELFIES: branch sizes precede branches)
    fixed_length_spans = False

    def smiles(self, mol, root: int | None, ordered: bool = False) -> tuple[str, list[int]]:
        """SMILES rooted at ``root`` (None: RDKit's canonical string) and its atom output order.

        ``ordered``: RDKit's non-canonical traversal of the molecule renumbered so that the placeholders
        and whatever lies beyond them come last (a writing that ends at the attachment point where the
        canonical traversal puts it in a branch)."""
        m = Chem.Mol(mol)
        if self.kekule:
            Chem.Kekulize(m, clearAromaticFlags=True)
        kw: dict[str, Any] = {"kekuleSmiles": self.kekule}
        perm = None
        if ordered:
            perm = _placeholders_last(m, root)
            m = Chem.RenumberAtoms(m, perm)
            kw.update(canonical=False, rootedAtAtom=perm.index(root))
        elif root is not None:
            kw["rootedAtAtom"] = int(root)
        s = Chem.MolToSmiles(m, **kw)
        order = _atom_order(m)
        return s, (order if perm is None else [perm[j] for j in order])

    def tokens(self, mol, root: int | None, ordered: bool = False) -> tuple[list[str], list[bool], list[int]]:
        """(tokens, is-placeholder per token, atom output order)."""
        s, order = self.smiles(mol, root, ordered)
        toks = SMILES_REGEX.findall(s)
        if "".join(toks) != s:  # pragma: no cover - RDKit writes only what the regex covers
            raise ConfigError(f"cannot tokenize the template {s!r}")
        return toks, [f"[{PLACEHOLDER_ISOTOPE}C" in t for t in toks], order


def _placeholders_last(mol, root: int) -> list[int]:
    """An atom order: the root's side (breadth-first, not through placeholders), then the placeholders,
    then the rest."""
    seen, queue = {root}, [root]
    while queue:
        a = queue.pop(0)
        for nb in mol.GetAtomWithIdx(a).GetNeighbors():
            j = nb.GetIdx()
            if j not in seen and not is_placeholder(nb):
                seen.add(j)
                queue.append(j)
    first = [a for a in range(mol.GetNumAtoms()) if a in seen]
    ph = [a.GetIdx() for a in mol.GetAtoms() if is_placeholder(a)]
    return first + ph + [a for a in range(mol.GetNumAtoms()) if a not in seen and a not in ph]


class KekuleWriter(Writer):
    name = "smiles-kekule"
    kekule = True


class SelfiesWriter(Writer):
    name = "selfies"
    fixed_length_spans = True

    def tokens(self, mol, root, ordered=False):
        s, order = self.smiles(mol, root, ordered)
        try:
            toks = list(sf.split_selfies(sf.encoder(s)))
        except Exception as e:  # selfies.EncoderError
            raise ConfigError(f"cannot write the template {s!r} as SELFIES: {e}") from None
        return toks, [f"{PLACEHOLDER_ISOTOPE}C" in t for t in toks], order


#: tokenizer name -> how templates are written for it
WRITERS: dict[str, type[Writer]] = {"smiles": Writer, "smiles-kekule": KekuleWriter, "selfies": SelfiesWriter}


def writer_for(tokenizer) -> Writer:
    """The writer of the tokenizer's representation (a representation it cannot write: CapabilityError)."""
    name = getattr(tokenizer, "name", None)
    if name not in WRITERS:
        raise CapabilityError(f"fragment templates are written for the tokenizers {', '.join(WRITERS)}; "
                              f"this model uses {name!r}")
    return WRITERS[name]()

