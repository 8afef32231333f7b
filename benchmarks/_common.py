"""Shared bits of the benchmark scripts: machine/version info and writing JSON + markdown results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """CPU, cores, threads, GPU, platform, versions, date: one definition, in molgen.benchmark.runner."""
    from molgen.benchmark.runner import machine_info

    return machine_info()


def write_results(name: str, payload: dict[str, Any], table_rows: list[dict[str, Any]], title: str,
                  notes: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md`` (a markdown table plus notes)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    jpath = RESULTS / f"{name}.json"
    jpath.write_text(json.dumps(payload, indent=1, default=str))
    cols = list(dict.fromkeys(k for r in table_rows for k in r))
    lines = [f"# {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table_rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    m = payload["machine"]
    lines += ["", f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, "
              f"GPU: {m['cuda'] or 'none'}; versions: "
              + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + f"; {m['date']}."]
    for n in notes or []:
        lines += ["", n]
    mpath = RESULTS / f"{name}.md"
    mpath.write_text("\n".join(lines) + "\n")
    return jpath, mpath


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)
