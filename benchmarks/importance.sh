#!/usr/bin/env bash
# The unbiased-selection benchmarks of docs/benchmarks.md §7, one after another (2 cores: never
# two at once). Usage: benchmarks/importance.sh [OUT]   (about 25 minutes on 2 CPU cores)
# 6248 steps of 64 = 8 epochs of the 50k pool; B = 3b (the paper's), so τ_th = (B + 3b)/(3b) = 2.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/benchmarks}
COMMON="--steps 6248 --batch-size 64 --super-batch-factor 3 --seeds 2 --schedule cosine \
  --eval-every 390 --prune-ratio 0.7 --low-share 0.7 --delta 0.875 --no-progress"
.venv/bin/siftdata bench importance --model cnn --noise 0 \
  --methods uniform,importance,importance-always,infobatch $COMMON --out "$OUT/importance-cnn-clean"
.venv/bin/siftdata bench importance --model mlp --noise 0.2 \
  --methods uniform,importance,learnability,learnability-unbiased,infobatch,selective-backprop \
  $COMMON --out "$OUT/importance-mlp-noise0.2"
