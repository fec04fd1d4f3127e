"""The library loop's step time against a minimal hand-written loop doing the same work.

Both draw super-batches from an epoch-wise shuffled order, score them with the same scorer (one
no-grad forward for fresh learnability, none for stale), select with the same sampler and take a
fused-AdamW step; the library loop adds its bookkeeping (per-phase timing and FLOPs, device-side
counters, the LR schedule, divergence detection). Both are timed in the steady state, from step
``WARMUP`` to the last (the library's one-off start — FLOP counting of the first step, the data
fingerprint, the step-0 evaluation — is left out, as a hand-written loop has none). Runs alternate
(hand, library, hand, ...) and the median per-step time of each is compared. Prints one row per
method and the ratio library / hand.

    .venv/bin/python benchmarks/loop_overhead.py [--model mlp] [--steps 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

import siftdata
from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.models import build_model
from siftdata.online import build_method
from siftdata.store import ScoreTable
from siftdata.training.loop import TrainConfig, TrainData, train

B_FACTOR, SMALL_B = 10, 64
WARMUP = 50  # steps before timing starts, in both loops


def _data(n: int = 50_000):
    images, labels = load_fashion_mnist("train")
    x, y = to_float_images(images[:n]), labels[:n]
    table = ScoreTable(torch.arange(n), torch.rand(n, generator=torch.Generator().manual_seed(0)))
    return x, y, table


def _model(name: str):
    torch.manual_seed(0)
    return build_model(name)


def hand_written(name: str, model_name: str, steps: int, x, y, table) -> float:
    """Seconds per step of a plain loop doing the method's work with siftdata's pieces."""
    model = _model(model_name)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2, fused=True)
    n, b = x.shape[0], SMALL_B
    big_b = b if name == "uniform" else B_FACTOR * b
    memory = siftdata.LossMemory(n, initial=math.log(10))
    learner = siftdata.RememberedLoss(memory) if name.endswith("+stale") else siftdata.LearnerLoss()
    scorer = siftdata.Learnability(
        learner, siftdata.ReferenceLoss(table), learner_loss_cap=math.log(10)
    )
    selector = siftdata.SoftmaxSampler(seed=0)
    gen, order, cursor = torch.Generator().manual_seed(0), None, n
    start = None
    for step in range(steps):
        if step == WARMUP:
            start = time.perf_counter()
        if cursor + big_b > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        pos = order[cursor : cursor + big_b]
        cursor += big_b
        if name != "uniform":
            xs = x.index_select(0, pos) if not name.endswith("+stale") else None
            ys = y.index_select(0, pos) if xs is not None else None
            sel = siftdata.select_batch(model, xs, ys, pos, k=b, scorer=scorer, selector=selector)
            pos = pos.index_select(0, sel.indices)
        xb, yb = x.index_select(0, pos), y.index_select(0, pos)
        losses = F.cross_entropy(model(xb), yb, reduction="none")
        if name.endswith("+stale"):
            memory.update(pos, losses.detach())
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        opt.step()
    return (time.perf_counter() - start) / (steps - WARMUP)


def library(name: str, model_name: str, steps: int, x, y, table) -> float:
    """Seconds per step of :func:`siftdata.training.loop` from step ``WARMUP`` to its last step."""
    data = TrainData(inputs=x, labels=y, test_inputs=x[:10], test_labels=y[:10])
    method = build_method(name, reference=table, example_ids=x.shape[0], num_classes=10)
    config = TrainConfig(
        steps=steps,
        super_batch_factor=B_FACTOR,
        eval_every=10**9,
        progress=False,
        schedule="cosine",
    )
    ticks = {}

    def tick(step, ids):
        if step in (WARMUP, steps):
            ticks[step] = time.perf_counter()

    train(_model(model_name), method, data, config, on_step=tick)
    return (ticks[steps] - ticks[WARMUP]) / (steps - WARMUP)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--methods", default="uniform,learnability,learnability+stale")
    args = p.parse_args()
    x, y, table = _data()
    print(
        f"{args.model}, b={SMALL_B}, B={B_FACTOR * SMALL_B}, {args.steps} steps × {args.repeats} "
        f"alternating repeats, {torch.get_num_threads()} threads; median ms per step"
    )
    print("| method | hand-written | siftdata.training.loop | library / hand |")
    print("|---|---|---|---|")
    for name in args.methods.split(","):
        hand, lib = [], []
        for _ in range(args.repeats):
            hand.append(hand_written(name, args.model, args.steps, x, y, table))
            lib.append(library(name, args.model, args.steps, x, y, table))
        h, s = statistics.median(hand), statistics.median(lib)
        print(f"| {name} | {1e3 * h:.2f} | {1e3 * s:.2f} | {s / h:.3f} |")


if __name__ == "__main__":
    main()
