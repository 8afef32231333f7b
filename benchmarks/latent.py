"""Latent-variable generators at the quick-start budget (issue 21): VAE, LatentGAN on it, categorical flow,
and the MOSES VAE trained for the same wall clock, evaluated on the same test molecules in one table.

    python benchmarks/latent.py [--molecules 300000] [--max-time MIN] [--threads 1] [--only vae,gan,flow,peer]
                                [--skip-train] [--n-test 1000] [--n-samples 1000] [--out runs/bench-latent]

Training (skipped with ``--skip-train``, which evaluates the run directories under ``--out``) runs
``molgen train`` as subprocesses (``OMP_NUM_THREADS = --threads``), each command recorded in the results:

* ``vae``:  ``molgen train --config vae --max-molecules N --out OUT/vae``;
* ``gan``:  ``molgen train --config gan --autoencoder OUT/vae --out OUT/gan`` (its own budget in latents seen,
  ``molgen/configs/gan.yaml``; ``--gan-molecules`` / ``--gan-max-time`` override it);
* ``flow``: ``molgen train --config flow --max-molecules N --out OUT/flow``;
* ``peer``: the MOSES reference VAE (``/work/shared/tools/peer_vae.py``, MOSES peer venv) trained on the MOSES
  training set for the wall clock our VAE trained (its ``train_seconds``, validation excluded, as the peer's),
  same threads, same machine; it writes 1,000 samples at temperature 1.

Evaluation, the same for every row (each row's result cached in ``OUT/eval_<row>.json``, keyed by the run
directory and the evaluation settings, so that re-running one row redoes only that row):

* bound: ``score`` on a fixed subset of ``--n-test`` MOSES test molecules (the ``Evaluator``'s NLL subset),
  mean -log p bound in nats/molecule with its kind and object (VAE iwae-K, flow iw-16; GAN and peer: none);
* reconstruction accuracy on the same test molecules (exact canonical match of the greedy decode of the
  posterior mean; the GAN row shows its VAE's), active units on them (Burda et al. 2016: dimensions whose
  posterior mean varies across the molecules by more than 0.01);
* ``--n-samples`` samples at temperature 1 (timed: molecules/s, beside the shipped transformer's KV-cache
  sampler timed right after it in the same process): validity, uniqueness, FCD/Test with its real-vs-real
  floor (held-out MOSES train molecules at the same n), recall / coverage at equal n with their
  real-vs-real values, mean molecular weight of the valid samples over the test set's;
* GAN: the ceiling, FCD/Test of decoding (sampled, temperature 1) the VAE posterior means of ``--n-ceiling``
  molecules of the VAE's own training data.

Writes ``benchmarks/results/latent.{json,md}`` (``latent_<tag>`` with ``--tag``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("vae", "gan", "flow", "peer")
PEER_SCRIPT = ROOT.parent / "shared" / "tools" / "peer_vae.py"
PEER_ENV = ROOT.parent / "shared" / "tools" / "moses_peer.sh"
PEER_DATA = ROOT.parent / "shared" / "data" / "moses" / "train.csv.gz"
AU_THRESHOLD = 0.01
TARGETS = {
    "vae": {"recon_accuracy": (">=", 0.6), "valid": (">=", 0.9), "FCD/Test": ("<=", 3.0)},
    "gan": {"FCD/ceiling": ("<=", 1.2), "FCD/Test": ("<=", 4.0)},
    "flow": {"bound": ("<=", 45.0), "FCD/Test": ("<=", 10.0), "MW_ratio_dev": ("<=", 0.10),
             "unique": (">=", 0.95), "speed_vs_transformer": (">=", 2.0)},
}


# --- training ----------------------------------------------------------------------------------------
def _molgen_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "molgen"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "molgen"]


def _run(row: str, cmd: list[str], out: Path, threads: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one training subprocess (log in OUT/<row>.log) and record it in OUT/train_<row>.json."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = out / f"{row}.log"
    shown = f"OMP_NUM_THREADS={threads} " + shlex.join(cmd)
    print(f"[latent] {row}: {shown}", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    rec = {"row": row, "command": shown, "rc": rc, "wall_seconds": round(time.perf_counter() - t0, 1),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "log": str(log), **(extra or {})}
    (out / f"train_{row}.json").write_text(json.dumps(rec, indent=1))
    if rc != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"{row} training failed (rc {rc}); last lines of {log}:\n" + "\n".join(tail))
    return rec


def train_row(row: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    mg = _molgen_cmd()
    d = out / row
    if row == "peer":
        vae_s = _vae_train_seconds(out)
        minutes = args.peer_minutes if args.peer_minutes is not None else (vae_s or 0) / 60
        if not minutes > 0:
            raise SystemExit(f"peer: no wall clock to match ({out / 'vae'} has no training record); "
                             "train the vae row first or give --peer-minutes")
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        py = args.peer_python or subprocess.run(["bash", str(PEER_ENV)], capture_output=True, text=True,
                                                check=True).stdout.strip().splitlines()[-1]
        cmd = [py, str(PEER_SCRIPT), "--minutes", f"{minutes:.4f}", "--threads", str(args.threads),
               "--data", str(args.peer_data), "--out", str(d / "samples.smi")]
        return _run(row, cmd, out, args.threads, {"minutes": minutes, "matched_vae_train_seconds": vae_s,
                                                  "matched_vae_saved": _saved(out / "vae")})
    if d.exists():  # a fresh run directory (no stale checkpoints from an earlier run)
        shutil.rmtree(d)
    cmd = [*mg, "train", "-q", "--config", row, "--out", str(d)]
    if row in ("vae", "flow"):
        cmd += ["--max-molecules", str(args.molecules)]
        if args.max_time is not None:
            cmd += ["--max-time", str(args.max_time)]
    elif row == "gan":
        cmd += ["--autoencoder", str(out / "vae")]
        if args.gan_molecules is not None:
            cmd += ["--max-molecules", str(args.gan_molecules)]
        if args.gan_max_time is not None:
            cmd += ["--max-time", str(args.gan_max_time)]
    cmd += ["--seed", str(args.seed)]
    return _run(row, cmd, out, args.threads)


def _meta(d: Path) -> dict[str, Any]:
    p = d / "metadata.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _saved(d: Path) -> str | None:
    return _meta(d).get("saved")


def _vae_train_seconds(out: Path) -> float | None:
    return (_meta(out / "vae").get("training") or {}).get("train_seconds")


# --- evaluation helpers ------------------------------------------------------------------------------
def test_subset(n: int) -> list[str]:
    """The Evaluator's NLL subset of moses:test (fixed seed 0): the same molecules for every measurement."""
    import numpy as np

    from molgen.data.io import read_smiles

    ref = read_smiles("moses:test")
    idx = np.sort(np.random.default_rng(0).choice(len(ref), size=min(n, len(ref)), replace=False))
    return [ref[i] for i in idx]


