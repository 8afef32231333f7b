"""``molgen sample``: draw molecules x ~ p(x) from a trained model and write them to a file."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("-n", type=int, required=True, help="number of samples (invalid ones are kept and marked)")
    p.add_argument("-o", "--output", required=True, help=".smi (one per line) or .csv/.parquet with columns")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--temperature", type=float, default=1.0,
                   help="1.0 samples the model itself; other values are a different sampler")
    p.add_argument("--condition", action="append", default=None, metavar="PROPERTY=VALUE",
                   help="conditional models: a property target, e.g. --condition qed=0.9 (repeatable)")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help="classifier-free guidance strength (0: the conditional model; guided samples have no "
                        "likelihood)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from molgen.api import load
    from molgen.conditioning import parse_condition
    from molgen.errors import ConfigError

    if not args.output.endswith((".smi", ".csv", ".tsv", ".parquet")):
        raise ConfigError(f"cannot write samples to {args.output!r}: use .smi, .csv, .tsv or .parquet")
    model = load(args.model, map_location=args.device).to(args.device)
    res = model.sample(args.n, seed=args.seed, temperature=args.temperature, batch_size=args.batch_size,
                       condition=parse_condition(args.condition), guidance=args.guidance)
    out = args.output
    if out.endswith((".csv", ".tsv", ".parquet")):
        df = res.to_frame()
        if out.endswith(".parquet"):
            df.to_parquet(out, index=False)
        else:
            df.to_csv(out, sep="\t" if out.endswith(".tsv") else ",", index=False)
    else:
        with open(out, "w") as f:
            f.writelines(f"{s}\n" for s in res.smiles)
    if not args.quiet:
        print(f"wrote {len(res)} samples to {out} (valid {res.validity:.3f}, sampler {res.sampler}, "
              f"temperature {args.temperature})", file=sys.stderr)
    return 0
