"""``molgen evaluate INPUT``: MOSES + GuacaMol metrics for a file of SMILES, no model needed.

INPUT may hold invalid lines, empty lines and ``None``: they count as invalid samples.
"""

from __future__ import annotations

import argparse
import sys

from molgen.api import load
from molgen.cli.main import add_command_arguments, command_parser
from molgen.data.io import InputError, read_smiles
from molgen.metrics import Evaluator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :mod:`molgen.options.evaluate` (for :func:`main` and callers building their own parser)."""
    add_command_arguments(parser, "evaluate")


def run(args: argparse.Namespace) -> int:
    """Read the SMILES, evaluate them, print the table and write what was asked for."""
    try:
        smiles = read_smiles(args.input, args.smiles_col)
    except (InputError, FileNotFoundError, KeyError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    ev = Evaluator(reference=args.reference, train=args.train, scaffold_reference=args.scaffold_reference,
                   n_jobs=args.n_jobs, device=args.device, extras=not args.no_extras,
                   guacamol=not args.no_guacamol, use_cache=not args.no_cache)
    model = None
    if args.model:
        model = load(args.model, map_location=args.device).to(args.device)
    report = ev.evaluate(smiles, model=model, name=str(args.input))
    print(report.to_markdown())
    if args.output:
        report.to_json(args.output)
        print(f'\nreport written to {args.output}')
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(report.to_markdown() + '\n')
    if args.plots:
        paths = report.plot(args.plots)
        print(f'plots: {", ".join(str(p) for p in paths)}')
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m molgen.cli.evaluate ARGS``: the command without the ``molgen`` entry point."""
    return run(command_parser('evaluate').parse_args(argv))


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
