"""Throughput of the Ray Data scorer per worker against the local scorer, on a local Ray.

Entropy and EL2N of a seeded CNN over the first N Fashion-MNIST training images, with 1 and 2
actors (one CPU each), after Ray has started (its ~6-8 s start-up is not counted) and after a
warm-up pass; prints examples per second and the ratio to one local process::

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python benchmarks/ray_scoring.py --n 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time

import ray
import torch

from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.integrations.ray_scoring import score_with_ray
from siftdata.models import build_model
from siftdata.offline.scoring import score_dataset
from siftdata.scoring.scorers import Entropy, GradNormBound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, labels = load_fashion_mnist("train")
    x, y = to_float_images(images[: args.n]), labels[: args.n]
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    scorers = {"entropy": Entropy(), "el2n": GradNormBound()}
    start = time.perf_counter()
    score_dataset(model, x, y, scorers, progress=False)
    local = args.n / (time.perf_counter() - start)
    print(f"local, 1 thread: {local:8.0f} examples/s")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = [{"id": i, "image": x[i].numpy(), "label": int(y[i])} for i in range(args.n)]
    dataset = ray.data.from_items(rows).materialize()
    options = dict(fingerprint={}, directions=dict.fromkeys(scorers, "higher-keep"), proxy={})
    for workers in (1, 2, 1, 2):  # the first pass of each warms Ray up
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            score_with_ray(
                dataset, model, scorers, out, concurrency=workers, batch_size=2048, **options
            )
            rate = args.n / (time.perf_counter() - start)
        print(
            f"ray, {workers} worker(s): {rate:8.0f} examples/s ({rate / workers:8.0f} per worker, "
            f"{rate / local:4.2f}x local)"
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
