"""Scenario ``noisy-fmnist`` (docs/benchmarks.md): the data and the reference model.

The 60k training images are split into a 50k pool and a 10k holdout (fixed seed); symmetric label
noise at rate ``noise`` is injected into the pool. The reference ("irreducible loss") model is trained
on the holdout — clean (JEST's curated reference), noisy (RHO-LOSS's setting), or not at all in
``two-halves`` mode, where two references trained on halves of the pool score each other's half.
Its loss on every pool example is cached in the run folder by example id, fingerprint-checked and
reused only when every reference option matches. Test accuracy is on the clean 10k test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .._config import check_choice, check_float_field, check_int_field, option
from .._seeding import derive_seed
from ..data import load_fashion_mnist, pool_holdout_split, symmetric_noise, to_float_images
from ..ledger import ComputeLedger
from ..models import MODEL_NAMES
from ..reference import (
    compute_losses,
    load_reference_losses,
    save_reference_losses,
    train_reference_model,
    two_halves_losses,
)
from ..store import ScoreTable, dataset_fingerprint
from ..training.loop import ReferenceCost, TrainData
from .common import (
    DEVICES,
    check_cache_options,
    forward_flops_per_example,
    resolve_device,
    seeded_model,
    timed,
)

__all__ = [
    "NoisyFmnistConfig",
    "REFERENCE_MODES",
    "NOISY_T",
    "TRAIN_IMAGES",
    "prepare_data",
    "Reference",
    "reference_for",
]

REFERENCE_MODES = ("clean-holdout", "noisy-holdout", "two-halves")
NOISY_T = 1 / 3
"""Default reference temperature for references trained on noisy labels (see docs/benchmarks.md)."""
TRAIN_IMAGES = 60_000
NUM_CLASSES = 10


@dataclass
class NoisyFmnistConfig:
    """The scenario's data, reference and device options (the CLI's options of the same names)."""

    noise: float = option(0.4, "symmetric label-noise rate in the pool")
    model: str = option("mlp", "learner and reference architecture", choices=MODEL_NAMES)
    reference: str = option(
        "clean-holdout", "how the reference model is trained", choices=REFERENCE_MODES
    )
    holdout_size: int = option(10_000, "training images held out of the pool for the reference")
    reference_val_size: int = option(
        1_000, "holdout images used for the reference's early stopping"
    )
    reference_epochs: int = option(
        30, "most epochs of reference training (early stopping usually ends it sooner)"
    )
    reference_temperature: float | None = option(
        None,
        "reference losses from logits / T; default 1 for clean-holdout, 1/3 for the references "
        "trained on noisy labels",
    )
    device: str = option(
        "auto", "where to train: cpu, cuda, or auto (cuda if present)", choices=DEVICES
    )

    def __post_init__(self) -> None:
        check_float_field(self.noise, "noise", low=0.0, high=0.99)
        check_choice(self.model, "model", MODEL_NAMES)
        check_choice(self.reference, "reference", REFERENCE_MODES)
        check_int_field(self.holdout_size, "holdout_size", low=2, high=TRAIN_IMAGES - 1)
        check_int_field(
            self.reference_val_size, "reference_val_size", low=1, high=self.holdout_size - 1
        )
        check_int_field(self.reference_epochs, "reference_epochs", low=1)
        if self.reference_temperature is not None:
            check_float_field(
                self.reference_temperature, "reference_temperature", low=0.0, low_open=True
            )
        check_choice(self.device, "device", DEVICES)
        resolve_device(self.device)  # "cuda" without a GPU fails here, before any data is loaded

    @property
    def pool_size(self) -> int:
        return TRAIN_IMAGES - self.holdout_size

    def temperature(self) -> float:
        """The reference temperature, with the mode's default filled in."""
        if self.reference_temperature is not None:
            return float(self.reference_temperature)
        return 1.0 if self.reference == "clean-holdout" else NOISY_T

    def reference_options(self, seed: int) -> dict:
        """Everything the cached reference losses depend on (a cache is reused only if all match)."""
        return {
            "mode": self.reference,
            "model": self.model,
            "temperature": self.temperature(),
            "epochs": self.reference_epochs,
            "holdout_size": self.holdout_size,
            "reference_val_size": self.reference_val_size,
            "noise": self.noise,
            "seed": seed,
        }


