"""Mixture-prior VAE with and without posterior-collapse safeguards, on a MOSES subset, on CPU.

Two runs with identical architecture (SELFIES, bi-GRU encoder, GRU decoder, MoG prior K = 8 with fixed
uniform weights, d_z = 32), each trained for a fixed wall-clock budget (default 7 minutes, 1 thread):

* ``safeguards``: the defaults (cyclical KL annealing ending at beta = 1, free bits 0.25 d_z nats, word
  dropout, aggressive phase "auto", dead-component re-seeding);
* ``no_safeguards``: beta = 1 from step 0, no free bits, no word dropout, no aggressive phase, no re-seeding.

Evaluation (plain beta = 1 bounds, never the training objective), on MOSES test molecules not in the
training subset: ELBO (8 z samples, MC-KL with 64 samples) and IWAE-K on ``--eval-n`` molecules; KL,
active units, MI (capped at log N), marginal KL, mixture usage perplexity on ``--diag-n`` molecules;
validity / uniqueness / novelty / FCD (fcd_torch; with the real-vs-real floor at the same n) of 1,000
prior samples x ~ p(x|z), z ~ p(z), temperature 1.

    python benchmarks/vae_collapse.py --minutes 7 --subset 50000

Writes ``benchmarks/results/vae_collapse.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch

ARCH = {"encoder": {"name": "sequence", "args": {"hidden": 128}},
        "prior": {"name": "mog", "args": {"n_components": 8, "learn_weights": False}},
        "d_z": 32, "emb_dim": 64, "dec_hidden": 256, "iwae_k": 5, "diag_size": 2000}
NO_SAFEGUARDS = dict(kl_anneal="none", free_bits=0.0, word_dropout=0.0, aggressive="off", reseed_dead=False)
SAFEGUARDS = dict(kl_anneal="cyclical", free_bits=None, word_dropout=0.1, aggressive="auto", reseed_dead=True)


def evaluate(model, eval_smiles: list[str], diag_smiles: list[str], train_set: set[str], fcd, ref_stats,
             n_samples: int, iwae_k: int) -> dict[str, Any]:
    from molgen.models.vae_diagnostics import latent_diagnostics

    t0 = time.perf_counter()
    model.eval()
    elbo = model.score(eval_smiles, kind="elbo", batch_size=64)
    iwae = model.score(eval_smiles, kind=f"iwae-{iwae_k}", batch_size=16)
    ok = (elbo.status == "ok") & (iwae.status == "ok")
    items = [model.featurize(s) for s in diag_smiles]
    mus, lvs, kls, recs = [], [], [], []
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for s in range(0, len(items), 256):
            batch = model.collate(items[s:s + 256])
            mu, lv = model.encoder(batch)
            z = mu + (0.5 * lv).exp() * torch.randn(mu.shape, generator=g)
            recs.append(model.log_px_given_z(z, batch["ids"]))
            kls.append(model.prior.kl(mu, lv, 64, g))
            mus.append(mu)
            lvs.append(lv)
    diag = latent_diagnostics(model.prior, torch.cat(mus), torch.cat(lvs), torch.cat(kls), torch.cat(recs))
    res = model.sample(n_samples, seed=0, batch_size=500)
    valid = [c for c in res.canonical if c]
    uniq = set(valid)
    novel = [c for c in uniq if c not in train_set]
    fcd_val = float(fcd(gen=sorted(uniq)[:n_samples], pref=ref_stats)) if len(uniq) > 1 else float("nan")
    greedy = model.decode(model.encode(diag_smiles[:500]), greedy=True, seed=0)
    recon = float(np.mean([a == b for a, b in zip(greedy.canonical, diag_smiles[:500])]))
    return {
        "elbo": float(elbo.log_likelihood[ok].mean()), f"iwae_{iwae_k}": float(iwae.log_likelihood[ok].mean()),
        "n_eval": int(ok.sum()), "rec": diag["rec"], "kl": diag["kl"], "active_units": diag["active_units"],
        "d_z": diag["d_z"], "mi": diag["mi"], "mi_cap": diag["mi_cap"], "mi_at_cap": diag["mi_at_cap"],
        "marginal_kl": diag["marginal_kl"], "usage_perplexity": diag["usage_perplexity"],
        "K": diag["n_components"], "top_component_share": diag["top_component_share"],
        "responsibility_entropy": diag["responsibility_entropy"], "usage": diag["usage"],
        "posterior_collapse": diag["posterior_collapse"], "mixture_collapse": diag["mixture_collapse"],
        "validity": len(valid) / max(1, len(res.smiles)), "uniqueness": len(uniq) / max(1, len(valid)),
        "novelty": len(novel) / max(1, len(uniq)), "fcd": fcd_val, "n_samples": len(res.smiles),
        "greedy_reconstruction": recon, "sample_preview": res.smiles[:10],
        "eval_seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=7.0, help="training wall-clock budget per run")
    ap.add_argument("--subset", type=int, default=50_000, help="MOSES training molecules")
    ap.add_argument("--eval-n", type=int, default=500, help="test molecules for ELBO / IWAE")
    ap.add_argument("--diag-n", type=int, default=2000, help="test molecules for latent diagnostics")
    ap.add_argument("--iwae-k", type=int, default=50)
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="safeguards,no_safeguards")
    ap.add_argument("--out", default="/tmp/molgen-vae-collapse")
    ap.add_argument("--name", default="vae_collapse")
    ap.add_argument("--render-only", action="store_true", help="rewrite the markdown from the existing JSON")
    ap.add_argument("--note", action="append", help="extra note for the markdown (repeatable)")
    args = ap.parse_args(argv)
    if args.render_only:
        return render(args)
    torch.set_num_threads(args.threads)


    import molgen
    from molgen.chem import DEFAULT_POLICY
    from molgen.data.datamodule import load_canonical

    train_smiles, _ = load_canonical("moses:train", DEFAULT_POLICY, subset=args.subset, seed=0)
    train_set = set(train_smiles)
    test, _ = load_canonical("moses:test", DEFAULT_POLICY, subset=20_000, seed=1)
    test = [s for s in test if s not in train_set]
    random.Random(0).shuffle(test)
    diag_smiles = test[:args.diag_n]
    eval_smiles = diag_smiles[:args.eval_n]
    ref = test[args.diag_n:args.diag_n + 10_000]
    from fcd_torch import FCD

    fcd = FCD(device="cpu", n_jobs=1)
    ref_stats = fcd.precalc(ref)
    floor_set = test[args.diag_n + 10_000:args.diag_n + 10_000 + args.n_samples]
    fcd_floor = float(fcd(gen=floor_set, pref=ref_stats))

    runs: dict[str, Any] = {}
    for run in args.runs.split(","):
        guards = SAFEGUARDS if run == "safeguards" else NO_SAFEGUARDS
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = molgen.train("vae", data="moses", out=f"{args.out}/{run}", subset=args.subset, seed=0,
                                 representation="selfies", max_time=args.minutes, val_size=args.diag_n,
                                 val_every=150, batch_size=128, lr=2e-3, warmup_steps=50, progress=False,
                                 precision="32-true", num_threads=args.threads, model_args={**ARCH, **guards})
        alarms = sorted({str(w.message).split(" at step")[0] for w in caught if "collapse" in str(w.message)})
        train_s = time.perf_counter() - t0
        res = evaluate(model, eval_smiles, diag_smiles, train_set, fcd, ref_stats, args.n_samples, args.iwae_k)
        res.update(run=run, train_seconds=round(train_s, 1), steps=model.metadata["training"]["steps"],
                   collapse_warnings_during_training=alarms, safeguards=guards,
                   history=model.diagnostics_history)
        runs[run] = res
        print(_row(res, args.iwae_k), flush=True)
    _write(args, runs, fcd_floor)
    return 0


def _row(res: dict[str, Any], iwae_k: int) -> dict[str, Any]:
    """One markdown row; the final collapse flags are recomputed from the stored diagnostics."""
    from molgen.models.vae_diagnostics import detect_collapse

    flags = detect_collapse(res, res["d_z"], res["K"])
    res.update(flags)
    during = [f"{name} (first at step {h['step']}, last at {h2['step']})"
              for name in ("posterior_collapse", "mixture_collapse")
              for hs in [[h for h in res["history"] if h[name]]] if hs for h, h2 in [(hs[0], hs[-1])]]
    return {"run": res["run"], "steps": res["steps"], "ELBO": res["elbo"], f"IWAE-{iwae_k}": res[f"iwae_{iwae_k}"],
            "rec": res["rec"], "KL": res["kl"], "AU / d_z": f"{res['active_units']}/{res['d_z']}",
            "MI (cap)": f"{res['mi']:.2f} ({res['mi_cap']:.2f})", "marginal KL": res["marginal_kl"],
            "usage ppl / K": f"{res['usage_perplexity']:.2f}/{res['K']}",
            "resp. entropy (log K)": f"{res['responsibility_entropy']:.2f} ({math.log(res['K']):.2f})",
            "validity": res["validity"], "uniqueness": res["uniqueness"], "novelty": res["novelty"],
            "FCD": res["fcd"], "final flags": ", ".join(k for k, v in flags.items() if v) or "none",
            "alarms during training": "; ".join(during) or "none"}


def _write(args: argparse.Namespace, runs: dict[str, Any], fcd_floor: float) -> None:
    from _common import write_results

    rows = [_row(r, args.iwae_k) for r in runs.values()]
    notes = [f"Budget: {args.minutes:g} min of training per run, {args.threads} torch thread(s), batch 128, "
             f"MOSES train subset {args.subset:,} (SELFIES), seed 0. Bounds in nats/molecule (log p, higher is "
             f"better) on {args.eval_n} MOSES test molecules not in the subset; diagnostics on {args.diag_n}; "
             f"samples: {args.n_samples} prior samples at temperature 1; FCD vs 10,000 test molecules, "
             f"real-vs-real floor at n = {args.n_samples}: {fcd_floor:.2f}."]
    notes.append("ELBO / IWAE are plain beta = 1 bounds; 'rec' and 'KL' are on the diagnostics subset. "
                 "'final flags' apply the alarm rules to the end-of-training diagnostics, 'alarms during training' "
                 "to the per-validation diagnostics stored in the run's history (recomputed with the current "
                 "rules when the table is re-rendered with --render-only).")
    notes += args.note or []
    write_results(args.name, {"args": vars(args), "arch": ARCH, "fcd_floor": fcd_floor, "runs": runs}, rows,
                  "VAE (MoG-8 prior, d_z 32, SELFIES): with vs without collapse safeguards", notes)


def render(args: argparse.Namespace) -> int:
    """Rewrite the markdown (and flags in the JSON) from an existing results JSON, without retraining."""
    from _common import RESULTS

    from molgen.models.vae_diagnostics import detect_collapse

    d = json.loads((RESULTS / f"{args.name}.json").read_text())
    for k in ("minutes", "subset", "eval_n", "diag_n", "iwae_k", "n_samples", "threads"):
        setattr(args, k, d["args"][k])
    torch.set_num_threads(args.threads)  # the machine block reports the threads the runs used
    for res in d["runs"].values():
        for h in res["history"]:
            h.update(detect_collapse(h, h["d_z"], h["n_components"]))
    _write(args, d["runs"], d["fcd_floor"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
