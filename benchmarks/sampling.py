"""Sampling speed with vs without the KV cache, and training throughput (molecules/s): raw steps in
fp32 and bf16 autocast, and training inside ``molgen.train`` (Lightning) vs a raw loop.

    python benchmarks/sampling.py [--model DIR] [--n 2000] [--threads 1] [--train-steps 150] [--rounds 2]

Without ``--model`` a transformer of the quick-start size is built on the MOSES vocabulary (speed
does not depend on the weights). Both samplers run in the same process on the same seed, so the
ratio is robust to a noisy machine; they must also produce identical molecules (checked).

Training: a *raw step* is the model's ``training_step`` + backward + AdamW on pre-collated batches
(what a step costs at least). *molgen.train* is the real pipeline (Lightning, DataModule, progress
callback, clipping, schedule, checkpoint/log callbacks), timed between consecutive training batches
after a warm-up; inside that run each step is also split into forward, backward, optimizer (clipping
included) and the rest (data loading, collate, Lightning's loop and hooks). The *raw loop* does the
same work as molgen.train without Lightning (collate, forward, backward, clipping, AdamW, schedule)
on the same batches. Lightning's overhead is reported both as the share of the step outside forward /
backward / optimizer within one run (robust to a busy machine) and as the throughput ratio.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results

ROOT = Path(__file__).resolve().parents[1]


def quickstart_config(path: str) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


def build_model(model_dir: str | None, config: str):
    from molgen.api import load
    from molgen.chem import DEFAULT_POLICY
    from molgen.data.io import read_smiles
    from molgen.registry import REPRESENTATIONS
    from molgen.training.train import build_model as build
    from molgen.training.train import resolve_model_class

    if model_dir:
        return load(model_dir), "trained: " + model_dir
    cfg = quickstart_config(config)
    tok = REPRESENTATIONS.get(cfg.get("representation", "smiles"))().fit(read_smiles("moses:test")[:20_000])
    torch.manual_seed(0)
    cls = resolve_model_class(cfg.get("model", "transformer"))
    return build(cls, tok, DEFAULT_POLICY, 60, cfg.get("model_args", {})), f"untrained, {config}"


def time_sampling(model, n: int, use_cache: bool, batch_size: int) -> tuple[float, list[str]]:
    from molgen.rowrandom import RowRandom

    out: list[str] = []
    t = time.perf_counter()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            smiles, _ = model._sample(b, temperature=1.0, rng=RowRandom(0, range(start, start + b), model.device),
                                      use_cache=use_cache)
            out.extend(smiles)
    return time.perf_counter() - t, out


# --- training ------------------------------------------------------------------------------------
def featurized(model, smiles: list[str]) -> list:
    items = []
    for s in smiles:
        try:
            items.append(model.featurize(s))
        except (KeyError, ValueError):
            pass
    return items


def batches_of(model, items: list, batch_size: int, n: int, seed: int = 0) -> list[list]:
    from molgen.data.datamodule import LengthBucketSampler

    sampler = LengthBucketSampler([model.item_length(x) for x in items], batch_size, seed)
    return [[items[i] for i in b] for b, _ in zip(sampler, range(n))]


def _detached(model):
    """A copy of ``model`` outside any Trainer (as a raw loop sees it)."""
    m = copy.deepcopy(model)
    m.__dict__.pop("training_step", None)  # the timing wrapper of lightning_run
    m._trainer = None
    m.progress = None
    return m.train()


def time_raw_steps(model, items: list, batch_size: int, steps: int, bf16: bool,
                   batches: list[list] | None = None) -> float:
    """Molecules/s of training_step + backward + AdamW on pre-collated batches (warm-up excluded);
    ``batches`` (lists of items) replaces ``items`` / ``batch_size`` / ``steps``."""
    from molgen.training.optim import OptimConfig, adamw, decay_groups

    m = _detached(model)
    opt = adamw(decay_groups(list(m.named_parameters()), 0.01), OptimConfig(lr=1e-4))
    batches = [m.collate(b) for b in (batches or batches_of(m, items, batch_size, steps + 3))]
    n, elapsed = 0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer
        for i, batch in enumerate(batches):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = m.training_step(batch, i)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= 3:  # warm-up steps excluded
                elapsed += time.perf_counter() - t
                n += batch["ids"].shape[0]
    return n / elapsed


def time_raw_loop(model, batches: list[list], warmup: int, grad_clip: float) -> float:
    """The work of molgen.train without Lightning on the same batches (lists of items): collate,
    forward, backward, clip, AdamW, schedule."""
    from molgen.training.optim import OptimConfig, adamw_warmup_cosine

    m = _detached(model)
    m.optim = OptimConfig(lr=2e-3, warmup_steps=200)
    cfg = adamw_warmup_cosine(m, m.optim)
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    params = [p for p in m.parameters() if p.requires_grad]
    n, t0 = 0, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, raw in enumerate(batches):
            if i == warmup:
                t0, n = time.perf_counter(), 0
            batch = m.collate(raw)
            loss = m.training_step(batch, i)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            n += len(raw)
    return n / (time.perf_counter() - t0)


def lightning_run(config: dict, data: Path, steps: int, warmup: int, threads: int, precision: str) -> dict:
    """molgen.train for ``steps`` batches; steady-state molecules/s and the per-step breakdown."""
    import lightning as L

    from molgen.training.train import train

    P = time.perf_counter
    acc = {"fwd": 0.0, "bwd": 0.0, "opt": 0.0}
    st: dict = {}

    class Breakdown(L.Callback):
        def on_train_start(self, trainer, pl_module):
            step_fn = pl_module.training_step

            def timed(*a, **k):
                t = P()
                out = step_fn(*a, **k)
                st["fwd"] = P() - t
                return out

            pl_module.training_step = timed
            for o in trainer.optimizers:
                o.register_step_post_hook(lambda *a: st.__setitem__("post", P()))
            self.n, self.mol, self.t0 = 0, 0, None
            self.seen: list[list[list[int]]] = []  # the batches, as items, for the raw loop to replay

        def on_before_backward(self, trainer, pl_module, loss):
            st["b0"] = P()

        def on_after_backward(self, trainer, pl_module):
            st["b1"] = P()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            now = P()
            self.n += 1
            self.seen.append([row[1:1 + int(k)].tolist() for row, k in zip(batch["ids"], batch["lengths"])])
            if self.n == warmup:
                self.t0, self.mol = now, 0
                for k in acc:
                    acc[k] = 0.0
            elif self.n > warmup:  # optimizer = end of backward -> end of step (clipping included)
                acc["fwd"] += st["fwd"]
                acc["bwd"] += st["b1"] - st["b0"]
                acc["opt"] += st["post"] - st["b1"]
                self.mol += batch["ids"].shape[0]
                self.t1 = now

    bd = Breakdown()
    # keep the recipe (model, batch, lr, clipping, callbacks) but a step budget and no validation
    model = train(config=config, data=str(data), out=tempfile.mkdtemp(prefix="bench-train-"), max_steps=steps,
                  max_molecules=None, max_time=None, subset=None, val_every=10**9, val_size=200,
                  precision=precision, progress=False, num_threads=threads, n_jobs=1, callbacks=[bd])
    n_steps = bd.n - warmup
    total = bd.t1 - bd.t0
    raw = sum(acc.values())
    ms = {k: 1000 * v / n_steps for k, v in acc.items()}
    return {"molecules_per_s": bd.mol / total, "step_ms": 1000 * total / n_steps, **{f"{k}_ms": v for k, v in ms.items()},
            "rest_ms": 1000 * (total - raw) / n_steps, "overhead_share": (total - raw) / raw,
            "whole_run_molecules_per_s": model.metadata["training"]["molecules_per_s"], "model": model,
            "batches": bd.seen}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="trained model directory (default: untrained quick-start size)")
    ap.add_argument("--config", default=str(ROOT / "molgen" / "configs" / "quickstart.yaml"))
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--train-steps", type=int, default=150, help="steps per training measurement")
    ap.add_argument("--rounds", type=int, default=2, help="alternating molgen.train / raw-loop rounds")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-sampling", action="store_true")
    ap.add_argument("--name", default="sampling")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    os.environ.setdefault("MOLGEN_CACHE", tempfile.mkdtemp(prefix="bench-cache-"))  # no stale caches
    from molgen.data.io import read_smiles

    model, what = build_model(args.model, args.config)
    model.eval()
    rows: list[dict] = []
    payload: dict = {"model": what, "n_parameters": sum(p.numel() for p in model.parameters()),
                     "threads": threads}
    notes = []
    if not args.skip_sampling:
        t_cache, s_cache = time_sampling(model, args.n, True, args.batch_size)
        t_full, s_full = time_sampling(model, args.n, False, args.batch_size)
        identical = s_cache == s_full
        rows.append({"measure": "sampling, KV cache", "molecules_per_s": args.n / t_cache, "seconds": t_cache})
        rows.append({"measure": "sampling, full recomputation", "molecules_per_s": args.n / t_full, "seconds": t_full})
        payload.update({"n_samples": args.n, "kv_cache_speedup": t_full / t_cache, "identical_samples": identical})
        notes.append(f"KV-cache speed-up {t_full / t_cache:.2f}x; cached and uncached samplers gave identical "
                     f"molecules: {identical}.")

    smiles = [s for s in read_smiles("moses:train")[:60_000] if s]
    items = featurized(model, smiles[:20_000])
    steps = args.train_steps
    tp = {}
    for bs in (32, 128):  # 32 is the quick-start recipe
        for bf16 in (False, True):
            r = time_raw_steps(model, items, bs, max(10, steps * 32 // bs // 2), bf16)
            tp[(bs, bf16)] = r
            rows.append({"measure": f"raw step {'bf16 autocast' if bf16 else 'fp32'} (fwd+bwd+AdamW), batch {bs}",
                         "molecules_per_s": r})
    payload["training_bf16_speedup"] = {bs: tp[(bs, True)] / tp[(bs, False)] for bs in (32, 128)}

    # molgen.train vs the raw loop, alternating rounds on the same data (file: cached after round 1)
    cfg = quickstart_config(args.config)
    data = Path(tempfile.mkdtemp(prefix="bench-data-")) / "train.smi"
    data.write_text("\n".join(smiles[:steps * cfg["batch_size"] + 4000]) + "\n")
    warmup = 20
    light, loop, fb = [], [], []
    for _ in range(args.rounds):
        res = lightning_run(cfg, data, steps + warmup, warmup, threads, "32-true")
        trained, seen = res.pop("model"), res.pop("batches")
        light.append(res)
        loop.append(time_raw_loop(trained, seen, warmup, 1.0 if cfg.get("grad_clip") is None else cfg["grad_clip"]))
        fb.append(time_raw_steps(trained, [], 0, 0, False, batches=seen[warmup - 3:]))
    med = {k: statistics.median(r[k] for r in light) for k in light[0]}
    raw_loop, raw_step = statistics.median(loop), statistics.median(fb)
    rows.append({"measure": f"molgen.train (Lightning), batch {cfg['batch_size']}, fp32, steady state",
                 "molecules_per_s": med["molecules_per_s"]})
    rows.append({"measure": "raw loop, same work (collate, fwd, bwd, clip, AdamW, schedule)", "molecules_per_s": raw_loop})
    rows.append({"measure": "raw step (fwd+bwd+AdamW, pre-collated)", "molecules_per_s": raw_step})
    payload["lightning_vs_raw"] = {
        "rounds": {"molgen_train": light, "raw_loop": loop, "raw_step": fb},
        "median_step_breakdown_ms": {k: med[k] for k in ("step_ms", "fwd_ms", "bwd_ms", "opt_ms", "rest_ms")},
        "overhead_share_within_run": med["overhead_share"],
        "ratio_to_raw_loop": med["molecules_per_s"] / raw_loop,
        "ratio_to_raw_step": med["molecules_per_s"] / raw_step,
    }
    notes.append(
        f"molgen.train vs raw (batch {cfg['batch_size']}, fp32, {threads} thread(s), median of {args.rounds} "
        f"alternating rounds of {steps} steps): {med['molecules_per_s']:.0f} vs {raw_loop:.0f} molecules/s for a "
        f"raw loop doing the same work (ratio {med['molecules_per_s'] / raw_loop:.3f}) and {raw_step:.0f} for the "
        f"bare step (ratio {med['molecules_per_s'] / raw_step:.3f}). Within the molgen.train run a step takes "
        f"{med['step_ms']:.1f} ms: forward {med['fwd_ms']:.1f}, backward {med['bwd_ms']:.1f}, optimizer with "
        f"clipping {med['opt_ms']:.1f}, everything else (data, collate, Lightning) {med['rest_ms']:.1f} "
        f"= {100 * med['overhead_share']:.1f} % of the step's compute.")
    notes.insert(0, f"Model: {what}, {payload['n_parameters'] / 1e6:.2f}M parameters, torch threads {threads}.")
    notes.append("Command: python benchmarks/sampling.py " + " ".join(sys.argv[1:]))
    _j, m = write_results(args.name, payload, rows, "Sampling and training throughput", notes)
    print(m.read_text())


if __name__ == "__main__":
    main()
