"""Quality of the quick-start recipe: train ``configs/quickstart.yaml`` (15 minutes of CPU), sample
1,000 molecules at temperature 1, evaluate them. Targets (issue 2): validity >= 0.90, uniqueness >= 0.95.

    python benchmarks/quickstart_quality.py [--config quickstart] [--out runs/bench-quickstart] [--skip-train]

Writes ``benchmarks/results/quickstart_quality.{json,md}``: test-set NLL (exact, nats per molecule),
validity, uniqueness, novelty, FCD/Test with the real-vs-real floor at the same n, and the training
throughput that produced them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

TARGETS = {"valid": 0.90, "unique@1000": 0.95}


def main() -> None:
    from molgen.api import load
    from molgen.cli.train import resolve_config
    from molgen.metrics import Evaluator
    from molgen.training.train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="quickstart")
    ap.add_argument("--out", default="runs/bench-quickstart")
    ap.add_argument("--skip-train", action="store_true", help="evaluate an existing --out model")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nll-n", type=int, default=10_000, help="test molecules for the NLL")
    ap.add_argument("--name", default="quickstart_quality")
    args = ap.parse_args()

    if args.skip_train:
        model = load(args.out)
    else:
        model = train(config=resolve_config(args.config), out=args.out, seed=args.seed, progress=False)
    samples = model.sample(args.n, seed=args.seed, temperature=1.0)
    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=2, nll_n=args.nll_n)
    report = ev.evaluate(samples.smiles, model=model, name=f"{args.n} samples at temperature 1")
    m = report.metrics
    t = model.metadata["training"]
    row = {"representation": model.tokenizer.representation, "parameters": model.n_parameters(),
           "fit_minutes": t["fit_seconds"] / 60, "molecules_seen": t["molecules_seen"],
           "train_molecules_per_s": t["molecules_per_s"], "precision": t["precision"],
           "NLL/Test (exact, nats/mol)": m.get("NLL/Test"), "valid": m["valid"],
           "unique@1000": m["unique@1000"], "Novelty": m.get("Novelty"), "FCD/Test": m.get("FCD/Test")}
    row["FCDfloor/Test (real vs real, same n)"] = m.get("FCDfloor/Test")
    row["recall"], row["coverage"] = m.get("recall"), m.get("coverage")
    verdict = {k: {"target": v, "measured": m[k], "met": bool(m[k] >= v), "shortfall": max(0.0, v - m[k])}
               for k, v in TARGETS.items()}
    def _verdict(k: str, v: dict) -> str:
        status = "met" if v["met"] else f"missed by {v['shortfall']:.3f}"
        return f"{k} >= {v['target']} -> {v['measured']:.3f} ({status})"

    notes = ["Targets: " + "; ".join(_verdict(k, v) for k, v in verdict.items()),
             f"Command: python benchmarks/quickstart_quality.py --config {args.config}"]
    payload = {"config": str(resolve_config(args.config)), "row": row, "targets": verdict,
               "report": report.to_dict(), "training": t}
    _, md = write_results(args.name, payload, [row], "Quick-start transformer quality", notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
