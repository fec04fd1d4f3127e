#!/usr/bin/env bash
# Every noisy-fmnist run recorded in docs/benchmarks.md, one after another on all cores
# (about 70 minutes on 2 cores). Every speedup and multiplier is a ratio against the uniform runs of
# the same folder. Usage: benchmarks/all.sh [OUT_ROOT] [PART...]   (default runs/benchmarks, all)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/benchmarks}
shift || true
parts=${*:-"sweep tables"}
siftdata=${SIFTDATA:-.venv/bin/siftdata}
mkdir -p "$out"
bench() {
  name=$1; shift
  "$siftdata" bench noisy-fmnist --no-progress --seeds 2 --out "$out/$name" "$@" > "$out/$name.log" 2>&1
  echo "done: $name"
}
pair=learnability,learnability+stale

sweep() {
  # the headline protocol: every method at 1/4, 1/2 and all of 8000 steps, each with its own cosine
  # decay; uniform also at 2x, to bound multipliers above its largest budget
  bench sweep-mlp-noise40 --methods $pair,learnability-topk --noise 0.4 --steps 8000 \
    --schedule cosine --budgets 0.25,0.5,1 --uniform-budgets 2
  bench sweep-mlp-noise20 --methods $pair --noise 0.2 --steps 8000 \
    --schedule cosine --budgets 0.25,0.5,1 --uniform-budgets 2
  bench sweep-cnn-noise40 --methods $pair --model cnn --noise 0.4 --steps 2000 --eval-every 200 \
    --schedule cosine --budgets 0.25,0.5,1 --uniform-budgets 2
}

tables() {
  # the foundation's tables (constant LR), under the corrected statistics
  bench mlp-noise40-clean --noise 0.4 --steps 8000 \
    --methods learnability,learnability-topk,learnability+stale,hard-learner,easy-reference,selective-backprop,rank
  bench mlp-noise40-twohalves --methods $pair,hard-learner --noise 0.4 --steps 8000 --reference two-halves
  bench mlp-noise40-noisyholdout --methods $pair,hard-learner --noise 0.4 --steps 8000 --reference noisy-holdout
  bench mlp-noise40-clean-B5 --methods $pair --noise 0.4 --steps 8000 --super-batch-factor 5
  bench mlp-noise20-clean --methods $pair --noise 0.2 --steps 8000
  bench mlp-noise0-clean --methods $pair --noise 0.0 --steps 8000
  bench cnn-noise40-clean --methods $pair --model cnn --noise 0.4 --steps 2000 --eval-every 200
}

for part in $parts; do "$part"; done
