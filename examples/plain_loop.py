"""Online batch selection in a plain PyTorch loop: the README's few-line diff, runnable.

Fashion-MNIST with 40% symmetric label noise. A reference model is trained on a small clean
holdout and its loss on every pool example is cached by id; the learner then draws super-batches
of B = 10·b examples through an ordinary DataLoader and trains on the b most learnable ones
(softmax sampling of learner loss − reference loss). ``--stale`` scores with remembered losses
instead of a forward pass over the super-batch. Prints the clean test accuracy and the share of
trained examples whose label was corrupted (0.4 for uniform sampling).

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
from siftdata.reference.losses import (
    compute_losses,
    load_reference_losses,
    save_reference_losses,
    train_reference_model,
)
from siftdata.store import dataset_fingerprint


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


def load_data(args):
    images, labels = load_fashion_mnist("train")
    pool_idx, holdout_idx = pool_holdout_split(60_000, holdout_size=10_000, seed=args.seed)
    pool_idx = pool_idx[: args.pool_size]
    x = to_float_images(images)
    noisy = symmetric_noise(labels[pool_idx], 0.4, num_classes=10, seed=args.seed + 1)
    return x[pool_idx], noisy, x[holdout_idx], labels[holdout_idx]


def main(argv=None) -> tuple[float, float]:
    """Train; return (clean test accuracy, share of trained examples that were mislabeled)."""
    args = parse_args(argv)
    pool_x, noisy, holdout_x, holdout_y = load_data(args)
    pool_y, b = noisy.labels, args.batch_size
    torch.manual_seed(args.seed)
    model = build_model("mlp")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # drop_last: every batch holds B = 10·b examples to choose b from
    loader = DataLoader(
        WithIndex(TensorDataset(pool_x, pool_y)), batch_size=10 * b, shuffle=True, drop_last=True
    )
    trained_corrupted, step = 0, 0
    with tempfile.TemporaryDirectory(prefix="siftdata-ref-") as cache_dir:
        build_reference_cache(
            pool_x,
            pool_y,
            holdout_x,
            holdout_y,
            cache_dir,
            seed=args.seed,
            epochs=args.reference_epochs,
        )
        # --- the siftdata part: reference losses (checked against this data), scorer, selector ----
        ref = load_reference_losses(cache_dir, fingerprint=dataset_fingerprint(pool_y, pool_x))
        if args.stale:
            memory = siftdata.LossMemory(len(pool_y), initial=math.log(10))
            learner = siftdata.RememberedLoss(memory)  # no forward over the super-batch
        else:
            learner = siftdata.LearnerLoss()  # one no-grad forward over the super-batch
        scorer = siftdata.Learnability(
            learner, siftdata.ReferenceLoss(ref), learner_loss_cap=math.log(10)
        )
        selector = siftdata.SoftmaxSampler(seed=args.seed)
        while step < args.steps:
            for ids, xb, yb in loader:
                sel = siftdata.select_batch(
                    model, xb, yb, ids, k=b, scorer=scorer, selector=selector
                )
                ids, xb, yb = ids[sel.indices], xb[sel.indices], yb[sel.indices]
                # --- the ordinary training step -------------------------------------------------
                losses = F.cross_entropy(model(xb), yb, reduction="none")
                scorer.observe(ids, losses)  # stale scoring remembers them (free); else a no-op
                opt.zero_grad()
                losses.mean().backward()
                opt.step()
                trained_corrupted += noisy.is_corrupted[ids].sum()  # stays a tensor: no sync
                step += 1
                if step == args.steps:
                    break

    test_images, test_labels = load_fashion_mnist("test")
    with torch.no_grad():
        accuracy = float(
            (model(to_float_images(test_images)).argmax(1) == test_labels).float().mean()
        )
    mislabeled = int(trained_corrupted) / (args.steps * b)
    print(
        f"clean test accuracy after {args.steps} steps: {accuracy:.4f}; "
        f"mislabeled share of trained examples: {mislabeled:.3f} (uniform: 0.400)"
    )
    return accuracy, mislabeled


if __name__ == "__main__":
    main()
