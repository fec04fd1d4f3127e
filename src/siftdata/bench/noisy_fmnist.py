"""Scenario ``noisy-fmnist`` (shared/BENCHMARKS.md §1): online selection on Fashion-MNIST with label noise.

The 60k training images are split into a 50k pool and a 10k holdout (fixed seed); symmetric label
noise at rate ``noise`` is injected into the pool. The reference ("irreducible loss") model is trained
on the holdout — clean (JEST's curated reference), noisy (RHO-LOSS's setting), or not at all in
``two-halves`` mode, where two references trained on halves of the pool score each other's half.
Every method runs side by side with uniform in the same process; test accuracy is on the clean 10k
test set.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .._seeding import derive_seed
from .._validation import check_fraction, check_positive
from ..data import load_fashion_mnist, pool_holdout_split, symmetric_noise, to_float_images
from ..ledger import ComputeLedger
from ..online import build_method
from ..reference import (
    compute_losses,
    load_reference_losses,
    save_reference_losses,
    train_reference_model,
    two_halves_losses,
)
from ..store import dataset_fingerprint
from ..train import TrainConfig, TrainData, train
from .common import forward_flops_per_example, seeded_model
from .summary import summarize

__all__ = ["NoisyFmnistConfig", "REFERENCE_MODES", "run_noisy_fmnist", "train_single"]

REFERENCE_MODES = ("clean-holdout", "noisy-holdout", "two-halves")
NOISY_T = 1 / 3
"""Default reference temperature for references trained on noisy labels (see docs/benchmarks.md)."""


@dataclass
class NoisyFmnistConfig:
    """Options of the noisy-fmnist scenario (every field has the CLI default)."""

    methods: tuple[str, ...] = ("uniform", "learnability")
    """Methods to compare; uniform is always added."""
    noise: float = 0.4
    """Symmetric label-noise rate in the pool."""
    model: str = "mlp"
    """Learner (and reference) architecture: mlp or cnn."""
    steps: int = 3000
    """Learner update steps per run."""
    seeds: int = 1
    """Number of seeds; run s derives its data order, model init and selector seeds from seed + s."""
    seed: int = 0
    """Base seed; the pool/holdout split and the noise use it too."""
    super_batch_factor: float = 10.0
    """B / b."""
    batch_size: int = 64
    """b."""
    reference: str = "clean-holdout"
    """clean-holdout, noisy-holdout or two-halves."""
    holdout_size: int = 10_000
    """Examples held out of the 60k for the reference."""
    reference_val_size: int = 1_000
    """Slice of the holdout used for the reference's early stopping."""
    eval_every: int = 100
    """Evaluation interval in steps."""
    reference_epochs: int = 30
    """Upper bound on reference training epochs (early stopping usually ends it sooner)."""
    temperature_scale: float = 0.5
    """τ / std(scores) of sampled learnability."""
    learner_loss_cap: float | None = math.log(10)
    """Learnability clips the learner loss at ``log C`` (see ``siftdata.scores.learnability``)."""
    reference_temperature: float | None = None
    """Reference losses are those of logits / T; ``None`` means 1 for the clean holdout and 1/3
    for the references trained on noisy labels (noisy-holdout, two-halves), which are calibrated
    to the noise and so far less confident than a clean reference."""
    progress: bool = True

    def __post_init__(self) -> None:
        check_fraction(self.noise, "noise", high_open=True)
        for name in self.methods:
            build_method(name)  # a clear ValueError for an unknown name
        if "uniform" not in self.methods:
            self.methods = ("uniform", *self.methods)
        if self.reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {REFERENCE_MODES}, got {self.reference!r}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if not 0 < self.reference_val_size < self.holdout_size < 60_000:
            raise ValueError("need 0 < reference_val_size < holdout_size < 60000")
        if self.learner_loss_cap is not None:
            check_positive(self.learner_loss_cap, "learner_loss_cap")
        if self.reference_temperature is None:
            self.reference_temperature = 1.0 if self.reference == "clean-holdout" else NOISY_T
        check_positive(self.reference_temperature, "reference_temperature")


