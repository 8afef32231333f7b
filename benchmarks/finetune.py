"""What fine-tuning is for: move a general model towards one chemical series.

A quick-start-like SMILES transformer (``molgen/configs/transformer-smiles.yaml``: the quick-start architecture on aromatic SMILES) is trained at a reduced
budget on MOSES training molecules **without** any coumarin (the focused set is held out of the base
model's data entirely), or taken from ``--base DIR``. The coumarins of the same rows are split into a
fine-tuning set and held-out members. Reported before and after ``molgen.finetune``:

- NLL (exact, nats/molecule) of the held-out coumarins, and of held-out general MOSES molecules (the
  price paid on the rest of chemical space);
- of ``--samples`` molecules drawn at temperature 1: validity, the share that contain the coumarin
  core, and the share in the set's chemical neighbourhood (max Tanimoto, Morgan radius 2 / 2048 bits,
  to the held-out coumarins >= 0.4).

    python benchmarks/finetune.py --rows 120000 --base-minutes 4 --threads 1
"""

from __future__ import annotations

import argparse
import gzip
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]
CORE = "O=c1ccc2ccccc2o1"  # coumarin (2H-chromen-2-one)


def read_rows(n: int) -> list[str]:
    with gzip.open(ROOT / "data" / "moses" / "train.csv.gz", "rt") as f:
        next(f)
        out = []
        for line in f:
            out.append(line.split(",")[0].strip())
            if len(out) >= n:
                break
    return out


def split_series(smiles: list[str]) -> tuple[list[str], list[str]]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    core = Chem.MolFromSmarts(CORE)
    series, rest = [], []
    for s in smiles:
        m = Chem.MolFromSmiles(s)
        if m is None:
            continue
        (series if m.HasSubstructMatch(core) else rest).append(s)
    return series, rest


def fingerprints(smiles: list[str]):
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    return [gen.GetFingerprint(m) for s in smiles if (m := Chem.MolFromSmiles(s)) is not None]


def sample_stats(model, n: int, seed: int, ref_fps) -> dict[str, float]:
    from rdkit import Chem, DataStructs

    core = Chem.MolFromSmarts(CORE)
    res = model.sample(n, seed=seed)
    valid = [c for c in res.canonical if c is not None]
    mols = [Chem.MolFromSmiles(c) for c in valid]
    fps = fingerprints(valid)
    max_sim = np.array([max(DataStructs.BulkTanimotoSimilarity(fp, ref_fps)) for fp in fps]) if fps else np.array([])
    return {"validity": res.validity,
            "share_with_core": float(np.mean([m.HasSubstructMatch(core) for m in mols])) * res.validity if mols else 0.0,
            "share_near_set": float((max_sim >= 0.4).sum() / n),
            "median_max_tanimoto": float(np.median(max_sim)) if len(max_sim) else float("nan"),
            "unique_valid": len(set(valid))}


