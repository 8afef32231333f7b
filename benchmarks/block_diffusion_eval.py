"""Evaluate trained block-diffusion models beside the transformer on the same 1,000 test molecules (the
rows of ``benchmarks/block_diffusion.py``, for models trained by the command in its results): the paired
bound, validity and speed with the ``exact`` and ``ancestral`` samplers, FCD of the exact samples, and
the validation curve from the run's log.

    python -m benchmarks.block_diffusion_eval runs/bench-block/b2-transformer-300k runs/bench-block/b8-transformer
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

SAMPLERS = ("exact", "ancestral")


def validation_curve(run_dir: str, batch_size: int) -> list[tuple[int, float]]:
    """(molecules seen, validation bound) at each validation of the run (from its CSV log)."""
    df = pd.read_csv(f"{run_dir}/logs/metrics.csv")
    v = df[df["val/nll"].notna()]
    return [(int(s) * batch_size, round(float(x), 2)) for s, x in zip(v.step, v["val/nll"])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="trained block-diffusion model directories")
    ap.add_argument("--transformer", default="moses-transformer")
    ap.add_argument("--n", type=int, default=1000, help="samples per sampler")
    ap.add_argument("--nll-n", type=int, default=1000, help="test molecules for the paired bound")
    ap.add_argument("--name", default="block_diffusion_300k")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tf = load(args.transformer)
    test = read_smiles("moses:test")
    idx = np.sort(np.random.default_rng(0).choice(len(test), size=min(args.nll_n, len(test)), replace=False))
    test = [test[i] for i in idx]  # the same molecules as benchmarks/block_diffusion.py
    tf_scores = tf.score(test, batch_size=256)
    ev = Evaluator(reference="moses:test", train="moses:train", n_jobs=2, guacamol=False)
    rows, payload = [], {"args": vars(args), "runs": {}}
    for run in args.runs:
        m = load(run)
        scores = m.score(test, batch_size=64)
        ok = (scores.status == "ok").to_numpy() & (tf_scores.status == "ok").to_numpy()
        bound, tf_nll = float(-scores.log_likelihood[ok].mean()), float(-tf_scores.log_likelihood[ok].mean())
        training = m.metadata["training"]
        out = {"block_size": m.config.block_size, "molecules_seen": training["molecules_seen"],
               "train_molecules_per_s": training["molecules_per_s"], "bound": bound,
               "kind": scores.likelihood_kind.iloc[0], "transformer_nll": tf_nll, "bound/transformer": bound / tf_nll,
               "val_curve": validation_curve(run, int(training["global_batch_size"]))}
        for sampler in SAMPLERS:
            m.set_sampling(sampler=sampler)
            t = time.perf_counter()
            res = m.sample(args.n, seed=0, batch_size=500)
            rate = args.n / (time.perf_counter() - t)
            rep = ev.evaluate(res.smiles, name=f"{run}-{sampler}").metrics if sampler == "exact" else {}
            out[sampler] = {"validity": res.validity, "mol_per_s": rate,
                            **{k: rep.get(k) for k in ("unique@1000", "FCD/Test", "FCDfloor/Test", "Novelty")}}
            rows.append({"run": run, "block_size": m.config.block_size, "molecules_seen": training["molecules_seen"],
                         "bound (nats/mol)": round(bound, 2), "kind": out["kind"],
                         "bound/transformer": round(bound / tf_nll, 3), "sampler": sampler,
                         "valid": res.validity, "FCD/Test (floor)": (f"{rep['FCD/Test']:.2f} ({rep['FCDfloor/Test']:.2f})"
                                                                    if rep else ""),
                         "mol/s": round(rate, 1)})
        m.set_sampling()
        payload["runs"][run] = out
    notes = [f"{run}: validation bound (molecules seen, nats) {payload['runs'][run]['val_curve']}" for run in args.runs]
    write_results(args.name, payload, rows, "Block diffusion at the full quick-start budget (300k molecules)",
                  notes=[f"Transformer exact NLL on the same molecules: {tf_nll:.2f} nats.", *notes])


if __name__ == "__main__":
    main()
