"""``molgen pretrained``: the models that ship with molgen, loadable by name (``--model NAME``)."""

from __future__ import annotations

import argparse
import json
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="every field (path, likelihood unit, n) as JSON")
    p.add_argument("--verify", action="store_true",
                   help="also check each model's files against its SHA256SUMS (a few MB each)")


def _fmt(v, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def run(args: argparse.Namespace) -> int:
    from molgen.pretrained import ENV, list_pretrained, models_dir

    rows = list_pretrained(verify=args.verify)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 1 if args.verify and any(r["status"] != "ok" for r in rows) else 0
    where = f"{models_dir()}" + (f" (${ENV})" if os.environ.get(ENV) else "")
    if not rows:
        print(f"no shipped models in {where}")
        return 0
    w = max(len(r["name"]) for r in rows) + 2
    print(f"{'name':<{w}}{'family':<13}{'repr.':<9}{'likelihood (kind, object)':<38}{'valid':>7}{'MB':>7}  "
          + ("status  " if args.verify else "") + "description")
    for r in rows:
        like = f"{r['likelihood_kind']}, {r['likelihood_object']}" if r["likelihood_kind"] else "none"
        status = f"{'ok' if r['status'] == 'ok' else 'BAD':<8}" if args.verify else ""
        print(f"{r['name']:<{w}}{_fmt(r['family']):<13}{_fmt(r['representation']):<9}{like:<38}"
              f"{_fmt(r['validity'], '.3f'):>7}{_fmt(r['size_mb'], '.1f'):>7}  {status}{r['description']}")
    print(f"\nfrom {where}; likelihoods in nats/molecule; valid: the validity recorded when the model "
          "shipped (shipped_check.json).\nuse: molgen sample --model NAME -n 1000 -o samples.smi --seed 0; "
          "molgen info NAME; molgen.load(\"NAME\")")
    bad = [r for r in rows if args.verify and r["status"] != "ok"]
    for r in bad:
        print(f"{r['name']}: {r['status']}")
    return 1 if bad else 0