def nll(model, smiles: list[str]) -> float:
    df = model.score(smiles)
    ok = df[df.status == "ok"]
    return float(-ok.log_likelihood.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=None, help="a trained model directory (default: train one here)")
    ap.add_argument("--rows", type=int, default=120_000, help="MOSES training rows read")
    ap.add_argument("--base-molecules", type=int, default=150_000, help="base model budget: molecules seen")
    ap.add_argument("--base-minutes", type=float, default=4.0, help="base model budget: minutes (cap)")
    ap.add_argument("--finetune-n", type=int, default=1000, help="coumarins to fine-tune on")
    ap.add_argument("--heldout-n", type=int, default=500, help="held-out coumarins")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="working directory (default: a temporary one)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    import molgen

    t0 = time.perf_counter()
    work = Path(args.out or tempfile.mkdtemp(prefix="molgen-finetune-"))
    rows = read_rows(args.rows)
    series, rest = split_series(rows)
    rng = random.Random(0)
    rng.shuffle(series)
    rng.shuffle(rest)
    need = args.finetune_n + args.heldout_n
    if len(series) < need:
        raise SystemExit(f"only {len(series)} coumarins in {args.rows} rows; need {need}")
    ft_set, held = series[:args.finetune_n], series[args.finetune_n:need]
    general_held, base_data = rest[:1000], rest[1000:]
    t_split = time.perf_counter() - t0
    print(f"{len(rows)} rows: {len(series)} coumarins (fine-tune {len(ft_set)}, held out {len(held)}), "
          f"{len(base_data)} other molecules for the base model ({t_split:.0f} s)", flush=True)

    t = time.perf_counter()
    if args.base:
        base = molgen.load(args.base)
        base_dir = args.base
        base_info = {"given": args.base}
    else:
        base_dir = str(work / "base")
        base = molgen.train(config=ROOT / "molgen" / "configs" / "transformer-smiles.yaml", data=base_data, out=base_dir,
                            subset=None, max_molecules=args.base_molecules, max_time=args.base_minutes,
                            val_size=1000, val_every=1000, num_threads=args.threads, progress=False)
        base_info = {"trained_here": True, "molecules_seen": base.metadata["training"]["molecules_seen"],
                     "train_seconds": base.metadata["training"]["train_seconds"],
                     "base_data": len(base_data), "architecture": "molgen/configs/transformer-smiles.yaml"}
    t_base = time.perf_counter() - t
    print(f"base model ready ({t_base:.0f} s): {base}", flush=True)

    ref_fps = fingerprints(held)
    before = {"nll_heldout_set": nll(base, held), "nll_general": nll(base, general_held),
              **sample_stats(base, args.samples, 1, ref_fps)}
    print("before", before, flush=True)
    t = time.perf_counter()
    tuned = molgen.finetune(base_dir, ft_set, work / "finetuned", max_epochs=args.epochs, lr=args.lr,
                            num_threads=args.threads, progress=False)
    t_ft = time.perf_counter() - t
    after = {"nll_heldout_set": nll(tuned, held), "nll_general": nll(tuned, general_held),
             **sample_stats(tuned, args.samples, 1, ref_fps)}
    print("after", after, f"({t_ft:.0f} s)", flush=True)
    ft_meta = tuned.metadata["finetune"]
    total = time.perf_counter() - t0
    rows_out = [{"model": name, "NLL held-out coumarins": r["nll_heldout_set"],
                 "NLL general held-out": r["nll_general"], "valid": r["validity"],
                 "share with coumarin core": r["share_with_core"],
                 "share max Tanimoto >= 0.4 to held-out set": r["share_near_set"],
                 "median max Tanimoto": r["median_max_tanimoto"]}
                for name, r in (("base", before), ("fine-tuned", after))]
    payload = {"args": vars(args), "core_smarts": CORE, "n_series_found": len(series), "rows_read": len(rows),
               "base": base_info, "before": before, "after": after,
               "finetune": {"seconds": round(t_ft, 1), "status_counts": ft_meta["data"]["status_counts"],
                            "molecules_seen": tuned.metadata["training"]["molecules_seen"],
                            "val_nll": tuned.metadata["final"].get("val_nll_nats_per_molecule")},
               "seconds": {"split": round(t_split, 1), "base": round(t_base, 1), "total": round(total, 1)}}
    notes = [f"Focused set: MOSES training molecules with a coumarin core (`{CORE}`) among the first {len(rows):,} "
             f"rows ({len(series)} found); none of them is in the base model's data. Fine-tuned on "
             f"{len(ft_set)} of them for {args.epochs} epochs at lr {args.lr:g} ({t_ft:.0f} s); NLL on "
             f"{len(held)} held-out coumarins and on 1,000 held-out general molecules; {args.samples} samples "
             f"at temperature 1, seed 1.",
             f"Base: {base_info}. Command: `python benchmarks/finetune.py "
             + " ".join(a for a in sys.argv[1:]) + f"`; total {total:.0f} s."]
    write_results("finetune", payload, rows_out, "Fine-tuning on a held-out chemical series (coumarins)", notes)
    print(f"done in {total:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
