"""Time the phases of one learner step for each method: how much does selection itself cost?

"Selection machinery" is everything but model forwards and backwards: the reference-loss lookup,
the score arithmetic and sampling (the training loop's "select" phase) and, for stale scoring, the
loss memory's update (its "remember" phase). The reference losses here are random (their values do
not change the cost), so no reference is trained.

    .venv/bin/python benchmarks/selection_overhead.py [--model mlp] [--steps 600]
"""

from __future__ import annotations

import argparse

import torch

from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.models import build_model
from siftdata.online import build_method
from siftdata.store import ScoreTable
from siftdata.training.loop import TrainConfig, TrainData, train

METHODS = (
    "uniform",
    "learnability",
    "learnability-topk",
    "learnability+stale",
    "hard-learner",
    "selective-backprop",
    "rank",
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--super-batch-factor", type=float, default=10.0)
    args = p.parse_args()
    images, labels = load_fashion_mnist("train")
    x = to_float_images(images[:50_000])
    y = labels[:50_000]
    table = ScoreTable(
        torch.arange(50_000), torch.rand(50_000, generator=torch.Generator().manual_seed(0))
    )
    data = TrainData(inputs=x, labels=y, test_inputs=x[:10], test_labels=y[:10])
    config = TrainConfig(
        steps=args.steps,
        super_batch_factor=args.super_batch_factor,
        eval_every=10**9,
        progress=False,
    )
    print(
        f"{args.model}, b=64, B={round(64 * args.super_batch_factor)}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads; milliseconds per step"
    )
    print(
        "| method | score | select | remember | train | step | (select + remember) / step "
        "| (select + remember) / train |"
    )
    print("|---|---|---|---|---|---|---|---|")
    phases = ("score", "select", "remember", "train")
    for name in METHODS:
        torch.manual_seed(0)
        method = build_method(name, reference=table, example_ids=50_000, num_classes=10)
        result = train(build_model(args.model), method, data, config)
        ms = {p: 1e3 * result.ledger[p]["seconds"] / args.steps for p in phases}
        step, machinery = sum(ms.values()), ms["select"] + ms["remember"]
        print(
            f"| {name} | {ms['score']:.2f} | {ms['select']:.3f} | {ms['remember']:.3f} "
            f"| {ms['train']:.2f} | {step:.2f} | {machinery / step:.1%} "
            f"| {machinery / ms['train']:.1%} |"
        )


if __name__ == "__main__":
    main()
