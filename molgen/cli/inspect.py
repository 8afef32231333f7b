"""``molgen models`` and ``molgen info``: what is registered, what a model directory holds."""

from __future__ import annotations

import argparse
import json


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run_models(args: argparse.Namespace) -> int:
    if args.json:  # the full rows (config options too): imports every family
        from molgen.api import list_components, list_models

        print(json.dumps({"models": list_models(), "components": list_components()}, indent=1))
        return 0
    from molgen.cli.models_table import MODELS_TABLE
    from molgen.registry import BACKBONES, ENCODERS, MODELS, PRIORS, REPRESENTATIONS

    rows = MODELS_TABLE
    if sorted(r["name"] for r in rows) != MODELS.declared_names():  # a family the table misses: ask them
        from molgen.cli.models_table import current_table

        rows = current_table()
    components = {reg.category: reg.declared_names() for reg in (REPRESENTATIONS, ENCODERS, PRIORS, BACKBONES)}
    print(f"{'model':<14}{'likelihood (nats/molecule)':<28}{'capabilities':<40}description")
    for r in rows:
        print(f"{r['name']:<14}{r['likelihood_kind'] or 'none':<28}{', '.join(r['capabilities']):<40}"
              f"{r['description']}")
    # written out: molgen.likelihood.OBJECTS would import torch, and listing models must not
    print("\nlikelihood object: the canonical string of the model's representation "
          "(canonical-smiles / canonical-kekule-smiles / canonical-selfies)")
    for category, names in components.items():
        print(f"{category + 's:':<17}{', '.join(names)}")
    return 0


def add_info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model directory or pretrained model name (molgen pretrained)")
    p.add_argument("--json", action="store_true")


def run_info(args: argparse.Namespace) -> int:
    from molgen.persistence import load_pretrained, model_config
    from molgen.pretrained import resolve_model

    model = load_pretrained(resolve_model(args.model))
    cfg = model_config(model)
    rep = model.representation
    info = {"model": model.name, "likelihood": cfg["likelihood"], "capabilities": cfg["capabilities"],
            "representation": cfg["representation"], "vocab_size": getattr(rep, "vocab_size", None),
            "max_len": model.max_len, "n_parameters": model.n_parameters(), "config": cfg["config"],
            "nested": cfg["nested"], "policy": cfg["policy"],
            **{k: model.metadata.get(k) for k in ("created", "data", "training", "final", "versions")}}
    if args.json:
        print(json.dumps(info, indent=1, default=str))
    else:
        for k, v in info.items():
            print(f"{k:>16}: {json.dumps(v, default=str) if isinstance(v, (dict, list)) else v}")
    return 0
