"""Turn a trained model directory into a shipped one, loadable by name (``molgen.load(NAME)``).

    python benchmarks/ship_model.py RUN_DIR --name moses-transformer [--evaluation RUN_DIR/evaluation.json]
                                    [--n 1000] [--seed 0] [--max-mb 8] [--models-dir data/models] [--force]

Writes ``data/models/NAME/`` (or ``$MOLGEN_MODELS/NAME``, or ``--models-dir``):

- the files the model is built from, and nothing else: ``config.json``, ``model.safetensors``,
  ``representation.json``, ``metadata.json`` and ``nested/NAME/`` (the same files) for a model that
  holds another (the GAN's VAE). No ``checkpoints/``, ``logs/``, curves or ``train_options.json``
  (which lists the training data itself);
- ``shipped_check.json``: validity and uniqueness of ``n`` samples drawn at temperature 1 with
  ``seed`` from the copied files, with n, seed, batch size and the time it took
  (``tests/test_pretrained.py`` draws them again and compares);
- ``evaluation.json``: the Evaluator report given with ``--evaluation`` (default
  ``RUN_DIR/evaluation.json`` when there is one), or computed here on the shipped-check samples with
  ``--evaluate`` (``--reference`` / ``--train``; minutes: reference statistics, FCD);
- ``MODEL_CARD.md``: data, budget, metrics (likelihood first, with kind / object / unit), sampler,
  licence, intended use and limitations;
- ``SHA256SUMS`` over every other file (``sha256sum -c SHA256SUMS`` checks it; loading by name does).

A model over ``--max-mb`` (default 8 MB) is refused: the repository carries these files. The new
directory is built next to the destination and renamed into place only when complete and loadable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = ("config.json", "model.safetensors", "representation.json", "metadata.json")
CODE_LICENCE = "MIT"  # pyproject.toml: license = { text = "MIT" }


class ShipError(ValueError):
    """The run cannot be shipped as asked (one line, no traceback)."""


# ---- files ----------------------------------------------------------------------------------------
def model_files(run_dir: Path) -> list[str]:
    """Relative paths of the files a model directory is built from (nested models included)."""
    from molgen.persistence import read_config

    cfg = read_config(run_dir)
    out = [f for f in MODEL_FILES if (run_dir / f).is_file()]
    for f in ("config.json", "model.safetensors"):
        if f not in out:
            raise ShipError(f"{run_dir}: {f} is missing")
    if cfg.get("representation") is not None and "representation.json" not in out:
        raise ShipError(f"{run_dir}: representation.json is missing")
    for sub in (cfg.get("nested") or {}).values():
        sub = str(sub)
        src = (run_dir / sub).resolve()
        if run_dir.resolve() not in src.parents:
            raise ShipError(f"{run_dir}/config.json: nested model {sub!r} leaves the model directory")
        out += [f"{sub}/{f}" for f in model_files(run_dir / sub)]
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def copy_model(run_dir: Path, dest: Path, max_mb: float) -> list[str]:
    files = model_files(run_dir)
    for rel in files:
        if (run_dir / rel).is_symlink():
            raise ShipError(f"{run_dir / rel} is a symbolic link; ship plain files")
    size = sum((run_dir / rel).stat().st_size for rel in files)
    if size > max_mb * 1e6:
        big = max(files, key=lambda r: (run_dir / r).stat().st_size)
        raise ShipError(f"{run_dir}: the model files take {_mb(size)} (largest {big}, "
                        f"{_mb((run_dir / big).stat().st_size)}), over the {max_mb:g} MB limit for a model "
                        "shipped in the repository; pass --max-mb to raise it deliberately")
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_dir / rel, dest / rel)
    return files


# ---- the shipped check ----------------------------------------------------------------------------
def shipped_check(model, name: str, n: int, seed: int, batch_size: int) -> tuple[dict[str, Any], Any]:
    """Validity / uniqueness of ``n`` samples at temperature 1 with ``seed`` (what the test re-draws)."""
    import platform

    import torch

    from molgen.persistence import versions
    from molgen.training.train import cpu_name

    t0 = time.perf_counter()
    res = model.sample(n, seed=seed, temperature=1.0, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    valid = [c for c in res.canonical if c is not None]
    n_unique = len(set(valid))
    return {
        "name": name, "n": n, "seed": seed, "temperature": 1.0, "batch_size": batch_size,
        "sampler": res.sampler, "validity": len(valid) / n if n else float("nan"), "n_valid": len(valid),
        "uniqueness": n_unique / len(valid) if valid else None, "n_unique": n_unique,
        "uniqueness_denominator": "valid samples",
        "samples_sha256": hashlib.sha256("\n".join(res.smiles).encode()).hexdigest(),
        "sample_preview": res.smiles[:10], "sample_seconds": round(seconds, 2),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform()},
        "versions": versions(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }, res


def _evaluation(path: Path, label: dict[str, str] | None) -> dict[str, Any]:
    try:
        rep = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ShipError(f"--evaluation {path}: not a readable JSON report ({e})") from None
    if not isinstance(rep, dict) or not isinstance(rep.get("metrics"), dict):
        raise ShipError(f"--evaluation {path}: not an Evaluator report (no 'metrics'); write one with "
                        "`molgen evaluate SAMPLES --model RUN_DIR -o evaluation.json`")
    if rep.get("likelihood") and label and any(rep["likelihood"].get(k) != v for k, v in label.items()):
        raise ShipError(f"--evaluation {path}: its likelihood {rep['likelihood']} is not this model's {label}; "
                        "is it the report of another model?")
    return rep


def evaluate(model, smiles: list[str], reference: str, train: str | None) -> dict[str, Any]:
    from molgen.metrics import Evaluator

    report = Evaluator(reference=reference, train=train).evaluate(smiles, model=model, name="shipped_check samples")
    return json.loads(report.to_json())


# ---- the card -------------------------------------------------------------------------------------
def _num(v: Any, spec: str = ",") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float) and spec == ",":
        spec = ",.1f" if abs(v) >= 100 else ".4g"
    return format(v, spec)


def _machine(meta: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    tr = meta.get("training") or {}
    for m in (meta.get("machine"), tr.get("machine")):
        if m:
            return m if isinstance(m, str) else ", ".join(f"{k} {v}" for k, v in m.items() if v is not None)
    key = (tr.get("precision_choice") or {}).get("key")
    if key:  # "<cpu> | torch ... | ...": the CPU the precision trial ran on, the training machine
        return f"{key.split(' | ')[0]} (from the precision trial), {tr.get('world_size', 1)} process(es)"
    return "not recorded in metadata.json"


def _data_text(meta: dict[str, Any]) -> tuple[str, str]:
    """(description of the training data, its licence)."""
    from molgen.data.catalog import CATALOG

    data = meta.get("data") or {}
    tr = meta.get("training") or {}
    src = str(data.get("source", "?"))
    moses = src in ("moses", "moses:train") or src.replace("\\", "/").endswith("moses/train.csv.gz")
    what = "the MOSES training split (`moses:train`, 1.58M molecules)" if moses else f"`{src}`"
    subset = tr.get("subset")
    if subset:
        what += f", a random subset of {_num(subset)} molecules (seed {tr.get('seed', 0)})"
    val = data.get("validation") or {}
    text = (f"{what}; after standardization and deduplication {_num(data.get('n_train'))} training molecules "
            f"and {_num(data.get('n_val'))} validation molecules ({val.get('source', 'validation')}, seed "
            f"{val.get('seed', '?')}); source hash `{data.get('source_hash', '?')}`. Test sets were used for "
            "the reported metrics only.")
    licence = CATALOG["moses:train"].licence if moses else f"not MOSES (`{src}`): state its licence here"
    return text, licence


def _init_text(meta: dict[str, Any]) -> list[str]:
    """A line saying which model the weights started from (its own training is not in the budget above)."""
    init = meta.get("init_from") or {}
    if not init:
        return []
    final = init.get("final") or {}
    return [f"- Initialised from `{init.get('source', '?')}` ({init.get('model', '?')}; its final validation NLL "
            f"{_num(final.get('val_nll_nats_per_molecule'))}, kind {(final.get('likelihood') or {}).get('kind', '?')}): "
            f"weights copied where shapes match ({(init.get('counts') or {}).get('copied', '?')} copied); that "
            "model's own training is not counted in the molecules seen above."]


def _diffusion_sampler_text(c: dict[str, Any]) -> str:
    sampler, b = c.get("sampler", "ancestral"), c.get("block_size")
    where = f"block diffusion (b = {b}), block by block through the KV cache; inside a block " if b else "masked diffusion: "
    if sampler == "ancestral":
        steps = (c.get("steps_per_block") or b) if b else (c.get("sampling_steps") or "N = max_len + 1 (the canvas length)")
        return where + f"MDLM ancestral sampling in {steps} steps{' per block' if b else ''}"
    order = {"exact": "a uniformly random free position", "left-to-right": "the first free position",
             "confidence": "the free position with the largest top probability"}.get(sampler, sampler)
    return where + f"one position per network call, {order} (sampler `{sampler}`)"


def _sampler_text(cfg: dict[str, Any], check: dict[str, Any]) -> str:
    c = cfg.get("config") or {}
    family = cfg.get("model")
    extra = {"diffusion": _diffusion_sampler_text(c),
             "flow": "one pass: z ~ N(0, I), inverse flow, tokens sampled from p(x | v), cut at the first <eos>",
             "vae": "z from the prior, the decoder sampled token by token",
             "gan": f"z = G(eps) decoded by {c.get('decode', 'sampling')} the VAE decoder",
             "transformer": "token by token with the KV cache"}.get(str(family), "")
    return (f"`model.sample(n, seed=...)`: sampler `{check['sampler']}` at temperature 1, no top-k or nucleus "
            f"truncation{'; ' + extra if extra else ''}. Invalid samples are kept and counted.")


HEADLINE = ("valid", "unique@1000", "unique@10000", "FCD/Test", "FCD/TestSF", "SNN/Test", "Frag/Test", "Scaf/Test",
            "IntDiv", "IntDiv2", "Filters", "Novelty", "guacamol/KL", "guacamol/FCD")


def _val_nll(final: dict[str, Any]) -> str:
    """The validation NLL with its own kind (a model may report another kind than it validated with)."""
    kind = (final.get("likelihood") or {}).get("kind")
    return _num(final.get("val_nll_nats_per_molecule")) + (f" ({kind})" if kind else "")


def _metrics_text(rep: dict[str, Any] | None, label: dict[str, str] | None, meta: dict[str, Any]) -> list[str]:
    lines = []
    final = meta.get("final") or {}
    if label is None:
        lines.append("- **Likelihood: none.** An implicit model has no density; `molgen score` refuses it. "
                     "Judge it by FCD and the mode-dropping diagnostics.")
    if rep is None:
        if label is not None:
            lines.append(f"- **Likelihood** ({label['kind']}, object {label['object']}, unit {label['unit']}): "
                         f"validation NLL {_val_nll(final)} "
                         f"({label['unit']}, {_num(final.get('val_n'))} validation molecules).")
        lines.append("- Not evaluated: no evaluation.json was shipped with this model.")
        return lines
    m = rep.get("metrics") or {}
    notes = rep.get("notes") or {}
    if label is not None:
        nll = m.get("NLL/Test")
        lab = rep.get("likelihood") or label
        bench = rep.get("benchmark") or {}
        if nll is None and bench.get("nll_own") is not None:  # molgen benchmark scores test molecules itself
            lines.append(f"- **NLL/Test {_num(bench['nll_own'], '.2f')} {lab['unit']}** — kind **{lab['kind']}**, "
                         f"object **{lab['object']}**, unit **{lab['unit']}**; {bench.get('nll_scored', '?')} test "
                         f"molecules scored by `molgen benchmark`, {bench.get('nll_unscored', '?')} unscored. "
                         f"Validation NLL {_val_nll(final)}.")
        elif nll is None:
            lines.append(f"- **Likelihood** ({lab['kind']}, object {lab['object']}, unit {lab['unit']}): "
                         f"NLL/Test not in the report (evaluated without the model); validation NLL "
                         f"{_val_nll(final)} {lab['unit']}.")
        else:
            lines.append(f"- **NLL/Test {_num(nll, '.2f')} {lab['unit']}** — kind **{lab['kind']}**, object "
                         f"**{lab['object']}**, unit **{lab['unit']}**; {m.get('NLL/Test/n_scored', '?')} test "
                         f"molecules scored, {m.get('NLL/Test/n_unscored', '?')} unscored. "
                         f"Validation NLL {_val_nll(final)}.")
    refs = ", ".join(f"{k}: {v.get('name')} (n {v.get('n')})" for k, v in (rep.get("references") or {}).items())
    lines.append(f"- Samples: {rep.get('n_requested', '?')} requested, {rep.get('n_valid', '?')} valid; "
                 f"references {refs or '?'}; train set for novelty: {rep.get('train') or 'none'}.")
    lines += ["", "| metric | value | note |", "|---|---|---|"]
    for k in [k for k in HEADLINE if k in m] + [k for k in ("logP", "SA", "QED", "weight") if k in m]:
        lines.append(f"| {k} | {_num(m[k], '.4g') if isinstance(m[k], (int, float)) else m[k]} | "
                     f"{notes.get(k, '')} |")
    return lines


def model_card(name: str, cfg: dict[str, Any], meta: dict[str, Any], check: dict[str, Any],
               rep: dict[str, Any] | None, description: str | None, machine: str | None,
               files: list[str], size: int, nested_families: dict[str, str] | None = None) -> str:
    c = cfg.get("config") or {}
    tr = meta.get("training") or {}
    label = cfg.get("likelihood")
    family, representation = cfg.get("model"), cfg.get("representation")
    data_text, data_licence = _data_text(meta)
    nparams = tr.get("n_parameters")
    if not description:
        src = (meta.get("data") or {}).get("source")
        on = "MOSES molecules" if "MOSES" in data_text.split(";")[0] else f"`{src}`"
        description = (f"A molgen `{family}` ({_num(nparams)} parameters) on {representation or 'graph'} strings, "
                       f"trained on {on} ({_num(tr.get('molecules_seen'))} molecules seen).")
    like = (f"{label['kind']} log p, object {label['object']}, unit {label['unit']}" if label else
            "none (implicit model)")
    nested = cfg.get("nested") or {}
    nested_text = "".join(
        f"\n- It holds a trained `{(nested_families or {}).get(sub, 'model')}` as `{sub}/` (loaded with it; "
        "its own config.json and metadata.json are there)." for sub in nested.values())
    out = [
        f"# {name}", "", description, "",
        "```bash", f"molgen sample --model {name} -n 1000 -o samples.smi --seed 0",
        *([f"molgen score --model {name} library.smi -o scores.csv"] if label else []),
        f"molgen info {name}", "```", "",
        "```python", "import molgen", f'model = molgen.load("{name}")', "samples = model.sample(1000, seed=0)",
        "```", "",
        "## Model", "",
        f"- Family: `{family}`; representation: `{representation}`; max_len {c.get('max_len', '?')}; "
        f"{_num(nparams)} parameters; molgen {cfg.get('molgen_version', '?')}, model format "
        f"{cfg.get('format_version', '?')}.",
        f"- Likelihood: {like} (nats per molecule, summed over every token including the end token).{nested_text}",
        f"- Conditional on {', '.join((c.get('condition') or {}).get('names') or []) or '?'} (samples in the "
        "check are drawn without a condition)." if c.get("condition") else "- Unconditional.",
        "", "## Training data", "", data_text, "",
        "## Budget", "",
        f"- Molecules seen: {_num(tr.get('molecules_seen'))} ({_num(tr.get('steps'))} steps, "
        f"{_num(tr.get('epochs'))} epochs, batch {_num(tr.get('global_batch_size') or tr.get('batch_size'))}); "
        f"budget asked: max_molecules {_num(tr.get('max_molecules'))}, max_time {_num(tr.get('max_time'))} min, "
        f"max_steps {_num(tr.get('max_steps'))}.",
        *_init_text(meta),
        f"- Training time: {_num(tr.get('train_seconds'))} s ({_num(tr.get('molecules_per_s'))} molecules/s), "
        f"precision {tr.get('precision', '?')}, {tr.get('world_size', 1)} process(es).",
        f"- Machine: {_machine(meta, machine)}.",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in (meta.get('versions') or {}).items()) or 'not recorded'}; "
        f"trained {meta.get('created', '?')}.",
        "", "## Metrics (likelihood first)", "",
        *_metrics_text(rep, label, meta), "",
        "## Sampler", "", _sampler_text(cfg, check), "",
        f"Shipped check (`shipped_check.json`): {check['n']} samples with seed {check['seed']} and batch size "
        f"{check['batch_size']}: validity {check['validity']:.3f}, uniqueness "
        f"{_num(check.get('uniqueness'), '.3f')} (of the valid ones), {check['sample_seconds']} s on "
        f"{check['machine']['cpu']}. The test suite draws them again from this directory and compares.",
        "", "## Licence", "",
        f"- Weights: MIT. Code (molgen): {CODE_LICENCE}.",
        f"- Training data: {data_licence}." + (" Cite Polykovskiy et al., Molecular Sets (MOSES), Front. "
                                                "Pharmacol. 11:565644 (2020)." if data_licence.startswith("MIT")
                                                else ""),
        "", "## Intended use and limitations", "",
        "- For trying molgen without training, tutorials, baselines and tests: sampling drug-like molecules in "
        "the chemical space of MOSES (ZINC Clean Leads: 250-350 Da, no charged atoms, filtered for medicinal "
        "chemistry alerts) and scoring how typical a molecule is of that space.",
        "- A small model trained on a CPU budget: its metrics are far from published GPU-scale MOSES results; "
        "do not quote it as the state of the family.",
        "- A likelihood is only comparable with another of the same kind and object (a bound is not an exact "
        "value; canonical SMILES and canonical SELFIES are different objects). Molecules outside the MOSES "
        "space (charged, larger, other elements) get low likelihoods or are out of the vocabulary.",
        "- Generated molecules are hypotheses: validity is syntactic; nothing here predicts activity, "
        "synthesizability or safety.",
        "", "## Files", "",
        f"{', '.join(files)}, evaluation.json, shipped_check.json, this card; {_mb(size)} of model files. "
        "`SHA256SUMS` lists the sha256 of every file (`sha256sum -c SHA256SUMS`); loading by name verifies "
        "the model files and refuses a corrupt copy.", "",
    ]
    return "\n".join(out)


# ---- main -----------------------------------------------------------------------------------------
def ship(run_dir: str | Path, name: str, *, evaluation: str | Path | None = None, n: int = 1000, seed: int = 0,
         batch_size: int = 1024, max_mb: float = 8.0, models_dir: str | Path | None = None, force: bool = False,
         description: str | None = None, machine: str | None = None, evaluate_samples: bool = False,
         reference: str = "moses:test", train: str | None = "moses:train", quiet: bool = False) -> Path:
    from molgen.persistence import load_pretrained, read_config
    from molgen.pretrained import EVALUATION, NAME_RE, check_shipped, verify_checksums, write_checksums
    from molgen.pretrained import models_dir as default_models_dir

    run_dir = Path(run_dir)
    if not NAME_RE.match(name):
        raise ShipError(f"--name {name!r}: use lower-case letters, digits, '-', '_' and '.' (e.g. moses-vae)")
    if n < 1 or seed < 0:
        raise ShipError("--n must be >= 1 and --seed >= 0")
    root = Path(models_dir) if models_dir is not None else default_models_dir()
    dest = root / name
    if dest.exists() and not force:
        raise ShipError(f"{dest} exists; pass --force to replace it")
    if evaluation is None and (run_dir / EVALUATION).is_file() and not evaluate_samples:
        evaluation = run_dir / EVALUATION
    cfg = read_config(run_dir)
    rep = _evaluation(Path(evaluation), cfg.get("likelihood")) if evaluation is not None else None
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.shipping-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = copy_model(run_dir, tmp, max_mb)
        size = sum((tmp / f).stat().st_size for f in files)
        model = load_pretrained(tmp)  # the copied bytes load
        check, res = shipped_check(model, name, n, seed, batch_size)
        (tmp / "shipped_check.json").write_text(json.dumps(check, indent=1) + "\n")
        if evaluate_samples:
            rep = evaluate(model, res.smiles, reference, train)
        if rep is not None:
            (tmp / EVALUATION).write_text(json.dumps(rep, indent=1) + "\n")
        elif not quiet:
            print(f"warning: no evaluation report (--evaluation FILE or --evaluate); {name} ships without "
                  "evaluation.json, and the repository test requires one", file=sys.stderr)
        cfg = read_config(tmp)
        nested = {sub: str(read_config(tmp / sub).get("model")) for sub in (cfg.get("nested") or {}).values()}
        meta = json.loads((tmp / "metadata.json").read_text()) if (tmp / "metadata.json").is_file() else {}
        (tmp / "MODEL_CARD.md").write_text(model_card(name, cfg, meta, check, rep, description, machine, files, size,
                                                            nested))
        write_checksums(tmp)
        verify_checksums(tmp, docs=True)
        old = root / f".{name}.replaced-{os.getpid()}"
        if dest.exists():
            os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    problems = [p for p in check_shipped(dest) if not (rep is None and EVALUATION in p)]
    if problems:
        raise ShipError(f"{dest}: {'; '.join(problems)}")
    if not quiet:
        print(f"shipped {name} -> {dest} ({_mb(size)} of model files; validity {check['validity']:.3f}, "
              f"uniqueness {_num(check['uniqueness'], '.3f')} of {n} samples, seed {seed}, "
              f"{check['sample_seconds']} s)\nload it with molgen.load({name!r}) / molgen sample --model {name}; "
              f"commit it with `git add {os.path.relpath(dest)}`", file=sys.stderr)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ship_model.py", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a trained model directory (molgen train --out / save_pretrained)")
    p.add_argument("--name", required=True, help="the name it is loaded by, e.g. moses-transformer")
    p.add_argument("--evaluation", default=None, help="the Evaluator report of its samples "
                                                     "(default: RUN_DIR/evaluation.json if there is one)")
    p.add_argument("--evaluate", action="store_true",
                   help="instead, evaluate the shipped-check samples here (--reference, --train; minutes)")
    p.add_argument("--reference", default="moses:test")
    p.add_argument("--train", default="moses:train", help="for novelty ('none': no novelty)")
    p.add_argument("--n", type=int, default=1000, help="samples of the shipped check (default 1000; fewer for "
                                                       "a slow sampler such as diffusion)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--max-mb", type=float, default=8.0, help="refuse model files over this size (default 8 MB)")
    p.add_argument("--models-dir", default=None, help="where NAME/ goes (default $MOLGEN_MODELS or data/models)")
    p.add_argument("--description", default=None, help="the card's one-line description")
    p.add_argument("--machine", default=None, help="the training machine, when metadata.json does not say")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the shipped check")
    p.add_argument("--force", action="store_true", help="replace an existing NAME/")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from molgen.errors import ModelFormatError

    try:
        ship(args.run_dir, args.name, evaluation=args.evaluation, n=args.n, seed=args.seed,
             batch_size=args.batch_size, max_mb=args.max_mb, models_dir=args.models_dir, force=args.force,
             description=args.description, machine=args.machine, evaluate_samples=args.evaluate,
             reference=args.reference, train=None if args.train == "none" else args.train, quiet=args.quiet)
    except (ShipError, ModelFormatError, OSError) as e:
        print(f"ship_model: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
