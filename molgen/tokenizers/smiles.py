"""Atom-level regex SMILES tokenizer (the Molecular Transformer / MolGPT pattern).

Bracket atoms are single tokens (``[nH]``, ``[C@@H]``, ``[13CH3]``, ``[N+]``), two-letter organic
atoms ``Cl``/``Br`` are single tokens, ring closures ``%NN`` are single tokens. Tokenization is exact:
``"".join(tokenize(s)) == s``, otherwise :class:`TokenizeError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rdkit import Chem

from molgen.errors import TokenizeError
from molgen.registry import REPRESENTATIONS
from molgen.tokenizers.base import Tokenizer

SMILES_REGEX = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|<|\*|\$|%[0-9]{2}|[0-9])"
)


@REPRESENTATIONS.register("smiles")
class SmilesTokenizer(Tokenizer):
    name = "smiles"
    representation = "smiles"
    likelihood_object = "canonical-smiles"

    def tokenize(self, smiles: str) -> list[str]:
        tokens = SMILES_REGEX.findall(smiles)
        if "".join(tokens) != smiles:
            bad = SMILES_REGEX.sub("", smiles)
            raise TokenizeError(f"cannot tokenize {smiles!r}: unexpected characters {bad[:20]!r}")
        return tokens

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)


def kekule_smiles(smiles: str) -> str:
    """RDKit's SMILES of ``smiles`` written with Kekulé bonds (``C1=CC=CC=C1``, no aromatic atoms).

    Applied to a canonical SMILES it is a function of the molecule: one string per molecule."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise TokenizeError(f"cannot parse {smiles!r} to write it in Kekulé form")
    try:
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception as e:  # RDKit's KekulizeException
        raise TokenizeError(f"cannot kekulize {smiles!r}: {e}") from None
    return Chem.MolToSmiles(mol, kekuleSmiles=True)


@REPRESENTATIONS.register("smiles-kekule")
class KekuleSmilesTokenizer(SmilesTokenizer):
    """Canonical SMILES in Kekulé form: aromatic rings as alternating single / double bonds, so a
    sampled string never holds an aromatic ring that cannot be kekulized (the commonest invalid
    sample of the aromatic form). The likelihood is of that string (``canonical-kekule-smiles``)."""

    name = "smiles-kekule"
    representation = "smiles-kekule"
    likelihood_object = "canonical-kekule-smiles"

    def fit(self, smiles: Iterable[str], min_count: int = 1) -> KekuleSmilesTokenizer:
        """As for every tokenizer; each molecule's Kekulé string (an RDKit round trip, ~0.3 ms) is kept
        for the featurization that follows the fit and handed out once (see :meth:`drop_caches`)."""
        self._memo: dict[str, str] = {}
        self._fitting = True
        try:
            return super().fit(smiles, min_count)
        finally:
            self._fitting = False

    def drop_caches(self) -> None:
        """Forget the Kekulé strings kept by :meth:`fit` (``molgen.train`` calls it after training)."""
        self._memo = {}

    def tokenize(self, smiles: str) -> list[str]:
        memo = getattr(self, "_memo", None)
        kek = memo.pop(smiles, None) if memo else None
        if kek is None:
            kek = kekule_smiles(smiles)
            if getattr(self, "_fitting", False):
                memo[smiles] = kek
        return super().tokenize(kek)