def _prepare_data(cfg: NoisyFmnistConfig) -> dict:
    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    x, x_test = to_float_images(images), to_float_images(test_images)
    pool_idx, holdout_idx = pool_holdout_split(
        x.shape[0], holdout_size=cfg.holdout_size, seed=derive_seed(cfg.seed, "pool-holdout-split")
    )
    noisy = symmetric_noise(
        labels[pool_idx], cfg.noise, num_classes=10, seed=derive_seed(cfg.seed, "pool-noise")
    )
    holdout_labels = labels[holdout_idx]
    if cfg.reference == "noisy-holdout":
        holdout_labels = symmetric_noise(
            holdout_labels, cfg.noise, num_classes=10, seed=derive_seed(cfg.seed, "holdout-noise")
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


def _train_reference(cfg: NoisyFmnistConfig, d: dict) -> tuple[torch.Tensor, dict]:
    """Train the reference in the configured mode; its pool losses and what it cost."""
    ledger = ComputeLedger()
    if cfg.reference == "two-halves":
        losses = two_halves_losses(
            lambda: seeded_model(cfg.model, seed=derive_seed(cfg.seed, "reference-init")),
            d["pool_x"],
            d["pool_y"],
            seed=derive_seed(cfg.seed, "reference-train"),
            epochs=cfg.reference_epochs,
            temperature=cfg.reference_temperature,
            ledger=ledger,
            progress=cfg.progress,
        )
        info: dict = {"mode": cfg.reference}
    else:
        v = cfg.reference_val_size
        result = train_reference_model(
            seeded_model(cfg.model, seed=derive_seed(cfg.seed, "reference-init")),
            d["holdout_x"][v:],
            d["holdout_y"][v:],
            val_inputs=d["holdout_x"][:v],
            val_labels=d["holdout_y"][:v],
            seed=derive_seed(cfg.seed, "reference-train"),
            epochs=cfg.reference_epochs,
            ledger=ledger,
            progress=cfg.progress,
        )
        losses = compute_losses(
            result.model, d["pool_x"], d["pool_y"], temperature=cfg.reference_temperature
        )
        info = {
            "mode": cfg.reference,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
        }
    totals = ledger.totals()["reference_train"]
    info.update(
        model=cfg.model,
        temperature=cfg.reference_temperature,
        train_flops=int(totals["flops"]),
        train_seconds=float(totals["seconds"]),
    )
    return losses, info


def _reference_losses(cfg: NoisyFmnistConfig, d: dict, out: Path) -> dict:
    """The reference-loss cache in ``out/reference_cache``: reused when present (fingerprint-checked),
    else trained, saved and read back; with its costs."""
    cache = out / "reference_cache"
    fingerprint = dataset_fingerprint(d["pool_y"], d["pool_x"])
    if not (cache / "manifest.json").exists():
        losses, info = _train_reference(cfg, d)
        ids = torch.arange(d["pool_x"].shape[0])
        save_reference_losses(cache, ids, losses, fingerprint=fingerprint, meta=info)
    table = load_reference_losses(cache, fingerprint=fingerprint)
    info = table.manifest.get("meta") or {}
    built = (info.get("mode"), info.get("model"), info.get("temperature"))
    wanted = (cfg.reference, cfg.model, cfg.reference_temperature)
    if built != wanted:
        raise ValueError(
            f"{cache} holds a reference for (mode, model, temperature) = {built}, not {wanted}; "
            "use another --out or delete the cache"
        )
    probe = seeded_model(cfg.model, seed=0)
    fwd = forward_flops_per_example(probe, d["pool_x"][0]) * d["pool_x"].shape[0]
    start = time.perf_counter()
    compute_losses(
        probe, d["pool_x"], d["pool_y"]
    )  # the cache's forward pass, timed alike in every mode
    return {
        "table": table,
        "forward_flops": int(fwd),
        "forward_seconds": time.perf_counter() - start,
        "train_flops": int(info.get("train_flops", 0)),
        "train_seconds": float(info.get("train_seconds", 0.0)),
        "info": info,
    }


def _mislabeled_share_by_reference(losses: torch.Tensor, is_corrupted: torch.Tensor) -> dict:
    """How well the reference separates corrupted labels: mean loss on each group."""
    return {
        "reference_loss_corrupted": float(losses[is_corrupted].mean())
        if is_corrupted.any()
        else None,
        "reference_loss_clean": float(losses[~is_corrupted].mean()),
    }


def run_noisy_fmnist(cfg: NoisyFmnistConfig, out: str | Path) -> dict:
    """Run the scenario, write ``out/{config.json, metrics.jsonl, summary.json}``, return the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(
        json.dumps({"scenario": "noisy-fmnist", **asdict(cfg)}, indent=2)
    )
    d = _prepare_data(cfg)
    needs_reference = any(build_method(m).needs_reference_loss for m in cfg.methods)
    ref = _reference_losses(cfg, d, out) if needs_reference else None
    records = []
    runs = [(s, m) for s in range(cfg.seeds) for m in cfg.methods]
    for s, name in tqdm(runs, desc="runs", disable=not cfg.progress):
        records += _run_one(cfg, d, ref, name, cfg.seed + s)
    with open(out / "metrics.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    summary = summarize(records, methods=list(cfg.methods))
    summary["scenario"] = "noisy-fmnist"
    summary["config"] = asdict(cfg)
    if ref is not None:
        summary["reference"] = {
            **ref["info"],
            "train_flops": ref["train_flops"],
            "train_seconds": ref["train_seconds"],
            "forward_flops": ref["forward_flops"],
            **_mislabeled_share_by_reference(ref["table"].scores, d["is_corrupted"]),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _train_inputs(
    cfg: NoisyFmnistConfig, d: dict, ref: dict | None, seed: int
) -> tuple[TrainData, TrainConfig]:
    data = TrainData(
        inputs=d["pool_x"],
        labels=d["pool_y"],
        test_inputs=d["test_x"],
        test_labels=d["test_y"],
        is_corrupted=d["is_corrupted"],
        reference_losses=ref["table"] if ref else None,
        reference_forward_flops=ref["forward_flops"] if ref else 0,
        reference_forward_seconds=ref["forward_seconds"] if ref else 0.0,
        reference_train_flops=ref["train_flops"] if ref else 0,
        reference_train_seconds=ref["train_seconds"] if ref else 0.0,
    )
    config = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        super_batch_factor=cfg.super_batch_factor,
        eval_every=cfg.eval_every,
        seed=seed,
        progress=cfg.progress,
    )
    return data, config


def _learner(cfg: NoisyFmnistConfig, name: str, seed: int):
    """The method (its selector seeded for this run) and a freshly initialised learner."""
    method = build_method(
        name,
        seed=derive_seed(seed, "selector"),
        temperature_scale=cfg.temperature_scale,
        learner_loss_cap=cfg.learner_loss_cap,
    )
    return method, seeded_model(cfg.model, seed=derive_seed(seed, "learner-init"))


def _run_one(cfg: NoisyFmnistConfig, d: dict, ref: dict | None, name: str, seed: int) -> list[dict]:
    method, model = _learner(cfg, name, seed)
    data, config = _train_inputs(cfg, d, ref, seed)
    result = train(model, method, data, config)
    return [{"method": name, "seed": seed, **r} for r in result.records]


def train_single(
    cfg: NoisyFmnistConfig, out: str | Path, *, checkpoint_every: int = 500
) -> list[dict]:
    """One method (the last of ``cfg.methods``), one seed, resumable from ``out/checkpoint.pt``.

    Re-running the same command after an interruption continues where it stopped; the reference
    cache in ``out`` is reused.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = cfg.methods[-1]
    d = _prepare_data(cfg)
    method, model = _learner(cfg, name, cfg.seed)
    ref = _reference_losses(cfg, d, out) if method.needs_reference_loss else None
    data, config = _train_inputs(cfg, d, ref, cfg.seed)
    config.checkpoint_every = checkpoint_every
    result = train(
        model,
        method,
        data,
        config,
        metrics_path=out / "metrics.jsonl",
        checkpoint_path=out / "checkpoint.pt",
    )
    return result.records
