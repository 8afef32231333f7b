"""``molgen train`` / :func:`molgen.train`: every training option, declared once.

A YAML config (molgen's own in ``molgen/configs/``, or a file) holds any of these (CLI-only ones excepted);
flags override it, and anything not an option here is a model option (``--set KEY=VALUE``, ``model_args:`` in
YAML). ``molgen.cli.main`` builds the ``molgen train`` parser from :data:`OPTIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from molgen.options.base import names, option
from molgen.registry import ENCODERS, MODELS, PRIORS, REPRESENTATIONS

BUDGET = "budget (the first one spent ends the run)"
DEVICES = "devices and precision"


def _devices(value: str) -> int | str:
    return int(value) if str(value).isdigit() else value


@dataclass
class TrainOptions:
    """Options of one training run (the defaults are :func:`molgen.train`'s)."""

    model: str = option("transformer", "generator family", choices=MODELS)
    representation: str = option("smiles", "molecule representation", choices=REPRESENTATIONS)
    data: Any = option("moses", "'moses' (embedded), a catalog name or a .smi/.csv/.parquet/.sdf path")
    val_data: Any = option(None, "validation file, deduplicated against train (default: carved from the training "
                                 "data; test sets are refused)")
    smiles_col: str | None = option(None, "SMILES column of a .csv/.parquet file")
    subset: int | None = option(None, "train on a random subset of N molecules (after reading, before dedup)",
                                type=int, metavar="N")
    val_size: int = option(2000, "molecules held out for the validation NLL during training", type=int, cli=False)
    seed: int = option(0, "random seed", type=int)
    max_epochs: int | None = option(None, "passes over the data (default: unlimited with a budget, else 10)",
                                    type=int, group=BUDGET)
    max_steps: int | None = option(None, "optimizer steps (batches)", type=int, group=BUDGET)
    max_molecules: int | None = option(None, "molecules seen (over all processes); gives the same model on any "
                                             "machine", type=int, metavar="N", group=BUDGET)
    max_time: float | None = option(None, "minutes of training (validation excluded)", type=float,
                                    metavar="MINUTES", group=BUDGET)
    batch_size: int = option(128, "molecules per batch and device", type=int)
    lr: float = option(2e-3, "peak learning rate", type=float)
    weight_decay: float = option(0.01, "AdamW weight decay", type=float, cli=False)
    betas: Any = option((0.9, 0.98), "AdamW betas", cli=False)
    warmup_steps: int = option(100, "linear warm-up steps", type=int, cli=False)
    min_lr_ratio: float = option(0.05, "cosine floor as a fraction of lr", type=float, cli=False)
    grad_clip: float = option(1.0, "gradient-norm clipping (automatic optimisation only)", type=float, cli=False)
    val_every: int = option(500, "validation (and checkpoint) every N training batches", type=int, cli=False)
    log_every: int = option(50, "training metrics reach the CSV log every N batches", type=int, cli=False)
    max_len: int | None = option(None, "longest string (default: longest training string + 10 %)", type=int,
                                 cli=False)
    accelerator: str = option("auto", "auto | cpu | gpu", group=DEVICES)
    devices: Any = option(1, "number of devices (processes on CPU)", type=_devices, group=DEVICES)
    strategy: str = option("auto", "Lightning strategy, e.g. ddp (gloo on CPU)", group=DEVICES)
    precision: str | None = option(None, "32-true | bf16-mixed | 16-mixed (default: bf16-mixed on GPU; on CPU the "
                                         "faster one, measured)", group=DEVICES)
    policy: dict | None = option(None, "standardization policy (Policy fields)", cli=False)
    conditions: list | None = option(None, "train a conditional model on this property (repeatable): an RDKit "
                                           "property (qed, logp, sa, mw, tpsa) or a numeric column of the data",
                                     flags=("--condition",), repeat=True, metavar="PROPERTY")
    autoencoder: str | None = option(None, "trained VAE model directory for --model gan (reused frozen, saved "
                                           "inside the GAN)", metavar="DIR")
    init_from: str | None = option(None, "start --model diffusion (or the transformer decoder of --model vae) from "
                                         "a trained transformer (model directory or shipped name, e.g. "
                                         "moses-transformer): its representation and max_len are reused, its "
                                         "weights copied where shapes match (with --set block_size=B: block "
                                         "diffusion, B = 1 is the transformer)", metavar="DIR|NAME")
    model_args: dict = option({}, "model options (see `molgen models`)", cli=False)
    num_threads: int | None = option(None, "torch threads", type=int, cli=False)
    progress: bool = option(True, "progress bar (on a terminal or in a notebook)", cli=False)
    n_jobs: int = option(2, "processes standardizing the data", type=int, cli=False)
    # run-level entries: where the model goes, which config, what to resume; the component shortcuts
    out: str | None = option(None, "output model directory", required=True)
    description: str | None = option(None, "what the config is for", cli=False)
    config: str | None = option(None, "YAML config: a path, or the name of one of molgen's configs (e.g. "
                                       "quickstart)", yaml=False)
    resume: str | None = option(None, "Lightning checkpoint to resume from (OUT/checkpoints/last.ckpt)", yaml=False)
    encoder: str | None = option(None, "encoder component of a model that has one (the VAE); same as --set "
                                       "encoder=NAME", choices=ENCODERS, yaml=False)
    prior: str | None = option(None, "prior component of a model that has one (the VAE); same as --set prior=NAME",
                               choices=PRIORS, yaml=False)
    set: list = option([], "model option, e.g. --set backbone.d_model=256 or --set prior.n_components=16 "
                           "(YAML-parsed value); repeatable; unknown keys are an error that lists the accepted ones",
                       repeat=True, metavar="KEY=VALUE", yaml=False)


OPTIONS = TrainOptions

#: entries of a run / config beside the training options: the model directory, what the config is for
RUN_ENTRIES = ("out", "description")
#: the command line's run-level flags: ``train``'s own ``config`` / ``resume`` arguments, and shortcuts that
#: become model arguments (``--encoder``, ``--prior``, ``--set KEY=VALUE``); never in a YAML config
CLI_ONLY = ("config", "resume", "encoder", "prior", "set")
#: what ``train(**options)`` and a config take as training options; any other key is a model argument
TRAINING_OPTIONS = tuple(n for n in names(TrainOptions) if n not in RUN_ENTRIES + CLI_ONLY)
