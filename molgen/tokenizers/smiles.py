"""Atom-level regex SMILES tokenizer (the Molecular Transformer / MolGPT pattern).

Bracket atoms are single tokens (``[nH]``, ``[C@@H]``, ``[13CH3]``, ``[N+]``), two-letter organic
atoms ``Cl``/``Br`` are single tokens, ring closures ``%NN`` are single tokens. Tokenization is exact:
``"".join(tokenize(s)) == s``, otherwise :class:`TokenizeError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from molgen.registry import TOKENIZERS
from molgen.tokenizers.base import TokenizeError, Tokenizer

SMILES_REGEX = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
)


@TOKENIZERS.register("smiles")
class SmilesTokenizer(Tokenizer):
    name = "smiles"
    representation = "smiles"

    def tokenize(self, smiles: str) -> list[str]:
        tokens = SMILES_REGEX.findall(smiles)
        if "".join(tokens) != smiles:
            bad = SMILES_REGEX.sub("", smiles)
            raise TokenizeError(f"cannot tokenize {smiles!r}: unexpected characters {bad[:20]!r}")
        return tokens

    def detokenize(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)
