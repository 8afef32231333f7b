"""The plain ``molgen models`` table, kept here so listing families does not import torch / Lightning.

Generated from :func:`molgen.api.list_models` (``python -m molgen.cli.models_table`` prints it again);
``tests/test_cli_fast.py`` fails when a family, its capabilities, likelihood kind or first docstring
line changes without this file. ``molgen models --json`` always imports the families (options too).
"""

from __future__ import annotations

import pprint
from typing import Any

MODELS_TABLE: list[dict[str, Any]] = [
    {'name': 'diffusion', 'capabilities': ['log_likelihood', 'sample'], 'likelihood_kind': 'elbo-16', 'description': 'MDLM or block diffusion: absorbing <mask> noise, SUBS; per-molecule ELBO or exact left-to-right log q.'},
    {'name': 'flow', 'capabilities': ['log_likelihood', 'sample'], 'likelihood_kind': 'iw-16', 'description': 'Categorical normalizing flow over padded token strings (see the module docstring).'},
    {'name': 'gan', 'capabilities': ['sample'], 'likelihood_kind': None, 'description': 'WGAN-GP on the standardised latent means of a nested, frozen molgen VAE; decodes with its decoder.'},
    {'name': 'transformer', 'capabilities': ['log_likelihood', 'sample'], 'likelihood_kind': 'exact', 'description': 'GPT-style model: pre-LN, GELU, causal SDPA, tied embeddings, BOS/EOS, pad excluded from loss.'},
    {'name': 'vae', 'capabilities': ['decode', 'encode', 'log_likelihood', 'sample'], 'likelihood_kind': 'iwae-50', 'description': 'VAE with injected encoder (sequence | graph) and prior (gaussian | mog | vamp | flow).'},
]


def full_listing() -> dict[str, Any]:
    """Every family (config options too) and every component, as ``molgen models --json`` prints them
    (imports every family: this module exists so that the plain table does not)."""
    from molgen.api import list_components, list_models  # lazy: imports every family (torch)

    return {"models": list_models(), "components": list_components()}


def current_table() -> list[dict[str, Any]]:
    """The table as the imported registry gives it (imports every family)."""
    return [{k: r[k] for k in ("name", "capabilities", "likelihood_kind", "description")}
            for r in full_listing()["models"]]


if __name__ == "__main__":  # pragma: no cover
    pprint.pprint(current_table(), width=110, sort_dicts=False)
