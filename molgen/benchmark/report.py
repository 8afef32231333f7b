"""What ``molgen benchmark`` writes: the comparison table (markdown, likelihood first, with the
published MOSES rows apart), its footnotes, ``<name>.{json,md}``, the manifest and the plots (a bar chart
per metric, NLL against training time); and the table rows from the runs (:func:`aggregate`).
:mod:`molgen.benchmark.runner` runs the rows; this module only reports, and holds the formatting helpers
both use.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molgen.benchmark.rows import BY_NAME, PUBLISHED_LABEL, PUBLISHED_SOURCE
from molgen.options.benchmark import DIFFUSION_STEPS

#: numeric fields of a row (per seed; mean and spread over seeds in the table)
NUMERIC = ("nll", "nll_own", "nll_scored", "nll_unscored", "valid", "unique", "Novelty", "FCD/Test",
           "FCDfloor/Test", "FCD/TestSF", "FCDfloor/TestSF", "SNN/Test", "Frag/Test", "Scaf/Test",
           "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF", "IntDiv", "IntDiv2", "Filters", "recall", "recall/real",
           "coverage", "coverage/real", "n", "n_valid", "sample_molecules_per_s",
           "sample_seconds", "train_molecules_per_s", "molecules_seen", "train_seconds", "parameters",
           "trainable_parameters", "val_nll", "score_seconds", "evaluate_seconds")
#: evaluator keys copied into a row as they are
EVAL_KEYS = ("valid", "Novelty", "FCD/Test", "FCDfloor/Test", "FCD/TestSF", "FCDfloor/TestSF", "SNN/Test",
             "Frag/Test", "Scaf/Test", "SNN/TestSF", "Frag/TestSF", "Scaf/TestSF", "IntDiv", "IntDiv2",
             "Filters", "recall", "recall/real", "coverage", "coverage/real")


# --- values -------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    """An exception as one line (its type and first line, at most 400 characters)."""
    text = str(e).strip().splitlines()
    msg = f"{type(e).__name__}: {text[0] if text else ''}".strip()
    return msg[:400]


def finite(v: Any) -> bool:
    """A finite number (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def jsonable(v: Any) -> Any:
    """``v`` as JSON can hold it: paths as strings, numpy scalars as Python numbers, NaN / inf as None."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def aggregate(records: list[dict[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """One row per table row: numeric fields as mean / spread (sample standard deviation) over the seeds
    that ran, text fields as given; failed seeds listed in ``errors``."""
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
            vals = [float(r[key]) for r in ok if finite(r.get(key))]
            row[key] = float(np.mean(vals)) if vals else None
            row[f"{key}_sd"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        row["nll_common_n"] = next((r.get("nll_common_n") for r in ok if r.get("nll_common_n")), None)
        out.append(row)
    return out


# --- table --------------------------------------------------------------------------------------
def fmt(v: Any, sd: Any = None, digits: int = 3) -> str:
    """A table cell: ``–`` for none, digits by magnitude, `` ± sd`` when given."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float) and (digits == 0 or (v.is_integer() and abs(v) >= 100)):
        text = f"{v:,.0f}"
    elif isinstance(v, float):
        if abs(v) >= 1e4:
            text = f"{v:,.0f}"
        elif abs(v) >= 100:
            text = f"{v:.0f}"
        elif abs(v) >= 10:
            text = f"{v:.1f}" if digits < 3 else f"{v:.2f}"
        else:
            text = f"{v:.{digits}f}"
    elif isinstance(v, int):
        text = f"{v:,}"
    else:
        return str(v)
    if sd is not None and math.isfinite(sd):
        text += f" ± {fmt(float(sd), digits=digits)}"
    return text


def _cell(row: dict[str, Any], key: str, digits: int = 3) -> str:
    return fmt(row.get(key), row.get(f"{key}_sd"), digits)


def _with_real(row: dict[str, Any], key: str, real: str) -> str:
    v = _cell(row, key)
    if v == "–":
        return v
    return f"{v} ({fmt(row.get(real))})"


def _likelihood_text(row: dict[str, Any]) -> str:
    lab = row.get("likelihood")
    if isinstance(lab, dict):
        return f"{lab.get('kind')} / {lab.get('object')}"
    if row.get("no_likelihood"):
        return "none: no likelihood (see note)"
    return "–"


def table_columns(unique_label: str) -> list[str]:
    """The table's columns, in order (``unique_label``: the uniqueness column's name at this n)."""
    return ["row", "source", "family", "representation", "NLL (nats/mol)", "NLL kind / object",
            "own NLL [scored / unscored]", "valid", unique_label, "novelty", "FCD/Test (floor)",
            "FCD/TestSF (floor)", "SNN/Test", "Frag/Test", "Scaf/Test", "IntDiv", "Filters", "recall (real)",
            "coverage (real)", "sampler", "sampling mol/s", "training mol/s", "molecules seen", "training min",
            "parameters", "precision"]


def markdown_table(payload: dict[str, Any]) -> str:
    """Our rows, then the published MOSES rows (marked as such), then the footnotes."""
    opts = payload["options"]
    cols = table_columns(opts["unique"])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in payload["rows"]:
        if r["errors"] and not r["seeds_ok"]:
            cells = {"row": r["row"], "source": "this run", "family": r["label"],
                     "representation": r["representation"], "NLL (nats/mol)": "FAILED: " + " / ".join(r["errors"])}
        else:
            nll = _cell(r, "nll", 2)
            if r.get("no_likelihood"):
                nll = "– (no likelihood)"
            own = "–"
            if r.get("nll_own") is not None:
                own = f"{fmt(r['nll_own'], r.get('nll_own_sd'), 2)} [{fmt(r.get('nll_scored'), digits=0)} / " \
                      f"{fmt(r.get('nll_unscored'), digits=0)}]"
            train_min = None if r.get("train_seconds") is None else r["train_seconds"] / 60
            train_sd = None if r.get("train_seconds_sd") is None else r["train_seconds_sd"] / 60
            cells = {"row": r["row"] + (f" (failed seeds: {'; '.join(r['errors'])})" if r["errors"] else ""),
                     "source": "this run", "family": r["label"], "representation": r["representation"],
                     "NLL (nats/mol)": nll, "NLL kind / object": _likelihood_text(r),
                     "own NLL [scored / unscored]": own, "valid": _cell(r, "valid"), opts["unique"]: _cell(r, "unique"),
                     "novelty": _cell(r, "Novelty"),
                     "FCD/Test (floor)": _with_real(r, "FCD/Test", "FCDfloor/Test"),
                     "FCD/TestSF (floor)": _with_real(r, "FCD/TestSF", "FCDfloor/TestSF"),
                     "SNN/Test": _cell(r, "SNN/Test"), "Frag/Test": _cell(r, "Frag/Test"),
                     "Scaf/Test": _cell(r, "Scaf/Test"), "IntDiv": _cell(r, "IntDiv"), "Filters": _cell(r, "Filters"),
                     "recall (real)": _with_real(r, "recall", "recall/real"),
                     "coverage (real)": _with_real(r, "coverage", "coverage/real"),
                     "sampler": r.get("sampler") or "–", "sampling mol/s": _cell(r, "sample_molecules_per_s", 1),
                     "training mol/s": _cell(r, "train_molecules_per_s", 1),
                     "molecules seen": fmt(None if r.get("molecules_seen") is None else int(r["molecules_seen"])),
                     "training min": fmt(train_min, train_sd, 2),
                     "parameters": fmt(None if r.get("parameters") is None else int(r["parameters"])),
                     "precision": r.get("precision") or "–"}
        lines.append("| " + " | ".join(_md(cells.get(c, "")) for c in cols) + " |")
    for p in payload["published"]["rows"]:
        cells = {"row": p["model"], "source": PUBLISHED_LABEL, "valid": fmt(p.get("valid")),
                 opts["unique"]: (f"{fmt(p['unique'])} (@10k)" if "unique" in p else ""),
                 "novelty": fmt(p.get("Novelty")) if "Novelty" in p else "",
                 "FCD/Test (floor)": fmt(p.get("FCD/Test")), "FCD/TestSF (floor)": fmt(p.get("FCD/TestSF")),
                 "SNN/Test": fmt(p["SNN/Test"]) if "SNN/Test" in p else "",
                 "Frag/Test": fmt(p["Frag/Test"]) if "Frag/Test" in p else "",
                 "Scaf/Test": fmt(p["Scaf/Test"]) if "Scaf/Test" in p else ""}
        if "valid" not in p:
            cells["valid"] = ""
        lines.append("| " + " | ".join(_md(cells.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)


def _md(v: Any) -> str:
    return " ".join(str(v).split()).replace("|", "\\|")


def footnotes(payload: dict[str, Any]) -> list[str]:
    """What the table's numbers are: budget, data and split, samples, NLL, floors, evaluation, machine."""
    opts, nll, m = payload["options"], payload["nll"], payload["machine"]
    seeds = opts["seeds"]
    ran = [r for r in payload["runs"] if r.get("n_val") is not None]
    declared = [BY_NAME[r["row"]] for r in payload["rows"] if r["row"] in BY_NAME]
    holders = {row.name for row in declared if row.needs}  # they train on another row's model, not the split
    split = sorted({(r["n_train"], r["n_val"]) for r in ran if r["row"] not in holders} or
                   {(r["n_train"], r["n_val"]) for r in ran})
    split_text = ("; ".join(f"{a:,} training / {b:,} validation molecules" for a, b in split) if split
                  else f"{opts['val_size']} validation molecules requested")
    diffusion = any(row.diffusion_steps for row in declared)
    row_notes = [row.note for row in declared if row.note]
    steps = DIFFUSION_STEPS[opts["diffusion_steps"]]
    notes = [
        f"Budget: {opts['budget']} (training wall clock, validation excluded; the configs' other caps removed)"
        if opts["budget_minutes"] is not None else
        f"Budget: {opts['budget']}; training minutes are what each family needed for it.",
        f"Data: every row trains on the same {'subset of ' + format(opts['subset'], ',') + ' molecules of ' if opts['subset'] else ''}"
        f"{opts['data']} with seed {', '.join(map(str, seeds))}, validation carved from it (val_size "
        f"{opts['val_size']}, at most a tenth of the data): {split_text}, "
        + ("one split for all rows. " if len(seeds) == 1 else
           "one split per seed, the same for all rows (a seed draws the subset, the split and the weights). ")
        + " ".join(row_notes),
        f"Samples: n = {opts['n']} per row at temperature 1 (sampler column: how each model drew them"
        + (f"; masked diffusion with the ancestral sampler at T = {'N' if steps == 1 else f'N/{steps}'} steps, N "
           "the canvas length" if diffusion else "")
        + f"); {opts['unique']}: distinct canonical SMILES among the valid samples"
        + ("" if opts["unique"] == "unique@10k" else " (MOSES reports unique@10k; n is smaller here)") + ".",
        f"NLL: -log p in nats per molecule on the same {nll['n_test']} molecules of {nll['reference']} (a fixed "
        f"subset, seed 0), averaged over the {nll['n_common']} molecules every likelihood row scored; 'own NLL' is "
        "each row's mean over the molecules it scored, with its count of scored / unscored molecules (never "
        "dropped silently). Kinds differ: exact is log p itself, elbo / iwae-K / iw-K are lower bounds on log p "
        "(so upper bounds on the NLL); the object is the canonical string of the row's representation.",
        "FCD/Test, FCD/TestSF: in parentheses the real-vs-real floor (held-out training molecules vs the "
        "reference at the same n); recall / coverage: in parentheses the real-vs-real value at the same n.",
        f"Evaluation: molgen.metrics.Evaluator(reference={opts['reference']}, scaffold_reference="
        f"{opts['scaffold_reference']}, train={opts['train_reference']}); SNN / Frag / Scaf against the reference.",
        f"Rows marked '{PUBLISHED_LABEL}' are published numbers ({PUBLISHED_SOURCE}), printed for reference; "
        "they are not reproduced here and never mixed into this run's numbers.",
    ]
    if len(seeds) > 1:
        notes.append(f"Seeds {', '.join(map(str, seeds))}: mean ± sample standard deviation over the seeds that ran.")
    for r in payload["rows"]:
        if r.get("no_likelihood"):
            notes.append(f"{r['row']}: no NLL: {r['no_likelihood']}.")
        if r["errors"]:
            notes.append(f"{r['row']}: failed: {'; '.join(r['errors'])}.")
    notes += payload.get("notes", [])
    notes.append(f"Machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, GPU: "
                 f"{m['cuda'] or 'none'}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
                 + f"; {m['date']}; wall {payload['wall_seconds'] / 60:.1f} min in all.")
    if payload.get("command"):
        notes.append(f"Command: `{payload['command']}`")
    return notes


def write_outputs(payload: dict[str, Any], *, out: Path, results: Path, name: str, plots: bool = True
                  ) -> dict[str, Any]:
    """``OUT/benchmark.json`` (manifest), ``RESULTS/<name>.json`` / ``.md`` and the plots; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {"manifest": str(out / "benchmark.json"), "json": str(results / f"{name}.json"),
                             "markdown": str(results / f"{name}.md"), "plots": []}
    if plots:
        try:
            files["plots"] = [str(p) for p in write_plots(payload, results, name)]
        except Exception as e:  # plots are a convenience: never lose the table over them
            payload.setdefault("notes", []).append(f"plots failed: {one_line(e)}")
    payload["files"] = files
    md = [f"# molgen benchmark: every family, same data, same budget ({payload['options']['budget']})", "",
          markdown_table(payload), ""]
    md += [f"{i}. {t}" for i, t in enumerate(footnotes(payload), 1)]
    if files["plots"]:
        md += ["", "Plots: " + ", ".join(f"`{Path(p).name}`" for p in files["plots"])]
    Path(files["markdown"]).write_text("\n".join(md) + "\n")
    Path(files["json"]).write_text(json.dumps(jsonable(payload), indent=1, default=str) + "\n")
    manifest = {"command": payload.get("command"), "results": files["json"], "options": payload["options"],
                "rows": [{"row": r["row"], "seed": r["seed"], "model_dir": r["model_dir"], "error": r["error"],
                          "trained": r.get("trained"), "autoencoder": r.get("autoencoder"),
                          "metrics": {k: r.get(k) for k in ("nll", "nll_own", "likelihood", *EVAL_KEYS, "unique",
                                                            "n", "n_valid", "sampler", "molecules_seen",
                                                            "train_seconds", "parameters", "precision")}}
                         for r in payload["runs"]]}
    Path(files["manifest"]).write_text(json.dumps(jsonable(manifest), indent=1, default=str) + "\n")
    return files


# --- plots --------------------------------------------------------------------------------------
#: (file suffix, row key, title, real-vs-real key, published key)
PLOT_METRICS = (
    ("nll", "nll", "NLL on the common test molecules (nats/molecule; lower is better)", None, None),
    ("valid", "valid", "validity", None, "valid"),
    ("unique", "unique", "uniqueness", None, "unique"),
    ("novelty", "Novelty", "novelty", None, "Novelty"),
    ("fcd_test", "FCD/Test", "FCD/Test (lower is better; ticks: real-vs-real floor)", "FCDfloor/Test", "FCD/Test"),
    ("fcd_testsf", "FCD/TestSF", "FCD/TestSF (lower is better; ticks: floor)", "FCDfloor/TestSF", "FCD/TestSF"),
    ("snn", "SNN/Test", "SNN/Test", None, "SNN/Test"),
    ("frag", "Frag/Test", "Frag/Test", None, "Frag/Test"),
    ("scaf", "Scaf/Test", "Scaf/Test", None, "Scaf/Test"),
    ("intdiv", "IntDiv", "IntDiv", None, None),
    ("filters", "Filters", "Filters", None, None),
    ("recall", "recall", "recall (ticks: real vs real, same n)", "recall/real", None),
    ("coverage", "coverage", "coverage (ticks: real vs real, same n)", "coverage/real", None),
    ("sampling_speed", "sample_molecules_per_s", "sampling molecules/s", None, None),
    ("training_speed", "train_molecules_per_s", "training molecules/s", None, None),
)


def _pyplot() -> Any:
    """matplotlib's pyplot (Agg outside a notebook)."""
    import matplotlib  # lazy: optional and heavy, only when plots are written

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    return plt


def write_plots(payload: dict[str, Any], results: Path, name: str) -> list[Path]:
    """A bar chart per metric (our rows, error bars over seeds, real-vs-real ticks, the published MOSES
    values hatched and labelled apart) and NLL vs training time; the PNG paths."""
    plt = _pyplot()
    rows = [r for r in payload["rows"] if r["seeds_ok"]]
    paths = []
    for suffix, key, title, real, pub in PLOT_METRICS:
        ours = [r for r in rows if r.get(key) is not None]
        published = [p for p in payload["published"]["rows"] if pub and pub in p]
        if not ours:
            continue
        labels = [r["row"] for r in ours] + [f"{p['model']}\n(published)" for p in published]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.75 * len(labels) + 1.5), 3.6))
        x = list(range(len(labels)))
        sds = [r.get(f"{key}_sd") or 0.0 for r in ours]
        ax.bar(x[:len(ours)], [r[key] for r in ours], color="#4878a8", yerr=sds if any(sds) else None,
               capsize=3, label="this run" + (" (mean ± sd over seeds)" if any(sds) else ""))
        if published:
            ax.bar(x[len(ours):], [p[pub] for p in published], color="#d0d0d0", hatch="//", edgecolor="#707070",
                   label=PUBLISHED_LABEL)
        if real:
            pts = [(i, r[real]) for i, r in enumerate(ours) if r.get(real) is not None]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker="_", s=400, color="black", zorder=3,
                           label="real vs real (same n)")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if published or real:
            ax.legend(fontsize=6, loc="best")
        fig.tight_layout()
        path = results / f"{name}_{suffix}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    path = _plot_nll_vs_time(plt, payload, results, name)
    if path is not None:
        paths.append(path)
    return paths


