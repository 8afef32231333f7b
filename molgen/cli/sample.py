"""``molgen sample``: draw molecules x ~ p(x) from a trained model and write them to a file."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory or pretrained model name (molgen pretrained)")
    p.add_argument("-n", type=int, required=True, help="number of samples (invalid ones are kept and marked)")
    p.add_argument("-o", "--output", required=True,
                   help=".smi (one per line), .csv / .tsv / .parquet (all columns) or .sdf (molecules and values)")
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
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="processes drawing shards in parallel (default one shard per process)")
    p.add_argument("--shards", type=int, default=None, metavar="S",
                   help="split the draw into S shards, shard k seeded from (seed, k): the file depends on "
                        "--seed and --shards only, not on --devices (default: --devices)")


def run(args: argparse.Namespace) -> int:
    from molgen.api import load
    from molgen.conditioning import parse_condition
    from molgen.data.io import WRITE_SUFFIXES, suffix_of, write_molecules
    from molgen.pretrained import resolve_model

    suffix_of(args.output, WRITE_SUFFIXES, "write samples to")  # before any work
    args.model = str(resolve_model(args.model))  # a shipped name -> its directory (workers get the path)
    model = load(args.model, map_location=args.device).to(args.device)
    shards = args.shards or args.devices
    if shards > 1 or args.devices > 1:
        return _run_sharded(args, model, shards)
    res = model.sample(args.n, seed=args.seed, temperature=args.temperature, batch_size=args.batch_size,
                       condition=parse_condition(args.condition), guidance=args.guidance, progress=not args.quiet)
    out = args.output  # .smi: one SMILES per line as generated; tables and .sdf: every column
    write_molecules(res.to_frame(), out, smiles_col="smiles")
    if not args.quiet:
        drawn = " (drawn; pass --seed to repeat it)" if args.seed is None else ""
        print(f"wrote {len(res)} samples to {out} (valid {res.validity:.3f}, sampler {res.sampler}, "
              f"temperature {args.temperature}, seed {res.seed}{drawn})", file=sys.stderr)
    return 0


def _run_sharded(args: argparse.Namespace, model, shards: int) -> int:
    """``--devices`` / ``--shards``: disjoint seeded shards, one file in shard order."""
    import torch

    from molgen.conditioning import parse_condition
    from molgen.data.io import write_molecules
    from molgen.sharding import sample_sharded

    seed = args.seed if args.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
    df = sample_sharded(model, args.n, seed=seed, n_shards=shards, processes=min(args.devices, shards),
                        model_path=args.model, device=args.device, temperature=args.temperature,
                        batch_size=args.batch_size, condition=parse_condition(args.condition), guidance=args.guidance)
    write_molecules(df, args.output, smiles_col="smiles")
    if not args.quiet:
        drawn = " (drawn; pass --seed to repeat it)" if args.seed is None else ""
        print(f"wrote {len(df)} samples to {args.output} (valid {df['valid'].mean():.3f}, {shards} shards by "
              f"{min(args.devices, shards)} process(es), temperature {args.temperature}, seed {seed}{drawn})",
              file=sys.stderr)
    return 0
