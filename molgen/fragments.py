"""Fragment-constrained generation: scaffold decoration, linker design, motif extension.

    model.sample(100, scaffold="c1ccc2[nH]ccc2c1")            # decorate: at the `*`s given, else at any H
    model.sample(100, linker="*C1CCNCC1.*c1ccncc1")           # connect two fragments (one `*` each)
    model.sample(100, extend="*C(=O)N1CCOCC1")                # grow from one attachment point
    molgen sample --model moses-transformer --scaffold 'c1ccccc1' -n 100 -o out.csv

**The fragment is written, not hoped for.** Each constraint becomes a *template*: the fragment written
as a string of the model's own representation (Kekulé SMILES for a Kekulé model, SELFIES for a SELFIES
model) by RDKit, held as fixed tokens, with free spans where the model writes:

* autoregressive families (the transformer; ``_sample(..., constrain=...)``): **template completion**.
  A per-row state machine edits the next-token log-probs at every step: forced tokens get probability
  one; a ``*`` written as a branch ``(*)`` becomes ``(`` + a free span that ends when the model writes
  ``)`` at the span's own depth 0, a ``*`` at the end of the string a free tail that ends with
  ``<eos>``; inside a span ``<eos>``, ``.`` and the ring-closure labels still open in the template are
  forbidden, and the span cannot end with its own rings or branches open. Without a ``*`` ("any free
  hydrogen") each H-bearing atom gets an optional branch: after its ring labels and branches, ``(``
  opens a free branch or the template goes on, plus an optional tail at the end; a small scaffold
  (<= ``HEAD_MAX_ATOMS`` heavy atoms) also gets a *head*, a free span written before it and bonded to
  one of its H-bearing atoms, because a molecule's canonical string rarely starts inside a small ring
  system (measured, see ``HEAD_MAX_ATOMS``). A linker is FRAG1 (written to end at its attachment
  atom), a free span of at least L tokens (L drawn per row), then FRAG2 forced, written from its
  attachment atom: the span hands over to FRAG2 at its first clean boundary (depth 0, its rings
  closed, after an atom) once it holds L tokens. Near ``max_len`` a span may only close what it
  opened, so the template always fits. With a SELFIES tokenizer the spans have fixed lengths, as for
  diffusion.
* infilling families (masked diffusion; ``_sample(..., canvas=...)``): **canvas infilling**. The
  template molecule carries a chain of L placeholder atoms at each attachment point (L drawn per row);
  written in the model's representation, the placeholder tokens become ``<mask>`` positions the
  sampler fills and every other token is fixed; a tail (``extend``, a ``*`` that ends the string, the
  optional tail of a bare scaffold) is masked up to the end of the canvas, so the model picks its
  length. In SELFIES the branch lengths (index symbols) come from the template, so a span is always a
  self-contained branch; a bare scaffold is decorated only at atoms outside the rings it closes later
  (SELFIES counts ring closures in atoms, so a span there that writes another number of atoms would
  move the closure).

**Every row is checked.** The output is parsed and matched against the fragments (RDKit substructure
match of each fragment with its ``*``s removed; for a linker both fragments, on disjoint atoms):
``contains_fragments`` per row. Template completion writes the fragment's tokens verbatim, so a valid
SMILES output without the fragment needs a chemistry change (e.g. an aromaticity change across the
junction); SELFIES infilling can lose the fragment when a span writes fewer atoms than the template
counted (a ring closure then lands elsewhere) or ends the derivation early (an atom with no valence
left). A row that is valid but lacks the fragments is drawn again from a fresh stream of the same
row, with a freshly drawn writing of the template (at most ``attempts`` draws; the count per row in
``attempts``). A molecule still lacking them is not an output of this sampler: the row keeps its
string, gets ``constraint_status="missing_fragments"`` and no canonical form, so it counts as invalid;
every valid row contains the fragments. Chemically invalid rows are kept, never redrawn, and counted
(``constraint_status="invalid"``).

**Likelihood.** Each valid output is scored by the model (``model.score`` of its canonical string):
exact log p for the transformer, the labelled ELBO for diffusion. That is the probability of the
molecule under the unconstrained model, not of the constrained sampler's draw.

**Per-row determinism.** Row i depends only on (seed, i): the sampler's per-row random streams
(:class:`~molgen.rowrandom.RowRandom`), and every per-row choice of the template (root atom, span
lengths, decoration sites) from a stream keyed by the same (seed, i).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from molgen.errors import CapabilityError, ConfigError, strict

__all__ = ["CONSTRAINTS", "Constraint", "Fragment", "Template", "build_template", "constrained_sample",
           "contains_fragments", "parse_constraint", "parse_fragment"]

#: the three constraints: option name -> what it does
CONSTRAINTS = {"scaffold": "decorate a scaffold (at its `*` attachment points, or at any free hydrogen)",
               "linker": "connect two fragments 'FRAG1.FRAG2' (one `*` each) by a generated linker",
               "extend": "grow a motif from its one `*` attachment point"}
#: the isotope that marks placeholder atoms in template molecules (never a real fragment's)
PLACEHOLDER_ISOTOPE = 77
#: per-row span lengths (tokens) drawn uniformly from these ranges: decoration branches (infilling and
#: fixed-length spans), linkers (minimum before the hand-over in template completion; exact in infilling)
SPAN_LENGTHS = (1, 8)
LINKER_LENGTHS = (1, 8)
#: infilling a bare scaffold ("any free hydrogen"): each H-bearing atom gets a branch with this probability
#: (the tail at the end is always offered; in SELFIES only atoms outside a ring the scaffold closes later).
#: Measured on moses-diffusion (SELFIES), 10 MOSES scaffolds x 10: uniqueness 0.50 / 0.67 / 0.74 at
#: probability 0 / 0.25 / 0.5, every valid row containing the scaffold (after redraws)
SITE_PROBABILITY = 0.5
#: template completion: a scaffold of at most this many heavy atoms is written after a head (a decoration
#: written first, of at least HEAD_LENGTHS tokens). Measured on moses-transformer (benchmarks/fragments.py
#: scaffolds + benzene, indole, pyridine, piperidine, naphthalene, biphenyl; 20 samples each): validity with /
#: without a head 0.90 / 0.80 (<= 7 atoms), 0.76 / 0.66 (8-10), 0.85 / 0.90 (11-13), 0.85 / 0.94 (14-16),
#: 0.88 / 0.90 (17-19), 0.91 / 0.95 (>= 20): the canonical string of a molecule rarely starts inside a
#: small ring system, and mostly does inside a large one. Those scaffolds were the reported test ones; re-measured
#: on moses:train scaffolds only (benchmarks/results/fragments_selection.md, 20 samples each): with / without a
#: head 0.80 / 0.72 (8-10 atoms, 27 scaffolds), 0.79 / 0.87 (<= 7, 13), 0.88 / 0.95 (14-19): the head is
#: confirmed for 8-10 atoms and not for <= 7 (benzene alone: 0.90 / 0.80), a choice still to re-make on training data
HEAD_MAX_ATOMS = 10
HEAD_LENGTHS = (1, 3)
#: how a linker / head span hands over to the forced fragment once it is long enough and syntactically
#: closed: "force" (at once) or "match" (when the model itself writes the fragment's first token; forced
#: after HANDOVER_WAIT more tokens). Measured on moses-transformer, 20 linker pairs x 20 (benchmarks/
#: fragments.py): validity / uniqueness force 0.86 / 0.86, match 0.65 / 0.94 (lengths 2-8); force with lengths
#: 1-8 0.87 / 0.82, 1-6 0.89 / 0.75, 2-6 0.86 / 0.82 (confirmed on 20 moses:train pairs: force 0.81 / 0.71,
#: match 0.65 / 0.92, fragments_selection.md). Heads (300 samples): benzene force 0.90,
#: match 0.88; indole force 0.66, match 0.73.
HANDOVERS = ("force", "match")
HANDOVER = {"link": "force", "head": "match"}
HANDOVER_WAIT = 12
#: draws per row for a row that is valid but lacks the fragments (1: never redrawn; a redraw also draws
#: the writing of the template). Measured: SELFIES infilling keeps a linker on ~50-60% of first draws
#: (moses-diffusion, 20 pairs x 8), so 8 draws left 4 of 500 benchmark rows without one
DEFAULT_ATTEMPTS = 16
ROOTINGS = ("canonical", "random")

_RING = re.compile(r"^(\d|%\d\d)$")
_BONDS = frozenset({"-", "=", "#", "$", ":", "/", "\\", "~"})
_PUNCT = frozenset({"(", ")", ".", "*", "+", "@", "?", ">", "<"})


# --- fragments ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fragment:
    """One fragment: ``text`` as given; ``mol`` with its attachment points as bare ``*`` atoms (isotope
    and map number cleared); ``core`` the query for the output check (the ``*`` atoms removed)."""

    text: str
    mol: Any
    core: Any
    attachments: tuple[int, ...]

    @property
    def n_attachments(self) -> int:
        return len(self.attachments)


@dataclass(frozen=True)
class Constraint:
    """What was asked: ``kind`` (scaffold / linker / extend) and its fragments (two for a linker)."""

    kind: str
    fragments: tuple[Fragment, ...]
    query: Any = field(repr=False, default=None)  # one RDKit query: the cores, on disjoint atoms

    @property
    def text(self) -> str:
        return ".".join(f.text for f in self.fragments)


def _quiet():
    from molgen.chem import quiet_rdkit

    return quiet_rdkit()


def parse_fragment(text: str, *, what: str = "fragment") -> Fragment:
    """A fragment SMILES, checked: parses, one connected piece, each ``*`` bonded to exactly one atom.
    Raises :class:`ConfigError` with a one-line reason."""
    from rdkit import Chem

    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what}: give a fragment SMILES, got {text!r}")
    text = text.strip()
    with _quiet():
        mol = Chem.MolFromSmiles(text)
    if mol is None or mol.GetNumAtoms() == 0:
        raise ConfigError(f"{what}: invalid fragment SMILES {text!r} (RDKit cannot parse it)")
    if len(Chem.GetMolFrags(mol)) != 1:
        raise ConfigError(f"{what}: {text!r} is not one connected fragment"
                          + (" (two fragments to connect go to --linker 'FRAG1.FRAG2')" if what != "linker" else ""))
    dummies = []
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() == 0:
            if atom.GetDegree() != 1:
                raise ConfigError(f"{what}: each attachment point `*` in {text!r} must be bonded to exactly one atom")
            dummies.append(atom.GetIdx())
        elif atom.GetIsotope() == PLACEHOLDER_ISOTOPE:
            raise ConfigError(f"{what}: isotope {PLACEHOLDER_ISOTOPE} is reserved for template placeholders")
    if len(dummies) == mol.GetNumAtoms():
        raise ConfigError(f"{what}: {text!r} has no atoms besides attachment points")
    rw = Chem.RWMol(mol)
    for d in dummies:
        a = rw.GetAtomWithIdx(d)
        a.SetIsotope(0)
        a.SetAtomMapNum(0)
    mol = rw.GetMol()
    core = Chem.RWMol(mol)
    for d in sorted(dummies, reverse=True):
        core.RemoveAtom(d)
    core = core.GetMol()
    try:
        trial = Chem.Mol(core)
        with _quiet():
            Chem.SanitizeMol(trial)
        core = trial
    except Exception:  # e.g. an aromatic N that held the `*`: keep the parsed aromatic flags and bond types
        core.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(core)
    return Fragment(text, mol, core, tuple(dummies))


def parse_constraint(*, scaffold: str | None = None, linker: str | None = None,
                     extend: str | None = None) -> Constraint:
    """Exactly one of ``scaffold`` / ``linker`` / ``extend``, parsed and checked (one-line errors)."""
    from rdkit import Chem

    given = {k: v for k, v in (("scaffold", scaffold), ("linker", linker), ("extend", extend)) if v is not None}
    if len(given) != 1:
        raise ConfigError("give exactly one of scaffold / linker / extend"
                          + (f" (got {', '.join(given)})" if given else ""))
    (kind, text), = given.items()
    if not isinstance(text, str):
        raise ConfigError(f"{kind} must be a SMILES string, got {type(text).__name__}")
    if kind == "linker":
        parts = [p for p in text.strip().split(".")]
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ConfigError(f"linker needs exactly two fragments 'FRAG1.FRAG2' (one `*` each), got {text!r}")
        frags = tuple(parse_fragment(p, what="linker") for p in parts)
        for f in frags:
            if f.n_attachments != 1:
                raise ConfigError(f"linker: each fragment needs exactly one attachment point `*` (where the linker "
                                  f"joins it); {f.text!r} has {f.n_attachments}")
    else:
        frags = (parse_fragment(text, what=kind),)
        if kind == "extend" and frags[0].n_attachments != 1:
            raise ConfigError(f"extend needs exactly one attachment point `*` (where the motif grows); "
                              f"{frags[0].text!r} has {frags[0].n_attachments}")
    query = frags[0].core if len(frags) == 1 else Chem.CombineMols(frags[0].core, frags[1].core)
    return Constraint(kind, frags, query)


def contains_fragments(smiles: Sequence[str | None], constraint: Constraint) -> np.ndarray:
    """[n] bool: the molecule parses and contains every fragment (substructure match of the fragments
    without their ``*``s; a linker's two fragments on disjoint atoms). None / invalid rows: False."""
    from molgen.chem import to_mol

    out = np.zeros(len(smiles), dtype=bool)
    for i, s in enumerate(smiles):
        mol = to_mol(s) if s else None
        if mol is not None:
            out[i] = bool(mol.HasSubstructMatch(constraint.query))
    return out


# --- writing a template molecule in the model's representation ----------------------------------
def _placeholder(atom) -> bool:
    return atom.GetAtomicNum() == 6 and atom.GetIsotope() == PLACEHOLDER_ISOTOPE


def _new_placeholder():
    from rdkit import Chem

    a = Chem.Atom(6)
    a.SetIsotope(PLACEHOLDER_ISOTOPE)
    return a


def _to_placeholder(atom) -> None:
    atom.SetAtomicNum(6)
    atom.SetIsotope(PLACEHOLDER_ISOTOPE)
    atom.SetFormalCharge(0)
    atom.SetNumExplicitHs(0)
    atom.SetNoImplicit(False)
    atom.SetIsAromatic(False)


def _chain(rw, start: int, length: int, key: int = -1) -> int:
    """Grow a chain of ``length`` placeholders from the placeholder ``start`` (atom property ``chain`` =
    ``key`` on each); returns its last atom."""
    from rdkit import Chem

    last = start
    rw.GetAtomWithIdx(start).SetIntProp("chain", key)
    for _ in range(length - 1):
        nxt = rw.AddAtom(_new_placeholder())
        rw.GetAtomWithIdx(nxt).SetIntProp("chain", key)
        rw.AddBond(last, nxt, Chem.BondType.SINGLE)
        last = nxt
    return last


def _sanitized(rw):
    from rdkit import Chem

    mol = rw.GetMol()
    with _quiet():
        Chem.SanitizeMol(mol)
    return mol


def template_molecule(constraint: Constraint, lengths: Sequence[int] | None = None,
                      sites: dict[int, int] | None = None, head: int | None = None):
    """The fragment(s) with placeholder chains: one chain per ``*`` (scaffold / extend, ``lengths`` in
    attachment order), the linker chain between the two fragments (``lengths[0]``), or chains at
    ``sites`` {atom: length} of a bare scaffold. Lengths default to 1. ``head``: the chain (attachment
    number, or site atom) whose far end carries the atom property ``head`` (a writing rooted there
    starts with that chain)."""
    from rdkit import Chem

    frags = constraint.fragments
    if constraint.kind == "linker":
        f1, f2 = frags
        rw = Chem.RWMol(Chem.CombineMols(f1.mol, f2.mol))
        off = f1.mol.GetNumAtoms()
        d1, d2 = f1.attachments[0], f2.attachments[0] + off
        b2 = rw.GetAtomWithIdx(d2).GetBonds()[0]
        a2, bond_type = b2.GetOtherAtomIdx(d2), b2.GetBondType()
        _to_placeholder(rw.GetAtomWithIdx(d1))
        last = _chain(rw, d1, int(lengths[0]) if lengths else 1)
        rw.AddBond(last, a2, bond_type)
        rw.RemoveAtom(d2)
        return _sanitized(rw)
    f = frags[0]
    rw = Chem.RWMol(f.mol)
    if f.attachments:
        for k, d in enumerate(f.attachments):
            _to_placeholder(rw.GetAtomWithIdx(d))
            end = _chain(rw, d, int(lengths[k]) if lengths else 1, k)
            if head == k:
                rw.GetAtomWithIdx(end).SetIntProp("head", 1)
    for atom_idx, length in (sites or {}).items():
        a = rw.GetAtomWithIdx(atom_idx)
        if a.GetNumExplicitHs():
            a.SetNumExplicitHs(a.GetNumExplicitHs() - 1)
        p = rw.AddAtom(_new_placeholder())
        rw.AddBond(atom_idx, p, Chem.BondType.SINGLE)
        end = _chain(rw, p, length, SITE_KEY + atom_idx)
        if head == atom_idx:
            rw.GetAtomWithIdx(end).SetIntProp("head", 1)
    return _sanitized(rw)


#: ``chain`` key of a bare scaffold's decoration site: SITE_KEY + the site atom
SITE_KEY = 100_000


def _selfies_unsafe_runs(tokens: list[str], placeholder: list[bool]) -> list[int]:
    """The first atom (derivation order) of each placeholder run that a ring closure spans: a ring bond
    written after the run from an atom after it to an atom before it (SELFIES counts that distance in
    atoms)."""
    from selfies.grammar_rules import get_index_from_selfies, process_branch_symbol, process_ring_symbol

    atom_of: dict[int, int] = {}
    rings: list[tuple[int, int]] = []  # (target atom, ring-closing atom)
    count = 0

    def walk(i: int, end: int, prev: int) -> None:
        nonlocal count
        while i < min(end, len(tokens)):
            tok = tokens[i]
            if "ch" == tok[-4:-2]:  # [Branch1], [=Branch2], ...
                _, n = process_branch_symbol(tok)
                q = get_index_from_selfies(*tokens[i + 1:i + 1 + n])
                i += 1 + n
                walk(i, i + q + 1, prev)
                i += q + 1
            elif "ng" == tok[-4:-2]:  # [Ring1], [=Ring2], ...
                _, n, _ = process_ring_symbol(tok)
                q = get_index_from_selfies(*tokens[i + 1:i + 1 + n])
                rings.append((max(0, prev - (q + 1)), prev))
                i += 1 + n
            else:
                atom_of[i] = prev = count
                count += 1
                i += 1

    walk(0, len(tokens), -1)
    out, i = [], 0
    while i < len(tokens):
        if placeholder[i]:
            j = i
            while j < len(tokens) and placeholder[j]:
                j += 1
            first, last = atom_of.get(i, -1), atom_of.get(j - 1, -1)
            if any(t < first and p > last for t, p in rings):
                out.append(first)
            i = j
        else:
            i += 1
    return out


def _atom_order(mol) -> list[int]:
    return [int(x) for x in mol.GetProp("_smilesAtomOutputOrder").strip("[]").split(",") if x.strip()]


class Writer:
    """Writes a template molecule as tokens of one representation, placeholders marked."""

    name = "smiles"
    kekule = False
    #: spans end by syntax (SMILES) or have fixed lengths (SELFIES: branch sizes precede branches)
    fixed_length_spans = False

    def smiles(self, mol, root: int | None, ordered: bool = False) -> tuple[str, list[int]]:
        """SMILES rooted at ``root`` (None: RDKit's canonical string) and its atom output order.

        ``ordered``: RDKit's non-canonical traversal of the molecule renumbered so that the placeholders
        and whatever lies beyond them come last (a writing that ends at the attachment point where the
        canonical traversal puts it in a branch)."""
        from rdkit import Chem

        m = Chem.Mol(mol)
        if self.kekule:
            Chem.Kekulize(m, clearAromaticFlags=True)
        kw: dict[str, Any] = {"kekuleSmiles": self.kekule}
        perm = None
        if ordered:
            perm = _placeholders_last(m, root)
            m = Chem.RenumberAtoms(m, perm)
            kw.update(canonical=False, rootedAtAtom=perm.index(root))
        elif root is not None:
            kw["rootedAtAtom"] = int(root)
        s = Chem.MolToSmiles(m, **kw)
        order = _atom_order(m)
        return s, (order if perm is None else [perm[j] for j in order])

    def tokens(self, mol, root: int | None, ordered: bool = False) -> tuple[list[str], list[bool], list[int]]:
        """(tokens, is-placeholder per token, atom output order)."""
        from molgen.tokenizers.smiles import SMILES_REGEX

        s, order = self.smiles(mol, root, ordered)
        toks = SMILES_REGEX.findall(s)
        if "".join(toks) != s:  # pragma: no cover - RDKit writes only what the regex covers
            raise ConfigError(f"cannot tokenize the template {s!r}")
        return toks, [f"[{PLACEHOLDER_ISOTOPE}C" in t for t in toks], order


def _placeholders_last(mol, root: int) -> list[int]:
    """An atom order: the root's side (breadth-first, not through placeholders), then the placeholders,
    then the rest."""
    seen, queue = {root}, [root]
    while queue:
        a = queue.pop(0)
        for nb in mol.GetAtomWithIdx(a).GetNeighbors():
            j = nb.GetIdx()
            if j not in seen and not _placeholder(nb):
                seen.add(j)
                queue.append(j)
    first = [a for a in range(mol.GetNumAtoms()) if a in seen]
    ph = [a.GetIdx() for a in mol.GetAtoms() if _placeholder(a)]
    return first + ph + [a for a in range(mol.GetNumAtoms()) if a not in seen and a not in ph]


class KekuleWriter(Writer):
    name = "smiles-kekule"
    kekule = True


class SelfiesWriter(Writer):
    name = "selfies"
    fixed_length_spans = True

    def tokens(self, mol, root, ordered=False):
        import selfies as sf

        s, order = self.smiles(mol, root, ordered)
        try:
            toks = list(sf.split_selfies(sf.encoder(s)))
        except Exception as e:  # selfies.EncoderError
            raise ConfigError(f"cannot write the template {s!r} as SELFIES: {e}") from None
        return toks, [f"{PLACEHOLDER_ISOTOPE}C" in t for t in toks], order


#: tokenizer name -> how templates are written for it
WRITERS: dict[str, type[Writer]] = {"smiles": Writer, "smiles-kekule": KekuleWriter, "selfies": SelfiesWriter}


def writer_for(tokenizer) -> Writer:
    name = getattr(tokenizer, "name", None)
    if name not in WRITERS:
        raise CapabilityError(f"fragment templates are written for the tokenizers {', '.join(WRITERS)}; "
                              f"this model uses {name!r}")
    return WRITERS[name]()


# --- templates ---------------------------------------------------------------------------------
# items of a template (tuples, shared by rows):
#   ("tok", id)                        a forced token
#   ("span", kind, mandatory, forbid)  kind: "branch" (ends with the model's `)` at depth 0), "tail" (ends
#                                      with <eos>), "link" (hands over to the next forced token); forbid:
#                                      ring-label ids open in the template around the span
#   ("fixed", length)                  exactly ``length`` free tokens (SELFIES)
#   ("opt", forbid)                    optional branch: `(` opens a "branch" span, else the template goes on
#   ("end",)                           <eos>


@dataclass
class Template:
    """One row's template: items, the tokens it was compiled from, and a readable form (``text``)."""

    items: list[tuple]
    tokens: list[str]
    root: int | None
    text: str
    #: SELFIES: chains (their ``chain`` key) inside a ring the fragment closes after them: a span there
    #: that writes another number of atoms than the template counted moves the ring closure
    unsafe: frozenset = frozenset()

    def __str__(self) -> str:
        return self.text


class _Vocab:
    """Token classes of a tokenizer's vocabulary (ids)."""

    def __init__(self, tokenizer) -> None:
        self.tok = tokenizer
        self.stoi = tokenizer.stoi
        self.V = tokenizer.vocab_size
        self.eos = tokenizer.eos_id
        self.open = self.stoi.get("(")
        self.close = self.stoi.get(")")
        self.rings = {i: t for i, t in enumerate(tokenizer.itos) if _RING.match(t)}
        self.cls = []
        for i, t in enumerate(tokenizer.itos):
            if i in tokenizer.special_ids:
                c = "special"
            elif t == "(":
                c = "open"
            elif t == ")":
                c = "close"
            elif i in self.rings:
                c = "ring"
            elif t in _BONDS:
                c = "bond"
            elif t in _PUNCT:
                c = "punct"
            else:
                c = "atom"
            self.cls.append(c)
        free = np.ones(self.V, dtype=bool)
        free[list(tokenizer.special_ids)] = False
        for i, t in enumerate(tokenizer.itos):
            if t in (".", "*") or (t.startswith("[") and "*" in t):
                free[i] = False
        self.free = free
        self.is_atom = np.array([c == "atom" for c in self.cls])
        self.is_bond = np.array([c == "bond" for c in self.cls])

    def ids(self, tokens: Sequence[str], what: str) -> list[int]:
        missing = [t for t in dict.fromkeys(tokens) if t not in self.stoi]
        if missing:
            raise ConfigError(f"{what} does not tokenize with the model's vocabulary: token(s) "
                              f"{', '.join(map(repr, missing))} not in it")
        return [self.stoi[t] for t in tokens]


def _render(items: list[tuple], vocab: _Vocab) -> str:
    names = {"branch": "<branch>)", "tail": "<tail>", "link": "<linker>", "head": "<head>"}
    out = []
    for it in items:
        if it[0] == "tok":
            out.append(vocab.tok.itos[it[1]])
        elif it[0] == "span":
            out.append(names[it[1]] if it[2] else "<tail?>")
        elif it[0] == "fixed":
            out.append(f"<{it[1]}>")
        elif it[0] == "opt":
            out.append("<(branch)?>")
    return "".join(out)


def _compile(tokens: list[str], placeholder: list[bool], vocab: _Vocab, *, fixed: bool,
             what: str) -> list[tuple]:
    """Items from a written template: runs of placeholder tokens become spans."""
    items: list[tuple] = []
    open_labels: set[int] = set()
    i = 0
    while i < len(tokens):
        if placeholder[i]:
            j = i
            while j < len(tokens) and placeholder[j]:
                j += 1
            forbid = frozenset(open_labels)
            if i == 0 and not fixed:  # the writing starts with a placeholder: a head before the fragment
                items.append(("span", "head", True, forbid))
            elif j == len(tokens):
                items.append(("span", "tail", True, forbid))
            elif fixed:
                items.append(("fixed", j - i))
            elif tokens[j] == ")":
                items.append(("span", "branch", True, forbid))
                j += 1  # the model writes the `)` that ends the span
            else:
                items.append(("span", "link", True, forbid))
            i = j
            continue
        (tid,) = vocab.ids([tokens[i]], what)
        if tid in vocab.rings:
            open_labels ^= {tid}
        items.append(("tok", tid))
        i += 1
    items.append(("end",))
    return items


def _add_optional_branches(items: list[tuple], order: list[int], mol, vocab: _Vocab) -> list[tuple]:
    """A bare scaffold: an optional branch after each H-bearing atom (after its ring labels and its
    branches; not after the last atom, which the tail covers) and an optional tail at the end."""
    tok_at = [k for k, it in enumerate(items) if it[0] == "tok"]  # token number -> item number
    toks = [vocab.tok.itos[items[k][1]] for k in tok_at]
    order = [a for a in order if not _placeholder(mol.GetAtomWithIdx(a))]
    n = len(toks)
    cls = [vocab.cls[vocab.stoi[t]] for t in toks]
    atoms = iter(order)
    atom_at = {p: next(atoms) for p in range(n) if cls[p] == "atom"}  # token number -> atom index
    label_state, open_labels = [], set()
    for t in toks:  # ring labels open before each token
        label_state.append(frozenset(open_labels))
        if vocab.stoi[t] in vocab.rings:
            open_labels ^= {vocab.stoi[t]}
    label_state.append(frozenset(open_labels))
    slots: dict[int, frozenset] = {}  # an optional branch before item number -> labels open there
    for p, a in atom_at.items():
        # a bracket atom that writes its H (aromatic `[nH]`) would need another token once substituted
        if mol.GetAtomWithIdx(a).GetTotalNumHs() < 1 or (toks[p].startswith("[") and "H" in toks[p]):
            continue
        q = p + 1
        while q < n and (cls[q] == "ring" or (toks[q] in _BONDS and q + 1 < n and cls[q + 1] == "ring")):
            q += 1
        while q < n and toks[q] == "(":  # skip the atom's own branches
            depth = 0
            while q < n:
                depth += {"(": 1, ")": -1}.get(toks[q], 0)
                q += 1
                if depth == 0:
                    break
        if q < n:
            slots[tok_at[q]] = label_state[q]
    out: list[tuple] = []
    for k, it in enumerate(items[:-1]):
        if k in slots:
            out.append(("opt", slots[k]))
        out.append(it)
    return [*out, ("span", "tail", False, label_state[n]), ("end",)]


def _roots(mol, constraint: Constraint) -> list[int]:
    """Root atoms a writing may start from: non-placeholder atoms (a linker: FRAG1's)."""
    limit = constraint.fragments[0].mol.GetNumAtoms() if constraint.kind == "linker" else mol.GetNumAtoms()
    return [a.GetIdx() for a in mol.GetAtoms() if not _placeholder(a) and a.GetIdx() < limit]


def _first_fragment_done(mol, order: list[int]) -> bool:
    """True when, in output order, the placeholders come after every atom connected to the root
    without passing through a placeholder (the first fragment)."""
    from rdkit import Chem

    rw = Chem.RWMol(mol)
    for a in sorted((a.GetIdx() for a in mol.GetAtoms() if _placeholder(a)), reverse=True):
        rw.RemoveAtom(a)
    # atoms of the first fragment (the root's component once placeholders are gone), in mol indices
    keep = [a.GetIdx() for a in mol.GetAtoms() if not _placeholder(a)]
    comps = Chem.GetMolFrags(rw.GetMol(), sanitizeFrags=False)
    r = keep.index(order[0])
    root_comp = next(c for c in comps if r in c)
    first = {keep[i] for i in root_comp}
    pos = {a: k for k, a in enumerate(order)}
    first_ph = min(pos[a.GetIdx()] for a in mol.GetAtoms() if _placeholder(a))
    return all(pos[a] < first_ph for a in first)


class TemplateBuilder:
    """Writes the templates of one constraint for one model's tokenizer; caches per (lengths, sites, root)."""

    def __init__(self, constraint: Constraint, tokenizer, *, rooting: str = "canonical") -> None:
        if rooting not in ROOTINGS:
            raise ConfigError(f"rooting must be one of {', '.join(ROOTINGS)}; got {rooting!r}")
        self.constraint = constraint
        self.vocab = _Vocab(tokenizer)
        self.writer = writer_for(tokenizer)
        self.rooting = rooting
        self._cache: dict[Any, Template] = {}
        self._roots: dict[Any, list[int]] = {}

    @property
    def bare(self) -> bool:
        """A scaffold without `*`: decorations at any free hydrogen."""
        return self.constraint.kind == "scaffold" and not self.constraint.fragments[0].attachments

    def roots(self, mol, key) -> list[tuple[int, bool]]:
        """Candidate writings (root atom, ordered), best first: RDKit's canonical traversal from each root
        in canonical rank order. For extend / linker only writings that finish the first fragment before
        the placeholders (the span is a tail / FRAG2 follows the linker), adding ordered traversals."""
        from rdkit import Chem

        if key not in self._roots:
            ranks = list(Chem.CanonicalRankAtoms(mol))
            roots = sorted(_roots(mol, self.constraint), key=lambda a: ranks[a])
            cand = [(r, False) for r in roots]
            if self.constraint.kind in ("extend", "linker"):
                good = [(r, o) for r, o in cand + [(r, True) for r in roots]
                        if _first_fragment_done(mol, self.writer.smiles(mol, r, o)[1])]
                cand = good or cand
            elif isinstance(self.writer, SelfiesWriter) and not self.bare:
                # SELFIES: the writings whose spans fewest ring closures cross (structure, not lengths)
                base = template_molecule(self.constraint)
                n_unsafe = {c: len(self._build(base, c, False).unsafe) for c in cand}
                cand = [c for c in cand if n_unsafe[c] == min(n_unsafe.values())]
            self._roots[key] = cand
        return self._roots[key]

    def template(self, *, lengths: tuple[int, ...] | None = None, sites: tuple[tuple[int, int], ...] = (),
                 u_root: float | None = None, optional_branches: bool = True, head: int | None = None,
                 random_root: bool = False) -> Template:
        """The template for span ``lengths`` / decoration ``sites``, from the canonical writing or (with
        ``u_root``, a uniform in (0, 1) of the row, and rooting ``random``) a candidate drawn per row.
        ``head`` (attachment number, or a bare scaffold's site atom, which must be in ``sites``): the
        writing starts with that chain, a head span before the fragment. ``random_root``: draw the
        writing with ``u_root`` whatever the rooting (a redraw)."""
        mol = template_molecule(self.constraint, lengths, dict(sites), head)
        key = (lengths, sites, head)
        if head is not None:
            cands = [(next(a.GetIdx() for a in mol.GetAtoms() if a.HasProp("head")), False)]
        else:
            cands = self.roots(mol, key)
        canonical = self._canonical(mol, cands)
        drawn = u_root is not None and (self.rooting == "random" or random_root)
        pick = cands[int(u_root * len(cands))] if drawn else canonical
        ck = (key, pick, optional_branches)
        if ck not in self._cache:
            try:
                self._cache[ck] = self._build(mol, pick, optional_branches)
            except ConfigError:
                if pick == canonical:
                    raise
                self._cache[ck] = self._build(mol, canonical, optional_branches)  # e.g. a ring label not in vocab
        return self._cache[ck]

    def _canonical(self, mol, cands: list[tuple[int, bool]]) -> tuple[int, bool]:
        """RDKit's canonical string where it qualifies, else the best candidate."""
        _, order = self.writer.smiles(mol, None)
        return (order[0], False) if order and (order[0], False) in cands else cands[0]

    def _build(self, mol, writing: tuple[int, bool], optional_branches: bool) -> Template:
        root, ordered = writing
        toks, ph, order = self.writer.tokens(mol, root, ordered)
        unsafe: frozenset = frozenset()
        if isinstance(self.writer, SelfiesWriter):  # SELFIES atoms come in the SMILES atom order
            unsafe = frozenset(mol.GetAtomWithIdx(order[a]).GetIntProp("chain")
                               for a in _selfies_unsafe_runs(toks, ph))
        what = f"{self.constraint.kind} {self.constraint.text!r}"
        items = _compile(toks, ph, self.vocab, fixed=self.writer.fixed_length_spans, what=what)
        if self.bare and optional_branches and not self.writer.fixed_length_spans:
            items = _add_optional_branches(items, order, mol, self.vocab)
        elif self.bare and not (len(items) > 1 and items[-2][0] == "span" and items[-2][1] == "tail"):
            items = [*items[:-1], ("span", "tail", False, frozenset()), ("end",)]
        return Template(items, toks, root, _render(items, self.vocab), unsafe)


def build_template(tokenizer, *, scaffold: str | None = None, linker: str | None = None,
                   extend: str | None = None, rooting: str = "canonical") -> Template:
    """The (canonically rooted, span length 1) template of a constraint for a tokenizer; for looking at
    what template completion writes (``str(template)``: forced tokens, ``<branch>``, ``<tail>``,
    ``<linker>``, ``<(branch)?>`` for an optional branch, ``<tail?>`` for an optional tail)."""
    c = parse_constraint(scaffold=scaffold, linker=linker, extend=extend)
    return TemplateBuilder(c, tokenizer, rooting=rooting).template()


# --- template completion (autoregressive families) ---------------------------------------------
class _Span:
    __slots__ = ("depth", "forbid", "kind", "last", "length", "mandatory", "n", "own", "ready")

    def __init__(self, kind: str, mandatory: bool, forbid: frozenset, length: int = 0) -> None:
        self.kind, self.mandatory, self.forbid, self.length = kind, mandatory, forbid, length
        self.n = self.depth = 0
        self.own: set[int] = set()
        self.last = "none"
        self.ready = False


class _Row:
    """One row's position in its template: consumes the drawn tokens, says which are allowed next."""

    __slots__ = ("broken", "done", "handover", "items", "lengths", "max_len", "pos", "rest", "span", "vocab")

    def __init__(self, items: list[tuple], vocab: _Vocab, max_len: int, lengths: dict[str, int],
                 handover: dict[str, str] | None = None) -> None:
        self.items, self.vocab, self.max_len = items, vocab, max_len
        self.lengths, self.handover = lengths, {**HANDOVER, **(handover or {})}
        self.rest = _min_rest(items)
        self.pos = 0
        self.span: _Span | None = None
        self.done = self.broken = False

    # tokens -----------------------------------------------------------------------------------
    def consume(self, tok: int) -> None:
        v = self.vocab
        if self.done or self.broken:
            return
        if tok == v.eos:
            if self.span is not None and self.span.kind == "tail":
                self._end_span()  # <eos> ends the tail: the row is at its template's end
            self.done = True
            return
        sp = self.span
        if sp is not None and sp.ready and self.items[self.pos + 1][0] == "tok" and tok == self.items[self.pos + 1][1]:
            self._end_span()  # the model wrote the next fragment's first token: the hand-over
            sp = None
        if sp is not None:
            sp.n += 1
            c = v.cls[tok]
            if c == "open":
                sp.depth += 1
            elif c == "close":
                if sp.depth > 0:
                    sp.depth -= 1
                else:  # the `)` that ends a branch span
                    self._end_span()
                    return
            elif c == "ring":
                sp.own ^= {tok}
            sp.last = c
            if sp.kind == "fixed" and sp.n >= sp.length:
                self._end_span()
            return
        item = self.items[self.pos]
        if item[0] == "opt":
            if tok == v.open:
                self.span = _Span("branch", True, item[1])  # ends with the model's `)`, then past the opt
                return
            self.pos += 1
            item = self.items[self.pos]
        if item[0] == "tok" and tok == item[1]:
            self.pos += 1
        else:  # pragma: no cover - only when a row had no allowed token left (then verification marks it)
            self.broken = True

    def _end_span(self) -> None:
        self.span = None
        self.pos += 1

    # allowed next tokens --------------------------------------------------------------------
    def allowed(self, t: int) -> Any:
        """None (no constraint) or a hashable key of the allowed set (see :meth:`_Masks.mask`)."""
        if self.done or self.broken:
            return None
        v = self.vocab
        while True:
            if self.span is None:
                item = self.items[self.pos]
                kind = item[0]
                if kind == "tok":
                    return ("only", item[1])
                if kind == "end":
                    return ("only", v.eos)
                if kind == "opt":
                    nxt = self.items[self.pos + 1]
                    nxt_tok = nxt[1] if nxt[0] == "tok" else v.eos
                    # room for `(`, one atom, `)` and the rest of the template
                    if v.open is not None and t + 3 + self.rest[self.pos + 1] <= self.max_len:
                        return ("two", v.open, nxt_tok)
                    return ("only", nxt_tok)
                if kind == "fixed":
                    self.span = _Span("fixed", True, frozenset(), item[1])
                else:
                    self.span = _Span(item[1], item[2], item[3], self.lengths.get(item[1], 0))
                continue
            sp = self.span
            if sp.kind == "fixed":
                if t + (sp.length - sp.n) + self.rest[self.pos + 1] > self.max_len:
                    return None  # pragma: no cover - the canvas budget keeps templates within max_len
                return ("fixed",)
            clean = sp.depth == 0 and not sp.own and sp.n > 0 and sp.last in ("atom", "ring", "close")
            if sp.kind in ("link", "head") and clean and sp.n >= sp.length:
                # hand over to the forced tokens: at once ("force"), or when the model writes the next
                # fragment's first token ("match"; forced after HANDOVER_WAIT more tokens)
                if self.handover[sp.kind] == "force" or sp.n >= sp.length + HANDOVER_WAIT:
                    self._end_span()
                    continue
                sp.ready = True
            else:
                sp.ready = False
            # room: what the span needs to close (an atom after `(` or a bond, its ring labels, its `)`s,
            # a branch's own `)`) plus the rest of the template must fit in max_len
            need_atom = sp.last in ("open", "bond") or (sp.n == 0 and sp.mandatory)
            closing = (sp.depth + len(sp.own) + (1 if sp.kind == "branch" else 0) + (1 if need_atom else 0))
            room = self.max_len - t - closing - self.rest[self.pos + 1]
            close_ok = sp.depth > 0 or (sp.kind == "branch" and sp.n > 0 and not sp.own)
            eos_ok = sp.kind == "tail" and sp.depth == 0 and not sp.own and (sp.n > 0 or not sp.mandatory)
            if room < 2:  # out of room: close what is open, one token at a time
                if need_atom:
                    return ("atom",)
                if sp.own:
                    return ("set", frozenset(sp.own))
                if sp.depth > 0 or sp.kind == "branch":
                    return ("only", v.close)
                if sp.kind == "tail":
                    return ("only", v.eos)
                self._end_span()
                continue
            if room < 5:  # little room: nothing new opens (no `(`, no new ring label)
                return ("closing", frozenset(sp.own), close_ok, eos_ok)
            return ("free", sp.forbid, close_ok, eos_ok)


def _min_rest(items: list[tuple]) -> list[int]:
    """rest[k]: fewest symbols items k.. still need (forced tokens, one atom per mandatory span, `)`)."""
    rest = [0] * (len(items) + 1)
    for k in range(len(items) - 1, -1, -1):
        it = items[k]
        need = {"tok": 1, "fixed": it[1] if it[0] == "fixed" else 0, "opt": 0, "end": 0}.get(it[0])
        if need is None:  # a span
            need = (1 if it[2] else 0) + (1 if it[1] == "branch" else 0)
        rest[k] = rest[k + 1] + need
    return rest


class _Masks:
    """Allowed-set keys -> boolean vocabulary masks (cached)."""

    def __init__(self, vocab: _Vocab) -> None:
        self.v = vocab
        self.cache: dict[Any, np.ndarray] = {}

    def mask(self, key) -> np.ndarray:
        m = self.cache.get(key)
        if m is not None:
            return m
        v = self.v
        if key[0] == "only":
            m = np.zeros(v.V, dtype=bool)
            m[key[1]] = True
        elif key[0] == "two":
            m = np.zeros(v.V, dtype=bool)
            m[[key[1], key[2]]] = True
        elif key[0] == "set":
            m = np.zeros(v.V, dtype=bool)
            m[list(key[1])] = True
        elif key[0] == "fixed":
            m = v.free.copy()
            m[v.eos] = False
        elif key[0] == "atom":
            m = v.free & v.is_atom
        elif key[0] == "closing":  # ("closing", own labels, close_ok, eos_ok): atoms, bonds, own labels, closings
            _, own, close_ok, eos_ok = key
            m = v.free & (v.is_atom | v.is_bond)
            if own:
                m[list(own)] = True
            if v.close is not None:
                m[v.close] = close_ok
            m[v.eos] = eos_ok
        else:  # ("free", forbid, close_ok, eos_ok)
            _, forbid, close_ok, eos_ok = key
            m = v.free.copy()
            if forbid:
                m[list(forbid)] = False
            if v.close is not None:
                m[v.close] = close_ok
            m[v.eos] = eos_ok
        self.cache[key] = m
        return m


class TemplateConstraint:
    """The ``constrain(t, prev, log_probs)`` callable of one batch: one :class:`_Row` per row."""

    def __init__(self, rows: list[_Row], masks: _Masks) -> None:
        self.rows, self.masks = rows, masks

    def __call__(self, t: int, prev: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        prev_l = prev.tolist() if t > 0 else None
        n, V = log_probs.shape
        mask = np.ones((n, V), dtype=bool)
        constrained = False
        for i, row in enumerate(self.rows):
            if prev_l is not None:
                row.consume(prev_l[i])
            key = row.allowed(t)
            if key is not None:
                mask[i] = self.masks.mask(key)
                constrained = True
        if not constrained:
            return log_probs
        m = torch.from_numpy(mask).to(log_probs.device)
        lp = log_probs.masked_fill(~m, float("-inf"))
        ok = torch.isfinite(lp).any(-1, keepdim=True)  # a row with nothing allowed left keeps the model's own
        return torch.log_softmax(torch.where(ok, lp, log_probs), dim=-1)


# --- per-row choices ---------------------------------------------------------------------------
def _derived_seed(seed: int, *parts: Any) -> int:
    h = hashlib.blake2b(":".join(map(str, (int(seed), *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & (2**62 - 1)


def _ints(u: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Uniforms in (0, 1) -> integers in [lo, hi]."""
    return np.minimum(lo + np.floor(u * (hi - lo + 1)).astype(int), hi)


@dataclass
class _Plan:
    """Per-row template choices of one batch, from the rows' own streams."""

    templates: list[Template]
    lengths: list[dict[str, int]]


class Strategy:
    """How one kind of family samples under a template; subclasses: template completion, infilling."""

    name = "base"
    sampler = "constrained"

    def __init__(self, model, constraint: Constraint, *, rooting: str, options: dict[str, Any]) -> None:
        self.model = model
        self.constraint = constraint
        self.options = options
        self.example: str | None = None
        self.builder = TemplateBuilder(constraint, model.tokenizer, rooting=rooting)
        self.check()

    def check(self) -> None:
        """Build the canonical template once: a fragment the vocabulary cannot write fails here."""
        t = self.builder.template()
        need = _min_rest(t.items)[0]
        if need > self.model.max_len:
            raise ConfigError(f"{self.constraint.kind} {self.constraint.text!r} needs {need} tokens; the model "
                              f"writes at most {self.model.max_len}")

    def sample(self, rows: Sequence[int], *, seed: int, attempt: int, temperature: float) -> list[str]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ``info`` records: the strategy, one row's template (the first drawn), the rooting."""
        return {"strategy": self.name, "template": self.example or str(self.builder.template()),
                "rooting": self.builder.rooting}


def _uniforms(seed: int, rows: Sequence[int], attempt: int, width: int) -> np.ndarray:
    from molgen.rowrandom import RowRandom

    rr = RowRandom(_derived_seed(seed, "fragment-template", attempt), rows)
    return rr.uniform(0, width).numpy()


class TemplateCompletion(Strategy):
    """Autoregressive families: ``_sample(..., constrain=TemplateConstraint)``."""

    name = "template-completion"
    sampler = "template"

    def plan(self, rows: Sequence[int], seed: int, attempt: int) -> _Plan:
        u = _uniforms(seed, rows, attempt, 8)
        b, c = self.builder, self.constraint
        fixed = b.writer.fixed_length_spans
        n_span = _n_spans(c)
        head = self.options.get("head", "auto")
        if head == "auto":  # measured: a head helps small scaffolds and hurts large ones (HEAD_MAX_ATOMS)
            head = c.fragments[0].core.GetNumAtoms() <= HEAD_MAX_ATOMS
        head = head and c.kind == "scaffold" and not fixed
        h_atoms = _h_atoms(c.fragments[0].mol) if head and b.bare else []
        templates, lengths = [], []
        for k in range(len(rows)):
            uk = u[k]
            span_l = tuple(int(x) for x in _ints(uk[2:2 + n_span], *SPAN_LENGTHS)) if fixed and n_span else None
            if fixed and c.kind == "linker":
                span_l = (int(_ints(uk[2:3], *LINKER_LENGTHS)[0]),)
            if head and b.bare and h_atoms:
                a = h_atoms[int(uk[4] * len(h_atoms))] if b.rooting == "random" else h_atoms[0]
                t = b.template(sites=((a, 1),), head=a, optional_branches=self.options.get("branches", True))
            elif head and not b.bare:
                t = b.template(head=int(uk[4] * n_span) if b.rooting == "random" else 0)
            else:
                t = b.template(lengths=span_l, u_root=float(uk[0]), optional_branches=self.options.get("branches", True),
                               random_root=attempt > 0)
            templates.append(t)
            lengths.append({"link": int(_ints(uk[1:2], *self.options.get("linker_lengths", LINKER_LENGTHS))[0]),
                            "head": int(_ints(uk[3:4], *self.options.get("head_lengths", HEAD_LENGTHS))[0])})
        return _Plan(templates, lengths)

    def sample(self, rows: Sequence[int], *, seed: int, attempt: int, temperature: float) -> list[str]:
        from molgen.rowrandom import RowRandom

        m = self.model
        plan = self.plan(rows, seed, attempt)
        self.example = self.example or (str(plan.templates[0]) if plan.templates else None)
        vocab, masks = self.builder.vocab, _Masks(self.builder.vocab)
        handover = {"link": self.options.get("handover", HANDOVER["link"]),
                    "head": self.options.get("head_handover", HANDOVER["head"])}
        state = [_Row(t.items, vocab, m.max_len, ls, handover) for t, ls in zip(plan.templates, plan.lengths)]
        rng = RowRandom(seed if attempt == 0 else _derived_seed(seed, "fragment-attempt", attempt), rows, m.device)
        out, _ = m._sample(len(rows), temperature=temperature, rng=rng, condition=None, guidance=None,
                           constrain=TemplateConstraint(state, masks))
        return list(out)


def _h_atoms(mol) -> list[int]:
    """H-bearing atoms, in canonical rank order."""
    from rdkit import Chem

    ranks = list(Chem.CanonicalRankAtoms(mol))
    return sorted((a.GetIdx() for a in mol.GetAtoms() if a.GetTotalNumHs() > 0), key=lambda a: ranks[a])


def _n_spans(constraint: Constraint) -> int:
    return 1 if constraint.kind == "linker" else len(constraint.fragments[0].attachments)


def _canvas_row(t: Template, mask: int, max_len: int) -> list[int]:
    row: list[int] = []
    for it in t.items:
        if it[0] == "tok":
            row.append(it[1])
        elif it[0] == "fixed":
            row += [mask] * it[1]
        elif it[0] == "span":  # compiled with fixed-length spans: only the tail is open-ended
            row += [mask] * max(0, max_len - len(row))
    return row


class Infilling(Strategy):
    """Infilling families: ``_sample(..., canvas=[n, N])`` with fixed tokens and ``<mask>`` spans."""

    name = "infilling"
    sampler = "infill"

    def rows_templates(self, rows: Sequence[int], seed: int, attempt: int) -> list[Template]:
        """Per row: span lengths, decoration sites and the head (a chain written first) from the row's
        stream; a template too long for the canvas falls back to one-token spans."""
        c, b = self.constraint, self.builder
        u = _uniforms(seed, rows, attempt, 4 + 64)
        # a masked head: measured on moses-diffusion (SELFIES) it loses the scaffold on 21-33% of first draws
        # (an atom with no valence left ends the derivation before the scaffold), so off by default
        head = self.options.get("head", False) and c.kind == "scaffold"
        p_site = self.options.get("site_probability", SITE_PROBABILITY)
        h_atoms = _h_atoms(c.fragments[0].mol) if b.bare else []
        out = []
        for k in range(len(rows)):
            uk = u[k]
            pick = (lambda x, n: int(x * n)) if b.rooting == "random" else (lambda x, n: 0)
            if b.bare and h_atoms:
                chosen = [a for j, a in enumerate(h_atoms) if uk[4 + j % 32] < p_site]
                h = h_atoms[pick(uk[1], len(h_atoms))] if head else None
                if h is not None and h not in chosen:
                    chosen.append(h)
                lens = [int(x) for x in _ints(uk[36:36 + len(chosen)], *SPAN_LENGTHS)]
                sites = tuple(zip(chosen, lens))
                t = b.template(sites=sites, u_root=float(uk[0]), head=h, random_root=attempt > 0)
                while t.unsafe and sites:  # SELFIES: drop the sites inside a ring the scaffold closes later
                    sites = tuple(x for x in sites if SITE_KEY + x[0] not in t.unsafe)
                    h = h if h in dict(sites) else None
                    t = b.template(sites=sites, u_root=float(uk[0]), head=h, random_root=attempt > 0)
            else:
                rng_l = self.options.get("linker_lengths", LINKER_LENGTHS) if c.kind == "linker" else SPAN_LENGTHS
                lengths = tuple(int(x) for x in _ints(uk[4:4 + _n_spans(c)], *rng_l))
                h = pick(uk[1], _n_spans(c)) if head and _n_spans(c) else None
                t = b.template(lengths=lengths, u_root=float(uk[0]), head=h, random_root=attempt > 0)
            if len(_canvas_row(t, -1, 0)) > self.model.max_len:  # too long with these spans: the shortest
                t = b.template(u_root=float(uk[0]))
            out.append(t)
        return out

    def canvas(self, templates: list[Template]) -> torch.Tensor:
        """[n, N] canvases: fixed tokens, ``<mask>`` spans, a tail masked up to ``max_len``, then <eos>."""
        m = self.model
        z = torch.full((len(templates), m.canvas_len), m.tokenizer.eos_id, dtype=torch.long)
        for i, t in enumerate(templates):
            row = _canvas_row(t, m.mask_id, m.max_len)
            z[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        return z

    def check(self) -> None:
        # infilling writes every span as masked placeholder tokens: compile with fixed-length spans
        self.builder.writer.fixed_length_spans = True
        super().check()

    def sample(self, rows: Sequence[int], *, seed: int, attempt: int, temperature: float) -> list[str]:
        from molgen.rowrandom import RowRandom

        m = self.model
        templates = self.rows_templates(rows, seed, attempt)
        self.example = self.example or (str(templates[0]) if templates else None)
        z = self.canvas(templates).to(m.device)
        rng = RowRandom(seed if attempt == 0 else _derived_seed(seed, "fragment-attempt", attempt), rows, m.device)
        out, _ = m._sample(len(rows), temperature=temperature, rng=rng, condition=None, guidance=None, canvas=z)
        return list(out)


#: family name -> how it samples under a fragment constraint (families not listed refuse)
STRATEGIES: dict[str, type[Strategy]] = {"transformer": TemplateCompletion, "diffusion": Infilling}
#: why the other families refuse
REFUSALS = {"vae": "the VAE decodes a whole string from a latent vector z; nothing holds fragment tokens in place",
            "flow": "the flow writes every position at once from Gaussian noise; it has no infilling or "
                    "token-level hook",
            "gan": "the GAN decodes through its VAE from a generated latent vector; nothing holds fragment tokens "
                   "in place"}


#: ``options`` of :func:`constrained_sample` (measurement knobs; the defaults are the measured choices)
OPTIONS = {"head": "template completion: a head span before the scaffold (True / False / 'auto': <= HEAD_MAX_ATOMS "
                   "heavy atoms); infilling: a masked chain written first (default off)",
           "head_lengths": "(lo, hi) minimum head tokens", "head_handover": "force / match (HANDOVER)",
           "handover": "linker hand-over: force / match (HANDOVER)", "linker_lengths": "(lo, hi) linker tokens",
           "branches": "template completion of a bare scaffold: optional branches at H-bearing atoms",
           "site_probability": "infilling of a bare scaffold: probability of a branch at each H-bearing atom"}


def strategy_for(model, constraint: Constraint, *, rooting: str = "canonical",
                 options: dict[str, Any] | None = None) -> Strategy:
    from molgen.errors import check_options

    check_options("constrained_sample options", options or {}, OPTIONS)
    cls = STRATEGIES.get(model.name)
    if cls is None:
        reason = REFUSALS.get(model.name, "its sampler has no token-level constraint or infilling hook")
        raise CapabilityError(f"model {model.name!r} cannot generate under a fragment constraint: {reason}. "
                              f"Families that can: {', '.join(f'{k} ({v.name})' for k, v in STRATEGIES.items())}")
    return cls(model, constraint, rooting=rooting, options=dict(options or {}))


# --- the public entry point --------------------------------------------------------------------
@strict
def constrained_sample(model, n: int, *, scaffold: str | None = None, linker: str | None = None,
                       extend: str | None = None, temperature: float = 1.0, seed: int | None = None,
                       batch_size: int | None = None, progress: bool = False, attempts: int = DEFAULT_ATTEMPTS,
                       rooting: str = "canonical", score: bool = True, options: dict[str, Any] | None = None):
    """``n`` molecules that contain the fragment(s), as a :class:`~molgen.models.base.SampleResult`.

    Exactly one of ``scaffold`` (decorate; at its ``*``s or, without any, at any free hydrogen),
    ``linker`` ('FRAG1.FRAG2', one ``*`` each) or ``extend`` (one ``*``). Rows are kept in order,
    invalid ones included; ``info`` holds ``constraint``, ``fragments``, per-row ``contains_fragments``
    and ``attempts``, and ``summary`` (shares and the mean NLL). ``attempts``: draws per row for a row
    that is valid but lacks the fragments (1: never redrawn). ``rooting``: ``canonical`` (the fragment
    written as RDKit's canonical string, every row) or ``random`` (a root atom drawn per row).
    ``score``: attach each valid output's log-likelihood under the model (``model.score``).
    """
    from molgen.models.results import SampleResult, canonical_rows

    constraint = parse_constraint(scaffold=scaffold, linker=linker, extend=extend)
    model.require("sample")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ConfigError(f"n must be an integer >= 0, got {n!r}")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ConfigError(f"temperature must be a number > 0, got {temperature!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"attempts must be an integer >= 1, got {attempts!r}")
    strategy = strategy_for(model, constraint, rooting=rooting, options=options)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    bs = batch_size or 1024
    was_training = model.training
    model.eval()
    raw: list[str] = [""] * n
    tries = np.zeros(n, dtype=np.int64)
    starts = range(0, n, bs)
    if progress and len(starts) > 1:
        from molgen.progress import progress_bar

        starts = progress_bar(starts, desc="sampling", total=len(starts), unit="batch")
    try:
        with torch.no_grad():
            for b0 in starts:
                rows = range(b0, min(n, b0 + bs))
                raw[b0:rows.stop] = strategy.sample(rows, seed=int(seed), attempt=0, temperature=float(temperature))
                tries[b0:rows.stop] = 1
            smiles, canonical = canonical_rows(raw, model.policy)
            ok = contains_fragments(canonical, constraint)
            for attempt in range(1, attempts):  # valid rows without the fragments: their own fresh streams
                redo = [i for i in range(n) if canonical[i] is not None and not ok[i]]
                if not redo:
                    break
                for c0 in range(0, len(redo), bs):
                    part = redo[c0:c0 + bs]
                    again = strategy.sample(part, seed=int(seed), attempt=attempt, temperature=float(temperature))
                    new_smiles, new_canonical = canonical_rows(again, model.policy)
                    new_ok = contains_fragments(new_canonical, constraint)
                    for k, i in enumerate(part):
                        smiles[i], canonical[i], ok[i], tries[i] = new_smiles[k], new_canonical[k], new_ok[k], attempt + 1
    finally:
        model.train(was_training)
    # a molecule still without the fragments after every draw is not an output of this sampler: kept with
    # its string and status, counted as invalid (no canonical form), so every valid row holds the fragments
    status = np.array(["ok" if ok[i] else ("invalid" if canonical[i] is None else "missing_fragments")
                       for i in range(n)], dtype=object)
    canonical = [c if ok[i] else None for i, c in enumerate(canonical)]
    ll, label = None, None
    if score and "log_likelihood" in model.capabilities:
        ll, label = _score(model, canonical), model.likelihood_label()
    valid = np.array([c is not None for c in canonical], dtype=bool)
    sampler = f"{strategy.sampler}-{constraint.kind}" + ("" if temperature == 1.0 else f"-T{temperature:g}")
    summary = {"n": n, "valid": int(valid.sum()), "validity": float(valid.mean()) if n else math.nan,
               "contains": int(ok.sum()), "contains_share_of_valid": float(ok[valid].mean()) if valid.any() else math.nan,
               "missing_fragments": int((status == "missing_fragments").sum()), "redrawn_rows": int((tries > 1).sum())}
    if ll is not None:
        fin = np.isfinite(ll)
        summary["mean_nll"] = float(-ll[fin].mean()) if fin.any() else math.nan
        summary["unscored_valid"] = int((valid & ~fin).sum())  # e.g. a canonical string over max_len
        summary["likelihood"] = str(label)
    info: dict[str, Any] = {"model": model.name, "constraint": constraint.kind,
                            "fragments": [f.text for f in constraint.fragments], "contains_fragments": ok,
                            "constraint_status": status, "attempts": tries, "summary": summary,
                            **strategy.describe()}
    return SampleResult(smiles, canonical, ll, float(temperature), sampler, int(seed), label, info=info)


def _score(model, canonical: list[str | None]) -> np.ndarray:
    """log p (or the labelled bound) of each valid canonical output; NaN elsewhere."""
    idx = [i for i, c in enumerate(canonical) if c is not None]
    ll = np.full(len(canonical), np.nan)
    if idx:
        df = model.score([canonical[i] for i in idx])
        ll[idx] = df["log_likelihood"].to_numpy(dtype=float)
    return ll


def summary_line(result) -> str:
    """One line: the share containing the constraint, validity and the mean NLL (CLI)."""
    s = result.info["summary"]
    line = (f"{result.info['constraint']} {'.'.join(result.info['fragments'])}: {s['contains']}/{s['n']} rows contain "
            f"the fragment(s) ({s['contains_share_of_valid']:.3f} of valid rows; {s['missing_fragments']} valid "
            f"molecules without them after {s['redrawn_rows']} redrawn rows, counted invalid), validity "
            f"{s['validity']:.3f}")
    if "mean_nll" in s:
        line += f", mean NLL {s['mean_nll']:.2f} nats/molecule ({s['likelihood']})"
    return line
