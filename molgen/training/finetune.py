"""Fine-tuning (transfer learning): train a saved model further on a focused set, e.g. one's own actives.

The base model's representation (vocabulary) and ``max_len`` are kept, and so are its weights: the run
goes through :func:`molgen.training.train.train` with the model instance as its starting point, so data
handling, budgets, precision, checkpoints, curves and the saved directory are those of ``molgen train``.
Molecules the base model cannot represent (invalid SMILES, tokens it has never seen, too long) cannot be
learnt from: they are counted by status (the statuses of ``molgen score``), listed row by row in
``OUT/finetune_data.csv`` (the input's ID column first, as ``molgen score`` carries it), logged, and
recorded in ``metadata.json`` — never dropped silently. The metadata also records the parent model
(path, config and weights hashes, its training data) and the hash of the fine-tuning data. A conditional
model keeps its condition space: the fine-tuning molecules' RDKit properties are computed and
data-column conditions read from the fine-tuning file (a row without a value trains unconditionally), so
guidance still works afterwards.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molgen.conditioning import property_table
from molgen.data.catalog import sha256_file
from molgen.data.io import SmilesSource, iter_table_batches, source_hash
from molgen.errors import ConfigError, InputError, strict
from molgen.models.base import GenerativeModel
from molgen.options.base import defaults
from molgen.options.finetune import POSITIONAL, FinetuneOptions
from molgen.persistence import load_pretrained, model_config
from molgen.pretrained import resolve_model
from molgen.scoring import as_smiles_list, prepare_row, with_kept_columns
from molgen.training.train import train

log = logging.getLogger(__name__)

#: molecules of the fine-tuning set scored before and after (in-sample NLL, a quick sanity number)
NLL_PROBE = 2000


# --- freezing ------------------------------------------------------------------------------------
_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers|steps)\.(\d+)\.")


def _freeze_groups(model: Any) -> dict[str, list[str]]:
    """Freezable parts of this model -> parameter names: ``embeddings``, ``encoder``, ``prior`` and
    ``blocks:N`` (the first N blocks of a stack), where the model has them."""
    names = [n for n, _ in model.named_parameters()]
    groups = {
        "embeddings": [n for n in names if any("emb" in part for part in n.split(".")[:-1])],
        "encoder": [n for n in names if n.startswith("encoder.")],
        "prior": [n for n in names if n.startswith("prior.")],
    }
    return {k: v for k, v in groups.items() if v}


def _n_blocks(model: Any) -> int:
    idx = [int(m.group(1)) for n, _ in model.named_parameters() if (m := _BLOCK.search(n))]
    return max(idx) + 1 if idx else 0


def accepted_freeze(model: Any) -> list[str]:
    """What ``freeze=`` accepts for this model (depends on the family's parts)."""
    n = _n_blocks(model)
    return [*_freeze_groups(model), *([f"blocks:N (N = 1..{n})"] if n else [])]


def resolve_freeze(model: Any, freeze: str | Sequence[str] | None) -> list[str]:
    """Parameter names to freeze for ``freeze`` (e.g. ``"embeddings"``, ``["embeddings", "blocks:2"]``);
    an unknown or inapplicable value is a :class:`ConfigError` listing what this model accepts."""
    if freeze is None:
        return []
    specs = [freeze] if isinstance(freeze, str) else list(freeze)
    specs = [x.strip() for s in specs for x in str(s).split(",") if x.strip()]
    groups, n_blocks = _freeze_groups(model), _n_blocks(model)
    accepted = ", ".join(accepted_freeze(model)) or "nothing (this model has no freezable parts)"
    chosen: set[str] = set()
    for spec in specs:
        m = re.fullmatch(r"blocks:(\d+)", spec)
        if spec in groups:
            chosen.update(groups[spec])
        elif m and n_blocks and 1 <= int(m.group(1)) <= n_blocks:
            k = int(m.group(1))
            chosen.update(n for n, _ in model.named_parameters()
                          if (b := _BLOCK.search(n)) and int(b.group(1)) < k)
        else:
            raise ConfigError(f"freeze: {spec!r} is not accepted for a {model.name} model; accepted: {accepted}")
    if chosen and all(n in chosen for n, _ in model.named_parameters()):
        raise ConfigError(f"freeze {specs}: every parameter would be frozen, nothing left to fine-tune")
    return sorted(chosen)


# --- records -------------------------------------------------------------------------------------
def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _parent_record(model: Any, path: Path | None) -> dict[str, Any]:
    """Where the base model came from: directory, config / weights hashes, its own training data."""
    cfg = model_config(model)
    rec: dict[str, Any] = {"path": str(path.resolve()) if path is not None else None, "model": model.name,
                           "config_sha256": _sha256_json({k: v for k, v in cfg.items() if k != "molgen_version"})}
    weights = path / "model.safetensors" if path is not None else None
    if weights is not None and weights.exists():
        rec["weights_sha256"] = sha256_file(weights)
    meta = model.metadata or {}
    rec["data"] = {k: meta.get("data", {}).get(k) for k in ("source", "source_hash", "n_train")} if meta else None
    rec["final"] = meta.get("final")
    if "finetune" in meta:  # a fine-tuned parent: keep the chain
        rec["finetune"] = meta["finetune"]
    return rec


def data_status(model: Any, smiles: Sequence[str | None]) -> tuple[list[str | None], list[str]]:
    """Row-aligned (canonical, status) of ``smiles`` under the model's policy and representation:
    ``ok`` or the ``molgen score`` status of why the model cannot represent the molecule."""
    rows = [prepare_row(model, s) for s in smiles]
    return [r[0] for r in rows], [r[1] for r in rows]


def _mean_nll(model: Any, smiles: list[str]) -> float | None:
    if not smiles:
        return None
    df = model.score(smiles)
    ok = df[df.status == "ok"]
    return float(-ok.log_likelihood.mean()) if len(ok) else None


def _condition_values(model: Any, usable: list[str], data: SmilesSource,
                      smiles_col: str | None) -> dict[str, Any] | None:
    """For a conditional model: canonical SMILES -> its raw property row (RDKit properties computed,
    data columns read from the fine-tuning file; NaN where a row has no value: it trains unconditionally)."""
    space = getattr(model, "condition_space", None)
    if space is None:
        return None
    values = property_table(space.names, usable, data=data if isinstance(data, (str, Path)) else None,
                            smiles_col=smiles_col, policy=model.policy)
    empty = [n for j, n in enumerate(space.names) if not np.isfinite(values[:, j]).any()]
    if empty:
        log.warning("fine-tuning data: no molecule has a value for %s; the model learns those rows "
                    "unconditionally", empty)
    return dict(zip(usable, values))


def _read_with_ids(data: str | Path, smiles_col: str | None) -> tuple[list[str | None], Any]:
    """Every row's raw SMILES and the file's ID column (``molgen score``'s default ``keep_cols``: an
    ID-like column of a table, the name of a ``.smi`` line; None when there is none)."""
    raw: list[str | None] = []
    extras = []
    for smiles, extra in iter_table_batches(data, smiles_col, batch_size=100_000):
        raw.extend(smiles)
        if extra is not None:
            extras.append(extra)
    if not raw:
        raise InputError(f"{data}: no SMILES rows found")
    return raw, (pd.concat(extras, ignore_index=True) if extras else None)


# --- finetune ------------------------------------------------------------------------------------
def _options_signature(cls: type, positional: Sequence[str]) -> Callable[[Callable], Callable]:
    """Give a function that takes ``**options`` the signature its options model declares (the positional
    names first, then every other option keyword-only with its default), so :func:`~molgen.errors.strict`,
    ``help()`` and ``inspect.signature`` see the options by name, declared once."""
    values = defaults(cls)
    params = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD if f.name in positional
                                else inspect.Parameter.KEYWORD_ONLY,
                                default=inspect.Parameter.empty if f.name in positional else values[f.name],
                                annotation=f.type)
              for f in dataclasses.fields(cls)]
    params.sort(key=lambda p: p.kind)  # positional ones first (dataclass order within each kind)

    def deco(fn: Callable) -> Callable:
        fn.__signature__ = inspect.Signature(params, return_annotation="GenerativeModel")  # type: ignore[attr-defined]
        return fn

    return deco


