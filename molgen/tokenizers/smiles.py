"""Atom-level regex SMILES tokenizer (the Molecular Transformer / MolGPT pattern).

Bracket atoms are single tokens (``[nH]``, ``[C@@H]``, ``[13CH3]``, ``[N+]``), two-letter organic
atoms ``Cl``/``Br`` are single tokens, ring closures ``%NN`` are single tokens. Tokenization is exact:
``"".join(tokenize(s)) == s``, otherwise :class:`TokenizeError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
