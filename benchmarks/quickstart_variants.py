"""Variants of the quick-start recipe at one budget in molecules seen: which change buys validity?

    python benchmarks/quickstart_variants.py [--molecules 300000] [--variants NAME ...] [--out runs/qs-variants]
    python benchmarks/quickstart_variants.py --collect runs/qs-variants   # table from finished runs

Each variant trains ``molgen/configs/quickstart.yaml`` with its overrides (one torch thread, seed 0, 1,000
validation molecules carved from train), then draws 2,000 molecules at temperature 1 (seed 0).
Reported per variant: validation NLL (exact, nats/molecule, of the variant's own canonical string),
validity, uniqueness, parameters, molecules/s. No test molecules are used: this is model selection.
Writes ``benchmarks/results/quickstart_variants.{json,md}``. Runs can go in parallel (one per core) and
be collected afterwards with ``--collect``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]
#: name -> training overrides on top of molgen/configs/quickstart.yaml
VARIANTS = {
    "aromatic": {"representation": "smiles"},
    "aromatic-rope": {"representation": "smiles", "model_args": {"backbone.positions": "rope"}},
    "aromatic-L5": {"representation": "smiles", "model_args": {"backbone.n_layers": 5}},
    "aromatic-L6": {"representation": "smiles", "model_args": {"backbone.n_layers": 6}},
    "aromatic-L6-rope": {"representation": "smiles",
                         "model_args": {"backbone.n_layers": 6, "backbone.positions": "rope"}},
    "aromatic-L8-d96-rope": {"representation": "smiles", "model_args": {
        "backbone.n_layers": 8, "backbone.d_model": 96, "backbone.positions": "rope"}},
    "kekule": {"representation": "smiles-kekule"},
}


def _object(representation: str) -> str:
    from molgen.registry import REPRESENTATIONS

    return REPRESENTATIONS.get(representation).likelihood_object


def run_variant(name: str, molecules: int, out: Path) -> dict:
    from molgen.training.train import train

    t = time.time()
    m = train(config=ROOT / "molgen" / "configs" / "quickstart.yaml", out=out / name, max_molecules=molecules,
              max_time=1000, precision="32-true", num_threads=1, progress=False, val_size=1000, **VARIANTS[name])
    s = m.sample(2000, seed=0)
    can = [c for c in s.canonical if c]
    res = {"name": name, "over": VARIANTS[name], "valid": s.validity, "unique": len(set(can)) / max(1, len(can)),
           "final": m.metadata["final"], "train": m.metadata["training"], "wall": time.time() - t}
    (out / f"{name}.json").write_text(json.dumps(res, default=str))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--molecules", type=int, default=300_000)
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("runs/qs-variants"))
    ap.add_argument("--collect", type=Path, default=None, help="only tabulate the finished runs in this folder")
    ap.add_argument("--notes", nargs="*", default=None, help="extra lines for the markdown (where runs came from)")
    args = ap.parse_args()
    if args.collect is None:
        args.out.mkdir(parents=True, exist_ok=True)
        results = [run_variant(v, args.molecules, args.out) for v in args.variants]
    else:
        results = [{**json.loads((args.collect / f"{v}.json").read_text()), "name": v} for v in args.variants
                   if (args.collect / f"{v}.json").exists()]
    rows = [{"variant": r["name"], "representation": r["train"]["representation"],
             "parameters": r["train"]["n_parameters"], "molecules_seen": r["train"]["molecules_seen"],
             "train_molecules_per_s": r["train"]["molecules_per_s"],
             "val NLL (exact, nats/mol)": round(r["final"]["val_nll_nats_per_molecule"], 2),
             "likelihood object": _object(r["train"]["representation"]),
             "valid (2,000 at T=1)": r["valid"], "unique": round(r["unique"], 4)} for r in results]
    write_results("quickstart_variants", {"args": vars(args), "runs": results}, rows,
                  "Quick-start variants at one budget in molecules seen",
                  ["Validation molecules carved from train (1,000, seed 0); no test molecules. Each run one torch "
                   "thread; runs shared the 2-core machine, so molecules/s are not comparable between rows.",
                   "Command: python benchmarks/quickstart_variants.py " + " ".join(sys.argv[1:])]
                  + (args.notes or []))


if __name__ == "__main__":
    main()
