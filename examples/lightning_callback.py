"""RHO-LOSS learnability in Lightning: a callback and a one-line ``training_step``.

Fashion-MNIST with 40% symmetric label noise. A reference MLP is trained on a small clean holdout
and its loss on every pool example cached by id; the Lightning learner draws super-batches of
B = 4·b rows ``(id, x, y)`` and trains on the b most learnable ones, selected by
``selective_step``. ``--devices 2`` runs Lightning's ``ddp`` strategy on two CPU processes with
one global selection. Prints the clean test accuracy and the share of mislabeled examples among
those trained on (0.4 for uniform).

    python examples/lightning_callback.py --steps 1000 [--method uniform] [--devices 2]
"""

from __future__ import annotations

import argparse
import tempfile

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from siftdata.data import (
    WithIndex,
    load_fashion_mnist,
    pool_holdout_split,
    symmetric_noise,
    to_float_images,
)
from siftdata.integrations.lightning import SelectionCallback, selective_step
from siftdata.models import build_model
from siftdata.online import build_method
from siftdata.reference.losses import compute_losses, train_reference_model
from siftdata.store import ScoreTable


class Learner(pl.LightningModule):
    def __init__(self, selection: SelectionCallback) -> None:
        super().__init__()
        self.net, self.selection = build_model("mlp"), selection

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return selective_step(self, batch, self.selection)  # the whole diff

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--method", default="learnability")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--reference-epochs", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    images, labels = load_fashion_mnist("train")
    pool, holdout = pool_holdout_split(60_000, holdout_size=10_000, seed=0)
    x = to_float_images(images)
    noisy = symmetric_noise(labels[pool], 0.4, num_classes=10, seed=1)
    reference = train_reference_model(
        build_model("mlp"), x[holdout[1000:]], labels[holdout[1000:]], val_inputs=x[holdout[:1000]],
        val_labels=labels[holdout[:1000]], epochs=args.reference_epochs, progress=False,
    ).model  # fmt: skip
    cached = ScoreTable(torch.arange(len(pool)), compute_losses(reference, x[pool], noisy.labels))
    method = build_method(args.method, reference=cached, example_ids=len(pool), num_classes=10,
                          super_batch_factor=4)  # fmt: skip
    trained: list[torch.Tensor] = []
    selection = SelectionCallback(method, super_batch_factor=4, on_trained=trained.append)
    rows = WithIndex(TensorDataset(x[pool], noisy.labels))
    learner = Learner(selection)
    with tempfile.TemporaryDirectory() as out:
        trainer = pl.Trainer(max_steps=args.steps, accelerator="cpu", devices=args.devices,
                             strategy="ddp" if args.devices > 1 else "auto", callbacks=[selection],
                             default_root_dir=out, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
        trainer.fit(learner, DataLoader(rows, batch_size=4 * 64, shuffle=True, drop_last=True))
    test_images, test_labels = load_fashion_mnist("test")
    with torch.no_grad():
        predicted = learner.net(to_float_images(test_images)).argmax(1)
    accuracy = (predicted == test_labels).float().mean().item()
    mislabeled = noisy.is_corrupted[torch.cat(trained).cpu()].float().mean().item()
    if trainer.is_global_zero:
        print(f"{args.method}: clean test accuracy {accuracy:.4f}, "
              f"mislabeled share of trained examples {mislabeled:.3f}")  # fmt: skip
    return accuracy, mislabeled


if __name__ == "__main__":
    main()