def recon_accuracy(vae, smiles: list[str]) -> dict[str, Any]:
    """``molgen.models.vae_diagnostics.reconstruction_accuracy`` (greedy decode of the posterior mean, exact
    canonical match); a local equivalent while that function is not there."""
    try:
        from molgen.models.vae_diagnostics import reconstruction_accuracy
    except ImportError:
        reconstruction_accuracy = None
    if reconstruction_accuracy is not None:
        res = dict(reconstruction_accuracy(vae, smiles))
        res["implementation"] = "molgen.models.vae_diagnostics.reconstruction_accuracy"
        return res
    import torch

    from molgen.chem import standardize

    mu = vae.encode(smiles)
    ok = ~torch.isnan(mu).any(dim=1)
    canon = [standardize(s, vae.policy)[0] for s in smiles]
    dec = vae.decode(mu[ok], greedy=True, seed=0).canonical if ok.any() else []
    want = [c for c, k in zip(canon, ok.tolist()) if k]
    hits = sum(a is not None and a == b for a, b in zip(dec, want))
    return {"accuracy": hits / len(smiles) if smiles else math.nan, "n": len(smiles), "n_encoded": int(ok.sum()),
            "implementation": "benchmarks/latent.py fallback (greedy decode of mu, exact canonical match; "
                              "unencodable molecules count as misses)"}


