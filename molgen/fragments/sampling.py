"""Fragment-constrained sampling: the entry point, the strategy per family, the result.

**Every row is checked** (:func:`~molgen.fragments.constraints.contains_fragments`). Template
completion writes the fragment's tokens verbatim, so a valid SMILES output without the fragment needs
a chemistry change (e.g. an aromaticity change across the junction); SELFIES infilling can lose the
fragment when a span writes fewer atoms than the template counted (a ring closure then lands
elsewhere) or ends the derivation early (an atom with no valence left). A row that is valid but lacks
the fragments is drawn again from a fresh stream of the same row, with a freshly drawn writing of the
template (at most ``attempts`` draws; the count per row in ``attempts``). A molecule still lacking
them is not an output of this sampler: the row keeps its string, gets
``constraint_status="missing_fragments"`` and no canonical form, so it counts as invalid; every valid
row contains the fragments. Chemically invalid rows are kept, never redrawn, and counted
(``constraint_status="invalid"``).

**Likelihood.** Each valid output is scored by the model (``model.score`` of its canonical string):
exact log p for the transformer, the labelled ELBO for diffusion. That is the probability of the
molecule under the unconstrained model, not of the constrained sampler's draw.

**Per-row determinism.** Row i depends only on (seed, i): the sampler's per-row random streams
(:class:`~molgen.rowrandom.RowRandom`), and every per-row choice of the template
(:mod:`molgen.fragments.strategy`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from molgen.errors import CapabilityError, ConfigError, check_options, strict
from molgen.fragments.completion import TemplateCompletion
from molgen.fragments.constraints import Constraint, contains_fragments, parse_constraint
from molgen.fragments.infilling import Infilling
from molgen.fragments.strategy import Strategy
from molgen.models.results import SampleResult, canonical_rows, check_sample_arguments
from molgen.progress import progress_bar

#: draws per row for a row that is valid but lacks the fragments (1: never redrawn; a redraw also draws
#: the writing of the template). Measured: SELFIES infilling keeps a linker on ~50-60% of first draws
#: (moses-mdlm-selfies, 20 pairs x 8), so 8 draws left 4 of 500 benchmark rows without one
DEFAULT_ATTEMPTS = 16


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
    check_options("constrained_sample options", options or {}, OPTIONS)
    # a model that writes in order (the transformer, diffusion sampled left to right) completes templates
    cls = TemplateCompletion if model.writes_in_order else STRATEGIES.get(model.name)
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
    """``n`` molecules that contain the fragment(s), as a :class:`~molgen.models.results.SampleResult`.

    Exactly one of ``scaffold`` (decorate; at its ``*``s or, without any, at any free hydrogen),
    ``linker`` ('FRAG1.FRAG2', one ``*`` each) or ``extend`` (one ``*``). Rows are kept in order,
    invalid ones included; ``info`` holds ``constraint``, ``fragments``, per-row ``contains_fragments``
    and ``attempts``, and ``summary`` (shares and the mean NLL). ``attempts``: draws per row for a row
    that is valid but lacks the fragments (1: never redrawn). ``rooting``: ``canonical`` (the fragment
    written as RDKit's canonical string, every row) or ``random`` (a root atom drawn per row).
    ``score``: attach each valid output's log-likelihood under the model (``model.score``).
    """
    constraint = parse_constraint(scaffold=scaffold, linker=linker, extend=extend)
    model.require("sample")
    check_sample_arguments(n, temperature, batch_size)
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
        ll, label = score_outputs(model, canonical), model.likelihood_label()
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


def score_outputs(model, canonical: list[str | None]) -> np.ndarray:
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
