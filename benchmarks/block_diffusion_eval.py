"""Evaluate trained block-diffusion models beside the transformer, in one run, on the same 1,000 test
molecules: the table of issue 20's item 3 for models trained by the commands in its results (training a
row is ``benchmarks/block_diffusion.py``'s job; on 2 CPU cores each 300k-molecule run takes about an hour).

Per run:

* two likelihoods on the same test molecules, each with its kind: the bound ``elbo-16-bB`` (the
  random-order model the ``exact`` sampler draws from) and ``exact-ltr-bB``, the exact log-likelihood
  of the ``left-to-right`` sampler (b network passes, no Monte Carlo), next to the transformer's exact NLL;
* per sampler (``exact``: one uniformly random free position per call; ``left-to-right``; ``confidence``:
  the most confident free position; ``ancestral`` with one step per block, the fastest setting):
  validity, uniqueness, FCD/Test with its real-vs-real floor (temperature 1, ``--n`` samples), and
  molecules/s beside the transformer's KV-cache sampler timed in the same run (a ratio);
* molecules seen in training, and the initialising transformer's own (an initialised row has seen both);
* the validation curve from the run's log.

    python -m benchmarks.block_diffusion_eval runs/bench-block/b2-transformer-300k ... [--name block_diffusion_recipe]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from benchmarks._common import write_results
from molgen.api import load
from molgen.data.io import read_smiles
from molgen.metrics import Evaluator

#: (label, sampler, steps per block: None = the sampler's own)
SETTINGS = (("exact", "exact", None), ("left-to-right", "left-to-right", None), ("confidence", "confidence", None),
            ("ancestral, 1 step/block", "ancestral", 1))
TARGETS = {"validity": 0.90, "nll_ratio": 1.10, "speedup": 1.5, "speed_validity": 0.85}


def validation_curve(run_dir: str, batch_size: int) -> list[tuple[int, float]]:
    """(molecules seen, validation bound) at each validation of the run (from its CSV log)."""
    df = pd.read_csv(f"{run_dir}/logs/metrics.csv")
    v = df[df["val/nll"].notna()]
    return [(int(s) * batch_size, round(float(x), 2)) for s, x in zip(v.step, v["val/nll"])]


def timed_sample(model, n: int):
    t = time.perf_counter()
    res = model.sample(n, seed=0, batch_size=500)
    return res, n / (time.perf_counter() - t)


def nll(model, test: list[str], kind: str | None = None) -> tuple[np.ndarray, str]:
    s = model.score(test, batch_size=64, kind=kind)
    return np.where(s.status == "ok", -s.log_likelihood.to_numpy(dtype=float), np.nan), str(s.likelihood_kind.iloc[0])


def fcd_text(q: dict) -> str:
    fcd, floor = q.get("FCD/Test"), q.get("FCDfloor/Test")
    return "" if fcd is None else f"{fcd:.2f}" + ("" if floor is None else f" ({floor:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="trained block-diffusion model directories")
    ap.add_argument("--transformer", default="moses-transformer")
    ap.add_argument("--n", type=int, default=1000, help="samples per sampler")
    ap.add_argument("--nll-n", type=int, default=1000, help="test molecules for the paired likelihoods")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="block_diffusion_recipe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = read_smiles("moses:test")
    idx = np.sort(np.random.default_rng(0).choice(len(test), size=min(args.nll_n, len(test)), replace=False))
    test = [test[i] for i in idx]  # the same molecules as benchmarks/block_diffusion.py
    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=2, guacamol=False)

    def quality(res, name: str) -> dict:
        rep = ev.evaluate(res.smiles, name=name).metrics
        return {"validity": res.validity, **{k: rep.get(k) for k in ("unique@1000", "FCD/Test", "FCDfloor/Test",
                                                                       "Novelty")}}

    tf = load(args.transformer)
    tf_nll, _ = nll(tf, test)
    tf_res, tf_rate = timed_sample(tf, args.n)
    tf_q = quality(tf_res, "transformer")
    tf_seen = int(tf.metadata["training"]["molecules_seen"])
    rows = [{"run": args.transformer, "b": "-", "init": "-", "seen": tf_seen, "NLL (kind)": f"{np.nanmean(tf_nll):.2f} (exact)",
             "vs transformer": 1.0, "sampler": "KV cache", "valid": tf_q["validity"], "unique@1000": tf_q["unique@1000"],
             "FCD/Test (floor)": fcd_text(tf_q), "mol/s": round(tf_rate, 1),
             "speed vs transformer": 1.0}]
    payload = {"args": vars(args), "transformer": {"nll": float(np.nanmean(tf_nll)), "mol_per_s": tf_rate, **tf_q},
               "targets": TARGETS, "runs": {}}
    for run in args.runs:
        m = load(run)
        training = m.metadata["training"]
        init = (m.metadata.get("init_from") or {}).get("source")
        init_seen = tf_seen if init == args.transformer else None
        b = m.config.block_size
        likes = {}
        for kind in ("elbo", "exact-ltr"):
            v, label = nll(m, test, kind)
            ok = ~np.isnan(v) & ~np.isnan(tf_nll)
            likes[label] = (float(v[ok].mean()), float(v[ok].mean() / tf_nll[ok].mean()))
        out = {"block_size": b, "init_from": init, "molecules_seen": training["molecules_seen"],
               "init_molecules_seen": init_seen, "train_molecules_per_s": training.get("molecules_per_s"),
               "likelihoods": likes, "val_curve": validation_curve(run, int(training["global_batch_size"])),
               "samplers": {}}
        for label, sampler, steps in SETTINGS:
            m.set_sampling(sampler=sampler, steps=steps)
            res, rate = timed_sample(m, args.n)
            q = quality(res, f"{run}-{label}")
            out["samplers"][label] = {**q, "mol_per_s": rate, "speed_vs_transformer": rate / tf_rate,
                                      "network_calls_per_row": m.last_sample_stats.get("nfe_per_row")}
            first = label == SETTINGS[0][0]
            rows.append({"run": run, "b": b, "init": init or "scratch",
                         "seen": f"{training['molecules_seen']}" + (f" + {init_seen}" if init_seen else ""),
                         "NLL (kind)": "; ".join(f"{v[0]:.2f} ({k})" for k, v in likes.items()) if first else "",
                         "vs transformer": "; ".join(f"{v[1]:.3f}" for v in likes.values()) if first else "",
                         "sampler": label, "valid": q["validity"], "unique@1000": q["unique@1000"],
                         "FCD/Test (floor)": fcd_text(q),
                         "mol/s": round(rate, 1), "speed vs transformer": round(rate / tf_rate, 3)})
        m.set_sampling()
        payload["runs"][run] = out
    notes = [f"{run}: validation bound (molecules seen, nats) {payload['runs'][run]['val_curve']}" for run in args.runs]
    write_results(args.name, payload, rows, "Block diffusion: block size x initialisation x sampler, beside the transformer",
                  notes=[f"Transformer ({args.transformer}) exact NLL on the same {len(test)} test molecules: "
                         f"{np.nanmean(tf_nll):.2f} nats; its KV-cache sampler {tf_rate:.1f} molecules/s in this run "
                         f"(batch 500, {args.threads} thread(s)).", *notes])


if __name__ == "__main__":
    main()