def active_units(vae, smiles: list[str]) -> dict[str, Any]:
    """Burda et al. (2016): dimensions u with Var_x(E_q[z_u | x]) > 0.01 over the given molecules."""
    import torch

    mu = vae.encode(smiles)
    ok = ~torch.isnan(mu).any(dim=1)
    mu = mu[ok]
    try:
        from molgen.models.vae_diagnostics import active_units as au
        n, var = au(mu, AU_THRESHOLD)
    except ImportError:
        var = mu.double().var(dim=0) if len(mu) > 1 else torch.zeros(mu.shape[1])
        n = int((var > AU_THRESHOLD).sum())
    return {"active_units": int(n), "d_z": int(mu.shape[1]), "n": int(ok.sum()), "threshold": AU_THRESHOLD,
            "variances": [round(float(v), 5) for v in var]}


def ceiling_molecules(vae_dir: Path, policy, n: int, seed: int) -> tuple[list[str], str]:
    """``n`` molecules of the VAE's own training data (its subset and seed, the validation carve removed)."""
    import random

    from molgen.training.train import split_data

    meta = _meta(vae_dir)
    t = meta.get("training") or {}
    data = meta.get("data") or {}
    try:
        opts = {"data": data.get("source", "moses"), "val_data": None, "smiles_col": None,
                "subset": t.get("subset"), "seed": t.get("seed", 0), "n_jobs": 2,
                "val_size": (data.get("validation") or {}).get("n", data.get("n_val", 0))}
        train, _val, _info = split_data(opts, policy)
        where = f"the VAE's training molecules ({opts['data']}, subset {opts['subset']}, seed {opts['seed']})"
    except Exception as e:  # any failure: fall back to the whole MOSES training set
        from molgen.data.io import read_smiles

        train = [s for s in read_smiles("moses:train") if s]
        where = f"MOSES train (the VAE's split could not be rebuilt: {type(e).__name__}: {e})"
    return random.Random(seed + 1).sample(train, min(n, len(train))), where


def timed_sample(model, n: int, seed: int):
    t = time.perf_counter()
    res = model.sample(n, seed=seed)
    return res, n / (time.perf_counter() - t)


