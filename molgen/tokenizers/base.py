"""Tokenizer interface shared by the SMILES and SELFIES tokenizers.

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

import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from molgen.errors import OOVError, TokenizeError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
OOV_POLICIES = ("error", "unk")
FORMAT = "molgen-tokenizer"
FORMAT_VERSION = 1

#: a bracket atom, SMILES (``[13CH3]``, ``[C@@H]``, ``[O-]``, ``[nH]``) or SELFIES (``[=N+1]``, ``[C@H1]``,
#: ``[/C]``): groups bond, isotope, element, chirality, hydrogens, charge. ``[Branch1]`` / ``[Ring1]`` do not match.
BRACKET_ATOM = re.compile(r"^\[([=#/\\:~$-]*)(\d*)([A-Z][a-z]?|[a-z][a-z]?)(@*)(H\d*)?([+-]+\d*)?\]$")


def token_writes(token: str) -> frozenset[str]:
    """Which of ``"stereo"``, ``"charge"``, ``"isotope"`` a SMILES or SELFIES token writes (the names of
    :data:`molgen.chem.STANDARDIZATIONS`): ``[C@H]`` / ``[C@H1]`` / ``/`` / ``[/C]`` stereo, ``[O-]`` / ``[O-1]``
    charge, ``[13CH3]`` isotope; ``C``, ``[nH]``, ``[Branch1]`` none."""
    out = set()
    if "/" in token or "\\" in token or "@" in token:  # a directional bond (``/``, ``[/C]``) or chirality
        out.add("stereo")
    m = BRACKET_ATOM.match(token)
    if m:
        _bond, isotope, _element, _chiral, _hs, charge = m.groups()
        if charge:
            out.add("charge")
        if isotope:
            out.add("isotope")
    return frozenset(out)


class Tokenizer(ABC):
    """Representation-specific tokenization plus a vocabulary with special tokens."""

    name: ClassVar[str]
    representation: ClassVar[str]
    #: what a likelihood over this representation is a probability of (see molgen.likelihood)
    likelihood_object: ClassVar[str]
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, vocab: Sequence[str] | None = None, oov: str = "error") -> None:
        if oov not in OOV_POLICIES:
            raise ValueError(f"oov must be one of {OOV_POLICIES}, got {oov!r}")
        self.oov = oov
        self.itos: list[str] = list(SPECIALS)
        if vocab:
            self.itos += [t for t in vocab if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

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
        return self

    def expressible(self) -> frozenset[str]:
        """Which of stereo, charge and isotope some vocabulary token writes (:func:`token_writes`).

        A vocabulary fitted on stereo-free, neutral, unlabelled data (MOSES) writes none of them: what
        ``score(standardize="like-training")`` reads to know what the training data lacked."""
        return frozenset().union(*(token_writes(t) for t in self.itos if t not in SPECIALS))

    def smiles_spelling(self, token: str) -> str:
        """``token`` spelt as the SMILES atom it writes, for statuses and notes; SMILES tokens already are."""
        return token

    def drop_caches(self) -> None:
        """Release per-molecule caches built while fitting (none here; ``molgen.train`` calls it)."""
        return None

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

    # --- persistence ---------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Subclass settings that are part of the state (beyond vocabulary and OOV policy)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name,
                "vocab": self.itos, "oov": self.oov, "settings": self.settings()}

    @property
    def state_key(self) -> str:
        """Hash of the full state, for cache keys (a changed vocabulary never reuses a stale cache)."""
        import hashlib

        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

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
    """Tokenizer from a state dict or a ``representation.json`` path (class chosen by the registry)."""
    from molgen.registry import REPRESENTATIONS

    if not isinstance(d, dict):
        try:
            d = json.loads(Path(d).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read tokenizer state {d}: {e}") from e
    if not isinstance(d, dict) or "name" not in d:
        raise ValueError("tokenizer state is corrupt: no 'name'")
    return REPRESENTATIONS.get(d["name"]).from_dict(d)
