#!/usr/bin/env bash
# The noisy-fmnist runs recorded in docs/benchmarks.md (issue 2). Two streams run side by side,
# one CPU thread each (OMP_NUM_THREADS=1), so the whole set takes about 40 minutes on 2 cores;
# every speedup is a ratio against the uniform run of the same process.
# Usage: benchmarks/foundation.sh [OUT_ROOT]   (default runs/foundation)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/foundation}
siftdata=${SIFTDATA:-.venv/bin/siftdata}
mkdir -p "$out"
bench() {
  name=$1; shift
  OMP_NUM_THREADS=1 "$siftdata" bench noisy-fmnist --no-progress --seeds 2 --steps 8000 \
    --out "$out/$name" "$@" > "$out/$name.log" 2>&1
  echo "done: $name"
}
all=learnability,learnability-topk,learnability+stale,hard-learner,easy-reference,selective-backprop,rank
core=learnability,learnability+stale,hard-learner
pair=learnability,learnability+stale

stream_a() {
  # the main table: MLP, 40% symmetric noise, reference trained on the clean holdout
  bench mlp-noise40-clean --methods $all --noise 0.4
  # a smaller super-batch, B = 5b
  bench mlp-noise40-clean-B5 --methods $pair --noise 0.4 --super-batch-factor 5
  bench mlp-noise20-clean --methods $pair --noise 0.2
}
stream_b() {
  # no clean holdout: references trained on noisy labels (sharpened, T = 1/3, by default)
  bench mlp-noise40-twohalves --methods $core --noise 0.4 --reference two-halves
  bench mlp-noise40-noisyholdout --methods $core --noise 0.4 --reference noisy-holdout
  bench mlp-noise0-clean --methods $pair --noise 0.0
  # the CNN: about 6x the MLP's cost per step on this CPU, so a shorter budget
  bench cnn-noise40-clean --methods $pair --model cnn --noise 0.4 --steps 2000 --eval-every 200
}
stream_a & stream_b & wait
