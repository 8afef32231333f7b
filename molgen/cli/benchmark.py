"""``molgen benchmark``: train every family on the same data under the same budget, sample the same n,
score the same test molecules, evaluate with the one shared pipeline; write the table and the plots.

The options are declared in :mod:`molgen.options.benchmark`; the work is
:func:`molgen.benchmark.runner.run_benchmark`; this module turns the parsed options into that call.
``main(argv)`` runs the command without the ``molgen`` entry point (``benchmarks/compare.py``,
``python -m molgen.cli.benchmark`` and ``benchmarks/gpu/run.sh`` use it).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from molgen.benchmark.report import markdown_table
from molgen.benchmark.runner import OPTION_DEFAULTS, run_benchmark
from molgen.cli.main import command_parser, run_guarded, setup_logging
from molgen.errors import check_options
from molgen.options import names
from molgen.options.benchmark import DEFAULT_BUDGET_MINUTES, BenchmarkOptions


def resolve(args: argparse.Namespace) -> BenchmarkOptions:
    """The options of a parsed command line: what was given, the declared defaults for the rest."""
    values = dict(OPTION_DEFAULTS)
    values.update({k: getattr(args, k) for k in names(BenchmarkOptions) if getattr(args, k, None) is not None})
    return BenchmarkOptions(**values)


def _command(o: BenchmarkOptions, prog: str) -> str:
    """The exact command, rebuilt from the options (every value explicit)."""
    parts = [*shlex.split(prog)]
    if o.families:
        parts += ["--families", ",".join(o.families)]
    if o.budget_molecules is not None:
        parts += ["--budget-molecules", str(o.budget_molecules)]
        if o.time_cap is not None:
            parts += ["--time-cap", f"{o.time_cap:g}"]
    else:
        parts += ["--budget-minutes", f"{o.budget_minutes if o.budget_minutes is not None else DEFAULT_BUDGET_MINUTES:g}"]
    parts += ["--n", str(o.n), "--nll-n", str(o.nll_n), "--seeds", *map(str, o.seeds),
              "--subset", str(o.subset), "--val-size", str(o.val_size), "--data", o.data,
              "--reference", o.reference, "--scaffold-reference", o.scaffold_reference,
              "--out", o.out, "--results", o.results, "--name", o.name,
              "--diffusion-steps", o.diffusion_steps]
    for flag, value in (("--config-dir", o.config_dir), ("--autoencoder", o.autoencoder),
                        ("--accelerator", o.accelerator), ("--devices", o.devices),
                        ("--precision", o.precision), ("--threads", o.threads)):
        if value is not None:
            parts += [flag, str(value)]
    if o.resume:
        parts.append("--resume")
    if o.no_plots:
        parts.append("--no-plots")
    return shlex.join(parts)


def run(args: argparse.Namespace, *, prog: str = "molgen benchmark") -> int:
    o = resolve(args)
    devices: Any = o.devices
    if devices is not None and str(devices).isdigit():
        devices = int(devices)
    quiet = bool(getattr(args, "quiet", False))
    payload = run_benchmark(
        o.families, budget_minutes=o.budget_minutes, budget_molecules=o.budget_molecules,
        time_cap_minutes=o.time_cap, n=o.n, seeds=o.seeds, subset=o.subset or None,
        val_size=o.val_size, data=o.data, out=o.out, results=o.results, name=o.name,
        config_dir=o.config_dir, reference=o.reference, scaffold_reference=o.scaffold_reference,
        nll_n=o.nll_n, autoencoder=o.autoencoder, diffusion_steps=o.diffusion_steps,
        precision=o.precision, devices=devices, accelerator=o.accelerator, resume=o.resume,
        n_jobs=o.n_jobs, plots=not o.no_plots, command=_command(o, prog),
        overrides={"*": {"num_threads": o.threads}} if o.threads else None,
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


def main(argv: list[str] | None = None, *, prog: str = "molgen benchmark", **defaults: Any) -> int:
    """The command without the ``molgen`` entry point: the same options (``defaults`` change theirs),
    logging and one-line errors as ``molgen benchmark``."""
    check_options("benchmark main()", defaults, [*names(BenchmarkOptions), "verbose", "quiet"])
    parser = command_parser("benchmark", prog=prog)
    parser.set_defaults(**defaults)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose, args.quiet)
    return run_guarded(lambda: run(args, prog=prog), args, prog)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog="python -m molgen.cli.benchmark"))
