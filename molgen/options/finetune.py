"""``molgen finetune`` / :func:`molgen.finetune`: every fine-tuning option, declared once.

The CLI parser and the Python signature of :func:`molgen.finetune` (its defaults, and the list an unknown
keyword's error gives) are generated from :class:`FinetuneOptions`; ``model``, ``data`` and ``out`` are the
function's positional arguments (``--from``, ``--data``, ``--out`` on the command line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molgen.options.base import option

if TYPE_CHECKING:  # pragma: no cover
    from molgen.data.io import SmilesSource
    from molgen.models.base import GenerativeModel

BUDGET = "budget (the first one spent ends the run; 10 epochs if none is given)"


@dataclass
class FinetuneOptions:
    """Options of one fine-tuning run (the defaults are :func:`molgen.finetune`'s)."""

    model: str | Path | GenerativeModel = option(None, "the model directory to start from (or a shipped name)", flags=("--from",),
                        metavar="DIR", required=True)
    data: SmilesSource = option(None, ".smi / .csv / .parquet / .sdf file of molecules to fine-tune on", required=True)
    out: str | Path = option(None, "output model directory", required=True)
    max_epochs: int | None = option(None, "passes over the data (default 10 if no budget)", type=int, group=BUDGET)
    max_time: float | None = option(None, "minutes of training (validation excluded)", type=float,
                                    metavar="MINUTES", group=BUDGET)
    max_molecules: int | None = option(None, "molecules seen", type=int, metavar="N", group=BUDGET)
    max_steps: int | None = option(None, "optimizer steps (batches)", type=int, group=BUDGET)
    lr: float = option(5e-4, "peak learning rate (default 5e-4)", type=float)
    warmup_steps: int = option(10, "linear warm-up steps", type=int, cli=False)
    batch_size: int = option(32, "molecules per batch and device", type=int)
    weight_decay: float = option(0.01, "AdamW weight decay", type=float, cli=False)
    freeze: str | Sequence[str] | None = option(None, "keep a part fixed (repeatable): embeddings, blocks:N (the first N blocks), encoder, "
                               "prior (what the model has; anything else lists what it accepts)",
                         repeat=True, metavar="PART")
    smiles_col: str | None = option(None, "SMILES column of a .csv/.parquet file")
    val_size: int = option(200, "at most this many molecules carved from the data for validation", type=int, cli=False)
    val_every: int | None = option(None, "validation every N batches (default: about once per epoch)", type=int,
                                   cli=False)
    log_every: int | None = option(None, "training metrics reach the CSV log every N batches (default: a few "
                                         "per validation)", type=int, cli=False)
    seed: int = option(0, "random seed", type=int)
    precision: str | None = option(None, "32-true | bf16-mixed (default: measured, as molgen train)")
    accelerator: str = option("auto", "auto | cpu | gpu")
    num_threads: int | None = option(None, "torch threads", type=int, cli=False)
    progress: bool = option(True, "progress bar (on a terminal or in a notebook)", cli=False)
    callbacks: list[Any] | None = option(None, "extra Lightning callbacks", cli=False, yaml=False)


OPTIONS = FinetuneOptions

#: the positional arguments of :func:`molgen.finetune` (the rest are keyword-only)
POSITIONAL = ("model", "data", "out")
