"""Quality of the quick-start recipe: train ``molgen/configs/quickstart.yaml`` (300,000 molecules seen, at
most 30 minutes), sample 1,000 molecules at temperature 1, evaluate them. Targets (issues 2 and 7):
validity >= 0.90, uniqueness >= 0.95 at 300,000 molecules seen.

    python benchmarks/quickstart_quality.py [--config quickstart] [--molecules 300000] [--max-time 15]
                                            [--out runs/bench-quickstart] [--skip-train]

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
    from molgen.configs import resolve_config
    from molgen.metrics import Evaluator
    from molgen.training.train import train

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="quickstart")
    ap.add_argument("--out", default="runs/bench-quickstart")
    ap.add_argument("--skip-train", action="store_true", help="evaluate an existing --out model")
    ap.add_argument("--molecules", type=int, default=None,
                    help="budget in molecules seen (default: the config's max_molecules)")
    ap.add_argument("--max-time", type=float, default=None, metavar="MINUTES",
                    help="time budget / safety cap (default: the config's max_time)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for training")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nll-n", type=int, default=10_000, help="test molecules for the NLL")
    ap.add_argument("--name", default="quickstart_quality")
    args = ap.parse_args()

    if args.skip_train:
        model = load(args.out)
    else:
        model = train(config=resolve_config(args.config), out=args.out, seed=args.seed, progress=False,
                      max_molecules=args.molecules, max_time=args.max_time, num_threads=args.threads)
    samples = model.sample(args.n, seed=args.seed, temperature=1.0)
    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=2, nll_n=args.nll_n)
    report = ev.evaluate(samples.smiles, model=model, name=f"{args.n} samples at temperature 1")
    m = report.metrics
    t = model.metadata["training"]
    row = {"representation": t.get("representation"), "parameters": t.get("n_parameters"),
           "budget": f"{t.get('max_molecules')} molecules / {t.get('max_time')} min",
           "fit_minutes": t["fit_seconds"] / 60, "train_minutes": t["train_seconds"] / 60,
           "molecules_seen": t["molecules_seen"], "train_molecules_per_s": t["molecules_per_s"],
           "precision": t["precision"],
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
             "Precision choice: " + str({k: t.get("precision_choice", {}).get(k)
                                         for k in ("how", "choice", "molecules_per_s")}),
             "Command: python benchmarks/quickstart_quality.py " + " ".join(sys.argv[1:])]
    payload = {"config": str(resolve_config(args.config)), "row": row, "targets": verdict,
               "report": report.to_dict(), "training": t}
    _, md = write_results(args.name, payload, [row], "Quick-start transformer quality", notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
