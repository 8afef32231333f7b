"""String representations: SMILES (atom-level regex) and SELFIES tokenizers, implementations of
:class:`molgen.representation.Representation` with a shared tokenizer base."""

from molgen.errors import OOVError, TokenizeError
from molgen.tokenizers.base import Tokenizer, load_tokenizer

__all__ = ["OOVError", "TokenizeError", "Tokenizer", "load_tokenizer"]
