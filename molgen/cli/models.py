"""``molgen models``: the registered generator families and components, without importing them
(the static :data:`~molgen.cli.models_table.MODELS_TABLE`); ``--json`` imports every family for the full rows."""

from __future__ import annotations

import argparse
import json

from molgen.cli.models_table import MODELS_TABLE, current_table, full_listing
from molgen.registry import BACKBONES, ENCODERS, MODELS, PRIORS, REPRESENTATIONS


def run(args: argparse.Namespace) -> int:
    """Print the families (likelihood kind, capabilities, description) and the component names."""
    if args.json:  # the full rows (config options too): imports every family
        print(json.dumps(full_listing(), indent=1))
        return 0
    rows = MODELS_TABLE
    if sorted(r["name"] for r in rows) != MODELS.declared_names():  # a family the table misses: ask them
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
