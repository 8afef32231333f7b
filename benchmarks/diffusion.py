"""Masked diffusion vs the autoregressive transformer at the same budget and backbone size.

Trains ``molgen/configs/diffusion.yaml`` (SMILES) / ``molgen/configs/diffusion-kekule.yaml`` (Kekulé SMILES) /
``molgen/configs/diffusion-selfies.yaml`` and, in the same run, the transformer peer
(``molgen/configs/transformer-smiles.yaml`` / ``molgen/configs/quickstart.yaml`` / ``molgen/configs/transformer-selfies.yaml``) at the same
budget in molecules seen (or reuses a saved one: ``--transformer DIR``), then reports

* validity, uniqueness, novelty, FCD/Test with its real-vs-real floor (the ``Evaluator``) for the
  diffusion samples at N, N/2, N/4, N/8 ancestral steps and the exact (one position per call) sampler,
  and for the transformer's samples; wall time per 1,000 molecules and network calls per molecule;
* the diffusion ELBO (nats/molecule, ``elbo-K``) next to the transformer's exact NLL on the same test
  molecules (rows both could score).

Targets (issue 8): SMILES validity >= 0.80 at N steps; ELBO within 15 % of the transformer NLL;
N/4 steps keep validity within 0.05 of N steps and sample >= 3x faster. Misses are reported with size.

    python benchmarks/diffusion.py [--representations smiles selfies] [--molecules 300000]
        [--max-time 15] [--threads 1] [--transformer DIR] [--out runs/bench-diffusion] [--n 1000]

Writes ``benchmarks/results/diffusion.{json,md}`` (``--name`` to change). Block diffusion (block size x
initialisation x sampler, issue 20): ``benchmarks/block_diffusion.py`` trains the rows,
``benchmarks/block_diffusion_eval.py`` writes the table (``results/block_diffusion_recipe.md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

CONFIGS = {"smiles": ("diffusion", "transformer-smiles"), "selfies": ("diffusion-selfies", "transformer-selfies"),
           "smiles-kekule": ("diffusion-kekule", "quickstart")}
SMILES_LIKE = ("smiles", "smiles-kekule")  # the SMILES validity target applies; --transformer may stand in


def _train(config: str, out: Path, args: argparse.Namespace):
    from molgen.configs import resolve_config
    from molgen.training.train import train

    return train(config=resolve_config(config), out=out, seed=args.seed, progress=False,
                 max_molecules=args.molecules, max_time=args.max_time, num_threads=args.threads)


def _training_row(model) -> dict:
    t = model.metadata.get("training", {})
    return {"molecules_seen": t.get("molecules_seen"), "train_minutes": round(t.get("train_seconds", 0) / 60, 2),
            "train_molecules_per_s": t.get("molecules_per_s"), "parameters": model.n_parameters()}


def _sample_row(model, ev, n: int, seed: int, label: str) -> tuple[dict, dict]:
    t0 = time.perf_counter()
    res = model.sample(n, seed=seed)
    secs = time.perf_counter() - t0
    rep = ev.evaluate(res.smiles, name=label)
    m = rep.metrics
    row = {"sampler": label, "s_per_1000": round(1000 * secs / max(n, 1), 2),
           "nfe_per_mol": getattr(model, "last_sample_stats", {}).get("nfe_per_row"),
           "valid": m.get("valid"), "unique@1000": m.get("unique@1000"), "Novelty": m.get("Novelty"),
           "FCD/Test": m.get("FCD/Test"), "FCDfloor/Test": m.get("FCDfloor/Test")}
    return row, rep.to_dict()


def _paired_nll(diff, tf, test: list[str]) -> dict:
    """Mean -ELBO (diffusion) and exact NLL (transformer) over the test molecules both scored."""
    t0 = time.perf_counter()
    a = diff.score(test, batch_size=128)
    t_diff = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = tf.score(test, batch_size=256)
    t_tf = time.perf_counter() - t0
    ok = (a.status == "ok").to_numpy() & (b.status == "ok").to_numpy()
    d_nll, t_nll = float(-a.log_likelihood[ok].mean()), float(-b.log_likelihood[ok].mean())
    return {"n_test": len(test), "n_scored_by_both": int(ok.sum()), "diffusion_bound": d_nll,
            "diffusion_kind": a.likelihood_kind.iloc[0], "transformer_nll": t_nll, "ratio": d_nll / t_nll,
            "diffusion_score_s": round(t_diff, 1), "transformer_score_s": round(t_tf, 1)}


def _estimator_spread(diff, test: list[str], ks=(4, 16, 64), salts: int = 4) -> dict:
    """Per-molecule standard deviation of the elbo-K estimate over Monte-Carlo salts, and its mean."""
    import numpy as np

    salt0, out = diff.config.mc_seed, {}
    try:
        for k in ks:
            vals = []
            for s in range(salts):
                diff.config.mc_seed = 1000 + s
                vals.append(diff.score(test, batch_size=128, kind=f"elbo-{k}").log_likelihood.to_numpy())
            v = np.stack(vals)
            out[f"elbo-{k}"] = {"mean_bound": float(-np.nanmean(v)),
                                "per_molecule_sd": float(np.nanmean(v.std(0, ddof=1)))}
    finally:
        diff.config.mc_seed = salt0
    return out


def main() -> None:
    import torch

    from molgen.api import load
    from molgen.data.io import read_smiles
    from molgen.metrics import Evaluator

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--representations", nargs="+", default=["smiles", "selfies"], choices=sorted(CONFIGS))
    ap.add_argument("--molecules", type=int, default=300_000, help="budget in molecules seen, each model")
    ap.add_argument("--max-time", type=float, default=15.0, metavar="MINUTES", help="time cap, each model")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (training and sampling)")
    ap.add_argument("--transformer", default=None, metavar="DIR",
                    help="reuse this saved transformer (same SMILES representation) instead of training the peer")
    ap.add_argument("--out", default="runs/bench-diffusion")
    ap.add_argument("--skip-train", action="store_true", help="load the models saved under --out")
    ap.add_argument("--n", type=int, default=1000, help="samples per sampler setting")
    ap.add_argument("--nll-n", type=int, default=1000, help="test molecules for the paired ELBO / NLL")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="diffusion")
    ap.add_argument("--estimator-only", action="store_true",
                    help="with --skip-train: only the spread of elbo-4/16/64 on 50 test molecules")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    out = Path(args.out)
    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=2, guacamol=False)
    test = read_smiles("moses:test")
    import numpy as np

    idx = np.sort(np.random.default_rng(0).choice(len(test), size=min(args.nll_n, len(test)), replace=False))
    test = [test[i] for i in idx]
    rows, payload, notes = [], {"args": vars(args), "representations": {}}, []
    if args.estimator_only:
        for rep in args.representations:
            diff = load(out / f"diffusion-{rep}")
            spread = _estimator_spread(diff, test[:50], salts=3)
            payload["representations"][rep] = spread
            rows += [{"representation": rep, "kind": k, **v} for k, v in spread.items()]
        notes.append("Spread over 3 Monte-Carlo salts on 50 test molecules. Command: python "
                     "benchmarks/diffusion.py " + " ".join(sys.argv[1:]))
        _, md = write_results(f"{args.name}_estimator", payload, rows, "Diffusion ELBO estimator spread", notes)
        print(md.read_text())
        return
    for rep in args.representations:
        dcfg, tcfg = CONFIGS[rep]
        t0 = time.perf_counter()
        diff = load(out / f"diffusion-{rep}") if args.skip_train else _train(dcfg, out / f"diffusion-{rep}", args)
        diff_train_s = time.perf_counter() - t0
        if rep in SMILES_LIKE and args.transformer:
            tf, tf_how = load(args.transformer), f"reused {args.transformer}"
            if tf.likelihood_object != diff.likelihood_object:  # the paired NLL must be of one object
                raise SystemExit(f"--transformer models {tf.likelihood_object}, the diffusion model "
                                 f"{diff.likelihood_object}: give a transformer of the same representation")
        else:
            tf = load(out / f"transformer-{rep}") if args.skip_train else _train(tcfg, out / f"transformer-{rep}", args)
            tf_how = f"trained in this run ({tcfg})"
        info = {"diffusion_training": diff.metadata.get("training", {}), "diffusion_fit_s": diff_train_s,
                "transformer": tf_how, "transformer_training": tf.metadata.get("training", {}), "samplers": {}}
        N = diff.canvas_len
        settings = [("ancestral", N), ("ancestral", N // 2), ("ancestral", N // 4), ("ancestral", N // 8),
                    ("exact", None)]
        srows = {}
        for sampler, steps in settings:
            diff.set_sampling(sampler=sampler, steps=steps)
            label = f"diffusion {sampler} T={steps}" if steps else f"diffusion exact (T->inf, {N} calls)"
            row, report = _sample_row(diff, ev, args.n, args.seed, label)
            srows[(sampler, steps)] = row
            info["samplers"][label] = report
            rows.append({"representation": rep, "model": "diffusion", **_training_row(diff), **row})
        diff.set_sampling()
        row, report = _sample_row(tf, ev, args.n, args.seed, "transformer (KV cache)")
        info["samplers"]["transformer"] = report
        rows.append({"representation": rep, "model": "transformer", **_training_row(tf), **row})
        nll = _paired_nll(diff, tf, test)
        info["paired_nll"] = nll
        for r in rows:
            if r["representation"] == rep:
                r["NLL/Test (nats/mol)"] = nll["diffusion_bound"] if r["model"] == "diffusion" else nll["transformer_nll"]
                label = (diff if r["model"] == "diffusion" else tf).likelihood_label()
                r["NLL kind"] = f"{label.kind} ({label.object})"
        # targets
        full, quarter = srows[("ancestral", N)], srows[("ancestral", N // 4)]
        tg = {"elbo_within_15pct": {"target": 1.15, "measured": nll["ratio"], "met": nll["ratio"] <= 1.15},
              "validity_L4_within_0.05": {"target": 0.05, "measured": full["valid"] - quarter["valid"],
                                          "met": full["valid"] - quarter["valid"] <= 0.05},
              "speedup_L4_vs_L": {"target": 3.0, "measured": full["s_per_1000"] / max(quarter["s_per_1000"], 1e-9),
                                  "met": full["s_per_1000"] / max(quarter["s_per_1000"], 1e-9) >= 3.0}}
        if rep in SMILES_LIKE:
            tg["validity_at_L"] = {"target": 0.80, "measured": full["valid"], "met": full["valid"] >= 0.80}
        info["targets"] = tg
        payload["representations"][rep] = info
        notes.append(f"{rep.upper()} targets: " + "; ".join(
            f"{k}: target {v['target']}, measured {v['measured']:.3f} ({'met' if v['met'] else 'MISSED'})"
            for k, v in tg.items()))
        notes.append(f"{rep.upper()} paired NLL on {nll['n_scored_by_both']}/{nll['n_test']} test molecules: "
                     f"diffusion {nll['diffusion_kind']} bound {nll['diffusion_bound']:.2f} vs transformer exact "
                     f"{nll['transformer_nll']:.2f} nats/molecule (ratio {nll['ratio']:.2f}); scoring took "
                     f"{nll['diffusion_score_s']} s vs {nll['transformer_score_s']} s.")
    notes.append(f"Budget: {args.molecules} molecules seen per model, time cap {args.max_time} min per model, "
                 f"threads {args.threads}; {args.n} samples per row at temperature 1; N = canvas length "
                 "(max_len + 1); nfe_per_mol = network calls per molecule (the cache skips unchanged rows).")
    notes.append("Command: python benchmarks/diffusion.py " + " ".join(sys.argv[1:]))
    _, md = write_results(args.name, payload, rows, "Masked diffusion vs transformer (same budget, same backbone)",
                          notes)
    print(md.read_text())


if __name__ == "__main__":
    main()
