#!/usr/bin/env bash
# The SVP benchmarks of docs/benchmarks.md §8, one after another (2 cores: never two at once).
# Usage: benchmarks/svp.sh [OUT]   (about 45 minutes on 2 CPU cores)
# Target: the CNN, 6 epochs; proxy: the MLP at half width, 3 epochs; 2 seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/benchmarks}
.venv/bin/siftdata bench svp-coreset --keep 0.3,0.5,0.7 \
  --scores forgetting,el2n,least-confidence,kcenter --stratified el2n \
  --proxy-variants mlp:0.25:1,mlp:1:6,cnn:0.5:2 --seeds 2 --no-progress \
  --out "$OUT/svp-coreset"
.venv/bin/siftdata bench svp-active --initial 1000 --round-size 1000 --rounds 4 --seeds 2 \
  --no-progress --out "$OUT/svp-active"
