"""Selection via Proxy in a few lines: a cheap proxy ranks the data, the target trains on a core-set.

1. Train a proxy (a narrow MLP, a couple of epochs) and score every training image by the
   proxy's EL2N-style uncertainty (``‖softmax − onehot‖``) in one batched, no-grad pass;
2. keep the hardest half (``select_subset``), stored by example id with a manifest;
3. load the selection into a ``Subset`` and train the target (a CNN) on it with a plain loop.

Prints the proxy's seconds, the core-set's size and the target's test accuracy.

    python examples/svp_coreset.py --keep 0.5 --target-epochs 4
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from siftdata.data import load_fashion_mnist, to_float_images
from siftdata.models import build_model
from siftdata.models.evaluation import evaluate
from siftdata.offline import (
    Recipe,
    fit,
    load_selection,
    save_selection,
    score_dataset,
    select_subset,
    subset_of,
)
from siftdata.scoring.scorers import GradNormBound
from siftdata.store import dataset_fingerprint


def main(argv: list[str] | None = None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=float, default=0.5)
    p.add_argument("--pool-size", type=int, default=60000)
    p.add_argument("--proxy-epochs", type=int, default=2)
    p.add_argument("--target-epochs", type=int, default=4)
    args = p.parse_args(argv)

    images, labels = load_fashion_mnist("train")
    images, labels = images[: args.pool_size], labels[: args.pool_size]
    x = to_float_images(images)
    test_x, test_y = load_fashion_mnist("test")

    # 1. the proxy: the target's recipe, narrower and shorter
    proxy = fit(Recipe(model="mlp", width=0.5, epochs=args.proxy_epochs), x, labels, seed=0)
    scored = score_dataset(proxy.model, x, labels, {"el2n": GradNormBound()})
    print(f"proxy: trained in {proxy.seconds:.1f} s, scored in {scored.seconds:.1f} s")

    # 2. the core-set, kept on disk by example id (here the ids are the positions)
    kept = select_subset(scored.scores["el2n"], policy="hardest", keep=args.keep)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "el2n-hardest"
        fingerprint = dataset_fingerprint(labels, images)
        save_selection(
            path,
            kept,
            policy="hardest",
            n_total=len(labels),
            fingerprint=fingerprint,
            score="el2n",
            direction="higher-keep",
            keep=args.keep,
        )
        selection = load_selection(path, fingerprint=fingerprint)  # refused for other data

    # 3. the target on the core-set: an ordinary DataLoader over a Subset
    core = subset_of(TensorDataset(x, labels), selection.ids)
    print(f"core-set: {len(core)} of {len(labels)} examples")
    with torch.random.fork_rng():  # seeded initial weights; the global RNG is left as it was
        torch.manual_seed(0)
        model = build_model("cnn")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    loader = DataLoader(
        core, batch_size=128, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    for _ in range(args.target_epochs):
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    accuracy = evaluate(model, to_float_images(test_x), test_y)["test_acc"]
    print(f"target test accuracy on the core-set: {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
