"""Offline scoring of all 60 000 Fashion-MNIST training images on W ranks against one process.

Entropy, EL2N and the embeddings of a (seeded, untrained) MLP or CNN, in shards of 4 096; prints
the wall-clock of the scoring (the shards' own seconds, summed on rank 0's view, and the elapsed
time of the whole call) and checks the scores equal the one-process ones bit for bit::

    .venv/bin/python benchmarks/sharded_scoring.py --threads 2            # one process
    .venv/bin/torchrun --standalone --nproc_per_node 2 benchmarks/sharded_scoring.py
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.distributed as dist

from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.distributed import join_from_environment, score_dataset_on_ranks
from siftdata.models import build_model
from siftdata.scoring.scorers import Entropy, GradNormBound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn", choices=("mlp", "cnn"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = join_from_environment()
    images, labels = load_fashion_mnist("train")
    x = to_float_images(images)
    torch.manual_seed(0)
    model = build_model(args.model)
    scorers = {"entropy": Entropy(), "el2n": GradNormBound()}
    folder = tempfile.mkdtemp(prefix="siftdata-scoring-") if world.rank == 0 else None
    if world.distributed:
        box = [folder]
        dist.broadcast_object_list(box, src=0)
        folder = box[0]
    start = time.perf_counter()
    result = score_dataset_on_ranks(
        model,
        x,
        labels,
        scorers,
        shard_dir=folder,
        world=world,
        shard_size=4096,
        embeddings=True,
        progress=False,
    )
    elapsed = time.perf_counter() - start
    if world.rank == 0:
        digest = float(result.scores["entropy"].double().sum())
        print(
            f"world size {world.size}, {args.threads} thread(s) each, {args.model}: "
            f"{elapsed:.2f} s for {x.shape[0]} examples (entropy sum {digest:.6f})"
        )
    if world.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
