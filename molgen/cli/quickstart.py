"""``molgen quickstart``: the main job for a newcomer.

Trains the quick-start SMILES transformer (``configs/quickstart.yaml``) on the embedded MOSES data,
samples 1,000 molecules at temperature 1 and prints the evaluation, likelihood first.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/quickstart", help="model directory to write")
    p.add_argument("--config", default="quickstart", help="config name in configs/ or a path")
    p.add_argument("--max-molecules", type=int, default=None, metavar="N",
                   help="override the training budget in molecules seen (config: 300,000)")
    p.add_argument("--max-time", type=float, default=None, metavar="MINUTES",
                   help="override the safety cap on training minutes (config: 30)")
    p.add_argument("-n", type=int, default=1000, help="number of samples to evaluate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-jobs", type=int, default=2, help="processes for the evaluation")


def run(args: argparse.Namespace) -> int:
    from molgen.cli.train import resolve_config
    from molgen.metrics import Evaluator
    from molgen.training.train import train

    out = Path(args.out)
    model = train(model=None, data=None, out=out, config=resolve_config(args.config),
                  max_molecules=args.max_molecules, max_time=args.max_time,
                  seed=args.seed, progress=not args.quiet)
    samples = model.sample(args.n, seed=args.seed, temperature=1.0, progress=not args.quiet)
    (out / "samples.smi").write_text("".join(f"{s}\n" for s in samples.smiles))
    evaluator = Evaluator(reference="moses:test", train="moses:train", n_jobs=args.n_jobs)
    report = evaluator.evaluate(samples.smiles, model=model, name="quickstart samples (temperature 1)")
    report.meta["training"] = model.metadata.get("training")
    report.to_json(out / "evaluation.json")
    print(report)
    t = model.metadata["training"]
    print(f"\ntrained {t['steps']} steps in {t['fit_seconds']:.0f} s ({t['molecules_per_s']:.0f} molecules/s, "
          f"{t['molecules_seen']} molecules seen)")
    print(f"model: {out}  samples: {out / 'samples.smi'}  report: {out / 'evaluation.json'}")
    return 0
