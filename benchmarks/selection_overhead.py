"""Time the phases of one learner step for each method: how much does selection itself cost?

"Selection machinery" is everything but model forwards and backwards: the reference-loss lookup,
the score arithmetic, sampling, and (for stale scoring) the loss memory's lookup and update. It
is the training loop's "select" phase. The reference losses here are random (their values do not
change the cost), so no reference is trained.

    .venv/bin/python benchmarks/selection_overhead.py [--model mlp] [--steps 600]
"""

from __future__ import annotations

import argparse

import torch

from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.models import build_model
from siftdata.online import build_method
from siftdata.store import ScoreTable
from siftdata.train import TrainConfig, TrainData, train

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
    data = TrainData(
        inputs=x, labels=y, test_inputs=x[:10], test_labels=y[:10], reference_losses=table
    )
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
    print("| method | score | select | train | step | select / step | select / train |")
    print("|---|---|---|---|---|---|---|")
    for name in METHODS:
        torch.manual_seed(0)
        result = train(build_model(args.model), build_method(name), data, config)
        ms = {
            p: 1e3 * result.ledger[p]["seconds"] / args.steps for p in ("score", "select", "train")
        }
        step = sum(ms.values())
        print(
            f"| {name} | {ms['score']:.2f} | {ms['select']:.3f} | {ms['train']:.2f} | {step:.2f} "
            f"| {ms['select'] / step:.1%} | {ms['select'] / ms['train']:.1%} |"
        )


if __name__ == "__main__":
    main()
