"""CLI start-up: wall time of ``molgen --help`` / ``molgen models`` / ``molgen train --help`` /
``molgen sample --help`` / ``molgen data list`` (median of several runs, each a fresh interpreter) and
``python -X importtime`` for ``--help``: the slowest imports, and whether torch or Lightning are among
them. Target (issue 23): < 0.3 s. Every parser is generated from the light ``molgen.options.<command>``
modules; a command's ``molgen.cli.<command>`` module (and torch) is imported only when it runs.

    python benchmarks/cli_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"molgen --help": ["--help"], "molgen models": ["models"], "molgen train --help": ["train", "--help"],
            "molgen sample --help": ["sample", "--help"], "molgen data list": ["data", "list"]}
TARGET_S = 0.3


def _run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "molgen", *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def importtime(args: list[str]) -> tuple[float, list[tuple[str, float]]]:
    """Total import seconds and the 10 slowest modules (cumulative) of ``python -X importtime -m molgen``."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "molgen", *args], cwd=ROOT, capture_output=True,
                       text=True)
    rows = []  # (module, cumulative seconds, nesting depth)
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cum_us, name = line[len("import time:"):].split("|", 2)
        depth = len(name) - len(name.lstrip()) - 1
        rows.append((name.strip(), int(cum_us) / 1e6, depth))
    total = sum(c for _, c, d in rows if d == 0)
    return total, [(n, c) for n, c, _ in sorted(rows, key=lambda r: -r[1])[:10]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    load = [os.getloadavg()[0]]
    _run(["--help"])  # warm the file-system cache once
    walls = {label: [_run(a) for _ in range(args.repeats)] for label, a in COMMANDS.items()}
    load.append(os.getloadavg()[0])
    total, slowest = importtime(["--help"])
    heavy = [n for n, _ in slowest if n.split(".")[0] in ("torch", "lightning", "pytorch_lightning", "rdkit")]
    payload = {"repeats": args.repeats, "target_s": TARGET_S,
               "wall_seconds": walls, "median_s": {k: statistics.median(v) for k, v in walls.items()},
               "help_import_seconds": total, "help_slowest_imports": slowest,
               "heavy_imports_in_help": heavy, "loadavg_start_end": load}
    rows = [{"command": k, "median s": statistics.median(v), "min s": min(v), "max s": max(v),
             f"under {TARGET_S:g} s": statistics.median(v) < TARGET_S} for k, v in walls.items()]
    from benchmarks._common import write_results

    write_results("cli_startup", payload, rows, "CLI start-up time (fresh interpreter each run)",
                  notes=[f"Median of {args.repeats} runs of `python -m molgen ...` each; load average "
                         f"{load[0]:.1f} -> {load[1]:.1f} (a shared 2-core machine). `python -X importtime -m molgen "
                         f"--help`: {total:.3f} s of imports; slowest: "
                         + ", ".join(f"{n} {c * 1e3:.0f} ms" for n, c in slowest[:5])
                         + f"; torch / Lightning / RDKit imported: {heavy or 'none'}."])
    for r in rows:
        print(r)
    print("imports for --help:", round(total, 3), "s; heavy:", heavy or "none")


if __name__ == "__main__":
    main()