@strict
@_options_signature(FinetuneOptions, POSITIONAL)
def finetune(model: Any, data: SmilesSource, out: str | Path, **options: Any) -> GenerativeModel:
    """Fine-tune ``model`` (a model directory or a loaded model, left untouched) on ``data`` and save the
    result to ``out``; returns the fine-tuned model.

    Budget: ``max_epochs`` / ``max_time`` (minutes) / ``max_molecules`` / ``max_steps``, whichever is
    spent first (10 epochs if none is given). ``freeze``: parts kept fixed — ``"embeddings"``,
    ``"blocks:N"`` (the first N blocks), ``"encoder"`` / ``"prior"`` (VAE); what a model accepts is
    listed by the error for anything else. Validation molecules are carved from ``data``. The options
    (their defaults and help) are :class:`~molgen.options.finetune.FinetuneOptions`.
    """
    o = FinetuneOptions(model=model, data=data, out=out, **options)
    if isinstance(model, (str, Path)):
        base_dir: Path | None = resolve_model(model)  # a shipped name -> its directory (recorded as parent)
        base = load_pretrained(base_dir)
    elif isinstance(model, GenerativeModel):
        base_dir = None
        base = copy.deepcopy(model)  # the caller's model stays as it was
    else:
        raise ConfigError(f"model must be a model directory or a loaded molgen model, got {type(model).__name__}")
    base.require("log_likelihood")  # fine-tuning maximises the model's likelihood of the new data
    for name in ("max_epochs", "max_steps", "max_molecules"):
        v = getattr(o, name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if o.max_time is not None and not (isinstance(o.max_time, (int, float)) and o.max_time > 0):
        raise ConfigError(f"max_time must be a number of minutes > 0, got {o.max_time!r}")
    if not (isinstance(o.lr, (int, float)) and o.lr > 0):
        raise ConfigError(f"lr must be a number > 0, got {o.lr!r}")
    max_epochs = o.max_epochs
    if not any(v is not None for v in (max_epochs, o.max_time, o.max_molecules, o.max_steps)):
        max_epochs = 10
    frozen = resolve_freeze(base, o.freeze)
    out = Path(out)

    # What the base model can learn from: every row gets a status, counted and written out with the
    # input's ID column (the .smi name), as ``molgen score`` carries it.
    id_cols = None
    if isinstance(data, (str, Path)):
        raw, id_cols = _read_with_ids(data, o.smiles_col)
    else:  # a list or Series of SMILES (a DataFrame: pass its SMILES column)
        raw = as_smiles_list(data, "data")
    canonical, status = data_status(base, raw)
    counts = Counter(s if not s.startswith("oov_token:") else "oov_token" for s in status)
    usable = list(dict.fromkeys(c for c, s in zip(canonical, status) if s == "ok"))
    n_left = len(raw) - counts.get("ok", 0)
    if n_left:
        log.warning("fine-tuning data: %d of %d rows cannot be represented by the base model and are left out: %s "
                    "(rows in %s)", n_left, len(raw), dict(counts), out / "finetune_data.csv")
    if len(usable) < 2:
        raise ValueError(f"fine-tuning data: only {len(usable)} distinct molecule(s) the base model can represent "
                         f"(of {len(raw)} rows: {dict(counts)}); need at least 2")
    cond_values = _condition_values(base, usable, data, o.smiles_col)
    parent = _parent_record(base, base_dir)  # before training changes it
    probe = usable[:NLL_PROBE]
    nll_before = _mean_nll(base, probe)

    base.train()  # a loaded model is in eval mode
    for name, p in base.named_parameters():
        p.requires_grad_(name not in frozen)
    n_val = min(o.val_size, max(1, len(usable) // 10))
    val_every, log_every = o.val_every, o.log_every
    if val_every is None:  # validate about once per epoch on a small set
        val_every = max(1, min(500, math.ceil((len(usable) - n_val) / o.batch_size)))
    if log_every is None:  # curves with a few points per validation even on a small set
        log_every = max(1, min(10, val_every // 2))
    try:
        net = train(base, data=usable, out=out, max_epochs=max_epochs, max_time=o.max_time,
                    max_molecules=o.max_molecules, max_steps=o.max_steps, lr=o.lr, warmup_steps=o.warmup_steps,
                    batch_size=o.batch_size, weight_decay=o.weight_decay, val_size=o.val_size, val_every=val_every,
                    log_every=log_every, seed=o.seed, precision=o.precision, accelerator=o.accelerator,
                    num_threads=o.num_threads, progress=o.progress, policy=base.policy.to_dict(),
                    callbacks=o.callbacks, _condition_values=cond_values)
    finally:
        for p in base.parameters():
            p.requires_grad_(True)
    net.eval()
    # written after training: a failed run leaves no folder behind (train removes the one it created)
    rows = with_kept_columns(pd.DataFrame({"input": raw, "canonical": canonical, "status": status}), id_cols)
    rows.to_csv(out / "finetune_data.csv", index=False)
    nll_after = _mean_nll(net, probe)
    net.metadata["finetune"] = {
        "parent": parent,
        "data": {"source": str(data) if isinstance(data, (str, Path)) else "<list>",
                 "sha256": source_hash(data, o.smiles_col) if isinstance(data, (str, Path)) else source_hash(raw),
                 "rows": len(raw), "status_counts": dict(counts), "left_out": n_left,
                 "distinct_usable": len(usable), "rows_file": "finetune_data.csv"},
        "freeze": [o.freeze] if isinstance(o.freeze, str) else (list(o.freeze) if o.freeze else []),
        "frozen_parameters": int(sum(p.numel() for n, p in net.named_parameters() if n in frozen)),
        "finetune_set_nll": {"before": nll_before, "after": nll_after, "n": len(probe),
                             "note": "in-sample: molecules of the fine-tuning set (validation NLL is in final)"},
    }
    net.save_pretrained(out)
    return net
