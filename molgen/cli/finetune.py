"""``molgen finetune``: train a saved model further on a focused set (e.g. one's own actives)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="base", required=True, metavar="DIR", help="the model directory to start from")
    p.add_argument("--data", required=True, help=".smi / .csv / .parquet / .sdf file of molecules to fine-tune on")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--smiles-col", default=None, help="SMILES column of a .csv/.parquet file")
    p.add_argument("--max-epochs", type=int, default=None, help="passes over the data (default 10 if no budget)")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-molecules", type=int, default=None, metavar="N")
    p.add_argument("--max-time", type=float, default=None, metavar="MINUTES")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--freeze", action="append", default=None, metavar="PART",
                   help="keep a part fixed (repeatable): embeddings, blocks:N (the first N blocks), encoder, prior "
                        "(what the model has; anything else lists what it accepts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default=None, help="32-true | bf16-mixed (default: measured, as molgen train)")
    p.add_argument("--accelerator", default="auto", help="auto | cpu | gpu")


def run(args: argparse.Namespace) -> int:
    from molgen.training.finetune import finetune

    model = finetune(args.base, args.data, args.out, max_epochs=args.max_epochs, max_steps=args.max_steps,
                     max_molecules=args.max_molecules, max_time=args.max_time, lr=args.lr,
                     batch_size=args.batch_size, freeze=args.freeze, smiles_col=args.smiles_col, seed=args.seed,
                     precision=args.precision, accelerator=args.accelerator, progress=not args.quiet)
    ft = model.metadata["finetune"]
    summary = {"out": args.out, "from": args.base, "model": model.name,
               "rows": ft["data"]["rows"], "status_counts": ft["data"]["status_counts"],
               "finetune_set_nll": {k: ft["finetune_set_nll"][k] for k in ("before", "after")},
               **model.metadata.get("final", {})}
    print(json.dumps(summary, indent=1))
    if ft["data"]["left_out"] and not args.quiet:
        print(f"{ft['data']['left_out']} row(s) the base model cannot represent were left out: see "
              f"{args.out}/finetune_data.csv", file=sys.stderr)
    return 0
