"""``molgen models`` and ``molgen info``: what is registered, what a model directory holds."""

from __future__ import annotations

import argparse
import json


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run_models(args: argparse.Namespace) -> int:
    from molgen.api import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':<14}{'likelihood':<14}{'capabilities':<40}description")
    for r in rows:
        print(f"{r['name']:<14}{r['likelihood_kind'] or 'none':<14}{', '.join(r['capabilities']):<40}{r['description']}")
    return 0


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory")
    p.add_argument("--json", action="store_true")


def run_info(args: argparse.Namespace) -> int:
    from molgen.persistence import load_pretrained

    model = load_pretrained(args.model)
    info = {"model": model.name, "likelihood_kind": model.likelihood_kind,
            "capabilities": sorted(model.capabilities), "representation": model.tokenizer.representation,
            "vocab_size": model.tokenizer.vocab_size, "max_len": model.max_len,
            "n_parameters": model.n_parameters(), "config": model.config(), "policy": model.policy.to_dict(),
            **{k: model.metadata.get(k) for k in ("created", "data", "training", "final", "versions")}}
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        for k, v in info.items():
            print(f"{k:>16}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")
    return 0
