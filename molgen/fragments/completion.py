"""Template completion (autoregressive families, the transformer): ``_sample(..., constrain=...)``.

A per-row state machine (:class:`RowState`) edits the next-token log-probs at every step: forced
tokens get probability one; a ``*`` written as a branch ``(*)`` becomes ``(`` + a free span that ends
when the model writes ``)`` at the span's own depth 0, a ``*`` at the end of the string a free tail
that ends with ``<eos>``; inside a span ``<eos>``, ``.`` and the ring-closure labels still open in the
template are forbidden, and the span cannot end with its own rings or branches open. Without a ``*``
("any free hydrogen") each H-bearing atom gets an optional branch: after its ring labels and
branches, ``(`` opens a free branch or the template goes on, plus an optional tail at the end; a
small scaffold (<= :data:`HEAD_MAX_ATOMS` heavy atoms) also gets a *head*, a free span written before
it and bonded to one of its H-bearing atoms, because a molecule's canonical string rarely starts
inside a small ring system (measured, see :data:`HEAD_MAX_ATOMS`). A linker is FRAG1 (written to end
at its attachment atom), a free span of at least L tokens (L drawn per row), then FRAG2 forced,
written from its attachment atom: the span hands over to FRAG2 at its first clean boundary (depth 0,
its rings closed, after an atom) once it holds L tokens. Near ``max_len`` a span may only close what
it opened, so the template always fits. With a SELFIES tokenizer the spans have fixed lengths, as
for diffusion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from molgen.fragments.strategy import (
    LINKER_LENGTHS,
    SPAN_LENGTHS,
    Strategy,
    derived_seed,
    h_bearing_atoms,
    n_spans,
    row_uniforms,
    uniform_ints,
)
from molgen.fragments.templates import Template, TokenClasses, min_rest
from molgen.rowrandom import RowRandom

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


# --- template completion (autoregressive families) ---------------------------------------------
class _Span:
    __slots__ = ("depth", "forbid", "kind", "last", "length", "mandatory", "n", "own", "ready")

    def __init__(self, kind: str, mandatory: bool, forbid: frozenset, length: int = 0) -> None:
        self.kind, self.mandatory, self.forbid, self.length = kind, mandatory, forbid, length
        self.n = self.depth = 0
        self.own: set[int] = set()
        self.last = "none"
        self.ready = False


class RowState:
    """One row's position in its template: consumes the drawn tokens, says which are allowed next."""

    __slots__ = ("broken", "done", "handover", "items", "lengths", "max_len", "pos", "rest", "span", "vocab")

    def __init__(self, items: list[tuple], vocab: TokenClasses, max_len: int, lengths: dict[str, int],
                 handover: dict[str, str] | None = None) -> None:
        self.items, self.vocab, self.max_len = items, vocab, max_len
        self.lengths, self.handover = lengths, {**HANDOVER, **(handover or {})}
        self.rest = min_rest(items)
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
        """None (no constraint) or a hashable key of the allowed set (see :meth:`AllowedMasks.mask`)."""
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


class AllowedMasks:
    """Allowed-set keys -> boolean vocabulary masks (cached)."""

    def __init__(self, vocab: TokenClasses) -> None:
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
    """The ``constrain(t, prev, log_probs)`` callable of one batch: one :class:`RowState` per row."""

    def __init__(self, rows: list[RowState], masks: AllowedMasks) -> None:
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


@dataclass
class _Plan:
    """Per-row template choices of one batch, from the rows' own streams."""

    templates: list[Template]
    lengths: list[dict[str, int]]


class TemplateCompletion(Strategy):
    """Autoregressive families: ``_sample(..., constrain=TemplateConstraint)``."""

    name = "template-completion"
    sampler = "template"

    def plan(self, rows: Sequence[int], seed: int, attempt: int) -> _Plan:
        u = row_uniforms(seed, rows, attempt, 8)
        b, c = self.builder, self.constraint
        fixed = b.writer.fixed_length_spans
        n_span = n_spans(c)
        head = self.options.get("head", "auto")
        if head == "auto":  # measured: a head helps small scaffolds and hurts large ones (HEAD_MAX_ATOMS)
            head = c.fragments[0].core.GetNumAtoms() <= HEAD_MAX_ATOMS
        head = head and c.kind == "scaffold" and not fixed
        h_atoms = h_bearing_atoms(c.fragments[0].mol) if head and b.bare else []
        templates, lengths = [], []
        for k in range(len(rows)):
            uk = u[k]
            span_l = tuple(int(x) for x in uniform_ints(uk[2:2 + n_span], *SPAN_LENGTHS)) if fixed and n_span else None
            if fixed and c.kind == "linker":
                span_l = (int(uniform_ints(uk[2:3], *LINKER_LENGTHS)[0]),)
            if head and b.bare and h_atoms:
                a = h_atoms[int(uk[4] * len(h_atoms))] if b.rooting == "random" else h_atoms[0]
                t = b.template(sites=((a, 1),), head=a, optional_branches=self.options.get("branches", True))
            elif head and not b.bare:
                t = b.template(head=int(uk[4] * n_span) if b.rooting == "random" else 0)
            else:
                t = b.template(lengths=span_l, u_root=float(uk[0]), optional_branches=self.options.get("branches", True),
                               random_root=attempt > 0)
            templates.append(t)
            lengths.append({"link": int(uniform_ints(uk[1:2], *self.options.get("linker_lengths", LINKER_LENGTHS))[0]),
                            "head": int(uniform_ints(uk[3:4], *self.options.get("head_lengths", HEAD_LENGTHS))[0])})
        return _Plan(templates, lengths)

    def sample(self, rows: Sequence[int], *, seed: int, attempt: int, temperature: float) -> list[str]:
        m = self.model
        plan = self.plan(rows, seed, attempt)
        self.example = self.example or (str(plan.templates[0]) if plan.templates else None)
        vocab, masks = self.builder.vocab, AllowedMasks(self.builder.vocab)
        handover = {"link": self.options.get("handover", HANDOVER["link"]),
                    "head": self.options.get("head_handover", HANDOVER["head"])}
        state = [RowState(t.items, vocab, m.max_len, ls, handover) for t, ls in zip(plan.templates, plan.lengths)]
        rng = RowRandom(seed if attempt == 0 else derived_seed(seed, "fragment-attempt", attempt), rows, m.device)
        out, _ = m._sample(len(rows), temperature=temperature, rng=rng, condition=None, guidance=None,
                           constrain=TemplateConstraint(state, masks))
        return list(out)

