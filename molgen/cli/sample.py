"""``molgen sample``: draw molecules x ~ p(x) from a trained model and write them to a file.

Every option, a ``--condition`` request included, is checked before the model is loaded (a request
against the condition space in the model's ``config.json``); after sampling, what each requested
property achieved is printed next to the request (:func:`molgen.conditioning.achieved_properties`).
"""

from __future__ import annotations

import argparse
import sys
import warnings

import torch

from molgen.api import load
from molgen.conditioning import (
    ConditionWarning,
    achieved_properties,
    check_request,
    format_achieved,
    parse_condition,
)
from molgen.data.io import WRITE_SUFFIXES, suffix_of, write_molecules
from molgen.errors import ConfigError
from molgen.fragments import parse_constraint, summary_line
from molgen.options.sample import DEFAULT_GUIDANCE
from molgen.persistence import read_condition_space
from molgen.pretrained import resolve_model
from molgen.sharding import sample_sharded

#: the achieved-properties line measures at most this many valid samples (RDKit takes ~1-3 ms a
#: molecule; 2000 independent draws give the mean to within sd/45)
ACHIEVED_LIMIT = 2000


def check_options(args: argparse.Namespace) -> tuple[dict[str, float] | None, float | None]:
    """Every option checked before the model is loaded (seconds): numbers in range, the ``--condition``
    request against the model's condition space read from its ``config.json``. Returns the validated
    (condition, guidance); ``args.model`` becomes the model directory (a shipped name resolved)."""
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
    """Check every option, load the model, draw, write the file and print what was drawn."""
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
            print(summary_line(res), file=sys.stderr)
    return 0


def _check_fragments(args: argparse.Namespace, condition, guidance) -> dict[str, str]:
    """--scaffold / --linker / --extend, parsed before the model is loaded (one-line errors)."""
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
    if condition:
        for line in format_achieved(achieved_properties(result, condition, limit=ACHIEVED_LIMIT)):
            print(line, file=sys.stderr)


def _run_sharded(args: argparse.Namespace, model, shards: int, options: dict) -> int:
    """``--devices`` / ``--shards``: shards of consecutive molecules, one file in shard order."""
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
