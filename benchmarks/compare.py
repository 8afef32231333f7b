"""Every family on the same data under the same budget: the comparison table and its plots.

    python benchmarks/compare.py [--budget-minutes 4 | --budget-molecules N] [--families ROW,...]
        [--n 1000] [--nll-n 500] [--seeds 0] [--subset 200000] [--out runs/benchmark] [--name compare]

The same code as ``molgen benchmark`` (``molgen.benchmark.runner.run_benchmark``, options in
``molgen/options/benchmark.py``; ``--help`` lists them with the time estimate of the default budget).
Writes ``benchmarks/results/compare.{json,md}`` and ``benchmarks/results/compare_*.png`` (``--name``
changes the stem), the models under ``--out`` with their manifest ``benchmark.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from molgen.cli.benchmark import main

if __name__ == "__main__":
    sys.exit(main(prog="python benchmarks/compare.py", results=str(Path(__file__).resolve().parent / "results"),
                  name="compare"))
