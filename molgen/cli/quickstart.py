"""``molgen quickstart``: the main job for a newcomer.

Trains the quick-start SMILES transformer (``molgen/configs/quickstart.yaml``) on the embedded MOSES data,
samples 1,000 molecules at temperature 1 and prints the evaluation, likelihood first.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from molgen.configs import resolve_config
from molgen.metrics import Evaluator
from molgen.training.train import train


def run(args: argparse.Namespace) -> int:
    """Train, sample ``-n`` molecules at temperature 1, evaluate them; everything lands in ``--out``."""
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
