"""``molgen benchmark``: every family trained on the same data under the same budget, sampled at the
same n, scored on the same test molecules and evaluated with the one shared pipeline
(:class:`molgen.metrics.Evaluator`); one table (JSON + markdown) and plots a user would put in a paper, written by :mod:`molgen.benchmark_report`.

Rows (:data:`ROWS`; all but the last two by default):

==========================  ================================  ===========================================
row                         config (``--config-dir``)         what
==========================  ================================  ===========================================
``transformer-smiles``      ``transformer-smiles.yaml``       decoder-only transformer on SMILES (exact NLL)
``transformer-selfies``     ``transformer-selfies.yaml``      the same on SELFIES
``vae``                     ``vae.yaml``                      VAE, transformer decoder (from moses-transformer)
``vae-graph``               ``vae-graph.yaml``                MoG-prior VAE, GATv2 graph encoder
``flow``                    ``flow.yaml``                     categorical normalizing flow on SELFIES
``gan``                     ``gan.yaml``                      LatentGAN on the ``vae`` row's model (no NLL)
``diffusion-smiles``        ``diffusion.yaml``                masked diffusion on SMILES
``diffusion-selfies``       ``diffusion-selfies.yaml``        masked diffusion on SELFIES
``transformer-smiles-qed``  ``transformer-smiles.yaml`` + qed conditional transformer, evaluated unguided
``transformer-kekule``      ``quickstart.yaml``               the quick-start: the transformer on Kekulé SMILES
==========================  ================================  ===========================================

A config is looked up in the config folder as ``<row>.yaml`` first, then under the name above
(``benchmarks/gpu/`` names its files by row).

Budget: ``budget_minutes`` is training wall clock per family (validation excluded; the config's
``max_time`` replaced, its ``max_molecules`` / ``max_steps`` / ``max_epochs`` caps removed, so the
clock decides), or ``budget_molecules`` (molecules seen: machine-independent; ``time_cap_minutes``
is a generous safety cap). The GAN's budget is its own training (its VAE is the ``vae`` row's model,
reused frozen; ``autoencoder=`` gives another). Every row records molecules seen, training
molecules/s, training time, parameters and precision. All rows train on the same subset of the same
data with the same seed and the same ``val_size``, so they share one train / validation split.

Evaluation: ``n`` samples per row at temperature 1 (the sampler each model reports is recorded; never
argmax), evaluated by one ``Evaluator(reference, scaffold_reference=..., train=...)``; the NLL of
every likelihood family on one fixed seeded subset of the reference (``nll_n`` molecules, seed 0),
reported as the mean over the molecules *every* likelihood row scored (the common set, its size
stated) next to each row's own mean and count of unscored molecules, with the likelihood kind and
object each model reports. The masked-diffusion rows sample with ``diffusion_steps`` ancestral steps
(default ``quarter``: N/4 of the canvas length N, 2.6x faster than N at a small cost in validity,
``benchmarks/results/diffusion.md``; the sampler column says which), the choice a CPU user makes.

Default budget (:data:`DEFAULT_BUDGET_MINUTES` = 4 minutes of training per family, n = 1,000 samples,
NLL on 500 test molecules): measured at 66.8 minutes for the 8 default rows on a 2-core Intel Xeon with
one torch thread (``benchmarks/results/compare.md``): 32 min of training, the rest data preparation
(per-row tokenization / featurization of the 200k subset: the graph encoder's ~10 min is the largest),
validation outside the clock, sampling (the diffusion rows at N/4 steps, ~35 molecules/s), scoring and
evaluation. Larger n or budgets grow it roughly linearly; a first run on a fresh cache adds the MOSES
test-set statistics (~1 min).

Outputs: model directories ``OUT/<row>/seed<k>/`` (with ``samples.smi``, ``nll_test.csv``,
``evaluation.json``) and the manifest ``OUT/benchmark.json``; ``RESULTS/<name>.json`` (machine facts,
the exact command, every row and seed, the published rows apart), ``RESULTS/<name>.md`` (the table
and its footnotes) and ``RESULTS/<name>_<metric>.png`` (a bar chart per metric, NLL vs training time).
One row failing (an exception, a NaN loss) records its error in one line; the others continue.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from molgen.errors import ConfigError

DEFAULT_BUDGET_MINUTES = 4.0
DEFAULT_N = 1000
DEFAULT_NLL_N = 500
DEFAULT_SUBSET = 200_000
DEFAULT_VAL_SIZE = 1000
DEFAULT_TIME_CAP_MINUTES = 120.0  # with a budget in molecules seen: the safety cap per family
#: ancestral steps of the masked-diffusion sampler, as a fraction of the canvas length N
DIFFUSION_STEPS = {"full": 1, "half": 2, "quarter": 4, "eighth": 8}
DEFAULT_DIFFUSION_STEPS = "quarter"


@dataclass(frozen=True)
class Row:
    """One line of the table: a registered family, its config and what it is."""

    name: str
    family: str                     # registry name (molgen.registry.MODELS)
    config: str                     # config name in the config folder (``<name>.yaml`` is tried first)
    label: str                      # what it is, in words
    representation: str
    needs: str | None = None        # a row whose trained model this one holds (the GAN's VAE)
    default: bool = True
    options: dict[str, Any] = field(default_factory=dict)  # extra training options (a condition)


ROWS: tuple[Row, ...] = (
    Row("transformer-smiles", "transformer", "transformer-smiles", "transformer (decoder-only)", "smiles"),
    Row("transformer-selfies", "transformer", "transformer-selfies", "transformer (decoder-only)", "selfies"),
    Row("vae", "vae", "vae", "VAE, transformer decoder from moses-transformer, bi-GRU encoder, MoG prior",
        "smiles-kekule"),
    Row("vae-graph", "vae", "vae-graph", "VAE, MoG prior, graph (GATv2) encoder", "selfies"),
    Row("flow", "flow", "flow", "categorical normalizing flow", "selfies"),
    Row("gan", "gan", "gan", "LatentGAN (WGAN-GP) on the vae row's latents", "selfies", needs="vae"),
    Row("diffusion-smiles", "diffusion", "diffusion", "masked diffusion (MDLM)", "smiles"),
    Row("diffusion-selfies", "diffusion", "diffusion-selfies", "masked diffusion (MDLM)", "selfies"),
    Row("transformer-smiles-qed", "transformer", "transformer-smiles", "conditional transformer (qed), unguided",
        "smiles", default=False, options={"conditions": ["qed"]}),
    Row("transformer-kekule", "transformer", "quickstart", "transformer (decoder-only), the quick-start",
        "smiles-kekule", default=False),
)
ROW_NAMES: tuple[str, ...] = tuple(r.name for r in ROWS)
DEFAULT_ROWS: tuple[str, ...] = tuple(r.name for r in ROWS if r.default)
_BY_NAME = {r.name: r for r in ROWS}

PUBLISHED_LABEL = "published (MOSES paper, GPU scale, n=30k)"
PUBLISHED_SOURCE = ("molecularsets/moses README (Polykovskiy et al. 2020), as read into "
                    "research/anchors.md; unique is unique@10k of 30,000 samples")
#: Published MOSES rows: printed beside ours, never mixed into our rows' numbers.
PUBLISHED: tuple[dict[str, Any], ...] = (
    {"model": "CharRNN", "valid": 0.975, "unique": 0.999, "FCD/Test": 0.073, "FCD/TestSF": 0.520,
     "SNN/Test": 0.602, "Frag/Test": 1.000, "Scaf/Test": 0.924, "Novelty": 0.842},
    {"model": "VAE", "valid": 0.977, "unique": 0.998, "FCD/Test": 0.099, "FCD/TestSF": 0.567,
     "SNN/Test": 0.626, "Frag/Test": 0.999, "Scaf/Test": 0.939, "Novelty": 0.695},
    {"model": "AAE", "valid": 0.937, "unique": 0.997, "FCD/Test": 0.556, "FCD/TestSF": 1.057, "Novelty": 0.793},
    {"model": "JT-VAE", "valid": 1.0, "unique": 1.0, "FCD/Test": 0.395, "FCD/TestSF": 0.938,
     "SNN/Test": 0.548, "Frag/Test": 0.997, "Scaf/Test": 0.896, "Novelty": 0.914},
    {"model": "LatentGAN", "valid": 0.897, "unique": 0.997, "FCD/Test": 0.297, "FCD/TestSF": 0.828,
     "SNN/Test": 0.537, "Frag/Test": 0.999, "Scaf/Test": 0.887, "Novelty": 0.950},
    {"model": "Training set", "FCD/Test": 0.008, "FCD/TestSF": 0.476},
)

#: numeric fields of a row (per seed; mean and spread over seeds in the table)
NUMERIC = ("nll", "nll_own", "nll_scored", "nll_unscored", "valid", "unique", "Novelty", "FCD/Test",
           "FCDfloor/Test", "FCD/TestSF", "FCDfloor/TestSF", "SNN/Test", "Frag/Test", "Scaf/Test",
           "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF", "IntDiv", "IntDiv2", "Filters", "recall", "recall/real",
           "coverage", "coverage/real", "n", "n_valid", "sample_molecules_per_s",
           "sample_seconds", "train_molecules_per_s", "molecules_seen", "train_seconds", "parameters",
           "trainable_parameters", "val_nll", "score_seconds", "evaluate_seconds")
#: evaluator keys copied into a row as they are
_EVAL_KEYS = ("valid", "Novelty", "FCD/Test", "FCDfloor/Test", "FCD/TestSF", "FCDfloor/TestSF", "SNN/Test",
              "Frag/Test", "Scaf/Test", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF", "IntDiv", "IntDiv2",
              "Filters", "recall", "recall/real", "coverage", "coverage/real")


# --- helpers ------------------------------------------------------------------------------------
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
    import torch

    from molgen.persistence import versions

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "platform": platform.platform(), "versions": versions(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def parse_families(families: str | Sequence[str] | None) -> list[str]:
    """Row names from ``"a,b"`` / a list (``all``: every row, ``default``: the default rows); an unknown
    name is a ConfigError listing the accepted ones."""
    if families is None:
        return list(DEFAULT_ROWS)
    items = [families] if isinstance(families, str) else list(families)
    names: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip().lower().replace("_", "-")
            if not part:
                continue
            if part == "all":
                names += ROW_NAMES
            elif part == "default":
                names += DEFAULT_ROWS
            elif part in _BY_NAME:
                names.append(part)
            else:
                raise ConfigError(f"unknown benchmark row {part!r}; accepted: {', '.join(ROW_NAMES)} "
                                  "(or 'all', 'default')")
    if not names:
        raise ConfigError(f"no benchmark rows given; accepted: {', '.join(ROW_NAMES)}")
    return [r.name for r in ROWS if r.name in set(names)]  # table order, each once


def resolve_row_config(row: Row, config_dir: str | Path | None = None) -> Path:
    """``<config_dir>/<row>.yaml``, else ``<config_dir>/<config>.yaml`` (default: the repository's configs/)."""
    if config_dir is None:
        from molgen.data.catalog import data_dir

        folder, shown = data_dir().parent / "configs", "configs/"
    else:
        folder, shown = Path(config_dir), str(config_dir)
        if not folder.is_dir():
            raise ConfigError(f"--config-dir {folder}: not a folder")
    for name in (row.name, row.config):
        p = folder / f"{name}.yaml"
        if p.is_file():
            return p
    raise ConfigError(f"row {row.name!r}: neither {row.name}.yaml nor {row.config}.yaml in {shown}")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = f"{type(e).__name__}: {text[0] if text else ''}".strip()
    return msg[:400]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    try:
        import numpy as np

        if isinstance(v, np.generic):
            v = v.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class _Budget:
    minutes: float | None
    molecules: int | None
    time_cap: float

    def text(self) -> str:
        if self.minutes is not None:
            return f"{self.minutes:g} min of training per family"
        return f"{self.molecules:,} molecules seen per family (time cap {self.time_cap:g} min)"


# --- training -----------------------------------------------------------------------------------
def _row_config(row: Row, path: Path, *, budget: _Budget, subset: int | None, seed: int, val_size: int | None,
                precision: str | None, devices: Any, accelerator: str | None, strategy: str | None,
                overrides: dict[str, Any]) -> dict[str, Any]:
    """The row's YAML config with the benchmark's budget, data subset, seed and overrides applied."""
    from molgen.training.train import load_config

    cfg = load_config(path)
    for key in ("max_molecules", "max_steps", "max_epochs", "max_time"):
        cfg.pop(key, None)
    if budget.minutes is not None:
        cfg["max_time"] = float(budget.minutes)
    else:
        cfg["max_molecules"] = int(budget.molecules)
        cfg["max_time"] = float(budget.time_cap)
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
    from molgen.models.base import GenerativeModel
    from molgen.registry import MODELS

    unread = set(GenerativeModel.optim_options) - set(MODELS.get(row.family).optim_options)
    return {k: v for k, v in shared.items() if k not in unread}


def _finished(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "metadata.json").is_file()


def _train_row(row: Row, cfg: dict[str, Any], model_dir: Path, *, data: Any, resume: bool,
               autoencoder: str | None) -> str:
    """Train (or, with ``resume``, reuse a finished model / continue an interrupted run); how, in words."""
    from molgen.training.train import train

    ckpt = model_dir / "checkpoints" / "last.ckpt"
    if resume and _finished(model_dir):
        return "reused (finished earlier)"
    if not resume and model_dir.exists():
        shutil.rmtree(model_dir)  # this benchmark's own output folder, from an earlier run
    how = "trained"
    kwargs: dict[str, Any] = {}
    if autoencoder is not None:
        kwargs["autoencoder"] = str(autoencoder)
    if resume and ckpt.is_file():
        kwargs["resume"] = ckpt
        how = f"resumed from {ckpt}"
    train(config=cfg, data=data, out=model_dir, **kwargs)
    return how


# --- per-row evaluation -------------------------------------------------------------------------
def _sampler_label(model: Any, result: Any) -> str:
    label = str(result.sampler)
    stats = getattr(model, "last_sample_stats", None)
    if isinstance(stats, dict) and stats.get("steps") and hasattr(model, "canvas_len"):
        label += f" (T={stats['steps']} steps, canvas N={model.canvas_len})"
    return label


def _score(model: Any, test: list[str]) -> tuple[Any, str | None]:
    """``model.score`` on the test molecules, or (None, why) for a family without a likelihood."""
    from molgen.errors import CapabilityError

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


# --- the run ------------------------------------------------------------------------------------
def run_benchmark(families: str | Sequence[str] | None = None, *, budget_minutes: float | None = None,
                  budget_molecules: int | None = None, time_cap_minutes: float | None = None,
                  n: int = DEFAULT_N, seeds: Sequence[int] = (0,), subset: int | None = DEFAULT_SUBSET,
                  val_size: int | None = DEFAULT_VAL_SIZE, data: Any = "moses", out: str | Path = "runs/benchmark",
                  results: str | Path = "benchmarks/results", name: str = "compare",
                  config_dir: str | Path | None = None, reference: Any = "moses:test",
                  scaffold_reference: Any = "moses:test_scaffolds", train_reference: Any = None,
                  nll_n: int = DEFAULT_NLL_N, autoencoder: str | Path | None = None,
                  diffusion_steps: str = DEFAULT_DIFFUSION_STEPS, precision: str | None = None,
                  devices: Any = None, accelerator: str | None = None, strategy: str | None = None,
                  resume: bool = False, n_jobs: int = 2, overrides: dict[str, dict[str, Any]] | None = None,
                  plots: bool = True, command: str | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train, sample, score and evaluate every row; write the manifest, the table and the plots.

    ``families``: row names (``"vae,gan"`` or a list; default :data:`DEFAULT_ROWS`). One of
    ``budget_minutes`` / ``budget_molecules`` (default :data:`DEFAULT_BUDGET_MINUTES` minutes).
    ``data``: the training data of every row (``"moses"``, a file or a list of SMILES), ``subset`` a
    random subset of it (0 / None: all); ``reference`` / ``scaffold_reference`` / ``train_reference``
    the Evaluator's sets (``train_reference`` defaults to the training data, for novelty and the FCD
    floor). ``overrides``: training options per row or family name (``{"vae": {"batch_size": 32,
    "model_args": {...}}}``; ``"*"`` for every row), applied after the config. Returns the payload
    written to ``RESULTS/<name>.json`` (with ``files``: every path written).
    """
    from molgen.benchmark_report import _fmt, write_outputs  # the report imports this module

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t_start = time.perf_counter()
    names = parse_families(families)
    if budget_minutes is not None and budget_molecules is not None:
        raise ConfigError("give one budget: --budget-minutes or --budget-molecules, not both")
    if budget_minutes is None and budget_molecules is None:
        budget_minutes = DEFAULT_BUDGET_MINUTES
    if budget_minutes is not None and not (isinstance(budget_minutes, (int, float)) and budget_minutes > 0):
        raise ConfigError(f"--budget-minutes must be a number > 0, got {budget_minutes!r}")
    if budget_molecules is not None and not (isinstance(budget_molecules, int) and budget_molecules > 0):
        raise ConfigError(f"--budget-molecules must be an integer > 0, got {budget_molecules!r}")
    budget = _Budget(budget_minutes, budget_molecules, float(time_cap_minutes or DEFAULT_TIME_CAP_MINUTES))
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
    known_keys = set(ROW_NAMES) | {r.family for r in ROWS} | {"*"}
    bad = sorted(set(overrides) - known_keys)
    if bad:
        raise ConfigError(f"overrides for unknown row(s) {bad}; accepted: {', '.join(sorted(known_keys))}")
    from molgen.training.train import DEFAULTS, load_config

    for key, opts in overrides.items():
        unknown = sorted(set(opts) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"overrides for {key!r}: unknown training option(s) {unknown}; known: {sorted(DEFAULTS)}")
    notes: list[str] = []
    if "gan" in names and autoencoder is None and "vae" not in names:
        names = [r.name for r in ROWS if r.name in {*names, "vae"}]
        notes.append("The gan row needs a trained VAE: the vae row was added (give --autoencoder DIR to reuse one).")
        say("[benchmark] gan needs a trained VAE: adding the vae row (or give --autoencoder DIR)")
    rows = [_BY_NAME[r] for r in names]
    configs = {r.name: resolve_row_config(r, config_dir) for r in rows}  # a missing config: an error now
    for r in rows:
        load_config(configs[r.name])  # an invalid config: an error before hours of training

    import numpy as np

    from molgen.api import load
    from molgen.data import catalog
    from molgen.data.io import read_smiles
    from molgen.metrics import Evaluator
    from molgen.metrics.nll import summarize_scores
    from molgen.training.train import _launch_rank

    out, results = Path(out), Path(results)
    if isinstance(data, str):
        data = catalog.ALIASES.get(data, data)
    if train_reference is None:
        train_reference = data
    import torch

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
                ae = None
                if row.needs == "vae":
                    if autoencoder is not None:
                        ae = str(autoencoder)
                    else:
                        dep = next((x for x in records if x["row"] == "vae" and x["seed"] == seed), None)
                        if dep is None or dep["error"]:
                            raise RuntimeError("needs the vae row's model, which failed"
                                               + (f" ({dep['error']})" if dep else ""))
                        ae = dep["model_dir"]
                    rec["autoencoder"] = ae
                opts = {**_shared_overrides(row, overrides.get("*", {})), **overrides.get(row.family, {}),
                        **overrides.get(row.name, {})}
                if "model_args" in opts:  # merged from every level, the row's own last
                    opts["model_args"] = {k: v for lvl in ("*", row.family, row.name)
                                          for k, v in overrides.get(lvl, {}).get("model_args", {}).items()}
                cfg = _row_config(row, configs[row.name], budget=budget, subset=subset, seed=seed,
                                  val_size=val_size, precision=precision, devices=devices,
                                  accelerator=accelerator, strategy=strategy, overrides=opts)
                say(f"[benchmark] {row.name} seed {seed}: training ({budget.text()}) -> {model_dir}")
                t0 = time.perf_counter()
                rec["trained"] = _train_row(row, cfg, model_dir, data=data, resume=resume, autoencoder=ae)
                rec["fit_wall_seconds"] = round(time.perf_counter() - t0, 1)
                if _launch_rank() != 0:  # the other processes of a multi-device run only train
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
                if hasattr(model, "set_sampling") and hasattr(model, "canvas_len"):
                    model.set_sampling(steps=max(1, model.canvas_len // DIFFUSION_STEPS[diffusion_steps]))
                say(f"[benchmark] {row.name} seed {seed}: sampling {n} at temperature 1")
                t0 = time.perf_counter()
                res = model.sample(n, seed=seed, temperature=1.0)
                secs = time.perf_counter() - t0
                rec.update(n=len(res.smiles), sampler=_sampler_label(model, res), temperature=res.temperature,
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
                rec.update({k: m.get(k) for k in _EVAL_KEYS})
                rec["unique"] = m.get(f"unique@{k_unique}")
                rec["n_valid"] = report.meta.get("n_valid")
                rec["notes"] = {k: v for k, v in report.notes.items()}
                report.meta["benchmark"] = {k: rec.get(k) for k in ("row", "seed", "sampler", "likelihood",
                                                                    "nll_own", "nll_scored", "nll_unscored")}
                report.to_json(model_dir / "evaluation.json")
                rec["report"] = report.to_dict()
                say(f"[benchmark] {row.name} seed {seed}: done (valid {_fmt(rec['valid'])}, "
                    f"FCD/Test {_fmt(rec['FCD/Test'], digits=2)})")
            except Exception as e:  # one row failing never stops the others
                rec["error"] = f"{stage}: {_one_line(e)}"
                say(f"[benchmark] {row.name} seed {seed}: FAILED at {stage}: {_one_line(e)}")
    if _launch_rank() != 0:
        return {}

    nll_info = _common_nll(records, scores, test, ref_name)
    agg = aggregate(records, [r.name for r in rows])
    payload = {
        "machine": machine_info(), "command": command, "argv": list(sys.argv),
        "options": {"rows": [r.name for r in rows], "budget": budget.text(), "budget_minutes": budget.minutes,
                    "budget_molecules": budget.molecules, "time_cap_minutes": budget.time_cap, "n": n,
                    "seeds": seeds, "subset": subset or None, "val_size": val_size,
                    "data": data if isinstance(data, (str, Path)) else f"list[{len(data)}]",
                    "reference": ref_name, "scaffold_reference": str(scaffold_reference) if isinstance(
                        scaffold_reference, (str, Path)) else f"list[{len(scaffold_reference or [])}]",
                    "train_reference": str(train_reference) if isinstance(train_reference, (str, Path))
                    else f"list[{len(train_reference)}]", "nll_n": len(test), "diffusion_steps": diffusion_steps,
                    "config_dir": str(config_dir) if config_dir else "configs", "precision": precision,
                    "devices": devices, "accelerator": accelerator, "resume": resume, "unique": unique_label},
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
    import numpy as np

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


def aggregate(records: list[dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """One row per table row: numeric fields as mean / spread (sample standard deviation) over the seeds
    that ran, text fields as given; failed seeds listed in ``errors``."""
    import numpy as np

    out = []
    for name in order:
        runs = [r for r in records if r["row"] == name]
        ok = [r for r in runs if not r.get("error")]
        row: dict[str, Any] = {"row": name, "family": runs[0]["family"], "label": runs[0]["label"],
                               "seeds": [r["seed"] for r in runs], "seeds_ok": [r["seed"] for r in ok],
                               "model_dirs": [r["model_dir"] for r in runs],
                               "errors": [f"seed {r['seed']}: {r['error']}" for r in runs if r.get("error")]}
        for key in ("representation", "sampler", "precision", "no_likelihood", "likelihood"):
            vals = [r.get(key) for r in ok if r.get(key) is not None]
            uniq = [v for i, v in enumerate(vals) if v not in vals[:i]]
            row[key] = (uniq[0] if len(uniq) == 1 else ("; ".join(map(str, uniq)) if uniq else None))
        if row["representation"] is None:
            row["representation"] = runs[0]["representation"]
        for key in NUMERIC:
            vals = [float(r[key]) for r in ok if _finite(r.get(key))]
            row[key] = float(np.mean(vals)) if vals else None
            row[f"{key}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        row["nll_common_n"] = next((r.get("nll_common_n") for r in ok if r.get("nll_common_n")), None)
        out.append(row)
    return out


