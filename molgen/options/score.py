"""``molgen score``: every scoring option, declared once.

``--standardize`` is checked against :data:`molgen.scoring.STANDARDIZE_MODES` when the command runs (that
module imports torch; this one must not), with an error that lists the modes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option

STANDARDISATION = ("standardisation (default: none, every row scored as given; the output's `standardized` "
                   "column says what changed in each row)")


@dataclass
class ScoreOptions:
    """Options of one ``molgen score`` run."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    input: str = option(None, ".smi / .csv / .parquet / .sdf library", positional=True)
    model: str = option(None, "model directory or pretrained model name (molgen pretrained)", required=True)
    output: str = option(None, ".csv / .tsv / .parquet (one row per input row)", flags=("-o", "--output"),
                         required=True)
    smiles_col: str | None = option(None, "SMILES column of a .csv / .parquet input")
    keep_cols: str | None = option(None, "input columns carried into the output, first: comma-separated names, "
                                         "'all' or 'none' (default: an ID-like column of a table, the name column "
                                         "of a .smi / .sdf)", metavar="COLS")
    batch_size: int = option(512, "molecules per forward pass", type=int)
    chunk_size: int = option(20_000, "rows read and written at a time", type=int)
    kind: str | None = option(None, "likelihood estimator where the family has several (vae: elbo | iwae | "
                                    "iwae-K); default: the model's own (see `molgen info`)")
    condition: list[str] | None = option(None, "conditional models: score log p(x | c) for this condition "
                                               "(repeatable)", repeat=True, metavar="PROPERTY=VALUE")
    strip_stereo: bool = option(False, "remove stereochemistry before scoring", flag_only=True,
                                group=STANDARDISATION)
    neutralize: bool = option(False, "neutralise charged acids / amines (RDKit Uncharger); a quaternary ammonium "
                                     "stays charged", flag_only=True, group=STANDARDISATION)
    strip_isotopes: bool = option(False, "remove isotope labels before scoring", flag_only=True,
                                  group=STANDARDISATION)
    standardize: str | None = option(None, "like-training: apply each of the above that the model's vocabulary "
                                           "cannot express (no chiral / charged / isotope tokens: what its training "
                                           "data lacked)", metavar="MODE", group=STANDARDISATION)
    device: str = option("cpu", "torch device, e.g. cpu or cuda")
    devices: int = option(1, "processes on this node (the output is the same file as with one)", type=int,
                          metavar="N")
    num_nodes: int = option(1, "nodes sharing the output's file system (one `molgen score` per node, e.g. srun)",
                            type=int, metavar="M")
    node_rank: int | None = option(None, "this node's rank (default: $SLURM_NODEID, $NODE_RANK or $GROUP_RANK, "
                                         "else 0)", type=int, metavar="R")
    threads: int | None = option(None, "torch threads per process (default: cores / N)", type=int)
    resume: bool = option(False, "continue an interrupted run (the chunks in OUTPUT.parts/ are not scored again)",
                          flag_only=True)


OPTIONS = ScoreOptions
