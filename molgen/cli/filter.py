"""``molgen filter``: triage a file of molecules (validity, uniqueness, novelty, structural alerts,
property ranges, drug-likeness rules); every row is written with ``keep`` and ``reason``."""

from __future__ import annotations

import argparse
import logging
import sys
import time

log = logging.getLogger(__name__)

# property -> (CLI flag stem, help name)
_RANGE_FLAGS = {"qed": "QED", "logp": "Crippen logP", "mw": "molecular weight", "sa": "SA score",
                "tpsa": "TPSA", "hbd": "H-bond donors", "hba": "H-bond acceptors", "rotb": "rotatable bonds"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help=".smi / .csv / .tsv / .parquet / .sdf file (all its columns are kept)")
    p.add_argument("-o", "--output", required=True, help=".smi / .csv / .tsv / .parquet / .sdf")
    p.add_argument("--smiles-col", default=None)
    p.add_argument("--novel-against", default=None, metavar="FILE",
                   help="training set (file or catalog name, e.g. moses:train): molecules in it are not novel")
    p.add_argument("--alerts", default="mcf,pains",
                   help="structural alerts to apply, comma-separated: mcf, pains, or none (default mcf,pains)")
    p.add_argument("--rule", action="append", default=None, choices=("lipinski", "veber"),
                   help="drug-likeness rule (repeatable)")
    p.add_argument("--keep-invalid", action="store_true", help="do not remove invalid SMILES")
    p.add_argument("--keep-duplicates", action="store_true", help="do not remove repeated molecules")
    p.add_argument("--n-jobs", type=int, default=1,
                   help="worker processes for the properties (large files) and for standardising a "
                        "--novel-against set that has no shipped or cached hashes")
    p.add_argument("--only-kept", action="store_true",
                   help="write only the molecules that pass (default: every row, with keep and reason)")
    for key, name in _RANGE_FLAGS.items():
        p.add_argument(f"--{key}-min", type=float, default=None, help=f"minimum {name}")
        p.add_argument(f"--{key}-max", type=float, default=None, help=f"maximum {name}")


def run(args: argparse.Namespace) -> int:
    from molgen.data.io import WRITE_SUFFIXES, read_table, suffix_of, write_molecules
    from molgen.filtering import filter_molecules, summary

    suffix_of(args.output, WRITE_SUFFIXES, "write molecules to")  # before any work
    alerts = [] if args.alerts.strip().lower() == "none" else [a.strip() for a in args.alerts.split(",") if a.strip()]
    ranges = {}
    for key in _RANGE_FLAGS:
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
