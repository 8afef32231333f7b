"""``molgen evaluate``: every evaluation option, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from molgen.options.base import option


@dataclass
class EvaluateOptions:
    """Options of one ``molgen evaluate`` run (the MOSES + GuacaMol metrics of a file of SMILES)."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    input: str = option(None, "generated SMILES: .smi/.txt (one per line), .csv, .parquet or .sdf", positional=True)
    smiles_col: str | None = option(None, "SMILES column of a .csv/.parquet input")
    reference: str = option("moses:test", "main reference: catalog name (moses:test) or file")
    scaffold_reference: str | None = option(None, "second reference for the .../TestSF metrics, e.g. "
                                                  "moses:test_scaffolds")
    train: str | None = option(None, "training set for Novelty and the FCD floor, e.g. moses:train")
    output: str | None = option(None, "write the JSON report here", flags=("-o", "--output"))
    plots: str | None = option(None, "write property histograms (PNG) here", metavar="DIR")
    markdown: str | None = option(None, "also write the table as markdown", metavar="FILE")
    n_jobs: int = option(1, "worker processes / threads (0: all cores)", type=int)
    device: str = option("cpu", "device for ChemNet", choices=("cpu", "cuda"))
    no_extras: bool = option(False, "skip FCD floor, precision/recall/coverage and scaffold coverage",
                             flag_only=True)
    no_guacamol: bool = option(False, "skip the GuacaMol scores", flag_only=True)
    no_cache: bool = option(False, "do not read or write cached reference statistics", flag_only=True)
    model: str | None = option(None, "trained model directory: adds its NLL/Test on the reference (as the Python "
                                     "API does)", metavar="DIR")


OPTIONS = EvaluateOptions
