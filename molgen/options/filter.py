"""``molgen filter``: every filtering option, declared once; a property range is a ``--KEY-min`` /
``--KEY-max`` pair (:data:`RANGE_KEYS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from molgen.options.base import names, option

RANGES = "property ranges (molecules outside are not kept)"


def _bound(which: str, name: str) -> Any:
    return option(None, f"{which} {name}", type=float, group=RANGES)


@dataclass
class FilterOptions:
    """Options of one ``molgen filter`` run; every input row is written with ``keep`` and ``reason``."""

    CLI_DEFAULTS: ClassVar[bool] = True  # no config layer: a flag not given parses as its default

    input: str = option(None, ".smi / .csv / .tsv / .parquet / .sdf file (all its columns are kept)",
                        positional=True)
    output: str = option(None, ".smi / .csv / .tsv / .parquet / .sdf", flags=("-o", "--output"), required=True)
    smiles_col: str | None = option(None, "SMILES column of a .csv / .parquet input")
    novel_against: str | None = option(None, "training set (file or catalog name, e.g. moses:train): molecules in "
                                             "it are not novel", metavar="FILE")
    alerts: str = option("mcf,pains", "structural alerts to apply, comma-separated: mcf, pains, or none "
                                      "(default mcf,pains)")
    rule: list[str] | None = option(None, "drug-likeness rule (repeatable)", repeat=True,
                                    choices=("lipinski", "veber"))
    keep_invalid: bool = option(False, "do not remove invalid SMILES", flag_only=True)
    keep_duplicates: bool = option(False, "do not remove repeated molecules", flag_only=True)
    n_jobs: int = option(1, "worker processes for the properties (large files) and for standardising a "
                            "--novel-against set that has no shipped or cached hashes", type=int)
    only_kept: bool = option(False, "write only the molecules that pass (default: every row, with keep and "
                                    "reason)", flag_only=True)
    qed_min: float | None = _bound("minimum", "QED")
    qed_max: float | None = _bound("maximum", "QED")
    logp_min: float | None = _bound("minimum", "Crippen logP")
    logp_max: float | None = _bound("maximum", "Crippen logP")
    mw_min: float | None = _bound("minimum", "molecular weight")
    mw_max: float | None = _bound("maximum", "molecular weight")
    sa_min: float | None = _bound("minimum", "SA score")
    sa_max: float | None = _bound("maximum", "SA score")
    tpsa_min: float | None = _bound("minimum", "TPSA")
    tpsa_max: float | None = _bound("maximum", "TPSA")
    hbd_min: float | None = _bound("minimum", "H-bond donors")
    hbd_max: float | None = _bound("maximum", "H-bond donors")
    hba_min: float | None = _bound("minimum", "H-bond acceptors")
    hba_max: float | None = _bound("maximum", "H-bond acceptors")
    rotb_min: float | None = _bound("minimum", "rotatable bonds")
    rotb_max: float | None = _bound("maximum", "rotatable bonds")


OPTIONS = FilterOptions
#: the properties with a range (``--qed-min`` / ``--qed-max``, ...), in flag order
RANGE_KEYS: tuple[str, ...] = tuple(n.removesuffix("_min") for n in names(FilterOptions) if n.endswith("_min"))
