"""The representation interface: what the pipeline knows about how a family sees a molecule.

``molgen.train`` fits a representation on the training molecules, persistence saves and loads it by its
registered name and JSON state, scoring reads its vocabulary facts, and :func:`molgen.likelihood.row_seeds`
hashes its per-molecule seed material; none of them knows whether the molecules are token strings
(:mod:`molgen.tokenizers`: SMILES, Kekulé SMILES, SELFIES) or labelled graphs
(:class:`molgen.featurizers.graph.GraphRepresentation`). A family that models another representation
implements :class:`Representation` and registers it in :data:`molgen.registry.REPRESENTATIONS`.

An *item* is one molecule as the representation writes it (token ids, a PyG graph); ``encode`` raises
:class:`~molgen.errors.OOVError` (units outside the fitted vocabulary), :class:`~molgen.errors.TokenizeError`
(valid chemistry the representation cannot write) or :class:`~molgen.errors.TooLongError`.
Units (tokens, atom and bond labels) are spelt as the SMILES atoms and bonds they write wherever a
user reads them (score statuses and notes), so one atom reads the same in every representation.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from molgen.chem import STANDARDIZATIONS
from molgen.registry import REPRESENTATIONS

#: ``format`` of a representation state that is not a tokenizer's (tokenizers keep ``molgen-tokenizer``)
FORMAT = "molgen-representation"
FORMAT_VERSION = 1

#: a bracket atom, SMILES (``[13CH3]``, ``[C@@H]``, ``[O-]``, ``[nH]``) or SELFIES (``[=N+1]``, ``[C@H1]``,
#: ``[/C]``): groups bond, isotope, element, chirality, hydrogens, charge. ``[Branch1]`` / ``[Ring1]`` do not match.
BRACKET_ATOM = re.compile(r"^\[([=#/\\:~$-]*)(\d*)([A-Z][a-z]?|[a-z][a-z]?)(@*)(H\d*)?([+-]+\d*)?\]$")


def token_writes(token: str) -> frozenset[str]:
    """Which of ``"stereo"``, ``"charge"``, ``"isotope"`` a unit spelt as SMILES or SELFIES writes (the names
    of :data:`molgen.chem.STANDARDIZATIONS`): ``[C@H]`` / ``[C@H1]`` / ``/`` / ``[/C]`` stereo, ``[O-]`` /
    ``[O-1]`` charge, ``[13CH3]`` isotope; ``C``, ``[nH]``, ``[Branch1]`` none."""
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


class Representation(ABC):
    """How molecules become model inputs and back; the pipeline talks to nothing else.

    Subclasses set ``name`` (their registry name), ``kind`` (``"tokens"``, ``"graph"``: what their items
    are) and ``likelihood_object`` (one of :data:`molgen.likelihood.OBJECTS`: what a likelihood over their
    items is a probability of)."""

    name: ClassVar[str]
    #: what its items are (``"tokens"``, ``"graph"``): a family says which kinds it reads
    kind: ClassVar[str]
    #: what a likelihood over this representation is a probability of (see molgen.likelihood)
    likelihood_object: ClassVar[str]

    # --- fitting and items ---------------------------------------------------------------------
    @abstractmethod
    def fit(self, smiles: Iterable[str]) -> Representation:
        """Learn the vocabulary from training molecules (canonical SMILES); returns ``self``."""

    @property
    @abstractmethod
    def is_fitted(self) -> bool:
        """True once :meth:`fit` (or a loaded state) gave it a vocabulary."""

    @abstractmethod
    def encode(self, canonical_smiles: str) -> Any:
        """One item for a canonical SMILES; raises OOVError / TokenizeError (see the module docstring)."""

    @abstractmethod
    def decode(self, item: Any) -> Any:
        """The molecule an item writes: a SMILES string (possibly invalid or empty), an RDKit molecule, or
        None where it writes none. Sampling canonicalises either (:func:`molgen.models.results.canonical_rows`)."""

    @abstractmethod
    def collate(self, items: Sequence[Any]) -> dict[str, Any]:
        """A batch (a dict of tensors and batch objects) of items."""

    @abstractmethod
    def item_length(self, item: Any) -> int:
        """Size of one item (tokens, atoms): for batching items of similar size together."""

    @abstractmethod
    def size(self, canonical_smiles: str) -> int:
        """Size of a molecule in this representation (tokens, atoms), without a vocabulary: what a
        family's ``max_len`` bounds (``molgen.train`` sets it from the longest training molecule)."""

    @abstractmethod
    def seed_material(self, item: Any) -> bytes:
        """The bytes :func:`molgen.likelihood.row_seeds` hashes for one molecule's Monte-Carlo seed: a
        function of the molecule alone (never its batch), so its estimate is the same anywhere."""

    def scored_tokens(self, length: int) -> int:
        """Units the likelihood of an item of ``item_length`` ``length`` spreads over (the ``n_tokens``
        column, ``nll_per_token``'s denominator); 0 where the representation has no tokens."""
        return 0

    # --- wiring and vocabulary facts -------------------------------------------------------------
    def sizes(self) -> dict[str, int]:
        """The sizes a family wires its networks with (``vocab_size`` for strings, label counts for graphs)."""
        return {}

    def describe(self) -> str:
        """One line for logs and summaries (``vocabulary 40``)."""
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.sizes().items()) or self.name

    def known_elements(self) -> frozenset[str] | None:
        """Elements some unit of the vocabulary writes (what the model has seen); None: no such claim."""
        return None

    def expressible(self) -> frozenset[str]:
        """Which of stereo, charge and isotope (:data:`molgen.chem.STANDARDIZATIONS`) the vocabulary can
        write: what ``score(standardize="like-training")`` reads to know what the training data lacked."""
        return frozenset(STANDARDIZATIONS)

    def smiles_spelling(self, unit: str) -> str:
        """``unit`` spelt as the SMILES atom (or bond) it writes, for statuses and notes."""
        return unit

    def drop_caches(self) -> None:
        """Release per-molecule caches built while fitting (``molgen.train`` calls it after training)."""
        return None

    # --- state ---------------------------------------------------------------------------------
    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON state (vocabulary and settings) with ``format`` and ``name``; never a pickle."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> Representation:
        """Rebuild from :meth:`to_dict`'s state; ValueError for a foreign, newer or corrupt state."""

    def save(self, path: str | Path) -> None:
        """Write the state as JSON (a model directory's ``representation.json``)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @property
    def state_key(self) -> str:
        """Hash of the full state, for cache keys (a changed vocabulary never reuses a stale cache)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def check_state(d: dict[str, Any], cls: type[Representation]) -> None:
    """For a non-tokenizer :meth:`Representation.from_dict`: ValueError unless ``d`` is a
    ``molgen-representation`` state of ``cls`` this molgen can read."""
    if d.get("format") != FORMAT:
        raise ValueError(f"not a molgen representation state (missing 'format': {FORMAT!r})")
    if d.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"representation format {d['format_version']} is newer than this molgen understands "
                         f"({FORMAT_VERSION}); upgrade molgen")
    if d.get("name") != cls.name:
        raise ValueError(f"the state is of representation {d.get('name')!r}, not {cls.name!r}")


def load_representation(state: dict[str, Any] | str | Path, name: str | None = None) -> Representation:
    """A representation from its state dict or a ``representation.json`` path, its class chosen by the
    registered ``name`` (default: the state's own ``name``; the two must agree when both are given)."""
    if not isinstance(state, dict):
        try:
            state = json.loads(Path(state).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot read representation state {state}: {e}") from e
    if not isinstance(state, dict) or "name" not in state:
        raise ValueError("representation state is corrupt: no 'name'")
    cls = REPRESENTATIONS.get(str(state["name"]))
    if name is not None and REPRESENTATIONS.get(str(name)) is not cls:
        raise ValueError(f"the state is of representation {state['name']!r}, not {name!r}")
    return cls.from_dict(state)
