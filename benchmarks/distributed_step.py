"""What global selection costs on W ranks: step time against one process, and the collectives.

Run it once as one process and once under torchrun; each prints, per method, the median step
time in the steady state and (on W ranks) the time of the step's all-gathers alone, timed in a
loop on the same shapes, with the bytes each rank sends per step. Same global super-batches,
same selections (the distributed tests check that); Fashion-MNIST, MLP, b = 64, B = 640::

    .venv/bin/python benchmarks/distributed_step.py --threads 2
    .venv/bin/torchrun --standalone --nproc_per_node 2 benchmarks/distributed_step.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.distributed as dist
from torch import nn

from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.distributed import all_gather_rows, join_from_environment
from siftdata.models import build_model
from siftdata.online import build_method, parse_method
from siftdata.store import ScoreTable
from siftdata.training.loop import TrainConfig, TrainData, train

METHODS = ("uniform", "learnability", "learnability+stale", "importance")
B_SMALL, FACTOR, WARMUP = 64, 10.0, 20


def _data(n: int) -> TrainData:
    images, labels = load_fashion_mnist("train")
    x = to_float_images(images[:n])
    return TrainData(x, labels[:n], x[:2000], labels[:2000])


def _step_times(name: str, data: TrainData, steps: int, world) -> list[float]:
    torch.manual_seed(0)
    model = build_model("mlp")
    wrapped = nn.parallel.DistributedDataParallel(model) if world.distributed else model
    reference = ScoreTable(torch.arange(len(data)), torch.rand(len(data)))
    method = build_method(
        parse_method(name),
        reference=reference if parse_method(name).uses_reference else None,
        example_ids=len(data),
        num_classes=10,
        super_batch_factor=FACTOR,
        seed=0,
    )
    config = TrainConfig(
        steps=steps,
        batch_size=B_SMALL,
        super_batch_factor=FACTOR,
        eval_every=steps,
        checkpoint_every=0,
        progress=False,
    )
    stamps: list[float] = []
    train(
        wrapped,
        method,
        data,
        config,
        on_step=lambda s, ids: stamps.append(time.perf_counter()),
        world=world if world.distributed else None,
    )
    return [b - a for a, b in zip(stamps[WARMUP:], stamps[WARMUP + 1 :], strict=False)]


def _gathers(name: str, world) -> list[tuple[torch.Tensor, str]]:
    """The tensors one step of ``name`` all-gathers on each rank, and what they are."""
    big, small = int(B_SMALL * FACTOR) // world.size, B_SMALL // world.size
    spec = parse_method(name)
    out = []
    if spec.selects and name != "learnability+stale":
        out.append((torch.zeros(big), "scoring losses (B/W float32)"))
    if name == "importance":
        out.append((torch.zeros(big, 10), "logits for the bounds (B/W × C)"))
    if name == "learnability+stale":
        out += [
            (torch.zeros(small, dtype=torch.int64), "trained ids (b/W int64)"),
            (torch.zeros(small), "trained losses (b/W float32)"),
        ]
    return out


def _collective_ms(tensors, world, repeats: int = 200) -> float:
    for _ in range(10):
        for t, _ in tensors:
            all_gather_rows(t, world)
    start = time.perf_counter()
    for _ in range(repeats):
        for t, _ in tensors:
            all_gather_rows(t, world)
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--pool", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    world = join_from_environment()
    data = _data(args.pool)
    lead = world.rank == 0
    if lead:
        print(
            f"world size {world.size}, {args.threads} thread(s) per process, b={B_SMALL}, "
            f"B={int(B_SMALL * FACTOR)}"
        )
    for name in METHODS:
        times = _step_times(name, data, args.steps, world)
        step_ms = statistics.median(times) * 1e3
        line = f"{name:20s} step {step_ms:7.2f} ms"
        if world.distributed:
            tensors = _gathers(name, world)
            sent = sum(t.numel() * t.element_size() for t, _ in tensors)
            ms = _collective_ms(tensors, world) if tensors else 0.0
            line += (
                f"  selection all-gathers {ms:5.2f} ms ({ms / step_ms:5.1%}), {sent} B sent/rank"
            )
        if lead:
            print(line, flush=True)
    if world.distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
