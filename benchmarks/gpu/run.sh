#!/usr/bin/env bash
# The GPU recipe: `molgen benchmark` with the full-scale configs of this folder (all of MOSES train,
# bf16 autocast), on one GPU, resumable, written as benchmarks/results/compare_gpu.{json,md,*.png}.
#
#   bash benchmarks/gpu/run.sh                       # every default row, 60 min each, n = 30,000
#   BUDGET_MINUTES=120 FAMILIES=transformer-smiles,vae,gan bash benchmarks/gpu/run.sh
#   bash benchmarks/gpu/run.sh --seeds 0 1 2          # extra options go to `molgen benchmark`
#
# Re-running the same command resumes: finished models under $OUT are reused, an interrupted training
# continues from its last checkpoint (OUT/<row>/seed<k>/checkpoints/last.ckpt), and the table is
# rewritten. On CPU, with a tiny budget (what tests/test_benchmark_command.py does):
#   FAMILIES=transformer-smiles,flow BUDGET_MINUTES=0.05 N=20 NLL_N=10 SUBSET=3000 ACCELERATOR=cpu \
#   PRECISION=32-true OUT=/tmp/bench bash benchmarks/gpu/run.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python

args=(
  --config-dir "$HERE"
  --families "${FAMILIES:-default}"
  --budget-minutes "${BUDGET_MINUTES:-60}"
  --n "${N:-30000}"                  # MOSES: 30,000 samples, unique@10k
  --nll-n "${NLL_N:-10000}"
  --subset "${SUBSET:-0}"            # 0: all of MOSES train
  --val-size "${VAL_SIZE:-10000}"
  --diffusion-steps "${DIFFUSION_STEPS:-full}"   # N steps: what a GPU affords
  --accelerator "${ACCELERATOR:-auto}"
  --devices "${DEVICES:-1}"
  --n-jobs "${N_JOBS:-8}"
  --out "${OUT:-runs/benchmark-gpu}"
  --results "${RESULTS:-$ROOT/benchmarks/results}"
  --name "${NAME:-compare_gpu}"
  --resume
)
[ -n "${PRECISION:-}" ] && args+=(--precision "$PRECISION")

# `molgen benchmark` itself (the same options and code) without needing the `molgen` script on PATH
exec "$PYTHON" -m molgen.cli.benchmark "${args[@]}" "$@"
