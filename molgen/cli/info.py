"""``molgen info MODEL``: what a model directory holds, as a readable summary (or every field as JSON)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from molgen.persistence import load_pretrained, model_config
from molgen.pretrained import resolve_model


def run(args: argparse.Namespace) -> int:
    """Load the model and print its summary (or, with ``--json``, every field)."""
    path = resolve_model(args.model)
    model = load_pretrained(path)
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
        title = str(args.model) if str(args.model) == str(path) else f"{args.model} ({path})"
        print(render_sections(title, info_sections(model, info, Path(path))))
        print(f"\nconfig and metadata in full: molgen info {args.model} --json")
    return 0


# --- the readable summary --------------------------------------------------------------------------
Section = tuple[str, list[tuple[str, str]]]


def render_sections(title: str, sections: list[Section]) -> str:
    """A title, then each non-empty section as its name and indented ``key: value`` lines, the values
    of every section starting in one column."""
    width = max((len(k) for _, rows in sections for k, _ in rows), default=0) + 1
    out = [title]
    for name, rows in sections:
        if rows:
            out += ["", name, *(f"  {k + ':':<{width}}  {v}" for k, v in rows)]
    return "\n".join(out)


def _num(v: Any, spec: str = ",") -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and spec == ",":
        spec = ",.4g" if abs(v) < 1000 else ",.0f"
    return format(v, spec)


def _items(d: dict[str, Any], keys: Iterable[str] | None = None) -> str:
    """``a 1, b 2`` for the keys of ``d`` (all of them by default) whose values are given."""
    keys = d if keys is None else keys
    return ", ".join(f"{k} {_num(d[k])}" for k in keys if d.get(k) not in (None, "", [], {}))


def _scalars(d: dict[str, Any], skip: Iterable[str] = ()) -> list[tuple[str, str]]:
    return [(k, _num(v)) for k, v in d.items() if k not in set(skip) and isinstance(v, (int, float, str, bool))
            and v is not None]


def info_sections(model: Any, info: dict[str, Any], path: Path) -> list[Section]:
    """What ``molgen info`` prints: the model, its training, its metrics and what else the model
    directory records (conditioning, fine-tuning, VAE diagnostics, shipped checks), as sections."""
    meta = model.metadata or {}
    data, training, final = meta.get("data") or {}, meta.get("training") or {}, meta.get("final") or {}
    n_par = info["n_parameters"]
    like = info["likelihood"]
    model_rows = [("family", info["model"]), ("parameters", f"{n_par:,} ({n_par / 1e6:.2f}M)")]
    if info["representation"] is not None:
        model_rows.append(("representation", f"{info['representation']} (vocabulary {info['vocab_size']}, "
                                             f"max_len {info['max_len']})"))
    else:
        model_rows.append(("representation", "none: writes strings in its nested model's representation"))
    model_rows.append(("likelihood", f"{like['kind']} log p({like['object']}), {like['unit']}" if like else
                       "none" + (f" ({model.no_likelihood_reason})" if getattr(model, "no_likelihood_reason", None)
                                 else "")))
    model_rows.append(("capabilities", ", ".join(info["capabilities"])))
    space = getattr(model, "condition_space", None)
    model_rows.append(("conditioning", "none" if space is None else ", ".join(
        f"{n} (trained on {lo:.3g} .. {hi:.3g})" for n, lo, hi in zip(space.names, space.lo, space.hi))))
    for name, rel in (info.get("nested") or {}).items():
        model_rows.append((f"nested {name}", str(path / rel)))
    model_rows.append(("policy", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["policy"].items())))

    train_rows: list[tuple[str, str]] = []
    if data:
        n = ", ".join(x for x in (f"{data['n_train']:,} train" if data.get("n_train") is not None else "",
                                  f"{data['n_val']:,} validation" if data.get("n_val") is not None else "") if x)
        train_rows.append(("data", f"{data.get('source')}" + (f" ({n})" if n else "")
                           + (f", hash {data['source_hash']}" if data.get("source_hash") else "")))
        val = data.get("validation") or {}
        if val:
            train_rows.append(("validation", f"{val.get('source', '?')}" + (f", seed {val['seed']}" if "seed" in val
                                                                              else "")
                               + (", deduplicated against train" if val.get("deduplicated_against_train") else "")))
        if data.get("conditions"):
            c = data["conditions"]
            train_rows.append(("condition values", f"{', '.join(c.get('names') or [])}"
                               + (f"; missing {_items(c['missing_values'])}" if c.get("missing_values") else "")))
    if training:
        budget = _items({"max_time": f"{training['max_time']} min" if training.get("max_time") else None,
                         "max_steps": training.get("max_steps"), "max_molecules": training.get("max_molecules"),
                         "max_epochs": training.get("max_epochs")})
        train_rows.append(("budget", budget or "none given"))
        if training.get("subset"):
            train_rows.append(("subset", _num(training["subset"])))
        ran = [f"{_num(training['steps'])} steps" if training.get("steps") is not None else "",
               f"{training['epochs']:.3g} epochs" if isinstance(training.get("epochs"), (int, float)) else "",
               f"{training['fit_seconds']:,.0f} s" if training.get("fit_seconds") is not None else "",
               f"batch {training['global_batch_size']}" if training.get("global_batch_size") else "",
               f"lr {training['lr']:g}" if isinstance(training.get("lr"), (int, float)) else "",
               str(training.get("precision") or ""), f"seed {training['seed']}" if "seed" in training else ""]
        train_rows.append(("run", ", ".join(x for x in ran if x)))
        if training.get("molecules_seen") is not None:
            rate = training.get("molecules_per_s")
            train_rows.append(("molecules seen", f"{training['molecules_seen']:,}"
                               + (f" ({rate:,.0f} per s)" if isinstance(rate, (int, float)) else "")))
    dropped = {split: _items(counts) for split, counts in (meta.get("dropped") or {}).items() if counts}
    if dropped:
        train_rows.append(("left out", "; ".join(f"{k}: {v}" for k, v in dropped.items())))
    if meta.get("created"):
        train_rows.append(("created", str(meta["created"])))

    metric_rows: list[tuple[str, str]] = []
    if final.get("val_nll_nats_per_molecule") is not None:
        lab = final.get("likelihood") or like or {}
        metric_rows.append(("validation NLL", f"{final['val_nll_nats_per_molecule']:.2f} "
                            f"{lab.get('unit', 'nats/molecule')} ({lab.get('kind')}, {lab.get('object')}"
                            + (f"; n {final['val_n']:,}" if final.get("val_n") is not None else "") + ")"))
    metric_rows += _scalars(final, skip=("val_nll_nats_per_molecule", "val_n"))
    check = _read_json(path / "shipped_check.json")  # a shipped model's re-drawn samples
    if isinstance(check, dict) and "validity" in check:
        metric_rows.append(("shipped check", f"validity {check['validity']:.3f}"
                            + (f", uniqueness {check['uniqueness']:.3f}" if "uniqueness" in check else "")
                            + f" (n {check.get('n')}, seed {check.get('seed')})"))

    sections: list[Section] = [("model", model_rows), ("training", train_rows), ("metrics", metric_rows),
                               _evaluation(path)]
    ft = meta.get("finetune")
    if ft:
        fd, nll = ft.get("data") or {}, ft.get("finetune_set_nll") or {}
        rows = [("parent", str((ft.get("parent") or {}).get("path") or "a model in memory")),
                ("data", f"{fd.get('source')} ({_items(fd, ('rows', 'left_out', 'distinct_usable'))})"),
                ("rows by status", _items(fd.get("status_counts") or {})),
                ("frozen", ", ".join(ft.get("freeze") or []) or "nothing")]
        if nll.get("before") is not None and nll.get("after") is not None:
            rows.append(("fine-tuning set NLL", f"{nll['before']:.2f} -> {nll['after']:.2f} (n {nll.get('n')}, "
                                                "in-sample)"))
        sections.append(("fine-tuning", rows))
    sections.append(("VAE diagnostics (last validation)", _vae_diagnostics(path)))
    versions = meta.get("versions") or {}
    if versions:
        sections.append(("versions", [("packages", _items(versions))]))
    return sections


#: the headline metrics of a shipped model's evaluation.json, in this order
HEADLINE = ("valid", "unique@1000", "Novelty", "FCD/Test", "FCDfloor/Test", "FCD/TestSF", "SNN/Test", "Frag/Test",
            "Scaf/Test", "IntDiv", "Filters")


def _evaluation(path: Path) -> Section:
    """The headline metrics of the evaluation report a shipped model directory holds (if any)."""
    report = _read_json(path / "evaluation.json")
    metrics = report.get("metrics") if isinstance(report, dict) else None
    if not isinstance(metrics, dict):
        return ("evaluation", [])
    shown = [k for k in HEADLINE if isinstance(metrics.get(k), (int, float))]
    rows = [(k, f"{metrics[k]:.3f}" if abs(metrics[k]) < 10 else f"{metrics[k]:.2f}") for k in shown]
    if len(metrics) > len(shown):
        rows.append(("more", f"{len(metrics) - len(shown)} other metrics in evaluation.json (molgen evaluate)"))
    return (f"evaluation of {report.get('n_requested', '?')} samples (evaluation.json)", rows)


def _vae_diagnostics(path: Path) -> list[tuple[str, str]]:
    """The last entry of the VAE's diagnostics history (``logs/vae_diagnostics.json``), when present."""
    files = sorted((path / "logs").glob("**/vae_diagnostics.json")) if (path / "logs").is_dir() else []
    history = _read_json(files[-1]) if files else None
    if not isinstance(history, list) or not history or not isinstance(history[-1], dict):
        return []
    return _scalars(history[-1])


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