def _plot_nll_vs_time(plt: Any, payload: dict[str, Any], results: Path, name: str) -> Path | None:
    """Validation NLL logged during training (``curves.csv``: molecules seen, converted to minutes at the
    run's mean training rate) as a line, the test NLL at the end of training as a star, per row."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = 0
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    runs = [r for r in payload["runs"] if not r.get("error") and r.get("likelihood")]
    first_seed: dict[str, dict[str, Any]] = {}
    for r in runs:
        first_seed.setdefault(r["row"], r)
    for i, (row, r) in enumerate(first_seed.items()):
        color = colors[i % len(colors)]
        rate = r.get("train_molecules_per_s") or 0
        curve = Path(r["model_dir"]) / "curves.csv"
        if rate and curve.is_file():
            try:
                df = pd.read_csv(curve)
                if "val/nll" in df.columns and "molecules_seen" in df.columns:
                    d = df[["molecules_seen", "val/nll"]].dropna()
                    if len(d):
                        ax.plot(d["molecules_seen"] / rate / 60, d["val/nll"], color=color, lw=1, marker=".",
                                alpha=0.8)
            except (OSError, ValueError, pd.errors.ParserError):
                pass
        final = r.get("nll") if r.get("nll") is not None else r.get("nll_own")
        if final is not None and r.get("train_seconds") is not None:
            kind = (r.get("likelihood") or {}).get("kind", "?")
            ax.scatter([r["train_seconds"] / 60], [final], color=color, marker="*", s=90, zorder=3,
                       label=f"{row} ({kind})")
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("training time (minutes; curve points: molecules seen / mean training rate)", fontsize=8)
    ax.set_ylabel("NLL (nats/molecule)", fontsize=8)
    ax.set_title("NLL vs training time: lines = validation estimate during training (the family's own\n"
                 "training-time estimator), stars = test NLL at the end (kind in the legend)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = results / f"{name}_nll_vs_time.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
