"""Sampling speed with vs without the KV cache, and training throughput (molecules/s).

    python benchmarks/sampling.py [--model DIR] [--n 2000] [--threads 2]

Without ``--model`` a transformer of the quick-start size is built on the MOSES vocabulary (speed
does not depend on the weights). Both samplers run in the same process on the same seed, so the
ratio is robust to a noisy machine; they must also produce identical molecules (checked).
Training throughput is measured on MOSES molecules through the same loss as ``molgen train``,
in fp32 and, where the CPU has native bf16, with bf16 autocast.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results


def build_model(model_dir: str | None, config: str):
    import yaml

    from molgen.api import load
    from molgen.data.io import read_smiles
    from molgen.models.transformer import TransformerModel
    from molgen.tokenizers.smiles import SmilesTokenizer

    if model_dir:
        return load(model_dir), "trained: " + model_dir
    cfg = yaml.safe_load(Path(config).read_text())
    tok = SmilesTokenizer().fit(read_smiles("moses:test")[:20_000])
    torch.manual_seed(0)
    return TransformerModel(tok, max_len=60, **cfg.get("model_args", {})), f"untrained, {config}"


def time_sampling(model, n: int, use_cache: bool, batch_size: int) -> tuple[float, list[str]]:
    t = time.perf_counter()
    res = model.sample(n, seed=0, batch_size=batch_size, use_cache=use_cache)
    return time.perf_counter() - t, res.smiles


def time_training(model, smiles: list[str], batch_size: int, steps: int, bf16: bool) -> float:
    from molgen.models.base import collate_ids

    ids = [model.tokenizer.encode(s) for s in smiles[: batch_size * (steps + 2)]]
    ids.sort(key=len)  # mimic length bucketing
    batches = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    n, elapsed = 0, 0.0
    for i, b in enumerate(batches[: steps + 2]):
        batch = collate_ids(b, model.tokenizer)
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            lp, mask = model.token_log_probs(batch)
            loss = -lp.sum() / mask.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:  # warm-up steps excluded
            elapsed += time.perf_counter() - t
            n += len(b)
    model.eval()
    return n / elapsed


def main() -> None:
    from molgen.data.io import read_smiles
    from molgen.training.train import _cpu_has_bf16

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="trained model directory (default: untrained quick-start size)")
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--name", default="sampling")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, what = build_model(args.model, args.config)
    model.eval()
    rows = []
    t_cache, s_cache = time_sampling(model, args.n, True, args.batch_size)
    t_full, s_full = time_sampling(model, args.n, False, args.batch_size)
    identical = s_cache == s_full
    rows.append({"measure": "sampling, KV cache", "molecules_per_s": args.n / t_cache, "seconds": t_cache})
    rows.append({"measure": "sampling, full recomputation", "molecules_per_s": args.n / t_full, "seconds": t_full})
    smiles = [s for s in read_smiles("moses:train")[:50_000] if s]
    tp32 = tpbf = None
    for bs in (32, 128):  # 32 is the quick-start recipe
        tp32 = time_training(model, smiles, bs, args.train_steps * 128 // bs, bf16=False)
        rows.append({"measure": f"training fp32 (fwd+bwd+AdamW), batch {bs}", "molecules_per_s": tp32})
        if _cpu_has_bf16() or torch.cuda.is_available():
            tpbf = time_training(model, smiles, bs, args.train_steps * 128 // bs, bf16=True)
            rows.append({"measure": f"training bf16 autocast, batch {bs}", "molecules_per_s": tpbf})
    payload = {"model": what, "n_parameters": model.n_parameters(), "n_samples": args.n,
               "kv_cache_speedup": t_full / t_cache, "identical_samples": identical,
               "rows": rows, "training_bf16_speedup": (tpbf / tp32) if tpbf else None}
    notes = [f"Model: {what}, {model.n_parameters() / 1e6:.2f}M parameters. KV-cache speed-up "
             f"{t_full / t_cache:.2f}x; cached and uncached samplers gave identical molecules: {identical}."]
    _j, m = write_results(args.name, payload, rows, "Sampling and training throughput", notes)
    print(m.read_text())


if __name__ == "__main__":
    main()
