"""``molgen train``: train a generator; flags override the YAML config, which overrides the defaults.

Every option is declared once, in :class:`molgen.options.train.TrainOptions`: the parser is built from it
(``molgen.cli.main`` does that from :mod:`molgen.options.train` alone, so ``molgen --help`` stays fast), and
:func:`run` turns what the user gave into the :func:`molgen.training.train.train` call.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from molgen.options import base as options
from molgen.options.train import CLI_ONLY, TrainOptions
from molgen.training.train import launch_rank, train


def model_arguments(given: dict[str, Any]) -> dict[str, Any]:
    """The model arguments the command line gives: each ``--set KEY=VALUE`` (the value YAML-parsed) and
    the component shortcuts ``--encoder NAME`` / ``--prior NAME``."""
    out: dict[str, Any] = {}
    for item in given.get("set") or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    for key in ("encoder", "prior"):
        if given.get(key) is not None:
            out[key] = given[key]
    return out


def run(args: argparse.Namespace) -> int:
    given = options.options_from_namespace(TrainOptions, args)
    opts = {k: v for k, v in given.items() if k not in CLI_ONLY}
    opts["progress"] = not getattr(args, "quiet", False)
    model = train(config=given.get("config"), resume=given.get("resume"), model_args=model_arguments(given),
                  **opts)
    if launch_rank() != 0:  # the other processes of a multi-process run stay quiet
        return 0
    t = model.metadata["training"]
    summary = {"out": args.out, "model": model.name, **model.metadata.get("final", {}),
               **{k: t[k] for k in ("steps", "molecules_seen", "fit_seconds", "molecules_per_s", "precision")}}
    print(json.dumps(summary, indent=1))
    return 0
