"""Token strings as a :class:`~molgen.representation.Representation`: the SMILES and SELFIES tokenizers' base.

A tokenizer turns a (canonical) SMILES string into representation tokens and ids, and back. Its state
is a JSON dict (vocabulary + settings), never a pickle.

Special tokens (ids 0..3 in every vocabulary): ``<pad>`` ``<bos>`` ``<eos>`` ``<unk>``.

Out-of-vocabulary policy (``oov``):
- ``"error"`` (default): ``encode`` raises :class:`OOVError` naming the token; scoring turns that into
  the per-row status ``oov_token:<tok>``. Likelihoods stay honest: a model never scores a string it
  cannot represent.
- ``"unk"``: unknown tokens map to ``<unk>``. Useful for encoders/feature extraction; a likelihood of
  such a string is not a likelihood of the molecule, so scoring refuses it all the same.

Statuses and notes spell a token as the SMILES atom it writes (:meth:`Tokenizer.smiles_spelling`:
SELFIES ``[O-1]`` is ``[O-]``), so one atom reads the same whatever the model's representation.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from rdkit import Chem

from molgen.errors import OOVError, TokenizeError
from molgen.representation import BRACKET_ATOM, Representation, load_representation, token_writes

__all__ = ["BRACKET_ATOM", "SPECIALS", "Tokenizer", "load_tokenizer", "token_element", "token_writes"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
OOV_POLICIES = ("error", "unk")
FORMAT = "molgen-tokenizer"
FORMAT_VERSION = 1

ORGANIC_TOKENS = frozenset({"B", "C", "N", "O", "S", "P", "F", "I", "Cl", "Br", "b", "c", "n", "o", "s", "p"})
#: the element part of a SMILES or SELFIES atom token (bond prefix and isotope skipped)
ATOM_TOKEN = re.compile(r"^\[?[=#/\\:~$-]*\d*([A-Z][a-z]?|[a-z][a-z]?)")


@lru_cache(maxsize=4096)
def token_element(token: str) -> str | None:
    """The element a SMILES or SELFIES token writes (``[13CH3+]`` -> C, ``[=Se]`` -> Se), else None."""
    if token in ORGANIC_TOKENS:
        return token.capitalize()
    if not token.startswith("[") or token.startswith(("[Branch", "[Ring", "[=Branch", "[#Branch", "[=Ring")):
        return None
    m = ATOM_TOKEN.match(token)
    if not m:
        return None
    sym = m.group(1)
    table = Chem.GetPeriodicTable()
    for cand in (sym.capitalize(), sym[0].upper()):
        try:
            if table.GetAtomicNumber(cand) > 0:
                return cand
        except RuntimeError:
            continue
    return None


class Tokenizer(Representation):
    """Representation-specific tokenization plus a vocabulary with special tokens; an item is the list of
    token ids of a molecule (no BOS / EOS), a batch ``{"ids": [B, T] BOS ... EOS PAD..., "lengths": [B]}``."""

    name: ClassVar[str]
    kind = "tokens"
    representation: ClassVar[str]
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, vocab: Sequence[str] | None = None, oov: str = "error") -> None:
        if oov not in OOV_POLICIES:
            raise ValueError(f"oov must be one of {OOV_POLICIES}, got {oov!r}")
        self.oov = oov
        self.itos: list[str] = list(SPECIALS)
        if vocab:
            self.itos += [t for t in vocab if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self._elements: frozenset[str] | None = None

    # --- representation ------------------------------------------------------------------------
    @abstractmethod
    def tokenize(self, smiles: str) -> list[str]:
        """Representation tokens of a SMILES string; raises TokenizeError when impossible."""

    @abstractmethod
    def detokenize(self, tokens: Sequence[str]) -> str:
        """SMILES string for representation tokens (may be chemically invalid for SMILES)."""

    # --- vocabulary ----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def special_ids(self) -> tuple[int, ...]:
        return (self.pad_id, self.bos_id, self.eos_id, self.unk_id)

    @property
    def is_fitted(self) -> bool:
        return len(self.itos) > len(SPECIALS)

    def fit(self, smiles: Iterable[str], min_count: int = 1) -> Tokenizer:
        """Build the vocabulary from training strings (sorted by frequency, then alphabetically)."""
        counts: Counter[str] = Counter()
        for s in smiles:
            try:
                counts.update(self.tokenize(s))
            except TokenizeError:
                continue
        toks = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        self.itos = list(SPECIALS) + toks
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self._elements = None
        return self

    def expressible(self) -> frozenset[str]:
        """Which of stereo, charge and isotope some vocabulary token writes (:func:`token_writes`).

        A vocabulary fitted on stereo-free, neutral, unlabelled data (MOSES) writes none of them: what
        ``score(standardize="like-training")`` reads to know what the training data lacked."""
        return frozenset().union(*(token_writes(t) for t in self.itos if t not in SPECIALS))

    def known_elements(self) -> frozenset[str]:
        """Elements written by some token of the vocabulary (what the model has seen)."""
        if self._elements is None:
            self._elements = frozenset(e for t in self.itos if (e := token_element(t)))
        return self._elements

    def sizes(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size}

    def describe(self) -> str:
        return f"vocabulary {self.vocab_size}"

    def tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; under ``oov="error"`` an :class:`OOVError` lists every unknown token."""
        out, unknown = [], []
        for t in tokens:
            i = self.stoi.get(t)
            if i is None or t in SPECIALS:
                unknown.append(t)
                i = self.unk_id
            out.append(i)
        if unknown and self.oov == "error":
            raise OOVError(unknown)
        return out

    def encode(self, smiles: str) -> list[int]:
        """Ids of the representation tokens (no BOS/EOS)."""
        return self.tokens_to_ids(self.tokenize(smiles))

    def ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first EOS, skipping PAD/BOS."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i] if 0 <= i < len(self.itos) else UNK)
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """SMILES string for ids (raw: not canonicalized, possibly invalid, possibly empty)."""
        return self.detokenize(self.ids_to_tokens(ids))

    def collate(self, items: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Pad id lists into ``{"ids": [B, T] with BOS ... EOS PAD..., "lengths": [B]}``."""
        lengths = np.fromiter((len(x) for x in items), dtype=np.int64, count=len(items))
        T = int(lengths.max()) + 2 if len(items) else 2
        ids = np.full((len(items), T), self.pad_id, dtype=np.int64)
        ids[:, 0] = self.bos_id
        for i, x in enumerate(items):  # numpy row writes: ~10x cheaper than torch indexing per row
            ids[i, 1:1 + len(x)] = x
        ids[np.arange(len(items)), lengths + 1] = self.eos_id
        return {"ids": torch.from_numpy(ids), "lengths": torch.from_numpy(lengths)}

    def item_length(self, item: Sequence[int]) -> int:
        return len(item)

    def size(self, canonical_smiles: str) -> int:
        """Number of tokens of a SMILES (no vocabulary needed)."""
        return len(self.tokenize(canonical_smiles))

    def scored_tokens(self, length: int) -> int:
        """Symbols + EOS: the tokens a string's likelihood is the product over."""
        return int(length) + 1

    def seed_material(self, item: Sequence[int] | torch.Tensor) -> bytes:
        """The non-pad ids of one row as the family holds it (a collated row, BOS / EOS included), written
        as ``repr`` of the id list: what per-molecule Monte-Carlo seeds have always hashed."""
        row = item.tolist() if torch.is_tensor(item) else item
        return repr([int(t) for t in row if t != self.pad_id]).encode()

    # --- persistence ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Subclass settings that are part of the state (beyond vocabulary and OOV policy)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name,
                "vocab": self.itos, "oov": self.oov, "settings": self.settings()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        if d.get("format") != FORMAT:
            raise ValueError("not a molgen tokenizer state (missing 'format': 'molgen-tokenizer')")
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"tokenizer format {d['format_version']} is newer than this molgen "
                             f"understands ({FORMAT_VERSION}); upgrade molgen")
        vocab = d["vocab"]
        if list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError("tokenizer state is corrupt: special tokens are not at ids 0..3")
        return cls(vocab=vocab, oov=d.get("oov", "error"), **d.get("settings", {}))


def load_tokenizer(d: dict[str, Any] | str | Path) -> Tokenizer:
    """Tokenizer from a state dict or a ``representation.json`` path (class chosen by the registry);
    :func:`~molgen.representation.load_representation` that refuses a representation of another kind."""
    rep = load_representation(d)
    if not isinstance(rep, Tokenizer):
        raise ValueError(f"representation {rep.name!r} is not a tokenizer")
    return rep
