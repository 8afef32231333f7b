"""``molgen.train``: data -> representation -> model -> Lightning fit -> portable model directory.

What this module decides, and what it leaves to the family:

- **Data split.** Validation is always carved from the training data (seeded, after
  standardization and deduplication), or taken from a user file deduplicated against train.
  Catalog test sets (``moses:test*``) are for reported metrics only and are refused here.
- **Budget.** One :class:`~molgen.training.progress.TrainingProgress` callback counts steps,
  molecules seen and seconds, stops the run at ``max_steps`` / ``max_molecules`` / ``max_time`` and
  is saved in the checkpoint, so ``resume`` continues schedules and budgets. The Trainer itself gets
  no step or time limit.
- **Optimisation** belongs to the family: ``train`` sets ``model.optim`` (an
  :class:`~molgen.training.optim.OptimConfig`) and ``model.progress``; the family's
  ``configure_optimizers`` builds optimizers and schedules from them.
- **Precision.** Given, or bf16-mixed on a GPU, or on a CPU the faster of fp32 and bf16 autocast in
  a short timed trial of real training steps (cached per CPU model, torch version and model size).
- **Processes.** ``devices > 1`` / ``strategy="ddp"`` run one process per device (gloo on CPU); the
  length-bucket sampler shards global batches itself and only rank zero writes files.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import random
import shutil
import time
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from molgen.chem import DEFAULT_POLICY, Policy
from molgen.conditioning import ConditionSpace, property_sources, property_table
from molgen.conditioning_nn import ConditionedItems
from molgen.configs import resolve_config
from molgen.data import catalog
from molgen.data.datamodule import LengthBucketSampler, MoleculeDataModule, load_canonical
from molgen.data.io import SmilesSource, source_hash
from molgen.errors import ConfigError
from molgen.models.base import GenerativeModel, nested_roles
from molgen.options.base import defaults, validate_mapping
from molgen.options.train import TRAINING_OPTIONS, TrainOptions
from molgen.persistence import check_writable, load_pretrained
from molgen.pretrained import resolve_model
from molgen.progress import interactive
from molgen.registry import MODELS, REPRESENTATIONS
from molgen.representation import Representation, load_representation
from molgen.training.callbacks import ClipGradNorm, NonFiniteGuard
from molgen.training.curves import curve_logger, write_curves
from molgen.training.optim import OptimConfig, adamw, decay_groups
from molgen.training.progress import Budget, TrainingBar, TrainingProgress, batch_size_of

log = logging.getLogger(__name__)

PRECISION_TRIAL_SECONDS = 3.0  # total for both candidates


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config (a path, or the name of one of molgen's configs: ``quickstart``), checked against
    :class:`~molgen.options.train.TrainOptions`: unknown keys, values of the wrong type or outside the choices
    are an error that lists what is accepted."""
    path = resolve_config(path)
    return validate_mapping(TrainOptions, yaml.safe_load(path.read_text()) or {}, str(path))


def resolve_options(config: str | Path | dict | None = None, **overrides: Any) -> dict[str, Any]:
    """A run's options: the :class:`~molgen.options.train.TrainOptions` defaults, then ``config`` (a YAML
    path, a config name or a dict), then ``overrides`` (None: not given). A key that is not a training
    option (:data:`~molgen.options.train.TRAINING_OPTIONS`) is a model argument."""
    opts = {k: v for k, v in defaults(TrainOptions).items() if k in TRAINING_OPTIONS}
    if config is not None:
        cfg = load_config(config) if not isinstance(config, dict) else dict(config)
        opts.update({k: v for k, v in cfg.items() if k != "model_args"})
        opts["model_args"].update(cfg.get("model_args") or {})
    for k, v in overrides.items():
        if v is None:
            continue
        if k == "model_args":
            opts["model_args"].update(v)
        elif k in TRAINING_OPTIONS or k == "out":
            opts[k] = v
        else:  # anything else is a model argument (d_model=..., encoder=..., prior=...)
            opts["model_args"][k] = v
    return opts


# --- data --------------------------------------------------------------------------------------
def _catalog_test_set(src: Any) -> str | None:
    """The catalog name if ``src`` is a test set (by name, alias or file content), else None."""
    if isinstance(src, str):
        name = catalog.ALIASES.get(src, src)
        if name in catalog.CATALOG and ":test" in name:  # moses:test, moses:test_scaffolds, guacamol:test
            return name
    if isinstance(src, (str, Path)) and Path(src).is_file():
        digest = catalog.sha256_file(src)
        for name, entry in catalog.CATALOG.items():
            if ":test" in name and entry.sha256 == digest:
                return name
    return None


