"""Online batch selection in a plain PyTorch loop: the README's few-line diff, runnable.

Fashion-MNIST with 40% symmetric label noise. A reference model is trained on a small clean
holdout and its loss on every pool example is cached by id; the learner then draws super-batches
of B = 10·b examples through an ordinary DataLoader and trains on the b most learnable ones
(softmax sampling of learner loss − reference loss). ``--stale`` scores with remembered losses
instead of a forward pass over the super-batch.

    python examples/plain_loop.py --steps 2000
"""

from __future__ import annotations

import argparse
import math
import tempfile

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import siftdata
from siftdata.data import (
    WithIndex,
    load_fashion_mnist,
    pool_holdout_split,
    symmetric_noise,
    to_float_images,
)
from siftdata.models import build_model
from siftdata.reference import compute_losses, save_reference_losses, train_reference_model
from siftdata.store import dataset_fingerprint, load_scores


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000, help="learner steps (default 2000)")
    p.add_argument("--pool-size", type=int, default=50_000, help="pool examples (default 50000)")
    p.add_argument("--batch-size", type=int, default=64, help="b (default 64)")
    p.add_argument("--reference-epochs", type=int, default=30, help="most reference epochs")
    p.add_argument("--stale", action="store_true", help="score with remembered (stale) losses")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build_reference_cache(pool_x, pool_y, holdout_x, holdout_y, cache_dir, *, seed, epochs):
    """Train the reference on the clean holdout; cache its loss on every pool example by id."""
    reference = train_reference_model(
        build_model("mlp"),
        holdout_x[1000:],
        holdout_y[1000:],
        val_inputs=holdout_x[:1000],
        val_labels=holdout_y[:1000],
        seed=seed,
        epochs=epochs,
    ).model
    losses = compute_losses(reference, pool_x, pool_y)
    fingerprint = dataset_fingerprint(pool_y, pool_x)
    save_reference_losses(cache_dir, torch.arange(len(pool_y)), losses, fingerprint=fingerprint)


def main(argv=None) -> float:
    args = parse_args(argv)
    images, labels = load_fashion_mnist("train")
    pool_idx, holdout_idx = pool_holdout_split(60_000, holdout_size=10_000, seed=args.seed)
    pool_idx = pool_idx[: args.pool_size]
    x = to_float_images(images)
    pool_x, holdout_x, holdout_y = x[pool_idx], x[holdout_idx], labels[holdout_idx]
    pool_y = symmetric_noise(labels[pool_idx], 0.4, num_classes=10, seed=args.seed + 1).labels
    cache_dir = tempfile.mkdtemp(prefix="siftdata-ref-")
    build_reference_cache(
        pool_x,
        pool_y,
        holdout_x,
        holdout_y,
        f"{cache_dir}/ref",
        seed=args.seed,
        epochs=args.reference_epochs,
    )

    torch.manual_seed(args.seed)
    model = build_model("mlp")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    b = args.batch_size
    loader = DataLoader(WithIndex(TensorDataset(pool_x, pool_y)), batch_size=10 * b, shuffle=True)

    # --- the siftdata part: a reference-loss cache, a selector, optionally a loss memory --------
    ref = load_scores(f"{cache_dir}/ref", kind="reference-loss")
    select = siftdata.SoftmaxSampler(temperature_scale=0.5, seed=args.seed)
    memory = siftdata.LossMemory(len(pool_y), initial=math.log(10)) if args.stale else None
    step = 0
    while step < args.steps:
        for ids, xb, yb in loader:
            if memory is None:
                with torch.no_grad():
                    learner_loss = siftdata.per_example_loss(model(xb), yb)
            else:
                learner_loss = memory.lookup(ids)
            score = siftdata.learnability(learner_loss, ref.lookup(ids))
            keep = select(score, k=b).indices
            ids, xb, yb = ids[keep], xb[keep], yb[keep]
            # --- the ordinary training step ------------------------------------------------------
            losses = F.cross_entropy(model(xb), yb, reduction="none")
            if memory is not None:
                memory.update(ids, losses)
            opt.zero_grad()
            losses.mean().backward()
            opt.step()
            step += 1
            if step == args.steps:
                break

    test_images, test_labels = load_fashion_mnist("test")
    with torch.no_grad():
        accuracy = (model(to_float_images(test_images)).argmax(1) == test_labels).float().mean()
    print(f"clean test accuracy after {args.steps} steps: {accuracy:.4f}")
    return float(accuracy)


if __name__ == "__main__":
    main()
