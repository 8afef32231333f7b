"""``molgen score``: per-molecule log-likelihood of every row of a library, streamed in chunks.

Chunks are scored into ``OUT.parts/`` and merged in input order into ``OUT`` at the end (see
:mod:`molgen.sharding`): ``--devices N`` scores with N processes, ``--num-nodes M --node-rank R``
across nodes sharing a file system, and ``--resume`` continues an interrupted run from its parts. The
output is the same file whichever way it was computed.

By default each row is scored as given (strict); ``--strip-stereo``, ``--neutralize``, ``--strip-isotopes``
or ``--standardize like-training`` standardise it first, and the ``standardized`` column says what changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from molgen.api import load
from molgen.conditioning import parse_condition
from molgen.data.io import TABLE_SUFFIXES, resolve_source, suffix_of
from molgen.errors import check_choice
from molgen.pretrained import resolve_model
from molgen.scoring import STANDARDIZE_MODES, standardizations
from molgen.sharding import score_file


def _node_rank(args: argparse.Namespace) -> int:
    """``--node-rank``, else the rank the launcher sets in the environment, else 0."""
    if args.node_rank is not None:
        return args.node_rank
    for var in ("SLURM_NODEID", "NODE_RANK", "GROUP_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def run(args: argparse.Namespace) -> int:
    """Check the options, load the model, score the file in chunks (merged in input order)."""
    if args.standardize is not None:
        check_choice("--standardize", args.standardize, STANDARDIZE_MODES)
    std = {"strip_stereo": args.strip_stereo, "neutralize": args.neutralize, "strip_isotopes": args.strip_isotopes,
           "standardize": args.standardize}
    std = {k: v for k, v in std.items() if v}  # only those given: a run's key (--resume) names what was asked
    out = Path(args.output)
    suffix_of(out, TABLE_SUFFIXES, "write a score table to")  # before any work
    if not out.parent.exists() or not os.access(out.parent, os.W_OK):
        raise ValueError(f"cannot write {out}: the directory {out.parent} does not exist or is not writable")
    resolve_source(args.input, args.smiles_col)  # a missing / empty file or an unknown dataset: before loading
    args.model = str(resolve_model(args.model))  # a shipped name -> its directory (workers get the path)
    model = load(args.model, map_location=args.device).to(args.device)
    model.require("log_likelihood")
    label = model.likelihood_label(args.kind)
    condition = parse_condition(args.condition)
    if condition is not None:
        condition, _ = model.check_condition(condition, None, extrapolate=True, cli=True)  # once, before any work
    applied = standardizations(model, **std)  # like-training resolved from the vocabulary, once
    counts: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    bar = tqdm(desc="scoring", unit="mol", disable=args.quiet)

    def progress(df) -> None:
        counts.update(s.split(":", 1)[0] for s in df.status)
        changed.update(c for s in df.standardized for c in s.split(",") if c)
        bar.update(len(df))

    n = score_file(model, args.model, args.input, out, devices=args.devices, num_nodes=args.num_nodes,
                   node_rank=_node_rank(args), resume=args.resume, device=args.device, threads=args.threads,
                   progress=progress, smiles_col=args.smiles_col, chunk_size=args.chunk_size,
                   batch_size=args.batch_size, kind=args.kind, condition=condition, keep_cols=args.keep_cols,
                   **std)
    bar.close()
    if not args.quiet:
        given = f" given {condition}" if condition else ""
        if n is None:
            print(f"this node's shards are scored; another node merges them into {out}", file=sys.stderr)
            return 0
        mine = ", ".join(f"{k}: {v}" for k, v in counts.most_common())
        if applied:
            mine += f"; standardized ({', '.join(applied)}): " + (
                ", ".join(f"{k}: {v}" for k, v in changed.most_common()) or "no row changed")
        print(f"scored {n} rows -> {out} (likelihood: {label}{given})"
              + (f"; this process: {mine}" if args.devices * args.num_nodes > 1 else f"; {mine}" if mine else ""),
              file=sys.stderr)
    return 0
