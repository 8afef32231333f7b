"""Canvas infilling (infilling families, masked diffusion): ``_sample(..., canvas=[n, N])``.

The template molecule carries a chain of L placeholder atoms at each attachment point (L drawn per
row); written in the model's representation, the placeholder tokens become ``<mask>`` positions the
sampler fills and every other token is fixed; a tail (``extend``, a ``*`` that ends the string, the
optional tail of a bare scaffold) is masked up to the end of the canvas, so the model picks its
length. In SELFIES the branch lengths (index symbols) come from the template, so a span is always a
self-contained branch; a bare scaffold is decorated only at atoms outside the rings it closes later
(SELFIES counts ring closures in atoms, so a span there that writes another number of atoms would
move the closure).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from molgen.fragments.placeholders import SITE_KEY
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
from molgen.fragments.templates import Template
from molgen.rowrandom import RowRandom

#: infilling a bare scaffold ("any free hydrogen"): each H-bearing atom gets a branch with this probability
#: (the tail at the end is always offered; in SELFIES only atoms outside a ring the scaffold closes later).
#: Measured on moses-mdlm-selfies (the SELFIES MDLM), 10 MOSES scaffolds x 10: uniqueness 0.50 / 0.67 / 0.74 at
#: probability 0 / 0.25 / 0.5, every valid row containing the scaffold (after redraws)
SITE_PROBABILITY = 0.5


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
        u = row_uniforms(seed, rows, attempt, 4 + 64)
        # a masked head: measured on moses-mdlm-selfies it loses the scaffold on 21-33% of first draws
        # (an atom with no valence left ends the derivation before the scaffold), so off by default
        head = self.options.get("head", False) and c.kind == "scaffold"
        p_site = self.options.get("site_probability", SITE_PROBABILITY)
        h_atoms = h_bearing_atoms(c.fragments[0].mol) if b.bare else []
        out = []
        for k in range(len(rows)):
            uk = u[k]
            pick = (lambda x, n: int(x * n)) if b.rooting == "random" else (lambda x, n: 0)
            if b.bare and h_atoms:
                chosen = [a for j, a in enumerate(h_atoms) if uk[4 + j % 32] < p_site]
                h = h_atoms[pick(uk[1], len(h_atoms))] if head else None
                if h is not None and h not in chosen:
                    chosen.append(h)
                lens = [int(x) for x in uniform_ints(uk[36:36 + len(chosen)], *SPAN_LENGTHS)]
                sites = tuple(zip(chosen, lens))
                t = b.template(sites=sites, u_root=float(uk[0]), head=h, random_root=attempt > 0)
                while t.unsafe and sites:  # SELFIES: drop the sites inside a ring the scaffold closes later
                    sites = tuple(x for x in sites if SITE_KEY + x[0] not in t.unsafe)
                    h = h if h in dict(sites) else None
                    t = b.template(sites=sites, u_root=float(uk[0]), head=h, random_root=attempt > 0)
            else:
                rng_l = self.options.get("linker_lengths", LINKER_LENGTHS) if c.kind == "linker" else SPAN_LENGTHS
                lengths = tuple(int(x) for x in uniform_ints(uk[4:4 + n_spans(c)], *rng_l))
                h = pick(uk[1], n_spans(c)) if head and n_spans(c) else None
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
        m = self.model
        templates = self.rows_templates(rows, seed, attempt)
        self.example = self.example or (str(templates[0]) if templates else None)
        z = self.canvas(templates).to(m.device)
        rng = RowRandom(seed if attempt == 0 else derived_seed(seed, "fragment-attempt", attempt), rows, m.device)
        out, _ = m._sample(len(rows), temperature=temperature, rng=rng, condition=None, guidance=None, canvas=z)
        return list(out)

