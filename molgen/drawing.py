"""Molecule grids for notebooks: SVG drawings with the row's values under each molecule.

``molgen.draw(df_or_smiles)`` returns a :class:`MoleculeGrid` that Jupyter shows as HTML (its
``_repr_html_``); ``SampleResult`` and ``.draw()`` use it. Invalid SMILES get an empty cell that
says so, never a silent gap, and the grid says how many rows it leaves out beyond ``n``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from rdkit import Chem
from rdkit.Chem.Draw import rdMolDraw2D

from molgen.chem import quiet_rdkit
from molgen.data.io import smiles_column
from molgen.errors import ConfigError, strict

#: columns shown under each molecule by default, when present
DEFAULT_LEGEND = ("id", "name", "log_likelihood", "status", "qed", "logp", "mw", "sa", "keep", "reason")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def _svg(smiles: Any, size: tuple[int, int]) -> str | None:
    if not isinstance(smiles, str) or not smiles:
        return None
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return None
        d = rdMolDraw2D.MolDraw2DSVG(*size)
        d.drawOptions().clearBackground = False
        rdMolDraw2D.PrepareAndDrawMolecule(d, mol)
        d.FinishDrawing()
        svg = d.GetDrawingText()
    return svg[svg.find("<svg"):]  # drop the XML declaration so it can sit inside HTML


class MoleculeGrid:
    """An HTML grid of molecules with their values; shown by Jupyter, or ``.to_html()`` / ``.save(path)``."""

    @strict
    def __init__(self, smiles: list[Any], legends: list[list[tuple[str, Any]]], *, n_total: int,
                 per_row: int, size: tuple[int, int], title: str = "") -> None:
        self.smiles, self.legends, self.n_total = smiles, legends, n_total
        self.per_row, self.size, self.title = per_row, size, title

    def __len__(self) -> int:
        return len(self.smiles)

    def __repr__(self) -> str:
        return f"MoleculeGrid({len(self)} of {self.n_total} molecules; shown as HTML in a notebook)"

    def to_html(self) -> str:
        w, h = self.size
        cells = []
        for s, legend in zip(self.smiles, self.legends):
            svg = _svg(s, self.size)
            body = svg if svg is not None else (
                f'<div style="width:{w}px;height:{h}px;display:flex;align-items:center;justify-content:center;'
                f'color:#a00">invalid: {html.escape(str(s) if s else "(empty)")[:40]}</div>')
            text = "<br>".join(f"<b>{html.escape(str(k))}</b> {html.escape(_fmt(v))}" for k, v in legend)
            cells.append(f'<div style="width:{w}px;margin:2px;font-size:11px;text-align:center;'
                         f'word-wrap:break-word">{body}<div>{text}</div></div>')
        more = (f"<div style='font-size:11px'>showing {len(self)} of {self.n_total} rows</div>"
                if self.n_total > len(self) else "")
        head = f"<div style='font-weight:bold'>{html.escape(self.title)}</div>" if self.title else ""
        return (f"{head}<div style='display:grid;grid-template-columns:repeat({self.per_row},{w + 4}px)'>"
                + "".join(cells) + f"</div>{more}")

    def _repr_html_(self) -> str:
        return self.to_html()

    @strict
    def save(self, path: str) -> None:
        """Write a standalone HTML page."""
        with open(path, "w") as f:
            f.write(f"<html><body>{self.to_html()}</body></html>")


@strict
def draw(data: Any, *, smiles_col: str | None = None, legend: Sequence[str] | None = None, n: int = 24,
         per_row: int = 6, size: tuple[int, int] = (180, 150), title: str = "") -> MoleculeGrid:
    """A grid of the first ``n`` molecules of a DataFrame (score / filter / sample table), a Series, a
    list of SMILES or a :class:`~molgen.models.results.SampleResult`, with the ``legend`` columns (default:
    those of :data:`DEFAULT_LEGEND` present) under each molecule."""
    if not isinstance(n, int) or n < 1 or not isinstance(per_row, int) or per_row < 1:
        raise ConfigError(f"n and per_row must be positive integers, got n={n!r}, per_row={per_row!r}")
    if hasattr(data, "to_frame") and hasattr(data, "canonical") and hasattr(data, "smiles"):  # a SampleResult
        data = data.to_frame()
        smiles_col = smiles_col or "smiles"
    if isinstance(data, pd.Series):
        data = pd.DataFrame({"smiles": data})
    elif isinstance(data, (str, bytes)):
        raise TypeError(f"draw takes a DataFrame or a list of SMILES, not a single string; pass [{data!r}]")
    elif not isinstance(data, pd.DataFrame):
        data = pd.DataFrame({"smiles": list(data)})
    col = smiles_column(data, smiles_col)
    if legend is None:
        legend = [c for c in DEFAULT_LEGEND if c in data.columns and c != col]
    else:
        missing = [c for c in legend if c not in data.columns]
        if missing:
            raise ConfigError(f"legend: no column(s) {missing}; columns are {list(data.columns)}")
    head = data.head(n)
    legends = [[(c, row[c]) for c in legend] for _, row in head.iterrows()]
    if not isinstance(head.index, pd.RangeIndex):  # an index the user chose is an identifier: show it
        legends = [[("index", i), *lg] for i, lg in zip(head.index, legends)]
    return MoleculeGrid(head[col].tolist(), legends, n_total=len(data), per_row=per_row, size=tuple(size),
                        title=title)
