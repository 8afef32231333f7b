"""SELFIES tokenizer: SMILES -> SELFIES (``selfies.encoder``) -> symbols (``split_selfies``).

Decoding goes back to SMILES through ``selfies.decoder``; every symbol string decodes to a molecule,
possibly an empty one (counted as invalid downstream). The canonical SELFIES of a molecule is the
SELFIES of its canonical SMILES. Score statuses and notes spell a symbol as its SMILES atom (:func:`smiles_atom`).
"""

from __future__ import annotations

from collections.abc import Sequence

import selfies as sf

from molgen.errors import TokenizeError
from molgen.registry import REPRESENTATIONS
from molgen.representation import BRACKET_ATOM
from molgen.tokenizers.base import Tokenizer

#: atoms SMILES writes without brackets when they carry nothing but their default hydrogens
ORGANIC_SUBSET = frozenset({"B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I"})


def smiles_atom(symbol: str) -> str:
    """A SELFIES symbol spelt as the SMILES atom it writes: ``[O-1]`` -> ``[O-]``, ``[N+1]`` -> ``[N+]``,
    ``[C@H1]`` -> ``[C@H]``, ``[NH4+1]`` -> ``[NH4+]``, ``[CH0]`` -> ``[C]``, ``[C]`` / ``[=C]`` / ``[/C]`` -> ``C``,
    ``[Se]`` -> ``[Se]``, ``[13CH3]`` unchanged. The bond a symbol carries is not part of the atom;
    ``[Branch1]``, ``[=Ring1]`` and anything that is not an atom stay as they are.

    Why: a SMILES and a SELFIES model then name the same atom the same way in score statuses and notes."""
    m = BRACKET_ATOM.match(symbol)
    if not m:
        return symbol
    _bond, isotope, element, chiral, hs, charge = m.groups()
    if hs is None and not (isotope or chiral or charge) and element in ORGANIC_SUBSET:
        return element
    hs = {"H0": "", "H1": "H"}.get(hs or "", hs or "")
    charge = {"+1": "+", "-1": "-"}.get(charge or "", charge or "")
    return f"[{isotope}{element}{chiral}{hs}{charge}]"


@REPRESENTATIONS.register("selfies")
class SelfiesTokenizer(Tokenizer):
    name = "selfies"
    representation = "selfies"
    likelihood_object = "canonical-selfies"

    def tokenize(self, smiles: str) -> list[str]:
        try:
            s = sf.encoder(smiles)
        except Exception as e:  # selfies.EncoderError and RDKit-like failures
            raise TokenizeError(f"cannot write {smiles!r} as SELFIES: {e}") from None
        if s is None:
            raise TokenizeError(f"cannot write {smiles!r} as SELFIES")
        return list(sf.split_selfies(s))

    def smiles_spelling(self, token: str) -> str:
        """The SMILES atom a SELFIES symbol writes (:func:`smiles_atom`)."""
        return smiles_atom(token)

    def detokenize(self, tokens: Sequence[str]) -> str:
        try:
            return sf.decoder("".join(tokens)) or ""
        except Exception:
            return ""
