"""``molgen benchmark`` / :func:`molgen.benchmark.runner.run_benchmark`: every option, declared once.

The rows come from the benchmark's row table (:mod:`molgen.benchmark.rows`); :func:`customize` adds what
a field cannot express (the mutually exclusive budgets, the command's long description).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from molgen.benchmark.rows import DEFAULT_ROWS, ROW_NAMES
from molgen.options import base
from molgen.options.base import option, spec_of

DEFAULT_BUDGET_MINUTES = 4.0
DEFAULT_TIME_CAP_MINUTES = 120.0  # with a budget in molecules seen: the safety cap per family
DEFAULT_N = 1000
DEFAULT_NLL_N = 500
DEFAULT_SUBSET = 200_000
DEFAULT_VAL_SIZE = 1000
#: ancestral steps of the masked-diffusion sampler, as a fraction of the canvas length N
DIFFUSION_STEPS = {"full": 1, "half": 2, "quarter": 4, "eighth": 8}
DEFAULT_DIFFUSION_STEPS = "quarter"

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

#: options :func:`customize` adds itself: one budget or the other (argparse's mutually exclusive group)
BUDGETS = ("budget_minutes", "budget_molecules")


@dataclass
class BenchmarkOptions:
    """Options of one benchmark run (the defaults are :func:`~molgen.benchmark.runner.run_benchmark`'s)."""

    families: list | None = option(None, f"rows to run, comma-separated or repeated ('all': every row); accepted: "
                                         f"{', '.join(ROW_NAMES)}; default: {', '.join(DEFAULT_ROWS)}",
                                   repeat=True, metavar="ROW[,ROW...]")
    # the two budgets: on the command line through customize() (one or the other), hence cli=False here
    budget_minutes: float | None = option(None, f"training wall clock per family (default {DEFAULT_BUDGET_MINUTES:g}); "
                                                "the configs' molecule / step / epoch caps are removed so the clock "
                                                "decides", type=float, metavar="M", cli=False)
    budget_molecules: int | None = option(None, "budget in molecules seen per family (the same models on every "
                                                "machine); --time-cap is the safety cap", type=int, metavar="N",
                                          cli=False)
    time_cap: float | None = option(None, f"with --budget-molecules: minutes of training at most per family "
                                          f"(default {DEFAULT_TIME_CAP_MINUTES:g})", type=float, metavar="MINUTES")
    n: int = option(DEFAULT_N, "samples per row, the same for every row", type=int, flags=("-n", "--n"))
    nll_n: int = option(DEFAULT_NLL_N, f"test molecules every likelihood row scores (a fixed subset, seed 0; default "
                                       f"{DEFAULT_NLL_N})", type=int, metavar="N")
    seeds: list = option([0], "train each row once per seed and report mean ± spread (default: 0)", type=int,
                         metavar="SEED", nargs="+")
    subset: int = option(DEFAULT_SUBSET, f"random subset of the training data for every row (0: all; default "
                                         f"{DEFAULT_SUBSET:,})", type=int, metavar="N")
    val_size: int = option(DEFAULT_VAL_SIZE, "validation molecules carved from the training data, the same for every "
                                             "row", type=int, metavar="N")
    data: str = option("moses", "training data: 'moses' (embedded), a catalog name or a file")
    reference: str = option("moses:test", "reference set of the evaluation and the NLL")
    scaffold_reference: str = option("moses:test_scaffolds", "second reference (the .../TestSF metrics)")
    out: str = option("runs/benchmark", "model directories: OUT/<row>/seed<k>/")
    results: str = option("benchmarks/results", "folder of the table and the plots")
    name: str = option("compare", "file name stem of the table and the plots")
    config_dir: str | None = option(None, "folder of the rows' configs (<row>.yaml, else the row's config name; "
                                          "default: molgen's configs)", metavar="DIR")
    autoencoder: str | None = option(None, "a trained vae directory for the gan row (default: the vae row's model)",
                                     metavar="DIR")
    diffusion_steps: str = option(DEFAULT_DIFFUSION_STEPS, "ancestral steps of the diffusion rows' sampler: N, N/2, "
                                                           "N/4 or N/8 of the canvas length (default quarter: N/4, "
                                                           "2.6x faster than N on CPU)", choices=list(DIFFUSION_STEPS))
    accelerator: str | None = option(None, "auto | cpu | gpu (training, sampling, scoring, ChemNet)")
    devices: Any = option(None, "devices per training run (default 1)")
    precision: str | None = option(None, "32-true | bf16-mixed | 16-mixed (default: the config's, else bf16-mixed on "
                                         "GPU and the faster of fp32 / bf16 on CPU, measured)")
    resume: bool = option(False, "reuse the finished models under OUT and continue interrupted runs from their "
                                 "checkpoints", flag_only=True)
    threads: int | None = option(None, "torch threads for training, sampling and scoring (default: torch's choice)",
                                 type=int, metavar="N")
    n_jobs: int = option(2, "processes for standardization and the evaluation", type=int)
    no_plots: bool = option(False, "write the table only", flag_only=True)


OPTIONS = BenchmarkOptions


def _add(target: Any, name: str) -> None:
    """Add the option ``name`` of :class:`BenchmarkOptions` from its declaration (help, type, metavar)."""
    spec = spec_of(BenchmarkOptions, name)
    target.add_argument("--" + name.replace("_", "-"), dest=name, type=spec.type, metavar=spec.metavar,
                        default=None, help=spec.help)


def customize(parser: argparse.ArgumentParser) -> None:
    """The description and the two budgets (one or the other)."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    budget = parser.add_mutually_exclusive_group()
    for name in BUDGETS:
        _add(budget, name)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of the command on ``parser``: the generated ones, then :func:`customize`'s (what
    :func:`molgen.cli.main.add_command_arguments` does), without importing the CLI."""
    base.add_arguments(parser, BenchmarkOptions)
    customize(parser)
