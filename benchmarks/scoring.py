"""``molgen score`` throughput (molecules/s) for the transformer and the VAE on MOSES test molecules: one
process of two threads vs two processes of one thread (``--devices 2``), peak memory at two input sizes
(streamed: it must stay flat), and the transformer's training molecules/s measured in the same run.

    python benchmarks/scoring.py [--n 100000] [--n-vae N] [--transformer DIR] [--vae DIR] [--train-steps 300]

Without model directories, a transformer of the quick-start configuration and a VAE of ``molgen/configs/vae.yaml``
are trained here for ``--train-steps`` steps on a 20k MOSES subset (scoring speed does not depend on the
weights); the transformer's training throughput is the ``molecules_per_s`` of that run (its own
pipeline, quick-start batch size). Every number is a wall-clock time of the CLI command, so model
loading and process start are included; ``net`` subtracts the time of the same command on 200
molecules. Targets (issue 12): transformer scoring >= 3x its training molecules/s; two 1-thread
processes not slower than one 2-thread process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_cli(args: list[str], threads: int) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB of the command's own process) of ``molgen ARGS``."""
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "molgen.cli.main", *args], env=_env(threads),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"molgen {' '.join(args)} failed:\n{err[-3000:]}")
    return wall, usage.ru_maxrss / 1024


def train(kind: str, out: Path, data: Path, steps: int, val_size: int | None = None) -> Path:
    config = {"transformer": "quickstart", "vae": "vae"}[kind]
    args = ["train", "--config", str(ROOT / "molgen" / "configs" / f"{config}.yaml"), "--data", str(data), "--out", str(out),
            "--max-steps", str(steps), "--subset", "20000", "-q"]
    if kind == "vae":
        args += ["--max-molecules", str(10**9)]
    if val_size:
        cfg = out.with_suffix(".yaml")
        cfg.write_text((ROOT / "molgen" / "configs" / f"{config}.yaml").read_text() + f"\nval_size: {val_size}\n")
        args[args.index("--config") + 1] = str(cfg)
    run_cli(args, 2)
    return out


def score(model: Path, lib: Path, out: Path, *, devices: int, threads: int) -> tuple[float, float]:
    return run_cli(["score", str(lib), "--model", str(model), "-o", str(out), "--devices", str(devices),
                    "--threads", str(threads), "-q"], threads * devices if devices == 1 else threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="MOSES test molecules scored (transformer)")
    ap.add_argument("--n-vae", type=int, default=None, help="molecules scored by the VAE (default --n)")
    ap.add_argument("--transformer", default=None, help="model directory (default: trained here)")
    ap.add_argument("--vae", default=None, help="model directory (default: trained here)")
    ap.add_argument("--train-steps", type=int, default=300)
    args = ap.parse_args()
    n_vae = args.n_vae or args.n

    with gzip.open(ROOT / "data" / "moses" / "test.csv.gz", "rt") as f:
        test = f.read().splitlines()[1:]
    tmp = Path(tempfile.mkdtemp(prefix="molgen-bench-scoring-"))
    train_data = tmp / "train.smi"
    with gzip.open(ROOT / "data" / "moses" / "train.csv.gz", "rt") as f:
        train_rows = [next(f) for _ in range(20_001)][1:]
    train_data.write_text("".join(train_rows))
    models = {"transformer": Path(args.transformer) if args.transformer else train("transformer", tmp / "tf", train_data,
                                                                                   args.train_steps),
              "vae": Path(args.vae) if args.vae else train("vae", tmp / "vae", train_data, args.train_steps,
                                                           val_size=500)}
    meta = json.loads((models["transformer"] / "metadata.json").read_text())
    train_rate = float(meta["training"]["molecules_per_s"])

    rows, payload = [], {"n": args.n, "n_vae": n_vae, "transformer_training_molecules_per_s": train_rate,
                         "training_batch_size": meta["training"]["batch_size"], "results": {}}
    small = tmp / "small.smi"
    small.write_text("\n".join(test[:200]) + "\n")
    for kind, model in models.items():
        n = args.n if kind == "transformer" else n_vae
        lib = tmp / f"lib-{kind}.smi"
        lib.write_text("\n".join(test[:n]) + "\n")
        quarter = tmp / f"lib-{kind}-quarter.smi"
        quarter.write_text("\n".join(test[: n // 4]) + "\n")
        res = {}
        base, _ = score(model, small, tmp / "small.csv", devices=1, threads=2)  # start + load
        for name, devices, threads in (("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1)):
            out = tmp / f"{kind}-{devices}.csv"
            wall, _ = score(model, lib, out, devices=devices, threads=threads)
            res[name] = {"wall_s": round(wall, 1), "molecules_per_s": round(n / wall, 1),
                         "net_molecules_per_s": round(n / max(wall - base, 1e-9), 1)}
        same = (tmp / f"{kind}-1.csv").read_bytes() == (tmp / f"{kind}-2.csv").read_bytes()
        _, rss_q = score(model, quarter, tmp / f"{kind}-q.csv", devices=1, threads=1)
        _, rss_f = score(model, lib, tmp / f"{kind}-f.csv", devices=1, threads=1)
        res["peak_rss_mib"] = {f"{n // 4} molecules": round(rss_q), f"{n} molecules": round(rss_f)}
        res["outputs_identical_1x2_vs_2x1"] = same
        payload["results"][kind] = res
        one, two = res["1 process x 2 threads"], res["2 processes x 1 thread"]
        rows.append({"model": kind, "molecules": n, "1 proc x 2 thr (mol/s)": one["molecules_per_s"],
                     "2 proc x 1 thr (mol/s)": two["molecules_per_s"],
                     "2 vs 1": round(two["molecules_per_s"] / one["molecules_per_s"], 2),
                     f"peak RSS {n // 4} / {n} (MiB)": f"{round(rss_q)} / {round(rss_f)}",
                     "same file": same})
    tf = payload["results"]["transformer"]["1 process x 2 threads"]["molecules_per_s"]
    payload["transformer_scoring_vs_training"] = round(tf / train_rate, 2)
    notes = [f"Transformer training (quick-start configuration, batch {payload['training_batch_size']}, in "
             f"molgen.train on the same machine in this run): {train_rate:.0f} molecules/s; scoring with one "
             f"process of two threads: {tf:.0f} molecules/s = **{tf / train_rate:.1f}x** (target >= 3x).",
             "Molecules/s are wall-clock times of the whole `molgen score` command (process start and model "
             "load included); the JSON also has `net_molecules_per_s` without the start-up measured on 200 "
             "molecules. Peak RSS is the scoring process's maximum resident memory at a quarter and all of "
             "the input: the file is streamed in chunks, so it must not grow with the input. `same file`: the "
             "one-process and two-process outputs are byte-identical (at different thread counts they may "
             "differ in the last bits of a float; at the same thread count they are identical, tested in "
             "tests/test_sharded.py).", "Command: `python benchmarks/scoring.py " + " ".join(sys.argv[1:]) + "`"]
    _, m = write_results("scoring", payload, rows, "molgen score throughput", notes)
    print(m.read_text())


if __name__ == "__main__":
    main()
