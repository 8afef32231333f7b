"""``molgen filter``: triage a file of molecules (validity, uniqueness, novelty, structural alerts,
property ranges, drug-likeness rules); every row is written with ``keep`` and ``reason``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from molgen.data.io import WRITE_SUFFIXES, read_table, suffix_of, write_molecules
from molgen.filtering import filter_molecules, summary
from molgen.options.filter import RANGE_KEYS

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    """Read the file, filter every row, write it with ``keep`` and ``reason``."""
    suffix_of(args.output, WRITE_SUFFIXES, "write molecules to")  # before any work
    alerts = [] if args.alerts.strip().lower() == "none" else [a.strip() for a in args.alerts.split(",") if a.strip()]
    ranges = {}
    for key in RANGE_KEYS:
        lo, hi = getattr(args, f"{key}_min"), getattr(args, f"{key}_max")
        if lo is not None or hi is not None:
            ranges[key] = (lo, hi)
    df = read_table(args.input, smiles_col=args.smiles_col)
    t0 = time.perf_counter()
    log.info("filtering %d rows of %s%s", len(df), args.input,
             f" (novelty against {args.novel_against})" if args.novel_against else "")
    out = filter_molecules(df, smiles_col=args.smiles_col, valid=not args.keep_invalid,
                           unique=not args.keep_duplicates, novel_against=args.novel_against, alerts=alerts,
                           ranges=ranges, rules=args.rule or (), n_jobs=args.n_jobs)
    log.info("filtered %d rows in %.1f s", len(out), time.perf_counter() - t0)
    write_molecules(out[out.keep] if args.only_kept else out, args.output, smiles_col=args.smiles_col)
    if not args.quiet:
        print(f"{summary(out)} -> {args.output}", file=sys.stderr)
    return 0
