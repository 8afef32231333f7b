"""Training and evaluation of the benchmark's rows (:func:`run_benchmark`): every row trains on the same
data under the same budget, samples the same n, scores the same test molecules and is evaluated by one
:class:`molgen.metrics.Evaluator`; :mod:`molgen.benchmark.report` writes what it found.

The runner knows no family by name: what a row needs (another row's trained model, a sampler that takes
``--diffusion-steps``) is declared in the row table (:mod:`molgen.benchmark.rows`), and which optimiser
options a family reads is declared on its class (``optim_options``).
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgen.api import load
from molgen.benchmark.report import EVAL_KEYS, aggregate, fmt, one_line, write_outputs
from molgen.benchmark.rows import (
    BY_NAME,
    PUBLISHED,
    PUBLISHED_LABEL,
    PUBLISHED_SOURCE,
    ROW_NAMES,
    ROWS,
    Row,
    parse_families,
    resolve_row_config,
    with_needed,
)
from molgen.data import catalog
from molgen.data.io import read_smiles
from molgen.errors import CapabilityError, ConfigError, strict
from molgen.metrics import Evaluator
from molgen.metrics.nll import summarize_scores
from molgen.models.base import GenerativeModel
from molgen.options.base import defaults, validate_mapping
from molgen.options.benchmark import (
    DEFAULT_BUDGET_MINUTES,
    DEFAULT_TIME_CAP_MINUTES,
    DIFFUSION_STEPS,
    BenchmarkOptions,
)
from molgen.options.train import TRAINING_OPTIONS, TrainOptions
from molgen.persistence import versions
from molgen.registry import MODELS
from molgen.training.progress import Budget
from molgen.training.train import launch_rank, load_config, train

#: the defaults of :class:`~molgen.options.benchmark.BenchmarkOptions`, the one declaration of the options
OPTION_DEFAULTS = defaults(BenchmarkOptions)


def machine_info() -> dict[str, Any]:
    """CPU, cores, threads, GPU, platform, package versions and the date (what a result depends on)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), "versions": versions(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


# --- training -----------------------------------------------------------------------------------
def _row_config(row: Row, path: Path, *, budget: Budget, subset: int | None, seed: int, val_size: int | None,
                precision: str | None, devices: Any, accelerator: str | None, strategy: str | None,
                overrides: dict[str, Any]) -> dict[str, Any]:
    """The row's YAML config with the benchmark's budget, data subset, seed and overrides applied."""
    cfg = load_config(path)
    for key in ("max_molecules", "max_steps", "max_epochs", "max_time"):
        cfg.pop(key, None)
    cfg.update({k: v for k, v in budget.options().items() if v is not None})
    cfg["subset"] = subset or None
    cfg["seed"] = int(seed)
    if val_size:
        cfg["val_size"] = int(val_size)
    cfg.update(row.options)
    for key, value in (("precision", precision), ("devices", devices), ("accelerator", accelerator),
                       ("strategy", strategy)):
        if value is not None:
            cfg[key] = value
    for key, value in overrides.items():
        if key == "model_args":
            cfg["model_args"] = {**(cfg.get("model_args") or {}), **value}
        else:
            cfg[key] = value
    cfg["progress"] = False
    return cfg


def _shared_overrides(row: Row, shared: dict[str, Any]) -> dict[str, Any]:
    """The ``"*"`` overrides for one row, less the optimiser options its family does not read (the GAN's
    Adam settings are model options): given for one family or row, those stay an error."""
    unread = set(GenerativeModel.optim_options) - set(MODELS.get(row.family).optim_options)
    return {k: v for k, v in shared.items() if k not in unread}


def _row_overrides(row: Row, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The training options given for every row (``"*"``), the row's family and the row, in that order;
    ``model_args`` merged from every level, the row's own last."""
    opts = {**_shared_overrides(row, overrides.get("*", {})), **overrides.get(row.family, {}),
            **overrides.get(row.name, {})}
    if "model_args" in opts:
        opts["model_args"] = {k: v for lvl in ("*", row.family, row.name)
                              for k, v in overrides.get(lvl, {}).get("model_args", {}).items()}
    return opts


def _check_overrides(overrides: dict[str, dict[str, Any]]) -> None:
    """Overrides name a row, a family or ``"*"``, and hold training options of the right types."""
    known_keys = set(ROW_NAMES) | {r.family for r in ROWS} | {"*"}
    bad = sorted(set(overrides) - known_keys)
    if bad:
        raise ConfigError(f"overrides for unknown row(s) {bad}; accepted: {', '.join(sorted(known_keys))}")
    for key, opts in overrides.items():
        unknown = sorted(set(opts) - set(TRAINING_OPTIONS))
        if unknown:
            raise ConfigError(f"overrides for {key!r}: unknown training option(s) {unknown}; "
                              f"known: {sorted(TRAINING_OPTIONS)}")
        validate_mapping(TrainOptions, opts, f"overrides for {key!r}")


def _finished(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "metadata.json").is_file()


def _train_row(cfg: dict[str, Any], model_dir: Path, *, data: Any, resume: bool,
               nested: dict[str, str]) -> str:
    """Train (or, with ``resume``, reuse a finished model / continue an interrupted run); how, in words.
    ``nested``: training option -> model directory of a row this one holds."""
    ckpt = model_dir / "checkpoints" / "last.ckpt"
    if resume and _finished(model_dir):
        return "reused (finished earlier)"
    if not resume and model_dir.exists():
        shutil.rmtree(model_dir)  # this benchmark's own output folder, from an earlier run
    how = "trained"
    kwargs: dict[str, Any] = dict(nested)
    if resume and ckpt.is_file():
        kwargs["resume"] = ckpt
        how = f"resumed from {ckpt}"
    train(config=cfg, data=data, out=model_dir, **kwargs)
    return how


def _needed_model(row: Row, records: list[dict[str, Any]], seed: int, given: dict[str, Any]) -> str:
    """The model directory a row holds: the one given for its role, else its needed row's of this seed."""
    if given.get(row.role) is not None:
        return str(given[row.role])
    dep = next((x for x in records if x["row"] == row.needs and x["seed"] == seed), None)
    if dep is None or dep["error"]:
        raise RuntimeError(f"needs the {row.needs} row's model, which failed" + (f" ({dep['error']})" if dep else ""))
    return dep["model_dir"]


# --- per-row evaluation -------------------------------------------------------------------------
def _sampler_label(row: Row, model: Any, result: Any) -> str:
    label = str(result.sampler)
    stats = getattr(model, "last_sample_stats", None)
    if row.diffusion_steps and isinstance(stats, dict) and stats.get("steps"):
        label += f" (T={stats['steps']} steps, canvas N={model.canvas_len})"
    return label


def _score(model: Any, test: list[str]) -> tuple[Any, str | None]:
    """``model.score`` on the test molecules, or (None, why) for a family without a likelihood."""
    if "log_likelihood" not in getattr(model, "capabilities", ()):
        try:
            model.score(test[:1])
        except CapabilityError as e:
            return None, str(e)
        return None, f"model {model.name!r} has no likelihood"
    return model.score(test), None


def _training_fields(model: Any) -> dict[str, Any]:
    t = model.metadata.get("training", {}) if isinstance(getattr(model, "metadata", None), dict) else {}
    final = model.metadata.get("final", {}) if isinstance(getattr(model, "metadata", None), dict) else {}
    data = model.metadata.get("data", {}) if isinstance(getattr(model, "metadata", None), dict) else {}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"molecules_seen": t.get("molecules_seen"), "train_seconds": t.get("train_seconds"),
            "train_molecules_per_s": t.get("molecules_per_s"), "steps": t.get("steps"),
            "parameters": model.n_parameters(), "trainable_parameters": trainable,
            "precision": t.get("precision"), "representation": t.get("representation"),
            "val_nll": final.get("val_nll_nats_per_molecule"), "n_train": data.get("n_train"),
            "n_val": data.get("n_val"),
            "training_budget": {k: t.get(k) for k in ("max_time", "max_molecules", "subset", "batch_size", "seed")}}


def _budget(budget_minutes: Any, budget_molecules: Any, time_cap_minutes: Any) -> Budget:
    """One budget per family: minutes of training, or molecules seen under a time cap."""
    if budget_minutes is not None and budget_molecules is not None:
        raise ConfigError("give one budget: --budget-minutes or --budget-molecules, not both")
    if budget_minutes is None and budget_molecules is None:
        budget_minutes = DEFAULT_BUDGET_MINUTES
    if budget_minutes is not None and not (isinstance(budget_minutes, (int, float)) and budget_minutes > 0):
        raise ConfigError(f"--budget-minutes must be a number > 0, got {budget_minutes!r}")
    if budget_molecules is not None and not (isinstance(budget_molecules, int) and budget_molecules > 0):
        raise ConfigError(f"--budget-molecules must be an integer > 0, got {budget_molecules!r}")
    if budget_minutes is not None:
        return Budget(max_time=float(budget_minutes))
    return Budget(max_molecules=int(budget_molecules), max_time=float(time_cap_minutes or DEFAULT_TIME_CAP_MINUTES))


def _described(value: Any) -> Any:
    """A data / reference argument as the payload records it: a name or path, or ``list[n]``."""
    return str(value) if isinstance(value, (str, Path)) else f"list[{len(value or [])}]"


# --- the run ------------------------------------------------------------------------------------
@strict
def run_benchmark(families: str | Sequence[str] | None = OPTION_DEFAULTS["families"], *,
                  budget_minutes: float | None = OPTION_DEFAULTS["budget_minutes"],
                  budget_molecules: int | None = OPTION_DEFAULTS["budget_molecules"],
                  time_cap_minutes: float | None = OPTION_DEFAULTS["time_cap"], n: int = OPTION_DEFAULTS["n"],
                  seeds: Sequence[int] = tuple(OPTION_DEFAULTS["seeds"]),
                  subset: int | None = OPTION_DEFAULTS["subset"], val_size: int | None = OPTION_DEFAULTS["val_size"],
                  data: Any = OPTION_DEFAULTS["data"], out: str | Path = OPTION_DEFAULTS["out"],
                  results: str | Path = OPTION_DEFAULTS["results"], name: str = OPTION_DEFAULTS["name"],
                  config_dir: str | Path | None = OPTION_DEFAULTS["config_dir"],
                  reference: Any = OPTION_DEFAULTS["reference"],
                  scaffold_reference: Any = OPTION_DEFAULTS["scaffold_reference"], train_reference: Any = None,
                  nll_n: int = OPTION_DEFAULTS["nll_n"], autoencoder: str | Path | None = OPTION_DEFAULTS["autoencoder"],
                  diffusion_steps: str = OPTION_DEFAULTS["diffusion_steps"],
                  precision: str | None = OPTION_DEFAULTS["precision"], devices: Any = OPTION_DEFAULTS["devices"],
                  accelerator: str | None = OPTION_DEFAULTS["accelerator"], strategy: str | None = None,
                  resume: bool = OPTION_DEFAULTS["resume"], n_jobs: int = OPTION_DEFAULTS["n_jobs"],
                  overrides: dict[str, dict[str, Any]] | None = None, plots: bool = not OPTION_DEFAULTS["no_plots"],
                  command: str | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train, sample, score and evaluate every row; write the manifest, the table and the plots.

    ``families``: row names (``"vae,gan"`` or a list; default :data:`~molgen.benchmark.rows.DEFAULT_ROWS`).
    One of ``budget_minutes`` / ``budget_molecules`` (default
    :data:`~molgen.options.benchmark.DEFAULT_BUDGET_MINUTES` minutes). ``data``: the training data of every
    row (``"moses"``, a file or a list of SMILES), ``subset`` a random subset of it (0 / None: all);
    ``reference`` / ``scaffold_reference`` / ``train_reference`` the Evaluator's sets (``train_reference``
    defaults to the training data, for novelty and the FCD floor). ``autoencoder``: the model a row with
    that role holds (the gan row's VAE; default: its needed row's model). ``overrides``: training options
    per row or family name (``{"vae": {"batch_size": 32, "model_args": {...}}}``; ``"*"`` for every row),
    applied after the config. The other options are ``molgen benchmark``'s
    (:class:`~molgen.options.benchmark.BenchmarkOptions`). Returns the payload written to
    ``RESULTS/<name>.json`` (with ``files``: every path written).
    """
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    names = parse_families(families)
    budget = _budget(budget_minutes, budget_molecules, time_cap_minutes)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"-n must be an integer >= 1, got {n!r}")
    if not isinstance(nll_n, int) or nll_n < 0:
        raise ConfigError(f"--nll-n must be an integer >= 0, got {nll_n!r}")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must be distinct integers, got {seeds!r}")
    if diffusion_steps not in DIFFUSION_STEPS:
        raise ConfigError(f"--diffusion-steps must be one of {', '.join(DIFFUSION_STEPS)}; got {diffusion_steps!r}")
    overrides = dict(overrides or {})
    _check_overrides(overrides)
    given = {"autoencoder": autoencoder}  # role -> a trained model directory given for it
    names, added_for = with_needed(names, given)
    notes: list[str] = []
    for row in added_for:
        what = BY_NAME[row.needs].family.upper()
        notes.append(f"The {row.name} row needs a trained {what}: the {row.needs} row was added "
                     f"(give --{row.role} DIR to reuse one).")
        say(f"[benchmark] {row.name} needs a trained {what}: adding the {row.needs} row (or give --{row.role} DIR)")
    rows = [BY_NAME[r] for r in names]
    configs = {r.name: resolve_row_config(r, config_dir) for r in rows}  # a missing config: an error now
    for r in rows:
        load_config(configs[r.name])  # an invalid config: an error before hours of training

    out, results = Path(out), Path(results)
    if isinstance(data, str):
        data = catalog.ALIASES.get(data, data)
    if train_reference is None:
        train_reference = data
    use_gpu = str(accelerator or "auto").lower() in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    device = "cuda" if use_gpu else "cpu"
    k_unique = min(n, 10_000)
    unique_label = "unique@10k" if k_unique == 10_000 else f"unique@{k_unique} (n < 10k)"
    evaluator = Evaluator(reference=reference, scaffold_reference=scaffold_reference, train=train_reference,
                          k=tuple(sorted({min(n, 1000), k_unique})), n_jobs=n_jobs, device=device,
                          guacamol=False)
    ref_smiles = read_smiles(reference) if isinstance(reference, (str, Path)) else list(reference)
    idx = np.sort(np.random.default_rng(0).choice(len(ref_smiles), size=min(nll_n, len(ref_smiles)),
                                                  replace=False))
    test = [ref_smiles[i] for i in idx]
    ref_name = str(reference) if isinstance(reference, (str, Path)) else f"list[{len(ref_smiles)}]"

    records: list[dict[str, Any]] = []
    scores: dict[tuple[str, int], Any] = {}
    for seed in seeds:
        for row in rows:
            rec: dict[str, Any] = {"row": row.name, "family": row.family, "label": row.label, "seed": seed,
                                   "representation": row.representation, "config": str(configs[row.name]),
                                   "model_dir": str(out / row.name / f"seed{seed}"), "error": None}
            records.append(rec)
            model_dir = Path(rec["model_dir"])
            stage = "train"
            try:
                nested: dict[str, str] = {}
                if row.needs:
                    nested[row.role] = rec[row.role] = _needed_model(row, records, seed, given)
                cfg = _row_config(row, configs[row.name], budget=budget, subset=subset, seed=seed,
                                  val_size=val_size, precision=precision, devices=devices,
                                  accelerator=accelerator, strategy=strategy, overrides=_row_overrides(row, overrides))
                say(f"[benchmark] {row.name} seed {seed}: training ({budget.text(' per family')}) -> {model_dir}")
                t0 = time.perf_counter()
                rec["trained"] = _train_row(cfg, model_dir, data=data, resume=resume, nested=nested)
                rec["fit_wall_seconds"] = round(time.perf_counter() - t0, 1)
                if launch_rank() != 0:  # the other processes of a multi-device run only train
                    continue
                stage = "load"
                model = load(model_dir, map_location=device)
                rec.update(_training_fields(model))
                rec["representation"] = rec.get("representation") or row.representation
                label = model.likelihood_label()
                rec["likelihood"] = label.to_dict() if label is not None else None
                say(f"[benchmark] {row.name} seed {seed}: {rec['trained']}: {rec['molecules_seen'] or 0:,} molecules "
                    f"seen in {(rec['train_seconds'] or 0) / 60:.1f} min ({rec['precision']})")

                stage = "sample"
                if row.diffusion_steps:
                    model.set_sampling(steps=max(1, model.canvas_len // DIFFUSION_STEPS[diffusion_steps]))
                say(f"[benchmark] {row.name} seed {seed}: sampling {n} at temperature 1")
                t0 = time.perf_counter()
                res = model.sample(n, seed=seed, temperature=1.0)
                secs = time.perf_counter() - t0
                rec.update(n=len(res.smiles), sampler=_sampler_label(row, model, res), temperature=res.temperature,
                           sample_seconds=round(secs, 2), sample_molecules_per_s=len(res.smiles) / max(secs, 1e-9))
                (model_dir / "samples.smi").write_text("".join(f"{s}\n" for s in res.smiles))

                stage = "score"
                if test:
                    say(f"[benchmark] {row.name} seed {seed}: NLL of {len(test)} test molecules")
                    t0 = time.perf_counter()
                    table, why = _score(model, test)
                    rec["score_seconds"] = round(time.perf_counter() - t0, 2)
                    if table is None:
                        rec["no_likelihood"] = why
                    else:
                        summary = summarize_scores(table, model)
                        if summary.n_scored and not math.isfinite(summary.value):
                            raise FloatingPointError(f"non-finite NLL ({summary.value}) on the test molecules")
                        rec.update(nll_own=summary.value, nll_scored=summary.n_scored,
                                   nll_unscored=summary.n_unscored, nll_unscored_by_status=dict(summary.unscored),
                                   likelihood=summary.label or rec["likelihood"])
                        scores[(row.name, seed)] = table
                        table.assign(test_smiles=test).to_csv(model_dir / "nll_test.csv", index=False)

                stage = "evaluate"
                say(f"[benchmark] {row.name} seed {seed}: evaluating {len(res.smiles)} samples")
                t0 = time.perf_counter()
                report = evaluator.evaluate(res.smiles, name=f"{row.name} seed {seed}: {n} samples, {rec['sampler']}")
                rec["evaluate_seconds"] = round(time.perf_counter() - t0, 1)
                m = report.metrics
                rec.update({k: m.get(k) for k in EVAL_KEYS})
                rec["unique"] = m.get(f"unique@{k_unique}")
                rec["n_valid"] = report.meta.get("n_valid")
                rec["notes"] = {k: v for k, v in report.notes.items()}
                report.meta["benchmark"] = {k: rec.get(k) for k in ("row", "seed", "sampler", "likelihood",
                                                                    "nll_own", "nll_scored", "nll_unscored")}
                report.to_json(model_dir / "evaluation.json")
                rec["report"] = report.to_dict()
                say(f"[benchmark] {row.name} seed {seed}: done (valid {fmt(rec['valid'])}, "
                    f"FCD/Test {fmt(rec['FCD/Test'], digits=2)})")
            except Exception as e:  # one row failing never stops the others
                rec["error"] = f"{stage}: {one_line(e)}"
                say(f"[benchmark] {row.name} seed {seed}: FAILED at {stage}: {one_line(e)}")
    if launch_rank() != 0:
        return {}

    nll_info = _common_nll(records, scores, test, ref_name)
    agg = aggregate(records, [r.name for r in rows])
    payload = {
        "machine": machine_info(), "command": command, "argv": list(sys.argv),
        "options": {"rows": [r.name for r in rows], "budget": budget.text(" per family"),
                    "budget_minutes": None if budget.max_molecules else budget.max_time,
                    "budget_molecules": budget.max_molecules,
                    "time_cap_minutes": float(time_cap_minutes or DEFAULT_TIME_CAP_MINUTES), "n": n,
                    "seeds": seeds, "subset": subset or None, "val_size": val_size,
                    "data": data if isinstance(data, (str, Path)) else f"list[{len(data)}]",
                    "reference": ref_name, "scaffold_reference": _described(scaffold_reference),
                    "train_reference": _described(train_reference), "nll_n": len(test),
                    "diffusion_steps": diffusion_steps, "config_dir": str(config_dir) if config_dir else "configs",
                    "precision": precision, "devices": devices, "accelerator": accelerator, "resume": resume,
                    "unique": unique_label},
        "rows": agg, "runs": records, "nll": nll_info,
        "published": {"label": PUBLISHED_LABEL, "source": PUBLISHED_SOURCE, "rows": list(PUBLISHED)},
        "notes": notes, "wall_seconds": round(time.perf_counter() - t_start, 1),
    }
    payload["files"] = write_outputs(payload, out=out, results=results, name=name, plots=plots)
    say(f"[benchmark] done in {payload['wall_seconds'] / 60:.1f} min: {payload['files']['markdown']}")
    return payload


def _common_nll(records: list[dict[str, Any]], scores: dict[tuple[str, int], Any], test: list[str],
                ref_name: str) -> dict[str, Any]:
    """The NLL of every scored run over the test molecules all of them scored (the common set)."""
    info: dict[str, Any] = {"reference": ref_name, "n_test": len(test), "subset_seed": 0,
                            "rows_scored": sorted({f"{r}/seed{s}" for r, s in scores}), "n_common": 0}
    if not scores:
        return info
    ok = np.ones(len(test), dtype=bool)
    for table in scores.values():
        ok &= (table["status"].astype(str).to_numpy() == "ok") & np.isfinite(table["log_likelihood"].to_numpy(float))
    info["n_common"] = int(ok.sum())
    for rec in records:
        table = scores.get((rec["row"], rec["seed"]))
        if table is not None and ok.any():
            rec["nll"] = float(-table["log_likelihood"].to_numpy(float)[ok].mean())
            rec["nll_common_n"] = int(ok.sum())
    return info
