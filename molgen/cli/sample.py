"""``molgen sample``: draw molecules x ~ p(x) from a trained model and write them to a file.

Every option, a ``--condition`` request included, is checked before the model is loaded (a request
against the condition space in the model's ``config.json``); after sampling, what each requested
property achieved is printed next to the request (:func:`molgen.conditioning.achieved_properties`).
"""

from __future__ import annotations

import argparse
import sys

#: ``--guidance`` when a ``--condition`` is given without one. w = 0 is the conditional model p(x | c)
#: itself, with its exact likelihood. Measured on moses-transformer-qed-logp (benchmarks/results/
#: conditional_guidance.md, w in 0-2): no w > 0 helps both properties. logP is best at w = 0-0.25
#: (MAE 0.60 / 0.57, within noise) and overshoots from w = 0.5 (target 1: 0.96 at w = 0, 0.45 at 0.5,
#: -0.85 at 2); QED gains from w = 0.5-1 (MAE 0.092 -> 0.076) but loses validity (0.74 -> 0.64,
#: 0.63 -> 0.35 for target 0.6). So the default is 0, and guidance is an opt-in for QED-like targets.
DEFAULT_GUIDANCE = 0.0
#: the achieved-properties line measures at most this many valid samples (RDKit takes ~1-3 ms a
#: molecule; 2000 independent draws give the mean to within sd/45)
ACHIEVED_LIMIT = 2000


def add_arguments(p: argparse.ArgumentParser) -> None:
    from molgen.conditioning import EXTRAPOLATION_SD

    p.add_argument("--model", required=True, help="model directory or pretrained model name (molgen pretrained)")
    p.add_argument("-n", type=int, required=True,
                   help="number of samples; every one is written, in order, with an id (sample_000001, ...); "
                        "invalid ones are kept and marked")
    p.add_argument("-o", "--output", required=True,
                   help=".smi (SMILES<TAB>id; ' invalid' after the id of an invalid sample), .csv / .tsv / .parquet "
                        "(id first, every column; valid 1/0, booleans in .parquet) or .sdf (one record per sample "
                        "titled by its id; an invalid one is an empty record with its string and valid 0)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--temperature", type=float, default=1.0,
                   help="1.0 samples the model itself; other values are a different sampler")
    p.add_argument("--condition", action="append", default=None, metavar="PROPERTY=VALUE",
                   help="conditional models: a property target, e.g. --condition qed=0.9 (repeatable); a target "
                        f"more than {EXTRAPOLATION_SD:g} training sd outside the training range is refused (see "
                        "--extrapolate)")
    p.add_argument("--guidance", type=float, default=None, metavar="W",
                   help=f"classifier-free guidance strength (default {DEFAULT_GUIDANCE:g}: the conditional model "
                        "p(x | c); w > 0 pushes further from the unconditional model and can overshoot, guided samples "
                        "have no likelihood; the model card says what w does per property)")
    p.add_argument("--extrapolate", action="store_true",
                   help="sample a --condition target far outside the training range anyway (the model has not "
                        "seen such molecules; expect few valid ones)")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="cpu")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="processes drawing shards in parallel (default one shard per process)")
    p.add_argument("--shards", type=int, default=None, metavar="S",
                   help="split the draw into S shards of consecutive molecules (molecule i is drawn from its own "
                        "random stream keyed by (seed, i)): the file is the single-process file whatever --shards "
                        "and --devices (default: --devices)")
    # fragment-constrained generation (molgen.fragments): one of the three
    p.add_argument("--scaffold", default=None, metavar="SMILES",
                   help="decorate a scaffold: at its attachment points `*`, or without any at any free hydrogen "
                        "(e.g. 'c1ccc2[nH]ccc2c1'); every valid output contains it (column contains_fragments)")
    p.add_argument("--linker", default=None, metavar="FRAG1.FRAG2",
                   help="design a linker between two fragments with one `*` each (e.g. '*C1CCNCC1.*c1ccncc1')")
    p.add_argument("--extend", default=None, metavar="SMILES",
                   help="grow a motif from its one attachment point `*` (e.g. '*C(=O)N1CCOCC1')")


