"""``molgen benchmark``: train every family on the same data under the same budget, sample the same n,
score the same test molecules, evaluate with the one shared pipeline; write the table and the plots.

The work is :func:`molgen.benchmarking.run_benchmark`; this module parses the options. ``main(argv)``
runs the command without the ``molgen`` entry point (``benchmarks/compare.py``, ``python -m
molgen.cli.benchmark`` and ``benchmarks/gpu/run.sh`` use it).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from molgen.benchmarking import (
    DEFAULT_BUDGET_MINUTES,
    DEFAULT_DIFFUSION_STEPS,
    DEFAULT_N,
    DEFAULT_NLL_N,
    DEFAULT_ROWS,
    DEFAULT_SUBSET,
    DEFAULT_TIME_CAP_MINUTES,
    DEFAULT_VAL_SIZE,
    DIFFUSION_STEPS,
    ROW_NAMES,
)

DESCRIPTION = f"""\
Train every generator family on the same data under the same budget, sample n molecules from each at
temperature 1, score the same test molecules, evaluate everything with one Evaluator (MOSES test /
test scaffolds, novelty against the training data), and write RESULTS/NAME.json, RESULTS/NAME.md (the
table, with the published MOSES rows marked apart) and RESULTS/NAME_*.png (a bar chart per metric, NLL
vs training time). Models stay in OUT/<row>/seed<k>/, listed in OUT/benchmark.json.

Rows: {', '.join(ROW_NAMES)} (default: all but the conditional transformer-smiles-qed).

