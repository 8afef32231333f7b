"""``molgen train``: train a generator; options override the YAML config, which overrides defaults."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def resolve_config(name: str | None) -> Path | None:
    """A config path, or a bare name looked up in the repository's ``configs/`` folder."""
    if name is None:
        return None
    p = Path(name)
    if p.exists():
        return p
    from molgen.data.catalog import data_dir

    for cand in (data_dir().parent / "configs" / name, data_dir().parent / "configs" / f"{name}.yaml"):
        if cand.exists():
            return cand
    raise FileNotFoundError(f"config {name!r} not found (give a path or a name in configs/)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from molgen.registry import ENCODERS, MODELS, PRIORS, REPRESENTATIONS

    p.add_argument("--model", choices=MODELS.declared_names(), default=None, help="generator family (default transformer)")
    p.add_argument("--data", default=None, help="'moses' (embedded), a catalog name or a .smi/.csv/.parquet/.sdf path")
    p.add_argument("--smiles-col", default=None, help="SMILES column of a .csv/.parquet file")
    p.add_argument("--val-data", default=None,
                   help="validation file, deduplicated against train (default: carved from the training data; "
                        "test sets are refused)")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--config", default=None, help="YAML config (path or name in configs/)")
    p.add_argument("--representation", choices=REPRESENTATIONS.declared_names(), default=None)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-molecules", type=int, default=None, metavar="N",
                   help="budget: molecules seen (over all processes); gives the same model on any machine")
    p.add_argument("--max-time", type=float, default=None, metavar="MINUTES",
                   help="budget: minutes of training (validation excluded); with others, the first one spent ends it")
    p.add_argument("--subset", type=int, default=None, help="train on a random subset of N molecules")
    p.add_argument("--batch-size", type=int, default=None, help="molecules per batch and device")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--accelerator", default=None, help="auto | cpu | gpu")
    p.add_argument("--devices", default=None, help="number of devices (processes on CPU)")
    p.add_argument("--strategy", default=None, help="Lightning strategy, e.g. ddp (gloo on CPU); default auto")
    p.add_argument("--precision", default=None,
                   help="32-true | bf16-mixed | 16-mixed (default: bf16-mixed on GPU; on CPU the faster one, measured)")
    p.add_argument("--resume", default=None, help="Lightning checkpoint to resume from (OUT/checkpoints/last.ckpt)")
    p.add_argument("--encoder", choices=ENCODERS.declared_names(), default=None,
                   help="encoder component of a model that has one (the VAE); same as --set encoder=NAME")
    p.add_argument("--prior", choices=PRIORS.declared_names(), default=None,
                   help="prior component of a model that has one (the VAE); same as --set prior=NAME")
    p.add_argument("--autoencoder", default=None, metavar="DIR",
                   help="trained VAE model directory for --model gan (reused frozen, saved inside the GAN)")
    p.add_argument("--init-from", default=None, metavar="DIR|NAME", dest="init_from",
                   help="start --model diffusion (or the transformer decoder of --model vae) from a trained "
                        "transformer (model directory or shipped name, e.g. moses-transformer): its representation "
                        "and max_len are reused, its weights copied where shapes match (with --set block_size=B: "
                        "block diffusion, B = 1 is the transformer)")
    p.add_argument("--condition", action="append", default=None, metavar="PROPERTY", dest="conditions",
                   help="train a conditional model on this property (repeatable): an RDKit property "
                        "(qed, logp, sa, mw, tpsa) or a numeric column of the data file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, e.g. --set backbone.d_model=256 or --set prior.n_components=16 "
                        "(YAML-parsed value); repeatable; unknown keys are an error that lists the accepted ones")


def run(args: argparse.Namespace) -> int:
    import yaml

    from molgen.training.train import train

    model_args = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        model_args[key.strip()] = yaml.safe_load(value)
    for key in ("encoder", "prior"):
        if getattr(args, key, None) is not None:
            model_args[key] = getattr(args, key)
    opts = {k: getattr(args, k) for k in ("representation", "max_epochs", "max_steps", "max_molecules", "max_time",
                                          "subset", "batch_size", "lr", "seed", "accelerator", "strategy",
                                          "precision", "smiles_col", "val_data", "conditions",
                                          "autoencoder", "init_from")}
    if args.devices is not None:
        opts["devices"] = int(args.devices) if str(args.devices).isdigit() else args.devices
    opts["progress"] = not args.quiet
    model = train(model=args.model, data=args.data, out=args.out, config=resolve_config(args.config),
                  resume=args.resume, model_args=model_args, **opts)
    from molgen.training.train import _launch_rank

    if _launch_rank() != 0:  # the other processes of a multi-process run stay quiet
        return 0
    t = model.metadata["training"]
    summary = {"out": args.out, "model": model.name, **model.metadata.get("final", {}),
               **{k: t[k] for k in ("steps", "molecules_seen", "fit_seconds", "molecules_per_s", "precision")}}
    print(json.dumps(summary, indent=1))
    return 0
