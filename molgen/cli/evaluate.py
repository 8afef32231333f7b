"""``molgen evaluate INPUT``: MOSES + GuacaMol metrics for a file of SMILES, no model needed.

INPUT may hold invalid lines, empty lines and ``None``: they count as invalid samples.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('input', help='generated SMILES: .smi/.txt (one per line), .csv, .parquet or .sdf')
    parser.add_argument('--smiles-col', default=None, help='SMILES column of a .csv/.parquet input')
    parser.add_argument('--reference', default='moses:test',
                        help='main reference: catalog name (moses:test) or file (default: %(default)s)')
    parser.add_argument('--scaffold-reference', default=None,
                        help='second reference for the .../TestSF metrics, e.g. moses:test_scaffolds')
    parser.add_argument('--train', default=None, help='training set for Novelty and the FCD floor, e.g. moses:train')
    parser.add_argument('-o', '--output', default=None, help='write the JSON report here')
    parser.add_argument('--plots', default=None, metavar='DIR', help='write property histograms (PNG) here')
    parser.add_argument('--markdown', default=None, metavar='FILE', help='also write the table as markdown')
    parser.add_argument('--n-jobs', type=int, default=1, help='worker processes / threads (0: all cores)')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'], help='device for ChemNet')
    parser.add_argument('--no-extras', action='store_true',
                        help='skip FCD floor, precision/recall/coverage and scaffold coverage')
    parser.add_argument('--no-guacamol', action='store_true', help='skip the GuacaMol scores')
    parser.add_argument('--no-cache', action='store_true', help='do not read or write cached reference statistics')
    parser.add_argument('--model', default=None, metavar='DIR',
                        help='trained model directory: adds its NLL/Test on the reference (as the Python API does)')


def run(args: argparse.Namespace) -> int:
    from molgen.data.io import InputError, read_smiles
    from molgen.metrics import Evaluator

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
        from molgen.api import load

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
    parser = argparse.ArgumentParser(prog='molgen evaluate', description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
