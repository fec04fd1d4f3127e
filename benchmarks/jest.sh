#!/usr/bin/env bash
# The JEST benchmarks of docs/benchmarks.md, one after another (2 cores: never two at once).
# Usage: benchmarks/jest.sh [OUT]   (about 45 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/benchmarks}
ALL=uniform,hard-learner,easy-reference,learnability,jest,jest-flexi
COMMON="--mismatch 0.5 --steps 2000 --budgets 0.5,1 --uniform-budgets 2 --seeds 2 --schedule cosine --batch-size 128 --lr 2e-3 --eval-every 100 --no-progress"
for CAP in fine coarse; do
  .venv/bin/siftdata bench pairs-fmnist --captions $CAP --filter-ratio 0.8 --methods $ALL $COMMON \
    --out "$OUT/pairs-$CAP-f0.8"
done
.venv/bin/siftdata bench pairs-fmnist --captions fine --filter-ratio 0.9 \
  --methods uniform,learnability,jest,jest-flexi $COMMON --out "$OUT/pairs-fine-f0.9"
.venv/bin/python benchmarks/jest_sampler.py | tee "$OUT/jest_sampler.txt"
