"""``molgen pretrained``: the models that ship with molgen, loadable by name (``--model NAME``)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Collection

from molgen.pretrained import ENV, list_pretrained, models_dir


def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def aligned(rows: list[list[str]], *, right: Collection[int] = (), gap: int = 2) -> list[str]:
    """Rows of cells as lines whose columns line up: each column as wide as its widest cell (numbers
    in ``right`` right-aligned), ``gap`` spaces between columns; the last column is not padded, so a
    long description runs on without widening the table."""
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))]
        lines.append((" " * gap).join([*cells, r[-1]]).rstrip())
    return lines


def run(args: argparse.Namespace) -> int:
    """The shipped models as an aligned table (or JSON); exit 1 when ``--verify`` finds a bad one."""
    rows = list_pretrained(verify=args.verify)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 1 if args.verify and any(r["status"] != "ok" for r in rows) else 0
    where = f"{models_dir()}" + (f" (${ENV})" if os.environ.get(ENV) else "")
    if not rows:
        print(f"no shipped models in {where}")
        return 0
    header = ["name", "family", "repr.", "likelihood (kind, object)", "valid", "MB",
              *(["status"] if args.verify else []), "description"]
    table = [[r["name"], _fmt(r["family"]), _fmt(r["representation"]),
              f"{r['likelihood_kind']}, {r['likelihood_object']}" if r["likelihood_kind"] else "none",
              _fmt(r["validity"], ".3f"), _fmt(r["size_mb"], ".1f"),
              *([("ok" if r["status"] == "ok" else "BAD")] if args.verify else []), r["description"]]
             for r in rows]
    for line in aligned([header, *table], right={header.index("valid"), header.index("MB")}):
        print(line)
    print(f"\nfrom {where}; likelihoods in nats/molecule; valid: the validity recorded when the model "
          "shipped (shipped_check.json).\nuse: molgen sample --model NAME -n 1000 -o samples.smi --seed 0; "
          "molgen info NAME; molgen.load(\"NAME\")")
    bad = [r for r in rows if args.verify and r["status"] != "ok"]
    for r in bad:
        print(f"{r['name']}: {r['status']}")
    return 1 if bad else 0
