"""ChemNet activations: molgen's own implementation against ``fcd_torch`` (the reference).

Measures molecules per second of both on the same canonical MOSES test SMILES, on the same number of
torch threads, median of several repeats, and whether the activations are bit-identical. molgen keeps
its own implementation only if it is at least 3x faster *and* bit-identical (issue 11, item 7).

    python benchmarks/chemnet.py [--n 2000] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="chemnet", help="results/<name>.{json,md}")
    args = ap.parse_args()

    import torch
    from fcd_torch import FCD
    from rdkit import Chem

    from benchmarks._common import write_results
    from molgen.data.io import read_smiles
    from molgen.metrics.chemnet import ChemNet

    torch.set_num_threads(args.threads)
    smi = [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in read_smiles("moses:test")[: args.n]]
    ref = FCD(device="cpu", n_jobs=1, canonize=False)
    own = ChemNet("cpu")
    ref.get_predictions(smi[:64]), own.activations(smi[:64], n_threads=args.threads)  # warm-up
    t_ref, t_own = [], []
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        a_ref = ref.get_predictions(smi)
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        a_own = own.activations(smi, n_threads=args.threads)
        t_own.append(time.perf_counter() - t0)
    load.append(os.getloadavg()[0])
    diff = np.abs(a_ref.astype(np.float64) - a_own.astype(np.float64))
    ref_s, own_s = statistics.median(t_ref), statistics.median(t_own)
    res = {"n": args.n, "threads": args.threads, "repeats": args.repeats,
           "fcd_torch_seconds": t_ref, "molgen_seconds": t_own,
           "fcd_torch_mol_per_s": args.n / ref_s, "molgen_mol_per_s": args.n / own_s,
           "speedup": ref_s / own_s, "bit_identical": bool(np.array_equal(a_ref, a_own)),
           "max_abs_diff": float(diff.max()), "loadavg_start_end": load}
    verdict = ("keep molgen's" if res["speedup"] >= 3 and res["bit_identical"] else
               "use fcd_torch's (molgen's is not both >= 3x faster and bit-identical)")
    rows = [{"implementation": "fcd_torch", "molecules/s": res["fcd_torch_mol_per_s"]},
            {"implementation": "molgen ChemNet", "molecules/s": res["molgen_mol_per_s"]}]
    write_results(args.name, {**res, "verdict": verdict}, rows, "ChemNet activations: fcd_torch vs molgen",
                  notes=[f"n = {args.n} canonical MOSES test SMILES, {args.threads} torch thread(s), median of "
                         f"{args.repeats}; speedup {res['speedup']:.2f}x, bit-identical: {res['bit_identical']}, "
                         f"max |diff| {res['max_abs_diff']:.3g}; load average {load[0]:.1f} -> {load[1]:.1f} "
                         f"(a shared machine). Verdict: {verdict}."])
    print({k: v for k, v in res.items() if not isinstance(v, list)}, verdict)


if __name__ == "__main__":
    main()