def sample_metrics(rep) -> dict[str, Any]:
    """The table's sample metrics from an EvaluationReport."""
    m = rep.metrics
    mw = mw_ref = math.nan
    if rep.properties is not None and len(rep.properties):
        mw = float(rep.properties[:, 3].mean())
    if rep.reference_properties is not None and len(rep.reference_properties):
        mw_ref = float(rep.reference_properties[:, 3].mean())
    return {"valid": m.get("valid"), "unique": m.get("unique@1000"), "Novelty": m.get("Novelty"),
            "FCD/Test": m.get("FCD/Test"), "FCDfloor/Test": m.get("FCDfloor/Test"),
            "recall": m.get("recall"), "recall/real": m.get("recall/real"),
            "coverage": m.get("coverage"), "coverage/real": m.get("coverage/real"),
            "MW": mw, "MW_data": mw_ref, "MW_ratio": mw / mw_ref if mw_ref else math.nan}


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def eval_key(row: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    key = {"row": row, "n_test": args.n_test, "n_samples": args.n_samples, "seed": args.seed,
           "transformer": args.transformer}
    if row == "gan":
        key["n_ceiling"] = args.n_ceiling
    if row == "peer":
        p = out / "peer" / "samples.smi"
        key["samples_mtime"] = p.stat().st_mtime if p.exists() else None
        key["matched_vae_saved"] = _train_record(out, "peer").get("matched_vae_saved")
    else:
        key["saved"] = _saved(out / row)
    return key


def _train_record(out: Path, row: str) -> dict[str, Any]:
    p = out / f"train_{row}.json"
    return json.loads(p.read_text()) if p.exists() else {}


def evaluate_row(row: str, args: argparse.Namespace, out: Path, ev, test: list[str], tf) -> dict[str, Any]:
    from molgen.api import load

    t0 = time.perf_counter()
    res: dict[str, Any] = {"row": row}
    if row == "peer":
        smi = out / "peer" / "samples.smi"
        if not smi.exists():
            raise SystemExit(f"peer: {smi} not found (train it: --only peer without --skip-train)")
        info = json.loads(Path(str(smi) + ".json").read_text())
        samples = smi.read_text().splitlines()[:args.n_samples]
        res["training"] = {"train_seconds": info.get("train_s"), "molecules_seen": info.get("molecules_seen"),
                           "molecules_per_s": info.get("molecules_per_s"), "n_parameters": info.get("params"),
                           "steps": info.get("steps"), "kl_weight_end": info.get("kl_weight_end")}
        res["sample_mol_per_s"] = len(samples) / info["sample_s"] if info.get("sample_s") else None
        res["sample_timing"] = "peer process (MOSES VAE sampler, batches of 250, max_len 100)"
        _tf_res, res["transformer_mol_per_s"] = timed_sample(tf, args.n_samples, args.seed)
        res["peer_info"] = info
        rep = ev.evaluate(samples, name="MOSES VAE peer samples")
    else:
        model = load(out / row)
        model.eval()
        meta = model.metadata or {}
        res["training"] = {**(meta.get("training") or {}), "n_parameters": model.n_parameters()}
        res["final"] = meta.get("final")
        if "log_likelihood" in model.capabilities and model.likelihood_label() is not None:
            nll, _ = ev.nll(model)
            res["bound"] = {"nats_per_molecule": nll.value, "label": nll.label, "n": nll.n,
                            "n_scored": nll.n_scored, "unscored": dict(nll.unscored)}
        vae = model if row == "vae" else getattr(model, "autoencoder", None) if row == "gan" else None
        if vae is not None:
            res["recon"] = recon_accuracy(vae, test)
            res["au"] = active_units(vae, test)
        model.sample(min(10, args.n_samples), seed=args.seed + 1)  # warm-up
        samples_res, res["sample_mol_per_s"] = timed_sample(model, args.n_samples, args.seed)
        _tf_res, res["transformer_mol_per_s"] = timed_sample(tf, args.n_samples, args.seed)
        res["sample_timing"] = f"model.sample({args.n_samples}, seed={args.seed}), this process"
        samples = samples_res.smiles
        rep = ev.evaluate(samples, name=f"{row}: {args.n_samples} samples at temperature 1")
        # the report benchmarks/ship_model.py ships with the model (RUN_DIR/evaluation.json)
        (out / row / "evaluation.json").write_text(json.dumps(rep.to_dict(), indent=1, default=str))
        if row == "gan":
            mols, where = ceiling_molecules(out / "vae", vae.policy, args.n_ceiling, args.seed)
            import torch

            mu = vae.encode(mols)
            ok = ~torch.isnan(mu).any(dim=1)
            dec = vae.decode(mu[ok], seed=args.seed)  # sampled decoding, temperature 1
            crep = ev.evaluate(dec.smiles, name="GAN ceiling: VAE decode of training posterior means")
            res["ceiling"] = {"molecules": where, "n": len(mols), "n_encoded": int(ok.sum()),
                              **sample_metrics(crep), "report": crep.to_dict()}
    res.update(sample_metrics(rep))
    res["n_samples"] = len(samples)
    res["speed_vs_transformer"] = (res["sample_mol_per_s"] / res["transformer_mol_per_s"]
                                   if res.get("sample_mol_per_s") and res.get("transformer_mol_per_s") else None)
    res["report"] = rep.to_dict()
    res["sample_preview"] = samples[:10]
    res["eval_seconds"] = round(time.perf_counter() - t0, 1)
    res["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return res


# --- report ------------------------------------------------------------------------------------------
LABELS = {"vae": "VAE (molgen/configs/vae.yaml)", "gan": "LatentGAN on that VAE (molgen/configs/gan.yaml)",
          "flow": "categorical flow (molgen/configs/flow.yaml)", "peer": "MOSES VAE (reference code), same wall clock"}
DASH = "—"


def table_row(r: dict[str, Any]) -> dict[str, Any]:
    t = r.get("training") or {}
    b = r.get("bound")
    lab = (b or {}).get("label") or {}
    c = r.get("ceiling")
    au = r.get("au")
    fmt3 = lambda x: DASH if x is None or not math.isfinite(_num(x)) else f"{_num(x):.3f}"  # noqa: E731
    return {
        "model": LABELS[r["row"]],
        "parameters": t.get("n_parameters"),
        "molecules seen": t.get("molecules_seen"),
        "train molecules/s": t.get("molecules_per_s"),
        "train min": _num(t.get("train_seconds")) / 60,
        "bound (nats/mol)": b["nats_per_molecule"] if b else DASH,
        "bound kind (object)": f"{lab.get('kind')} ({lab.get('object')})" if b else DASH,
        "recon acc": (r["recon"]["accuracy"] if "recon" in r else DASH),
        "AU / d_z": f"{au['active_units']}/{au['d_z']}" if au else DASH,
        "valid": r.get("valid"), "unique": r.get("unique"),
        "FCD/Test": r.get("FCD/Test"), "FCD floor": r.get("FCDfloor/Test"),
        "FCD ceiling (GAN/ceiling)": (f"{fmt3(c['FCD/Test'])} ({fmt3(_num(r.get('FCD/Test')) / _num(c['FCD/Test']))}x)"
                                      if c else DASH),
        "recall (real)": f"{fmt3(r.get('recall'))} ({fmt3(r.get('recall/real'))})",
        "coverage (real)": f"{fmt3(r.get('coverage'))} ({fmt3(r.get('coverage/real'))})",
        "MW / data": r.get("MW_ratio"),
        "sample molecules/s": r.get("sample_mol_per_s"),
        "vs transformer KV": r.get("speed_vs_transformer"),
    }


def verdicts(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each target of issue 21 item 4: measured, met, margin (positive: by how much it is met)."""
    out: dict[str, Any] = {}

    def check(row: str, name: str, value: Any, op: str, target: float) -> None:
        v = _num(value)
        if not math.isfinite(v):
            out.setdefault(row, {})[name] = {"target": f"{op} {target}", "measured": None, "met": False,
                                             "margin": None}
            return
        met = {">=": v >= target, ">": v > target, "<=": v <= target}[op]
        out.setdefault(row, {})[name] = {"target": f"{op} {target}", "measured": v, "met": bool(met),
                                         "margin": (v - target) if op.startswith(">") else (target - v)}

    if "vae" in rows:
        r = rows["vae"]
        check("vae", "recon_accuracy", (r.get("recon") or {}).get("accuracy"), *TARGETS["vae"]["recon_accuracy"])
        check("vae", "valid", r.get("valid"), *TARGETS["vae"]["valid"])
        check("vae", "FCD/Test", r.get("FCD/Test"), *TARGETS["vae"]["FCD/Test"])
        if "peer" in rows:
            p = rows["peer"]
            # ahead of the MOSES VAE: its FCD over ours > 1, our validity over its > 1
            check("vae", "FCD peer/ours", _num(p.get("FCD/Test")) / _num(r.get("FCD/Test")), ">", 1.0)
            check("vae", "valid ours/peer", _num(r.get("valid")) / _num(p.get("valid")), ">", 1.0)
    if "gan" in rows:
        r = rows["gan"]
        ceil = _num((r.get("ceiling") or {}).get("FCD/Test"))
        check("gan", "FCD/ceiling", _num(r.get("FCD/Test")) / ceil, *TARGETS["gan"]["FCD/ceiling"])
        check("gan", "FCD/Test", r.get("FCD/Test"), *TARGETS["gan"]["FCD/Test"])
    if "flow" in rows:
        r = rows["flow"]
        check("flow", "bound", (r.get("bound") or {}).get("nats_per_molecule"), *TARGETS["flow"]["bound"])
        check("flow", "FCD/Test", r.get("FCD/Test"), *TARGETS["flow"]["FCD/Test"])
        check("flow", "MW_ratio_dev", abs(_num(r.get("MW_ratio")) - 1), *TARGETS["flow"]["MW_ratio_dev"])
        check("flow", "unique", r.get("unique"), *TARGETS["flow"]["unique"])
        check("flow", "speed_vs_transformer", r.get("speed_vs_transformer"),
              *TARGETS["flow"]["speed_vs_transformer"])
    return out


def verdict_lines(v: dict[str, Any]) -> list[str]:
    names = {"recon_accuracy": "reconstruction accuracy", "valid": "validity", "FCD/Test": "FCD/Test",
             "FCD peer/ours": "ahead of the MOSES VAE on FCD/Test (peer FCD / ours)",
             "valid ours/peer": "ahead of the MOSES VAE on validity (ours / peer)",
             "FCD/ceiling": "FCD/Test over its VAE's posterior-mean ceiling", "bound": "bound (nats/molecule)",
             "MW_ratio_dev": "|mean MW / data's - 1|", "unique": "uniqueness",
             "speed_vs_transformer": "sampling speed / transformer KV-cache sampler"}
    lines = []
    for row, d in v.items():
        parts = []
        for k, x in d.items():
            if x["measured"] is None:
                parts.append(f"{names[k]} {x['target']}: not measured (MISSED)")
            else:
                parts.append(f"{names[k]} {x['target']}: {x['measured']:.3f} -> {'met' if x['met'] else 'MISSED'} "
                             f"(by {abs(x['margin']):.3f})")
        lines.append(f"- {row}: " + "; ".join(parts))
    return lines


def budget_note(rows: dict[str, dict[str, Any]]) -> str:
    """Each row's budget and what it reached, from its run's own records."""
    parts = []
    for row, r in rows.items():
        t = r.get("training") or {}
        seen, mins, rate = t.get("molecules_seen"), _num(t.get("train_seconds")) / 60, t.get("molecules_per_s")
        reached = f"{seen:,} seen in {mins:.2f} min ({_num(rate):.1f} /s)" if isinstance(seen, int) else "not recorded"
        if row == "peer":
            rec = r.get("train_record") or {}
            parts.append(f"MOSES VAE: {_num(rec.get('minutes')):.2f} min of wall clock (the VAE's training time) "
                         f"-> {reached} molecules (it stops after the step that crosses the budget)")
            continue
        what = "latents" if row == "gan" else "molecules"
        cap = f", cap {t.get('max_time')} min" if t.get("max_time") else ""
        mm = t.get("max_molecules")
        parts.append(f"{row}: {mm:,} {what}{cap} -> {reached}" if isinstance(mm, int) else f"{row}: {reached}")
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--molecules", type=int, default=300_000, help="VAE and flow budget: molecules seen")
    ap.add_argument("--max-time", type=float, default=None, metavar="MIN",
                    help="safety cap in minutes for the VAE and the flow (default: the configs' max_time)")
    ap.add_argument("--gan-molecules", type=int, default=None, help="GAN budget in latents seen (default: config)")
    ap.add_argument("--gan-max-time", type=float, default=None, metavar="MIN", help="GAN cap (default: config)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads, training (all rows) and evaluation")
    ap.add_argument("--only", default=",".join(ROWS), help="rows to train / evaluate (vae,gan,flow,peer)")
    ap.add_argument("--skip-train", action="store_true", help="evaluate the run directories under --out")
    ap.add_argument("--force-eval", action="store_true", help="ignore cached evaluations of the --only rows")
    ap.add_argument("--out", default="runs/bench-latent")
    ap.add_argument("--n-test", type=int, default=1000, help="test molecules for bound / reconstruction / AU")
    ap.add_argument("--n-samples", type=int, default=1000, help="samples per row at temperature 1")
    ap.add_argument("--n-ceiling", type=int, default=1000, help="training molecules for the GAN ceiling")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=2, help="evaluation worker processes")
    ap.add_argument("--transformer", default="moses-transformer", help="KV-cache sampler speed reference")
    ap.add_argument("--peer-minutes", type=float, default=None,
                    help="peer wall clock (default: our VAE's training seconds; other values are for wiring only)")
    ap.add_argument("--peer-python", default=None, help="MOSES peer venv python (default: moses_peer.sh's)")
    ap.add_argument("--peer-data", default=str(PEER_DATA))
    ap.add_argument("--tag", default="", help="results name latent_<tag> (smoke runs must not pose as results)")
    args = ap.parse_args()
    only = [r.strip() for r in args.only.split(",") if r.strip()]
    bad = set(only) - set(ROWS)
    if bad:
        raise SystemExit(f"--only: unknown rows {sorted(bad)}; choose from {', '.join(ROWS)}")
    only = [r for r in ROWS if r in only]  # training order: vae before gan and peer
    out = Path(args.out)
    if not out.is_absolute():
        out = ROOT / out
    out.mkdir(parents=True, exist_ok=True)
    name = "latent" + (f"_{args.tag}" if args.tag else "")

    import torch

    torch.set_num_threads(args.threads)
    if not args.skip_train:
        for row in only:
            train_row(row, args, out)

    from molgen.api import load
    from molgen.metrics import Evaluator

    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=args.n_jobs, guacamol=False,
                   nll_n=args.n_test)
    test: list[str] | None = None
    tf = None
    rows: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    for row in ROWS:
        cache = out / f"eval_{row}.json"
        key = eval_key(row, args, out)
        cached = json.loads(cache.read_text()) if cache.exists() else None
        fresh = cached is not None and cached.get("key") == key
        if row not in only:  # not asked for: shown from its cache when that is still current
            if fresh:
                rows[row] = cached["result"]
            elif cached is not None:
                skipped.append(f"{row} (cached evaluation is stale: its run directory or settings changed)")
            continue
        if fresh and not args.force_eval:
            print(f"[latent] {row}: cached evaluation {cache}", flush=True)
            rows[row] = cached["result"]
            continue
        if row != "peer" and not (out / row / "metadata.json").exists():
            raise SystemExit(f"{row}: no trained model in {out / row} (run without --skip-train)")
        if test is None:
            test = test_subset(args.n_test)
            tf = load(args.transformer)
            tf.eval()
            tf.sample(10, seed=args.seed + 1)  # warm-up
        print(f"[latent] evaluating {row}", flush=True)
        res = evaluate_row(row, args, out, ev, test, tf)
        res["train_record"] = _train_record(out, row)
        cache.write_text(json.dumps({"key": key, "result": res}, indent=1, default=str))
        rows[row] = res
    for row, r in rows.items():  # training commands as recorded (also for --skip-train)
        r.setdefault("train_record", _train_record(out, row))

    table = [table_row(r) for r in rows.values()]
    v = verdicts(rows)
    vae_s = _num(((rows.get("vae") or {}).get("training") or {}).get("train_seconds"))
    peer_rec = (rows.get("peer") or {}).get("train_record") or {}
    notes = [
        "Budget (molecules seen; training minutes exclude validation): " + budget_note(rows)
        + f". Torch threads {args.threads} for every training (OMP_NUM_THREADS) and for sampling.",
        f"Bound: mean -log p bound in nats/molecule on the same {args.n_test} MOSES test molecules (the "
        "Evaluator's fixed NLL subset), kind and object beside it (iwae-K / iw-16 are lower bounds on log p, so "
        "these are upper bounds on the NLL); the GAN and the MOSES VAE report none. Reconstruction accuracy: "
        "exact canonical match of the greedy decode of the posterior mean, on the same test molecules (the GAN "
        "row shows its VAE's); AU: active units (Burda et al. 2016), dimensions whose posterior mean varies by "
        f"more than {AU_THRESHOLD} across those molecules.",
        f"Samples: {args.n_samples} at temperature 1 per row, evaluated with one Evaluator against moses:test: "
        "validity, uniqueness (unique@1000 of the valid ones), FCD/Test with its floor (FCD of as many held-out "
        "MOSES train molecules as the row has valid samples), recall / coverage at equal n with the real-vs-real "
        "value in parentheses, mean molecular weight of the valid samples over moses:test's. Sampling "
        f"molecules/s: model.sample({args.n_samples}) timed, then the shipped transformer's KV-cache sampler "
        f"({args.transformer}) timed right after it in the same process ('vs transformer KV' is the ratio); the "
        "MOSES VAE's rate is its own process's sampling time (reported, no ratio target).",
        f"GAN ceiling: FCD/Test of decoding (sampled, temperature 1) the VAE posterior means of {args.n_ceiling} "
        "molecules of the VAE's training data, i.e. what a GAN that matched the latent distribution exactly "
        "would reach; the ratio is GAN FCD / ceiling FCD.",
    ]
    if "peer" in rows and math.isfinite(vae_s):
        budget = _num(peer_rec.get("minutes")) * 60
        if not math.isfinite(budget):
            budget = _num((rows["peer"].get("training") or {}).get("train_seconds"))
        if not abs(budget - vae_s) <= max(1.0, 0.01 * vae_s):
            notes.append(f"WARNING: the MOSES VAE's budget was {budget:.0f} s, not the VAE's {vae_s:.0f} s "
                         "(--peer-minutes, or the VAE was retrained after it): not an equal-wall-clock comparison.")
    if skipped:
        notes.append("Rows left out: " + "; ".join(skipped) + ".")
    notes += ["Targets (issue 21, item 4):", *verdict_lines(v)]
    cmds = [r["train_record"]["command"] for r in rows.values() if r.get("train_record")]
    notes.append("Training commands: " + "; ".join(f"`{c}`" for c in cmds) if cmds else "Training commands: none recorded.")
    notes.append("Command: python benchmarks/latent.py " + " ".join(sys.argv[1:]))
    payload = {"args": vars(args), "targets": v, "rows": rows,
               "training_commands": {k: r.get("train_record") for k, r in rows.items()}}
    _j, md = write_results(name, payload, table, "Latent-variable generators at the quick-start budget", notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