def _sha256_sorted(smiles: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(smiles)).encode()).hexdigest()


def split_data(opts: dict[str, Any], policy: Policy) -> tuple[list[str], list[str], dict[str, Any]]:
    """(train, validation, info): canonical deduplicated training molecules and a held-out validation
    set that is carved from them (or a user file deduplicated against them), recorded in ``info``."""
    data: SmilesSource = opts["data"]
    if isinstance(data, str) and data in catalog.ALIASES:
        data = catalog.ALIASES[data]
    val_src = opts["val_data"]
    test_name = _catalog_test_set(val_src) if val_src is not None else None
    if test_name is not None:
        raise ConfigError(f"val_data={val_src!r} is the catalog test set {test_name}: test sets are for "
                          "reported metrics only, never validation or model selection. Leave val_data unset "
                          "(validation is carved from the training data) or give a file of your own.")
    train, stats = load_canonical(data, policy, smiles_col=opts["smiles_col"], subset=opts["subset"],
                                  seed=opts["seed"], n_jobs=opts["n_jobs"],
                                  use_cache=not isinstance(data, (list, tuple)))
    if not train:
        raise ValueError("no valid training molecules")
    rng = random.Random(opts["seed"])
    val_size = int(opts["val_size"])
    if val_src is None:  # carve a seeded random slice out of the (deduplicated) training molecules
        n_val = min(val_size, max(1, len(train) // 10)) if len(train) > 1 else 0
        held = set(rng.sample(range(len(train)), n_val))
        val = [s for i, s in enumerate(train) if i in held]
        train = [s for i, s in enumerate(train) if i not in held]
        val_info: dict[str, Any] = {"source": "carved from the training data", "from_training_data": True}
    else:
        # Standardize only a random slice big enough for val_size after deduplication against train.
        val, _ = load_canonical(val_src, policy, smiles_col=opts["smiles_col"], n_jobs=opts["n_jobs"],
                                subset=4 * val_size, seed=opts["seed"],
                                use_cache=not isinstance(val_src, (list, tuple)))
        train_set = set(train)
        n_given = len(val)
        val = [s for s in val if s not in train_set]  # held-out = deduplicated against train
        val = rng.sample(val, min(len(val), val_size))
        val_info = {"source": str(val_src) if isinstance(val_src, (str, Path)) else "<list>",
                    "from_training_data": False, "removed_as_in_train": n_given - len(val)}
    val_info.update({"n": len(val), "seed": opts["seed"], "deduplicated_against_train": True,
                     "sha256": _sha256_sorted(val)})
    info = {"source": str(opts["data"]) if isinstance(opts["data"], (str, Path)) else "<list>",
            "source_hash": source_hash(data, opts["smiles_col"]),
            "n_train": len(train), "n_val": len(val), "validation": val_info,
            **{f"input_{k}": v for k, v in stats.items()}}
    return train, val, info


def _quiet_lightning() -> None:
    """Lightning sets its loggers to INFO on import (tips, accelerator lines, each printed twice);
    keep them at WARNING unless the root logger asks for debug output (``molgen -vv``)."""
    level = logging.DEBUG if logging.getLogger().level <= logging.DEBUG else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(level)


# --- model -------------------------------------------------------------------------------------
def resolve_model_class(model: Any) -> type:
    """A registry name or a :class:`~molgen.models.base.GenerativeModel` subclass -> the class."""
    if isinstance(model, type):
        if not issubclass(model, GenerativeModel):
            raise ConfigError(f"model must be a registry name or a GenerativeModel subclass, got {model!r}")
        return model
    return MODELS.get(model)


def nested_role_holders() -> dict[str, list[str]]:
    """Each nested-model role a registered family declares (the training option of the same name, e.g.
    ``autoencoder``) -> the families that hold one."""
    holders: dict[str, list[str]] = {}
    for family_name, family in MODELS.items():
        for role in nested_roles(family):
            holders.setdefault(role, []).append(family_name)
    return holders


def load_nested(cls: type, opts: dict[str, Any]) -> dict[str, Any]:
    """The saved models a family holds, by its declared roles (:class:`~molgen.models.base.NestedRole`, e.g.
    the GAN's ``autoencoder``), loaded from the directories given as the options of the same names; an error
    if one is missing, or if a role's option is given to a family that holds no such model."""
    wanted = nested_roles(cls)
    for role, names in nested_role_holders().items():
        if opts.get(role) and role not in wanted:
            raise ConfigError(f"model {getattr(cls, 'name', cls)!r} holds no {role}; only a family that holds "
                              f"one ({', '.join(names)}) takes --{role}")
    missing = [n for n in wanted if not opts.get(n)]
    if missing:
        raise ConfigError(f"model {cls.name!r} holds a trained {', '.join(missing)}: give its model directory "
                          f"({', '.join(f'--{n} DIR' for n in missing)})")
    return {n: load_pretrained(resolve_model(opts[n])) for n in wanted}


def build_model(cls: type, representation: Any, policy: Policy, max_len: int, model_args: dict[str, Any],
                nested: dict[str, Any] | None = None):
    """The one place a family is constructed for training. ``train(**options)`` passes every key that is
    not a training option to the model, so an unknown key's error lists both sets of accepted names."""
    try:
        return cls.build({**model_args, "max_len": max_len}, representation=representation, policy=policy,
                         **(nested or {}))
    except ConfigError as e:
        if "unknown option" not in str(e):
            raise
        raise ConfigError(f"{e}; training options: {', '.join(sorted(TRAINING_OPTIONS))}") from None


def _split_cache_path(kind: str, suffix: str, opts: dict[str, Any], data_info: dict[str, Any], policy: Policy,
                      what: Any) -> Path:
    """``<cache>/<kind>/<key><suffix>``: a file computed from one training split (data, policy, subset,
    seed, validation carve-out) and ``what``."""
    key = hashlib.sha256(json.dumps([data_info["source_hash"], policy.key, opts["subset"], opts["seed"],
                                     data_info["validation"]["sha256"], what]).encode()).hexdigest()[:24]
    return catalog.cache_dir() / kind / f"{key}{suffix}"


def _conditions(cls: type, opts: dict[str, Any], smiles: list[str], data_info: dict[str, Any],
                policy: Policy):
    """Property values [N, k] for a conditional run (None otherwise); sets ``model_args["condition"]``
    to the :class:`~molgen.conditioning.ConditionSpace` fitted on the training rows. Cached on disk."""
    names = opts["conditions"]
    if not names:
        return None
    names = [names] if isinstance(names, str) else [str(n) for n in names]
    if "condition" not in cls.config_class.field_names():
        able = [m for m in MODELS.names() if "condition" in MODELS.get(m).config_class.field_names()]
        raise ConfigError(f"model {cls.name!r} cannot be conditioned; conditional families: {', '.join(able)}")
    path = _split_cache_path("properties", ".npy", opts, data_info, policy, names)
    if path.exists():
        values = np.load(path, allow_pickle=False)
    else:
        t = time.perf_counter()
        values = property_table(names, smiles, data=opts["data"], smiles_col=opts["smiles_col"],
                                policy=policy, n_jobs=opts["n_jobs"])
        log.info("condition properties %s for %d molecules in %.0f s", names, len(smiles), time.perf_counter() - t)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = catalog.atomic_tmp(path)
        with open(tmp, "wb") as f:
            np.save(f, values)
        os.replace(tmp, path)
    n_train = data_info["n_train"]
    space = ConditionSpace.fit(names, values[:n_train], property_sources(names))
    missing = {n: int((~np.isfinite(values[:, j])).sum()) for j, n in enumerate(names)}
    data_info["conditions"] = {"names": names, "missing_values": missing}
    opts["model_args"]["condition"] = space.to_dict()
    return values


def _fit_representation(opts: dict[str, Any], train_smiles: list[str], data_info: dict[str, Any],
                        policy: Policy) -> Representation:
    """The representation fitted on the training molecules, cached on disk per data split: a Kekulé or
    SELFIES fit of 600k molecules takes minutes (an RDKit / selfies round trip each), a reload milliseconds."""
    path = _split_cache_path("representations", ".json", opts, data_info, policy, opts["representation"])
    if path.exists():
        try:
            return load_representation(path, opts["representation"])
        except Exception as e:  # a damaged cache entry is refitted, not trusted
            log.warning("ignoring the cached representation %s: %s", path, e)
    representation = REPRESENTATIONS.get(opts["representation"])().fit(train_smiles)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = catalog.atomic_tmp(path)
    representation.save(tmp)
    os.replace(tmp, path)
    return representation


def _check_optim_options(cls: type, options: dict[str, Any], config: str | Path | dict | None) -> None:
    """Optimiser options the family does not read (its config has its own) are an error, not ignored."""
    cfg = (load_config(config) if not isinstance(config, dict) else config) if config is not None else {}
    given = {k for k, v in options.items() if v is not None} | set(cfg)
    unused = sorted(k for k in GenerativeModel.optim_options if k in given and k not in cls.optim_options)
    if unused:
        own = [f for f in cls.config_class.field_names() if f.startswith("adam_") or f.endswith("_lr")]
        raise ConfigError(f"the {cls.name} family sets its own optimiser (model options: {', '.join(own) or 'none'}); "
                          f"{', '.join(unused)} would not be used")


def _base_conditions(space: Any, smiles: list[str], given: Mapping[str, Any] | None, opts: dict[str, Any],
                     data_info: dict[str, Any], policy: Policy):
    """Property values [N, k] for training a conditional model further. Its condition space is kept
    (the embedding learnt its standardisation); rows without a value train unconditionally."""
    if given is not None:
        values = np.array([given[s] for s in smiles], dtype=np.float64).reshape(len(smiles), space.k)
    else:
        values = property_table(space.names, smiles, data=opts["data"], smiles_col=opts["smiles_col"],
                                policy=policy, n_jobs=opts["n_jobs"])
    missing = {n: int((~np.isfinite(values[:, j])).sum()) for j, n in enumerate(space.names)}
    data_info["conditions"] = {"names": list(space.names), "missing_values": missing,
                               "space": "kept from the model trained further"}
    return values


# --- initialisation from a trained transformer -------------------------------------------------
def _given(options: dict[str, Any], config: str | Path | dict | None) -> set[str]:
    """Options set explicitly, by argument or in the config (not left at their defaults)."""
    cfg = (load_config(config) if not isinstance(config, dict) else config) if config is not None else {}
    return {k for k, v in options.items() if v is not None} | set(cfg)


def _init_source(cls: type, opts: dict[str, Any], options: dict[str, Any], config: str | Path | dict | None):
    """The trained transformer that ``init_from`` names (a model directory or a shipped name), checked
    against the run: a family that can start from it, the same representation and ``max_len``. Fills
    ``model_args["backbone"]`` with the source's when the run sets no backbone option (same shapes)."""
    ref = opts["init_from"]
    if not hasattr(cls, "init_from_transformer"):
        raise ConfigError(f"init_from is for --model diffusion or vae (started from a trained transformer); "
                          f"{getattr(cls, 'name', cls.__name__)} cannot start from one")
    source = load_pretrained(resolve_model(str(ref)))
    if source.name != "transformer":
        raise ConfigError(f"init_from {ref}: a {source.name!r} model; init_from takes a trained transformer")
    given = _given(options, config)
    rep = getattr(source.representation, "name", None)
    if "representation" in given and opts["representation"] != rep:
        raise ConfigError(f"init_from {ref}: its representation is {rep}, this run asks for "
                          f"{opts['representation']}; leave --representation unset (the source's is reused)")
    if opts["max_len"] and int(opts["max_len"]) != source.max_len:
        raise ConfigError(f"init_from {ref}: its max_len is {source.max_len}, this run asks for {opts['max_len']}")
    opts["representation"] = rep
    if not any(str(k).split(".")[0] == "backbone" for k in opts["model_args"]):
        opts["model_args"]["backbone"] = copy.deepcopy(source.config.backbone)
    return source


def _init_policy(source: Any, opts: dict[str, Any], policy: Policy) -> Policy:
    """The standardization policy of a run initialised from ``source``: the source's (an explicit
    different one is an error: the strings would not be the same objects)."""
    if opts["policy"] and policy != source.policy:
        raise ConfigError(f"init_from {opts['init_from']}: its standardization policy {source.policy.to_dict()} "
                          f"differs from the run's {policy.to_dict()}")
    return source.policy


def _init_weights(net: Any, source: Any, ref: Any) -> dict[str, Any]:
    """Copy ``source``'s weights into ``net`` and return what metadata.json records about it."""
    report = net.init_from_transformer(source)
    label = source.likelihood_label()
    meta = source.metadata or {}
    log.info("init_from %s: %d parameters copied, %d partially copied (%s), %d skipped (%s)", ref,
             len(report["copied"]), len(report["partially_copied"]), ", ".join(report["partially_copied"]) or "-",
             len(report["skipped"]), ", ".join(report["skipped"]) or "-")
    return {"source": str(ref), "model": source.name,
            "likelihood": label.to_dict() if label is not None else None,
            "data_hash": (meta.get("data") or {}).get("source_hash"),
            "final": meta.get("final") or {},
            "counts": {k: len(v) for k, v in report.items()}, **report}


# --- precision ---------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _trial_rates(model: Any, batches: list[Any], budget_s: float) -> dict[str, float]:
    """Molecules/s of real training steps (``training_step`` + backward + AdamW) on a copy of the
    model, fp32 and bf16 autocast interleaved in rounds so that a noisy machine affects both alike."""
    m = copy.deepcopy(model).cpu().train()
    opt = adamw(decay_groups(list(m.named_parameters()), 0.0), OptimConfig(lr=1e-7))

    def step(batch: Any, bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = m.training_step(batch, 0)
        loss = out["loss"] if isinstance(out, dict) else out
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    secs = {"32-true": 0.0, "bf16-mixed": 0.0}
    mols = {"32-true": 0, "bf16-mixed": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        for mode in secs:  # warm-up (allocations, kernels)
            step(batches[0], mode == "bf16-mixed")
        t_end = time.perf_counter() + budget_s
        i = 0
        while time.perf_counter() < t_end or i < 2:
            for mode in secs:
                for _ in range(2):
                    b = batches[i % len(batches)]
                    t = time.perf_counter()
                    step(b, mode == "bf16-mixed")
                    secs[mode] += time.perf_counter() - t
                    mols[mode] += batch_size_of(b)[0] or 1
            i += 1
    return {k: round(mols[k] / max(secs[k], 1e-9), 1) for k in secs}


def choose_precision(model: Any, dm: Any, opts: dict[str, Any], *, budget_s: float = PRECISION_TRIAL_SECONDS
                     ) -> tuple[str, dict[str, Any]]:
    """(precision, record): given; bf16-mixed on a GPU; on a CPU the faster of fp32 and bf16 autocast
    measured on real steps, cached in ``cache_dir()/precision.json`` per CPU model, torch version,
    model class, parameter count, batch size and threads."""
    if opts["precision"]:
        return str(opts["precision"]), {"how": "given"}
    acc = str(opts["accelerator"]).lower()
    if torch.cuda.is_available() and acc in ("auto", "gpu", "cuda"):
        return "bf16-mixed", {"how": "GPU default"}
    if acc not in ("auto", "cpu"):
        return "32-true", {"how": f"default for accelerator {acc}"}
    cls = type(model)
    key = (f"{cpu_name()} | torch {torch.__version__} | {cls.__module__}.{cls.__qualname__} | "
           f"{model.n_parameters()} params | batch {opts['batch_size']} | threads {torch.get_num_threads()}")
    env_key = "MOLGEN_PRECISION_TRIAL"
    inherited = os.environ.get(env_key)  # set by rank zero before it starts the other processes
    if inherited:
        rec = json.loads(inherited)
        if rec.get("key") == key:
            return rec["choice"], {**rec, "how": "measured by rank zero"}
    path = catalog.cache_dir() / "precision.json"
    try:
        cache = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        cache = {}
    rec = cache.get(key)
    if rec is None:
        dm.setup("fit")
        items = dm.train_items
        sampler = LengthBucketSampler([dm._length(x) for x in items], opts["batch_size"], opts["seed"])
        batches = [dm.collate([items[i] for i in b]) for b, _ in zip(sampler, range(8))]
        try:
            with torch.random.fork_rng(devices=[]):  # the trial must not change the training's random stream
                rates = _trial_rates(model, batches, budget_s)
        except Exception as exc:  # e.g. manual optimisation that needs a Trainer: fp32, said so
            log.info("precision trial failed (%s): using 32-true", exc)
            return "32-true", {"how": f"trial failed ({type(exc).__name__}): fp32"}
        choice = max(rates, key=rates.get)
        rec = {"key": key, "choice": choice, "molecules_per_s": rates,
               "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        cache[key] = rec
        try:
            tmp = catalog.atomic_tmp(path)
            tmp.write_text(json.dumps(cache, indent=1))
            os.replace(tmp, path)
        except OSError:
            pass
        how = "measured"
    else:
        how = "measured earlier (cached)"
    log.info("precision %s (%s): fp32 %.0f, bf16 %.0f molecules/s", rec["choice"], how,
             rec["molecules_per_s"]["32-true"], rec["molecules_per_s"]["bf16-mixed"])
    os.environ[env_key] = json.dumps({k: rec[k] for k in ("key", "choice", "molecules_per_s")})
    return rec["choice"], {**rec, "how": how}


# --- processes ---------------------------------------------------------------------------------
def launch_rank() -> int:
    """Global rank of this process as its launcher set it (0 before / without DDP)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _want_bar(opts: dict[str, Any]) -> bool:
    """A progress bar only where someone watches it: a terminal or a notebook (not a log file)."""
    if not opts["progress"]:
        return False
    return interactive()


def _epochs(steps: int, trainer: Any) -> float | None:
    """Passes over the training data (fractional: a budget usually ends mid-epoch)."""
    try:
        return round(steps / max(1, int(trainer.num_training_batches)), 3)
    except (TypeError, ValueError, OverflowError):
        return None


def _csv_logger(out: Path, resume: Any):
    """``OUT/logs/metrics.csv``; a resumed run logs to ``OUT/logs/resume-N/`` (Lightning would delete the first)."""
    if not resume:
        return CSVLogger(out, name="logs", version="")
    n = 1
    while (out / "logs" / f"resume-{n}").exists():
        n += 1
    return CSVLogger(out, name="logs", version=f"resume-{n}")


# --- train -------------------------------------------------------------------------------------
def _is_model(model: Any) -> bool:
    """A model instance (fine-tuning starts from it) rather than a registry name or a class."""
    return isinstance(model, GenerativeModel)


def train(model: Any = None, data: SmilesSource | None = None, out: str | Path | None = None, *,
          config: str | Path | dict | None = None, resume: str | Path | None = None,
          callbacks: list[Any] | None = None, _condition_values: Mapping[str, Any] | None = None,
          **options: Any):
    made: list[Path] = []  # the output folder, if this run created it
    try:
        return _train(model, data, out, config=config, resume=resume, callbacks=callbacks, _made=made,
                      _condition_values=_condition_values, **options)
    except BaseException:
        if made and launch_rank() == 0:
            _discard_partial(made[0])
        raise


def _discard_partial(out: Path) -> None:
    """A failed run leaves no half-written model folder: one it created is removed, unless it already
    holds a training checkpoint (hours of work; the error names it for ``--resume``), which is kept in
    place without any model file."""
    if any((out / "checkpoints").glob("*.ckpt")):
        log.warning("training failed; %s holds only its checkpoints (resume with --resume %s)", out,
                    out / "checkpoints" / "last.ckpt")
    else:
        shutil.rmtree(out, ignore_errors=True)


def _train(model: Any = None, data: SmilesSource | None = None, out: str | Path | None = None, *,
           config: str | Path | dict | None = None, resume: str | Path | None = None,
           callbacks: list[Any] | None = None, _made: list[Path] | None = None,
           _condition_values: Mapping[str, Any] | None = None, **options: Any):
    """Train a generator and write its portable directory to ``out``; returns the trained model.

    ``model`` is a registry name (``"transformer"``) or a :class:`GenerativeModel` subclass, or a model
    instance to train further (its representation, ``max_len`` and weights kept: :func:`molgen.finetune`).
    Precedence: explicit arguments > ``config`` (YAML path, a config name such as ``"quickstart"``, or a
    dict) > the :class:`~molgen.options.train.TrainOptions` defaults (transformer on the embedded MOSES
    data). ``options`` are the training options (e.g. ``max_molecules=300_000``,
    ``max_time=15`` minutes, ``subset=100_000``, ``representation="selfies"``); anything else is a model
    option (``d_model=256``, ``encoder="graph"``). ``callbacks`` are extra Lightning callbacks.
    ``resume`` is a Lightning checkpoint (``OUT/checkpoints/last.ckpt``): steps, molecules, seconds,
    optimizer and schedule states continue from it. A conditional model trained further keeps its
    condition space; ``_condition_values`` (canonical SMILES -> raw property row, NaN = absent) are the
    properties :func:`molgen.finetune` read for it, else they are computed / read from ``data``.
    """
    _quiet_lightning()
    base = model if _is_model(model) else None  # fine-tuning: start from this model, not a fresh one
    fixed = sorted(k for k, v in options.items() if v and (k not in TRAINING_OPTIONS or k in (
        "representation", "max_len", "model_args", "conditions", "config", "init_from") or k in nested_role_holders()))
    if base is not None and (fixed or config is not None):
        raise ConfigError(f"training an existing {base.name} model further keeps its representation and "
                          f"architecture: {', '.join(fixed or ['config'])} cannot be given")
    explicit = dict(options, model=type(base) if base is not None else model, data=data)
    opts = resolve_options(config, **explicit)
    cls = resolve_model_class(opts["model"])
    name = getattr(cls, "name", cls.__name__)
    _check_optim_options(cls, options, config)
    out = Path(out or opts.get("out") or f"runs/{name}-{datetime.now():%Y%m%d-%H%M%S}")
    rank0 = launch_rank() == 0
    if _made is not None and not out.exists() and not resume:
        _made.append(out)  # removed again if the run fails (see train)
    check_writable(out)  # an unwritable folder is an error now, not after the data preparation
    if opts["num_threads"]:
        torch.set_num_threads(int(opts["num_threads"]))
    L.seed_everything(opts["seed"], workers=True, verbose=False)
    policy = Policy.from_dict(opts["policy"]) if opts["policy"] else DEFAULT_POLICY
    source = _init_source(cls, opts, options, config) if opts["init_from"] and base is None else None
    if source is not None:
        policy = _init_policy(source, opts, policy)

    t0 = time.perf_counter()
    train_smiles, val_smiles, data_info = split_data(opts, policy)
    tok_path = out / "representation.json"  # the same file the model directory holds
    nested = {} if base is not None else load_nested(cls, opts)  # the GAN's autoencoder
    if base is not None:  # its representation (vocabulary) and max_len are kept
        representation = base.representation
    elif nested:  # such a family writes strings in its nested model's representation, fits none of its own
        representation = next(iter(nested.values())).representation
    elif source is not None:  # initialised from a transformer: its representation, not a new fit
        representation = source.representation
        if rank0:
            representation.save(tok_path)
    elif resume and tok_path.exists():
        representation = load_representation(tok_path)
    else:
        representation = _fit_representation(opts, train_smiles, data_info, policy)
        if rank0:
            representation.save(tok_path)
    conditions = _conditions(cls, opts, train_smiles + val_smiles, data_info, policy)
    if base is not None and getattr(base, "condition_space", None) is not None:
        conditions = _base_conditions(base.condition_space, train_smiles + val_smiles, _condition_values, opts,
                                      data_info, policy)
    max_len = base.max_len if base is not None else (
        opts["max_len"] or (next(iter(nested.values())).max_len if nested else None)
        or (source.max_len if source is not None else None))
    if max_len is None:
        longest = max(representation.size(s) for s in train_smiles[:200_000])
        max_len = int(longest * 1.1) + 1
    net = base if base is not None else build_model(cls, None if nested else representation, policy, max_len,
                                                    opts["model_args"], nested)
    init_info = _init_weights(net, source, opts["init_from"]) if source is not None else None
    data_info["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    if rank0:  # weights, the checkpoint (weights + two AdamW moments) and logs must fit: checked before fit
        check_writable(out, need_bytes=20 * net.n_parameters() + 64 * 2**20)
    log.info("model %s: %.2fM parameters, %s, max_len %d", name, net.n_parameters() / 1e6,
             representation.describe(), max_len)

    cacheable = bool(getattr(net, "featurize_cacheable", False))
    split_key = data_info["validation"]["sha256"][:12]
    featurize, collate, length = net.featurize, net.collate, net.item_length
    if conditions is not None:  # items carry their property rows; batches gain cond / cond_present
        items = ConditionedItems(net, net.condition_space, train_smiles + val_smiles, conditions)
        featurize, collate, length, cacheable = items.featurize, items.collate, items.item_length, False
    dm = MoleculeDataModule(
        train_smiles, val_smiles, featurize, collate, batch_size=opts["batch_size"], seed=opts["seed"],
        cache_key=f"{data_info['source_hash']}-{policy.key}-{opts['subset']}-{opts['seed']}-{split_key}-"
                  f"{representation.state_key}-{max_len}-{name}" if cacheable else None,
        length=length)
    net.optim = OptimConfig(lr=opts["lr"], weight_decay=opts["weight_decay"], betas=tuple(opts["betas"]),
                            warmup_steps=opts["warmup_steps"], min_lr_ratio=opts["min_lr_ratio"])

    budget = Budget.from_options(opts)
    progress = TrainingProgress(budget)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", save_last=True, save_top_k=0,
                           enable_version_counter=False)  # one last.ckpt, also written by NonFiniteGuard
    precision, precision_info = choose_precision(net, dm, opts)
    max_epochs = opts["max_epochs"] if opts["max_epochs"] is not None else (-1 if budget.is_set() else 10)
    bar = _want_bar(opts)
    # curve_logger: molecules seen + learning rate in the CSV log;
    # NonFiniteGuard: a NaN / inf loss stops the run naming the step; the checkpoint written after each
    # validation (when every weight is finite) is the last good one (a family's own guard replaces it)
    cbs = [progress, ckpt, curve_logger(progress), NonFiniteGuard(), *(callbacks or [])]
    if bar:
        cbs.append(TrainingBar(refresh_rate=10))  # one bar per run (molgen.progress), no validation bars
    # Gradient clipping is for automatic optimisation (Lightning refuses it with manual optimisation,
    # where the family clips what it wants itself); done by a callback with multi-tensor kernels.
    if getattr(net, "automatic_optimization", True) and opts["grad_clip"]:
        cbs.append(ClipGradNorm(float(opts["grad_clip"])))
    cbs.extend(net.default_callbacks())  # the family's own (VAE safeguards, GAN latent bins), after clipping
    trainer = L.Trainer(
        accelerator=opts["accelerator"], devices=opts["devices"], strategy=opts["strategy"], precision=precision,
        max_epochs=max_epochs, max_steps=-1, callbacks=cbs, val_check_interval=opts["val_every"], check_val_every_n_epoch=None,
        logger=_csv_logger(out, resume), log_every_n_steps=opts["log_every"],
        enable_progress_bar=bar, enable_model_summary=False, use_distributed_sampler=False,
        num_sanity_val_steps=0, deterministic=False, default_root_dir=out,
    )
    t_fit = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")  # in-process loading is faster
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")  # small data: fine
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # a torch deprecation inside Lightning
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")  # a re-run into the same OUT
        trainer.fit(net, datamodule=dm, ckpt_path=str(resume) if resume else None)
    fit_seconds = time.perf_counter() - t_fit
    representation.drop_caches()

    net.eval()
    final: dict[str, Any] = {}
    if trainer.is_global_zero and "log_likelihood" in net.capabilities and val_smiles:
        scores = net.score(val_smiles, progress=bool(opts["progress"]))  # the final validation: a bar
        ok = scores[scores.status == "ok"]
        label = net.likelihood_label()
        final = {"val_nll_nats_per_molecule": float(-ok.log_likelihood.mean()), "val_n": len(ok),
                 "likelihood": label.to_dict()}
    if trainer.is_global_zero and val_smiles:
        final.update(net.final_diagnostics(val_smiles))
    net.metadata = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data_info, "dropped": {k: dict(v) for k, v in dm.dropped.items()},
        "training": {**{k: opts[k] for k in ("seed", "subset", "batch_size", "max_time", "max_steps",
                                              "max_molecules", "max_epochs", "strategy", "conditions")},
                     **{k: opts[k] for k in ("lr", "weight_decay", "warmup_steps") if k in net.optim_options},
                     "representation": representation.name,  # the one used
                     "world_size": trainer.world_size, "global_batch_size": opts["batch_size"] * trainer.world_size,
                     "steps": progress.steps, "optimizer_steps": trainer.global_step,
                     "epochs": _epochs(progress.steps, trainer), "fit_seconds": round(fit_seconds, 1),
                     "precision": precision, "precision_choice": precision_info,
                     "n_parameters": net.n_parameters(), **progress.summary()},
        "final": final,
        **({"init_from": init_info} if init_info is not None else {}),
    }
    if trainer.is_global_zero:
        net.save_pretrained(out)
        write_curves(out, Path(trainer.logger.log_dir))  # curves.csv / curves.png from the CSV log
        (out / "train_options.json").write_text(json.dumps(
            {**opts, "model": name}, indent=1, default=str))
    return net


train.__doc__ = (_train.__doc__ or "") + """
    A run that fails leaves no half-written ``out``: a folder it created is removed (kept, with only its
    checkpoints, once it holds one, so the run can be resumed)."""
