"""``molgen.train``: data -> tokenizer -> model -> Lightning fit -> portable model directory."""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.data import catalog
from molgen.data.io import SmilesSource, source_hash

log = logging.getLogger(__name__)

# Defaults of everything ``train`` accepts; a YAML config and then explicit arguments override them.
DEFAULTS: dict[str, Any] = {
    "model": "transformer",
    "representation": "smiles",
    "data": "moses",
    "val_data": None,          # None: moses:test for moses, else a held-out split of the data
    "smiles_col": None,
    "subset": None,            # random subset of the training file (after reading, before dedup)
    "val_size": 2000,          # molecules used for validation NLL during training
    "seed": 0,
    "max_epochs": None,
    "max_steps": None,
    "max_time": None,          # minutes of wall clock for fitting
    "batch_size": 128,
    "lr": 2e-3,
    "weight_decay": 0.01,
    "betas": (0.9, 0.98),
    "warmup_steps": 100,
    "min_lr_ratio": 0.05,
    "grad_clip": 1.0,
    "val_every": 500,          # validation every N optimizer steps
    "max_len": None,           # None: longest training string + 10 %
    "accelerator": "auto",
    "devices": 1,
    "precision": None,         # None: bf16-mixed on GPU, 32-true on CPU
    "policy": None,            # dict of Policy fields
    "model_args": {},
    "num_threads": None,
    "progress": True,
    "n_jobs": 2,
}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config; unknown keys are an error that lists the known ones."""
    cfg = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: a config must be a mapping of option: value")
    unknown = set(cfg) - set(DEFAULTS) - {"out", "description"}
    if unknown:
        raise ValueError(f"{path}: unknown option(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return cfg


def resolve_options(config: str | Path | dict | None = None, **overrides: Any) -> dict[str, Any]:
    opts = dict(DEFAULTS)
    opts["model_args"] = {}
    if config is not None:
        cfg = load_config(config) if not isinstance(config, dict) else dict(config)
        opts.update({k: v for k, v in cfg.items() if k != "model_args"})
        opts["model_args"].update(cfg.get("model_args") or {})
    for k, v in overrides.items():
        if v is None:
            continue
        if k == "model_args":
            opts["model_args"].update(v)
        elif k in DEFAULTS or k == "out":
            opts[k] = v
        else:  # anything else is a model argument (d_model=..., encoder=..., prior=...)
            opts["model_args"][k] = v
    return opts


def _split_data(opts: dict[str, Any], policy: Policy) -> tuple[list[str], list[str], dict[str, Any]]:
    from molgen.data.datamodule import load_canonical

    data: SmilesSource = opts["data"]
    if isinstance(data, str) and data in catalog.ALIASES:
        data = catalog.ALIASES[data]
    train, stats = load_canonical(data, policy, smiles_col=opts["smiles_col"], subset=opts["subset"],
                                  seed=opts["seed"], n_jobs=opts["n_jobs"],
                                  use_cache=not isinstance(data, (list, tuple)))
    val_src = opts["val_data"]
    if val_src is None and isinstance(data, str) and data.startswith("moses:"):
        val_src = "moses:test"
    if val_src is not None:
        # Standardize only a random slice big enough for val_size after deduplication against train.
        val, _ = load_canonical(val_src, policy, smiles_col=opts["smiles_col"], n_jobs=opts["n_jobs"],
                                subset=4 * opts["val_size"], seed=opts["seed"],
                                use_cache=not isinstance(val_src, (list, tuple)))
        train_set = set(train)
        val = [s for s in val if s not in train_set]  # held-out = deduplicated against train
    else:  # hold out a random slice of the user's data
        rng = random.Random(opts["seed"])
        train = train[:]
        rng.shuffle(train)
        n_val = min(opts["val_size"], max(1, len(train) // 10))
        val, train = train[:n_val], train[n_val:]
    val = random.Random(opts["seed"]).sample(val, min(len(val), opts["val_size"]))
    info = {"source": str(opts["data"]) if isinstance(opts["data"], (str, Path)) else "<list>",
            "source_hash": source_hash(data, opts["smiles_col"]),
            "n_train": len(train), "n_val": len(val), **{f"input_{k}": v for k, v in stats.items()}}
    if not train:
        raise ValueError("no valid training molecules")
    return train, val, info


def _quiet_lightning() -> None:
    """Lightning sets its loggers to INFO on import (tips, accelerator lines, each printed twice);
    keep them at WARNING unless the root logger asks for debug output (``molgen -vv``)."""
    level = logging.DEBUG if logging.getLogger().level <= logging.DEBUG else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(level)


def _cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matmul (AVX512-BF16 / AMX), where bf16 autocast is ~2x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def build_model(name: str, tokenizer, policy: Policy, max_len: int, model_args: dict[str, Any]):
    from molgen.registry import MODELS

    return MODELS.get(name)(tokenizer, policy, max_len=max_len, **model_args)


def train(model: str | None = None, data: SmilesSource | None = None, out: str | Path | None = None, *,
          config: str | Path | dict | None = None, resume: str | Path | None = None, **options: Any):
    """Train a generator and write its portable directory to ``out``; returns the trained model.

    Precedence: explicit arguments > ``config`` (YAML path or dict) > :data:`DEFAULTS` (transformer on
    the embedded MOSES data). ``options`` are the keys of :data:`DEFAULTS` (e.g. ``max_time=15``
    minutes, ``subset=100_000``, ``representation="selfies"``); anything else is passed to the model
    constructor (``d_model=256``, ``encoder="graph"``).
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from molgen.data.datamodule import MoleculeDataModule
    from molgen.registry import TOKENIZERS
    from molgen.training.callbacks import Throughput, WarmupCosine

    _quiet_lightning()
    explicit = dict(options, model=model, data=data)
    opts = resolve_options(config, **explicit)
    out = Path(out or opts.get("out") or f"runs/{opts['model']}-{datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    if opts["num_threads"]:
        torch.set_num_threads(int(opts["num_threads"]))
    L.seed_everything(opts["seed"], workers=True, verbose=False)
    policy = Policy.from_dict(opts["policy"]) if opts["policy"] else DEFAULT_POLICY

    t0 = time.perf_counter()
    train_smiles, val_smiles, data_info = _split_data(opts, policy)
    tok_path = out / "tokenizer.json"
    if resume and tok_path.exists():
        from molgen.tokenizers.base import load_tokenizer

        tokenizer = load_tokenizer(tok_path)
    else:
        tokenizer = TOKENIZERS.get(opts["representation"])().fit(train_smiles)
        tokenizer.save(tok_path)
    max_len = opts["max_len"]
    if max_len is None:
        longest = max(len(tokenizer.tokenize(s)) for s in train_smiles[:200_000])
        max_len = int(longest * 1.1) + 1
    net = build_model(opts["model"], tokenizer, policy, max_len, opts["model_args"])
    data_info["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    log.info("model %s: %.2fM parameters, vocabulary %d, max_len %d", net.name, net.n_parameters() / 1e6,
             tokenizer.vocab_size, max_len)

    dm = MoleculeDataModule(
        train_smiles, val_smiles, net.featurize, net.collate, batch_size=opts["batch_size"], seed=opts["seed"],
        cache_key=f"{data_info['source_hash']}-{policy.key}-{opts['subset']}-{opts['seed']}-"
                  f"{tokenizer.state_key}-{max_len}-{net.name}" if net.featurize_cacheable else None,
        length=net.item_length)
    net.optim_config = {"lr": opts["lr"], "weight_decay": opts["weight_decay"], "betas": tuple(opts["betas"])}

    max_time_s = opts["max_time"] * 60 if opts["max_time"] else None
    sched = WarmupCosine(opts["lr"], opts["warmup_steps"], opts["max_steps"], max_time_s, opts["min_lr_ratio"])
    meter = Throughput()
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=0)
    on_gpu = torch.cuda.is_available() and opts["accelerator"] in ("auto", "gpu", "cuda")
    precision = opts["precision"] or ("bf16-mixed" if on_gpu or _cpu_has_bf16() else "32-true")
    max_epochs = opts["max_epochs"] if opts["max_epochs"] is not None else (-1 if (max_time_s or opts["max_steps"]) else 10)
    trainer = L.Trainer(
        accelerator=opts["accelerator"], devices=opts["devices"], precision=precision,
        max_epochs=max_epochs, max_steps=opts["max_steps"] or -1,
        max_time={"seconds": max_time_s} if max_time_s else None,
        gradient_clip_val=opts["grad_clip"], callbacks=[sched, meter, ckpt],
        val_check_interval=opts["val_every"], check_val_every_n_epoch=None,
        logger=L.pytorch.loggers.CSVLogger(out, name="logs", version=""),
        enable_progress_bar=bool(opts["progress"]), enable_model_summary=False,
        num_sanity_val_steps=0, deterministic=False,
    )
    t_fit = time.perf_counter()
    trainer.fit(net, datamodule=dm, ckpt_path=str(resume) if resume else None)
    fit_seconds = time.perf_counter() - t_fit

    net.eval()
    final: dict[str, Any] = {}
    if "log_likelihood" in net.capabilities and val_smiles:
        scores = net.score(val_smiles)
        ok = scores[scores.status == "ok"]
        final = {"val_nll_nats_per_molecule": float(-ok.log_likelihood.mean()), "val_n": len(ok),
                 "likelihood_kind": scores.likelihood_kind.iloc[0]}
    net.metadata = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data_info, "dropped": {k: dict(v) for k, v in dm.dropped.items()},
        "training": {**{k: opts[k] for k in ("seed", "subset", "batch_size", "lr", "max_time", "max_steps",
                                              "max_epochs", "representation")},
                     "steps": trainer.global_step, "epochs": trainer.current_epoch,
                     "fit_seconds": round(fit_seconds, 1), "precision": precision,
                     "n_parameters": net.n_parameters(), **meter.summary()},
        "final": final,
    }
    net.save_pretrained(out)
    (out / "train_options.json").write_text(json.dumps({k: v for k, v in opts.items()}, indent=1, default=str))
    return net