Default budget: {DEFAULT_BUDGET_MINUTES:g} minutes of training per family, {DEFAULT_N} samples and {DEFAULT_NLL_N} test
molecules per row: the 8 default rows and their evaluation took 66.8 minutes on a 2-core Intel Xeon
(one torch thread), of which 32 training; data preparation, validation, sampling (diffusion at N/4
steps), scoring and evaluation take the rest (benchmarks/results/compare.md).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = DESCRIPTION
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--families", action="append", default=None, metavar="ROW[,ROW...]",
                   help=f"rows to run, comma-separated or repeated ('all': every row); accepted: "
                        f"{', '.join(ROW_NAMES)}; default: {', '.join(DEFAULT_ROWS)}")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-minutes", type=float, default=None, metavar="M",
                        help=f"training wall clock per family (default {DEFAULT_BUDGET_MINUTES:g}); the configs' "
                             "molecule / step / epoch caps are removed so the clock decides")
    budget.add_argument("--budget-molecules", type=int, default=None, metavar="N",
                        help="budget in molecules seen per family (the same models on every machine); "
                             "--time-cap is the safety cap")
    p.add_argument("--time-cap", type=float, default=None, metavar="MINUTES",
                   help=f"with --budget-molecules: minutes of training at most per family "
                        f"(default {DEFAULT_TIME_CAP_MINUTES:g})")
    p.add_argument("-n", "--n", type=int, default=DEFAULT_N, dest="n",
                   help=f"samples per row, the same for every row (default {DEFAULT_N})")
    p.add_argument("--nll-n", type=int, default=DEFAULT_NLL_N, metavar="N",
                   help=f"test molecules every likelihood row scores (a fixed subset, seed 0; default {DEFAULT_NLL_N})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
                   help="train each row once per seed and report mean ± spread (default: 0)")
    p.add_argument("--subset", type=int, default=DEFAULT_SUBSET, metavar="N",
                   help=f"random subset of the training data for every row (0: all; default {DEFAULT_SUBSET:,})")
    p.add_argument("--val-size", type=int, default=DEFAULT_VAL_SIZE, metavar="N",
                   help=f"validation molecules carved from the training data, the same for every row "
                        f"(default {DEFAULT_VAL_SIZE})")
    p.add_argument("--data", default="moses", help="training data: 'moses' (embedded), a catalog name or a file")
    p.add_argument("--reference", default="moses:test", help="reference set of the evaluation and the NLL")
    p.add_argument("--scaffold-reference", default="moses:test_scaffolds",
                   help="second reference (the .../TestSF metrics)")
    p.add_argument("--out", default="runs/benchmark", help="model directories: OUT/<row>/seed<k>/")
    p.add_argument("--results", default="benchmarks/results", help="folder of the table and the plots")
    p.add_argument("--name", default="compare", help="file name stem of the table and the plots")
    p.add_argument("--config-dir", default=None, metavar="DIR",
                   help="folder of the rows' configs (<row>.yaml, else the row's config name; default configs/)")
    p.add_argument("--autoencoder", default=None, metavar="DIR",
                   help="a trained vae directory for the gan row (default: the vae row's model)")
    p.add_argument("--diffusion-steps", choices=list(DIFFUSION_STEPS), default=DEFAULT_DIFFUSION_STEPS,
                   help="ancestral steps of the diffusion rows' sampler: N, N/2, N/4 or N/8 of the canvas length "
                        f"(default {DEFAULT_DIFFUSION_STEPS}: N/4, 2.6x faster than N on CPU)")
    p.add_argument("--accelerator", default=None, help="auto | cpu | gpu (training, sampling, scoring, ChemNet)")
    p.add_argument("--devices", default=None, help="devices per training run (default 1)")
    p.add_argument("--precision", default=None,
                   help="32-true | bf16-mixed | 16-mixed (default: the config's, else bf16-mixed on GPU and "
                        "the faster of fp32 / bf16 on CPU, measured)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the finished models under OUT and continue interrupted runs from their checkpoints")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads for training, sampling and scoring (default: torch's choice)")
    p.add_argument("--n-jobs", type=int, default=2, help="processes for standardization and the evaluation")
    p.add_argument("--no-plots", action="store_true", help="write the table only")


def _command(args: argparse.Namespace, prog: str) -> str:
    """The exact command, rebuilt from the parsed options (every value explicit)."""
    parts = [*shlex.split(prog)]
    if args.families:
        parts += ["--families", ",".join(args.families)]
    if args.budget_molecules is not None:
        parts += ["--budget-molecules", str(args.budget_molecules)]
        if args.time_cap is not None:
            parts += ["--time-cap", f"{args.time_cap:g}"]
    else:
        parts += ["--budget-minutes", f"{args.budget_minutes if args.budget_minutes is not None else DEFAULT_BUDGET_MINUTES:g}"]
    parts += ["--n", str(args.n), "--nll-n", str(args.nll_n), "--seeds", *map(str, args.seeds),
              "--subset", str(args.subset), "--val-size", str(args.val_size), "--data", args.data,
              "--reference", args.reference, "--scaffold-reference", args.scaffold_reference,
              "--out", args.out, "--results", args.results, "--name", args.name,
              "--diffusion-steps", args.diffusion_steps]
    for flag, value in (("--config-dir", args.config_dir), ("--autoencoder", args.autoencoder),
                        ("--accelerator", args.accelerator), ("--devices", args.devices),
                        ("--precision", args.precision), ("--threads", args.threads)):
        if value is not None:
            parts += [flag, str(value)]
    if args.resume:
        parts.append("--resume")
    if args.no_plots:
        parts.append("--no-plots")
    return shlex.join(parts)


def run(args: argparse.Namespace, *, prog: str = "molgen benchmark") -> int:
    from molgen.benchmark_report import markdown_table
    from molgen.benchmarking import run_benchmark

    devices = args.devices
    if devices is not None and str(devices).isdigit():
        devices = int(devices)
    quiet = bool(getattr(args, "quiet", False))
    payload = run_benchmark(
        args.families, budget_minutes=args.budget_minutes, budget_molecules=args.budget_molecules,
        time_cap_minutes=args.time_cap, n=args.n, seeds=args.seeds, subset=args.subset or None,
        val_size=args.val_size, data=args.data, out=args.out, results=args.results, name=args.name,
        config_dir=args.config_dir, reference=args.reference, scaffold_reference=args.scaffold_reference,
        nll_n=args.nll_n, autoencoder=args.autoencoder, diffusion_steps=args.diffusion_steps,
        precision=args.precision, devices=devices, accelerator=args.accelerator, resume=args.resume,
        n_jobs=args.n_jobs, plots=not args.no_plots, command=_command(args, prog),
        overrides={"*": {"num_threads": args.threads}} if args.threads else None,
        log=(lambda msg: None) if quiet else None)
    if not payload:  # another process of a multi-device run
        return 0
    print(markdown_table(payload))
    files = payload["files"]
    print(f"\ntable: {files['markdown']}  json: {files['json']}  manifest: {files['manifest']}  "
          f"plots: {len(files['plots'])}")
    failed = [r["row"] for r in payload["rows"] if r["errors"]]
    if failed:
        print(f"rows with errors: {', '.join(failed)} (see the table's notes)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, *, prog: str = "molgen benchmark", **defaults) -> int:
    """The command without the ``molgen`` entry point: the same options (``defaults`` change theirs),
    logging and one-line errors as ``molgen benchmark``."""
    from molgen.cli.main import _setup_logging, run_guarded

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    add_arguments(parser)
    from molgen.errors import check_options

    check_options("benchmark main()", defaults, [a.dest for a in parser._actions if a.dest != "help"])
    parser.set_defaults(**defaults)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.verbose, args.quiet)
    return run_guarded(lambda: run(args, prog=prog), args, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog="python -m molgen.cli.benchmark"))
