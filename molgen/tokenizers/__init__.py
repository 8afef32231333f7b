"""String representations: SMILES (atom-level regex) and SELFIES tokenizers with a shared interface."""

from molgen.errors import OOVError, TokenizeError
from molgen.tokenizers.base import Tokenizer, load_tokenizer

__all__ = ["OOVError", "TokenizeError", "Tokenizer", "load_tokenizer"]
