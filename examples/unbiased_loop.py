"""Unbiased selection in a plain PyTorch loop: InfoBatch epoch pruning and importance sampling.

``--mode infobatch``: an ordinary DataLoader over Fashion-MNIST with
:class:`siftdata.InfoBatchSampler`. The sampler announces every epoch's length up front, so
OneCycleLR gets its exact ``total_steps``; the training forward's per-example losses go back to the
sampler (free), and each loss is weighted by the sampler's weight, which keeps the gradient
unbiased. ``--mode importance``: super-batches of B = 3·b; b are drawn with replacement ∝ the
gradient-norm bound and weighted by 1/(B·p), while the τ gate says it pays (else b uniform examples
train as drawn). Prints the test accuracy and the share of passes saved (or of steps sampled).

    python examples/unbiased_loop.py --mode infobatch --epochs 8
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import siftdata
from siftdata.data import WithIndex, load_fashion_mnist, to_float_images
from siftdata.models import build_model
from siftdata.models.evaluation import evaluate


def _data(pool_size: int):
    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    x, y = to_float_images(images[:pool_size]), labels[:pool_size].long()
    return x, y, to_float_images(test_images[:2000]), test_labels[:2000].long()


def train_infobatch(x, y, args) -> tuple[torch.nn.Module, float]:
    model = build_model("mlp")
    sampler = siftdata.InfoBatchSampler(len(y), epochs=args.epochs, prune_ratio=0.5, seed=0)
    loader = DataLoader(WithIndex(TensorDataset(x, y)), batch_size=args.batch_size, sampler=sampler)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    total = sampler.num_batches(args.batch_size)  # known before training: the pruned epochs too
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for ids, inputs, labels in loader:
            losses = F.cross_entropy(model(inputs), labels, reduction="none")
            sampler.update(ids, losses.detach())  # the losses it prunes by, for free
            loss = (losses * sampler.weights(ids)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    return model, sampler.passes_saved()


def train_importance(x, y, args) -> tuple[torch.nn.Module, float]:
    """Returns the model and the share of steps that importance-sampled."""
    model = build_model("mlp")
    b, big_b = args.batch_size, 3 * args.batch_size
    sampler = siftdata.ImportanceSampler(seed=0)
    gate = siftdata.VarianceReductionGate(threshold=siftdata.online.paper_tau_threshold(big_b, b))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(0)
    steps, scored = args.epochs * len(y) // b, 0
    for step in range(steps):
        on = gate.should_score(step)
        scored += on
        idx = torch.randint(len(y), (big_b if on else b,), generator=g)
        weights = None
        if on:  # score the super-batch, draw b ∝ bound, weight by 1/(B·p)
            with torch.no_grad():
                bound = siftdata.grad_norm_bound(model(x[idx]), y[idx])
            gate.observe(bound)
            sel = sampler.select(bound, b)
            idx, weights = idx[sel.indices], sel.weights
        logits = model(x[idx])
        losses = F.cross_entropy(logits, y[idx], reduction="none")
        if not on:  # τ from the trained batch's bounds: its forward is already done
            gate.observe(siftdata.grad_norm_bound(logits.detach(), y[idx]))
        loss = (losses * weights).mean() if weights is not None else losses.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, scored / steps


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("infobatch", "importance"), default="infobatch")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args(argv)
    x, y, x_test, y_test = _data(args.pool_size)
    run = train_infobatch if args.mode == "infobatch" else train_importance
    model, saved = run(x, y, args)
    accuracy = evaluate(model, x_test, y_test)["test_acc"]
    share = "training passes saved" if args.mode == "infobatch" else "steps importance-sampled"
    print(f"{args.mode}: test accuracy {accuracy:.4f}, {share} {saved:.1%}")
    return accuracy, saved


if __name__ == "__main__":
    main()
