"""SELFIES tokenizer: SMILES -> SELFIES (``selfies.encoder``) -> symbols (``split_selfies``).

Decoding goes back to SMILES through ``selfies.decoder``; every symbol string decodes to a molecule,
possibly an empty one (counted as invalid downstream). The canonical SELFIES of a molecule is the
SELFIES of its canonical SMILES.
"""

from __future__ import annotations

from collections.abc import Sequence

import selfies as sf

from molgen.errors import TokenizeError
from molgen.registry import REPRESENTATIONS
from molgen.tokenizers.base import Tokenizer


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

    def detokenize(self, tokens: Sequence[str]) -> str:
        try:
            return sf.decoder("".join(tokens)) or ""
        except Exception:
            return ""
