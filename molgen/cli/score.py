"""``molgen score``: per-molecule log-likelihood of every row of a library, streamed in chunks."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help=".smi / .csv / .parquet / .sdf library")
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("-o", "--output", required=True, help=".csv / .tsv / .parquet (one row per input row)")
    p.add_argument("--smiles-col", default=None)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--chunk-size", type=int, default=20_000, help="rows read and written at a time")
    p.add_argument("--kind", default=None,
                   help="likelihood estimator where the family has several (vae: elbo | iwae | iwae-K); "
                        "default: the model's own (see `molgen info`)")
    p.add_argument("--condition", action="append", default=None, metavar="PROPERTY=VALUE",
                   help="conditional models: score log p(x | c) for this condition (repeatable)")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from tqdm.auto import tqdm

    from molgen.api import load
    from molgen.conditioning import parse_condition
    from molgen.scoring import iter_score_file, write_table

    model = load(args.model, map_location=args.device).to(args.device)
    model.require("log_likelihood")
    label = model.likelihood_label(args.kind)
    condition = parse_condition(args.condition)
    if condition is not None:
        condition, _ = model._check_condition(condition, None)  # once, before any work
    counts: Counter[str] = Counter()
    bar = tqdm(desc="scoring", unit="mol", disable=args.quiet)

    def chunks():
        for df in iter_score_file(model, args.input, smiles_col=args.smiles_col, chunk_size=args.chunk_size,
                                  batch_size=args.batch_size, kind=args.kind, condition=condition):
            counts.update(s if not s.startswith("oov_token") else "oov_token" for s in df.status)
            bar.update(len(df))
            yield df

    n = write_table(chunks(), args.output)
    bar.close()
    if not args.quiet:
        given = f" given {condition}" if condition else ""
        print(f"scored {n} rows -> {args.output} (likelihood: {label}{given}); "
              + ", ".join(f"{k}: {v}" for k, v in counts.most_common()), file=sys.stderr)
    return 0
