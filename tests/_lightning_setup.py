"""A small Lightning learner for the integration tests: real Fashion-MNIST, an MLP, SGD."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from siftdata.data import WithIndex, load_fashion_mnist, to_float_images
from siftdata.integrations.lightning import SelectionCallback, selective_step
from siftdata.models import build_model
from siftdata.online import build_method
from siftdata.store import ScoreTable

N = 640


class Learner(pl.LightningModule):
    def __init__(self, selection: SelectionCallback, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = build_model("mlp")
        self.selection = selection

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        return selective_step(self, batch, self.selection)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def method(name: str = "learnability", seed: int = 0):
    reference = ScoreTable(
        torch.arange(N), 1.5 + torch.rand(N, generator=torch.Generator().manual_seed(3))
    )
    return build_method(
        name, reference=reference, example_ids=N, num_classes=10, super_batch_factor=4, seed=seed
    )


def loader(batch_size: int, shuffle: bool = True, sampler=None) -> DataLoader:
    """Super-batches of ``(ids, x, y)``; ``sampler`` a function of the rows (e.g. each rank's)."""
    images, labels = load_fashion_mnist("train")
    rows = WithIndex(TensorDataset(to_float_images(images[:N]), labels[:N]))
    if sampler is not None:
        return DataLoader(rows, batch_size=batch_size, sampler=sampler(rows), drop_last=True)
    g = torch.Generator().manual_seed(1)
    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, drop_last=True, generator=g)


def trainer(out, selection: SelectionCallback, **options) -> pl.Trainer:
    settings = dict(
        default_root_dir=str(out), max_steps=5, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    settings.update(options)
    return pl.Trainer(callbacks=[selection, *settings.pop("callbacks", [])], **settings)
