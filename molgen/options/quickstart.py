"""``molgen quickstart``: the options of the newcomer's first run, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option


@dataclass
class QuickstartOptions:
    """Train the quick-start model, sample it and evaluate it."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    out: str = option("runs/quickstart", "model directory to write")
    config: str = option("quickstart", "config name in molgen's configs or a path")
    max_molecules: int | None = option(None, "override the training budget in molecules seen (config: 300,000)",
                                       type=int, metavar="N")
    max_time: float | None = option(None, "override the safety cap on training minutes (config: 30)", type=float,
                                    metavar="MINUTES")
    n: int = option(1000, "number of samples to evaluate", type=int, flags=("-n",))
    seed: int = option(0, "random seed", type=int)
    n_jobs: int = option(2, "processes for the evaluation", type=int)


OPTIONS = QuickstartOptions
