"""Templates: a written template molecule compiled into items a sampler follows, per row.

Items of a template (tuples, shared by rows)::

    ("tok", id)                        a forced token
    ("span", kind, mandatory, forbid)  kind: "branch" (ends with the model's `)` at depth 0), "tail" (ends
                                       with <eos>), "link" (hands over to the next forced token), "head"
                                       (written before the fragment); forbid: ring-label ids open in the
                                       template around the span
    ("fixed", length)                  exactly ``length`` free tokens (SELFIES, infilling)
    ("opt", forbid)                    optional branch: `(` opens a "branch" span, else the template goes on
    ("end",)                           <eos>

:class:`TemplateBuilder` writes the templates of one constraint for one tokenizer (the root atom of
the writing, span lengths and decoration sites chosen per row by the strategies), and
:func:`build_template` shows the canonical one (``str(template)``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rdkit import Chem

from molgen.errors import ConfigError
from molgen.fragments.constraints import Constraint, parse_constraint
from molgen.fragments.placeholders import is_placeholder, template_molecule
from molgen.fragments.writers import SelfiesWriter, selfies_unsafe_runs, writer_for

ROOTINGS = ("canonical", "random")

_RING = re.compile(r"^(\d|%\d\d)$")
_BONDS = frozenset({"-", "=", "#", "$", ":", "/", "\\", "~"})
_PUNCT = frozenset({"(", ")", ".", "*", "+", "@", "?", ">", "<"})


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


class TokenClasses:
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


def _render(items: list[tuple], vocab: TokenClasses) -> str:
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


def _compile(tokens: list[str], placeholder: list[bool], vocab: TokenClasses, *, fixed: bool,
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


def _add_optional_branches(items: list[tuple], order: list[int], mol, vocab: TokenClasses) -> list[tuple]:
    """A bare scaffold: an optional branch after each H-bearing atom (after its ring labels and its
    branches; not after the last atom, which the tail covers) and an optional tail at the end."""
    tok_at = [k for k, it in enumerate(items) if it[0] == "tok"]  # token number -> item number
    toks = [vocab.tok.itos[items[k][1]] for k in tok_at]
    order = [a for a in order if not is_placeholder(mol.GetAtomWithIdx(a))]
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
    return [a.GetIdx() for a in mol.GetAtoms() if not is_placeholder(a) and a.GetIdx() < limit]


def _first_fragment_done(mol, order: list[int]) -> bool:
    """True when, in output order, the placeholders come after every atom connected to the root
    without passing through a placeholder (the first fragment)."""
    rw = Chem.RWMol(mol)
    for a in sorted((a.GetIdx() for a in mol.GetAtoms() if is_placeholder(a)), reverse=True):
        rw.RemoveAtom(a)
    # atoms of the first fragment (the root's component once placeholders are gone), in mol indices
    keep = [a.GetIdx() for a in mol.GetAtoms() if not is_placeholder(a)]
    comps = Chem.GetMolFrags(rw.GetMol(), sanitizeFrags=False)
    r = keep.index(order[0])
    root_comp = next(c for c in comps if r in c)
    first = {keep[i] for i in root_comp}
    pos = {a: k for k, a in enumerate(order)}
    first_ph = min(pos[a.GetIdx()] for a in mol.GetAtoms() if is_placeholder(a))
    return all(pos[a] < first_ph for a in first)


class TemplateBuilder:
    """Writes the templates of one constraint for one model's tokenizer; caches per (lengths, sites, root)."""

    def __init__(self, constraint: Constraint, tokenizer, *, rooting: str = "canonical") -> None:
        if rooting not in ROOTINGS:
            raise ConfigError(f"rooting must be one of {', '.join(ROOTINGS)}; got {rooting!r}")
        self.constraint = constraint
        self.vocab = TokenClasses(tokenizer)
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
                               for a in selfies_unsafe_runs(toks, ph))
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


def min_rest(items: list[tuple]) -> list[int]:
    """rest[k]: fewest symbols items k.. still need (forced tokens, one atom per mandatory span, `)`)."""
    rest = [0] * (len(items) + 1)
    for k in range(len(items) - 1, -1, -1):
        it = items[k]
        need = {"tok": 1, "fixed": it[1] if it[0] == "fixed" else 0, "opt": 0, "end": 0}.get(it[0])
        if need is None:  # a span
            need = (1 if it[2] else 0) + (1 if it[1] == "branch" else 0)
        rest[k] = rest[k + 1] + need
    return rest