def check_options(args: argparse.Namespace) -> tuple[dict[str, float] | None, float | None]:
    """Every option checked before the model is loaded (seconds): numbers in range, the ``--condition``
    request against the model's condition space read from its ``config.json``. Returns the validated
    (condition, guidance); ``args.model`` becomes the model directory (a shipped name resolved)."""
    from molgen.conditioning import check_request, parse_condition
    from molgen.data.io import WRITE_SUFFIXES, suffix_of
    from molgen.errors import ConfigError
    from molgen.persistence import read_condition_space
    from molgen.pretrained import resolve_model

    condition = parse_condition(args.condition)  # first: it needs nothing but the option
    suffix_of(args.output, WRITE_SUFFIXES, "write samples to")
    for flag, value, ok, need in (("-n", args.n, args.n >= 0, "an integer >= 0"),
                                  ("--temperature", args.temperature, args.temperature > 0, "a number > 0"),
                                  ("--batch-size", args.batch_size, args.batch_size >= 1, "an integer >= 1"),
                                  ("--devices", args.devices, args.devices >= 1, "an integer >= 1"),
                                  ("--shards", args.shards, args.shards is None or args.shards >= 1, "an integer >= 1")):
        if not ok:
            raise ConfigError(f"{flag} must be {need}, got {value}")
    if args.extrapolate and condition is None:
        raise ConfigError("--extrapolate goes with a --condition (e.g. --condition qed=0.9 --extrapolate)")
    given = args.model
    args.model = str(resolve_model(args.model))  # a shipped name -> its directory (workers get the path)
    guidance = args.guidance
    if guidance is None and condition is not None and DEFAULT_GUIDANCE:
        guidance = DEFAULT_GUIDANCE
    return check_request(read_condition_space(args.model), condition, guidance, extrapolate=args.extrapolate,
                         cli=True, model=f"model {given}")


def run(args: argparse.Namespace) -> int:
    import warnings

    from molgen.api import load
    from molgen.conditioning import ConditionWarning
    from molgen.data.io import write_molecules

    condition, guidance = check_options(args)  # before the model is loaded: a bad option costs no wait
    fragments = _check_fragments(args, condition, guidance)
    model = load(args.model, map_location=args.device).to(args.device)
    options = {"condition": condition, "guidance": guidance, **({"extrapolate": True} if args.extrapolate else {})}
    shards = args.shards or args.devices
    if shards > 1 or args.devices > 1:
        return _run_sharded(args, model, shards, options)
    with warnings.catch_warnings():  # an out-of-range request was warned about above: once is enough
        warnings.simplefilter("ignore", ConditionWarning)
        res = model.sample(args.n, seed=args.seed, temperature=args.temperature, batch_size=args.batch_size,
                           progress=not args.quiet, **options, **fragments)
    out = args.output  # every sample written with its id, invalid ones marked (molgen.data.io writers)
    write_molecules(res.to_frame(), out, smiles_col="smiles")
    if not args.quiet:
        drawn = " (drawn; pass --seed to repeat it)" if args.seed is None else ""
        print(f"wrote {len(res)} samples to {out} (valid {res.validity:.3f}, sampler {res.sampler}, "
              f"temperature {args.temperature}, seed {res.seed}{drawn})", file=sys.stderr)
        _print_achieved(res, condition)
        if fragments:
            from molgen.fragments import summary_line

            print(summary_line(res), file=sys.stderr)
    return 0


def _check_fragments(args: argparse.Namespace, condition, guidance) -> dict[str, str]:
    """--scaffold / --linker / --extend, parsed before the model is loaded (one-line errors)."""
    from molgen.errors import ConfigError
    from molgen.fragments import parse_constraint

    given = {k: v for k in ("scaffold", "linker", "extend") if (v := getattr(args, k, None)) is not None}
    if not given:
        return {}
    if len(given) > 1:
        raise ConfigError(f"give one of --scaffold / --linker / --extend, not {' and '.join('--' + k for k in given)}")
    if condition is not None or guidance is not None or args.extrapolate:
        raise ConfigError(f"--{next(iter(given))} cannot be combined with --condition / --guidance / --extrapolate")
    if (args.shards or args.devices) > 1:
        raise ConfigError(f"--{next(iter(given))} samples in one process: drop --devices / --shards")
    parse_constraint(**given)
    return given


def _print_achieved(result, condition: dict[str, float] | None) -> None:
    """After a conditional draw: each requested property's achieved mean ± sd over the valid samples."""
    from molgen.conditioning import achieved_properties, format_achieved

    if condition:
        for line in format_achieved(achieved_properties(result, condition, limit=ACHIEVED_LIMIT)):
            print(line, file=sys.stderr)


def _run_sharded(args: argparse.Namespace, model, shards: int, options: dict) -> int:
    """``--devices`` / ``--shards``: shards of consecutive molecules, one file in shard order."""
    import warnings

    import torch

    from molgen.conditioning import ConditionWarning
    from molgen.data.io import write_molecules
    from molgen.sharding import sample_sharded

    seed = args.seed if args.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConditionWarning)
        df = sample_sharded(model, args.n, seed=seed, n_shards=shards, processes=min(args.devices, shards),
                            model_path=args.model, device=args.device, temperature=args.temperature,
                            batch_size=args.batch_size, **options)
    write_molecules(df, args.output, smiles_col="smiles")
    if not args.quiet:
        drawn = " (drawn; pass --seed to repeat it)" if args.seed is None else ""
        print(f"wrote {len(df)} samples to {args.output} (valid {df['valid'].mean():.3f}, {shards} shards by "
              f"{min(args.devices, shards)} process(es), temperature {args.temperature}, seed {seed}{drawn})",
              file=sys.stderr)
        _print_achieved(df, options["condition"])
    return 0
