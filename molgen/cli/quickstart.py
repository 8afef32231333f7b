"""``molgen quickstart``: the main job for a newcomer.

Trains the quick-start SMILES transformer (``configs/quickstart.yaml``) on the embedded MOSES data,
samples 1,000 molecules at temperature 1 and prints an evaluation with the likelihood first.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/quickstart", help="model directory to write")
    p.add_argument("--config", default="quickstart", help="config name in configs/ or a path")
    p.add_argument("--max-time", type=float, default=None, metavar="MINUTES", help="override the training budget")
    p.add_argument("-n", type=int, default=1000, help="number of samples to evaluate")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from molgen.cli.train import resolve_config
    from molgen.evaluation import evaluate_samples
    from molgen.training.train import train

    out = Path(args.out)
    model = train(model=None, data=None, out=out, config=resolve_config(args.config), max_time=args.max_time,
                  seed=args.seed, progress=not args.quiet)
    samples = model.sample(args.n, seed=args.seed, temperature=1.0)
    (out / "samples.smi").write_text("".join(f"{s}\n" for s in samples.smiles))
    report = evaluate_samples(model, samples)
    (out / "evaluation.json").write_text(json.dumps(report, indent=1, default=str))
    print(format_report(report))
    print(f"\nmodel: {out}  samples: {out / 'samples.smi'}  report: {out / 'evaluation.json'}")
    return 0


def format_report(report: dict) -> str:
    lines = [f"{'metric':<34}value"]
    for k, v in report["metrics"].items():
        lines.append(f"{k:<34}{v:.4f}" if isinstance(v, float) else f"{k:<34}{v}")
    return "\n".join(lines)