def prepare_data(cfg: NoisyFmnistConfig, seed: int) -> dict:
    """Pool (noisy), holdout and clean test set, as CPU tensors; ``seed`` fixes split and noise."""
    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    x, x_test = to_float_images(images), to_float_images(test_images)
    pool_idx, holdout_idx = pool_holdout_split(
        x.shape[0], holdout_size=cfg.holdout_size, seed=derive_seed(seed, "pool-holdout-split")
    )
    noisy = symmetric_noise(
        labels[pool_idx], cfg.noise, num_classes=NUM_CLASSES, seed=derive_seed(seed, "pool-noise")
    )
    holdout_labels = labels[holdout_idx]
    if cfg.reference == "noisy-holdout":
        holdout_labels = symmetric_noise(
            holdout_labels,
            cfg.noise,
            num_classes=NUM_CLASSES,
            seed=derive_seed(seed, "holdout-noise"),
        ).labels
    return {
        "pool_x": x[pool_idx],
        "pool_y": noisy.labels,
        "is_corrupted": noisy.is_corrupted,
        "holdout_x": x[holdout_idx],
        "holdout_y": holdout_labels,
        "test_x": x_test,
        "test_y": test_labels,
    }


def train_data(d: dict) -> TrainData:
    """The pool and test set as :class:`TrainData` (ids are pool positions)."""
    return TrainData(
        inputs=d["pool_x"],
        labels=d["pool_y"],
        test_inputs=d["test_x"],
        test_labels=d["test_y"],
        is_corrupted=d["is_corrupted"],
    )


def _train_reference(
    cfg: NoisyFmnistConfig, d: dict, seed: int, progress: bool
) -> tuple[torch.Tensor, dict]:
    """Train the reference in the configured mode; its pool losses and what training cost."""
    device = resolve_device(cfg.device)
    ledger = ComputeLedger(device=device)
    init = derive_seed(seed, "reference-init")
    if cfg.reference == "two-halves":
        losses = two_halves_losses(
            lambda: seeded_model(cfg.model, seed=init, device=device),
            d["pool_x"],
            d["pool_y"],
            seed=derive_seed(seed, "reference-train"),
            epochs=cfg.reference_epochs,
            temperature=cfg.temperature(),
            ledger=ledger,
            progress=progress,
        )
        info: dict = {}
    else:
        v = cfg.reference_val_size
        result = train_reference_model(
            seeded_model(cfg.model, seed=init, device=device),
            d["holdout_x"][v:],
            d["holdout_y"][v:],
            val_inputs=d["holdout_x"][:v],
            val_labels=d["holdout_y"][:v],
            seed=derive_seed(seed, "reference-train"),
            epochs=cfg.reference_epochs,
            ledger=ledger,
            progress=progress,
        )
        losses = compute_losses(
            result.model, d["pool_x"], d["pool_y"], temperature=cfg.temperature()
        )
        info = {"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss}
    totals = ledger.totals()["reference_train"]
    info.update(train_flops=int(totals["flops"]), train_seconds=float(totals["seconds"]))
    return losses, info


@dataclass
class Reference:
    """The cached reference losses of a run folder and what producing them cost."""

    table: ScoreTable
    cost: ReferenceCost
    info: dict


def _load_or_train(
    cfg: NoisyFmnistConfig, d: dict, out: Path, seed: int, progress: bool
) -> ScoreTable:
    cache = out / "reference_cache"
    fingerprint = dataset_fingerprint(d["pool_y"], d["pool_x"])
    wanted = cfg.reference_options(seed)
    if not (cache / "manifest.json").exists():
        losses, info = _train_reference(cfg, d, seed, progress)
        ids = torch.arange(d["pool_x"].shape[0])
        save_reference_losses(cache, ids, losses, fingerprint=fingerprint, meta={**wanted, **info})
    table = load_reference_losses(cache, fingerprint=fingerprint)
    check_cache_options(table.manifest.get("meta") or {}, wanted, cache, "a reference")
    return table


def reference_for(
    cfg: NoisyFmnistConfig, d: dict, out: Path, *, seed: int, progress: bool
) -> Reference:
    """The reference-loss cache in ``out/reference_cache`` (trained if absent) and its costs.

    The cache fill is charged at the FLOPs and seconds of one learner-sized forward over the pool,
    measured here the same way in every mode, on the run's device: FLOPs counted on one example
    (times the pool size), seconds of a plain, uncounted pass (synchronised on a GPU: one-off).
    """
    table = _load_or_train(cfg, d, out, seed, progress)
    info = dict(table.manifest.get("meta") or {})
    device = resolve_device(cfg.device)
    probe = seeded_model(cfg.model, seed=0, device=device)
    flops = forward_flops_per_example(probe, d["pool_x"][0].to(device)) * len(d["pool_y"])
    seconds = timed(lambda: compute_losses(probe, d["pool_x"], d["pool_y"]), device)
    cost = ReferenceCost(
        forward_flops=int(flops),
        forward_seconds=seconds,
        train_flops=int(info.get("train_flops", 0)),
        train_seconds=float(info.get("train_seconds", 0.0)),
    )
    return Reference(table=table, cost=cost, info=info)
