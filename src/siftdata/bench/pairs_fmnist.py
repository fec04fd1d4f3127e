"""Scenario ``pairs-fmnist`` (docs/benchmarks.md): contrastive image–caption pairs for JEST.

Real Fashion-MNIST images paired with captions built from WordNet (:mod:`siftdata.data.pairs`):
coarse (class-level) or fine (also the image's measured attributes, so same-class pairs are hard
negatives); a share ``mismatch`` of the pool's pairs carry another class's caption, as web data
does. The reference two-tower model is trained on a small clean curated set; its embeddings of
every pool pair are cached in the run folder by example id (fingerprint-checked, reused only when
every reference option matches). The learner is a tiny two-tower model trained with the sigmoid
(SigLIP) loss; metrics are zero-shot test accuracy via class prompts and image→text recall@1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._config import check_choice, check_float_field, check_int_field, option
from .._seeding import derive_seed
from ..data.pairs import CAPTION_VARIANTS, PairsData, build_pairs
from ..ledger import count_flops
from ..models.two_tower import TwoTower
from ..reference.embeddings import (
    ReferenceEmbeddings,
    embed_pairs,
    load_reference_embeddings,
    save_reference_embeddings,
)
from ..reference.pair_training import train_two_tower
from ..store import dataset_fingerprint
from ..training.loop import ReferenceCost, TrainData
from ..training.pair_eval import PairEvaluator
from .common import DEVICES, check_cache_options, resolve_device, seeded, timed

__all__ = [
    "CAPTION_VARIANTS",
    "PairsFmnistConfig",
    "PairReference",
    "prepare_pairs",
    "pairs_train_data",
    "pair_evaluator",
    "seeded_two_tower",
    "pair_reference_for",
]

TRAIN_IMAGES = 60_000


@dataclass
class PairsFmnistConfig:
    """The scenario's data, reference and device options (the CLI's options of the same names)."""

    captions: str = option(
        "coarse",
        "coarse (class-level) or fine (with measured image attributes)",
        choices=CAPTION_VARIANTS,
    )
    mismatch: float = option(0.5, "share of pool pairs with another class's caption")
    pool_size: int = option(50_000, "training pairs in the pool (the rest of the 60k is held out)")
    curated_size: int = option(5_000, "clean held-out pairs the reference is trained on")
    reference_steps: int = option(3_000, "SigLIP training steps of the reference (batch 128)")
    embed_dim: int = option(64, "width of the two-tower embeddings")
    device: str = option(
        "auto", "where to train: cpu, cuda, or auto (cuda if present)", choices=DEVICES
    )

    def __post_init__(self) -> None:
        check_choice(self.captions, "captions", CAPTION_VARIANTS)
        check_float_field(self.mismatch, "mismatch", low=0.0, high=0.95)
        check_int_field(self.pool_size, "pool_size", low=2, high=TRAIN_IMAGES - 2)
        check_int_field(
            self.curated_size, "curated_size", low=2, high=TRAIN_IMAGES - self.pool_size
        )
        check_int_field(self.reference_steps, "reference_steps", low=1)
        check_int_field(self.embed_dim, "embed_dim", low=2)
        check_choice(self.device, "device", DEVICES)
        resolve_device(self.device)

    def reference_options(self, seed: int) -> dict:
        """Everything the cached reference embeddings depend on."""
        return {
            "captions": self.captions,
            "curated_size": self.curated_size,
            "reference_steps": self.reference_steps,
            "embed_dim": self.embed_dim,
            "pool_size": self.pool_size,
            "mismatch": self.mismatch,
            "seed": seed,
        }


def prepare_pairs(cfg: PairsFmnistConfig, seed: int) -> PairsData:
    """The pool (with mismatched pairs), the curated set and the test set, as CPU tensors."""
    return build_pairs(
        captions=cfg.captions,
        mismatch=cfg.mismatch,
        pool_size=cfg.pool_size,
        curated_size=cfg.curated_size,
        seed=derive_seed(seed, "pairs"),
    )


def pairs_train_data(d: PairsData) -> TrainData:
    """The pool and test set as :class:`TrainData`: inputs ``(images, tokens)``; the image's class
    as the label (for the fingerprint); mismatched pairs as the "corrupted" ones."""
    return TrainData(
        inputs=(d.pool_images, d.pool_tokens),
        labels=d.pool_labels,
        test_inputs=(d.test_images, d.test_tokens),
        test_labels=d.test_labels,
        is_corrupted=d.pool_mismatched,
    )


def pair_evaluator(d: PairsData, device: torch.device) -> PairEvaluator:
    return PairEvaluator(
        d.test_images.to(device),
        d.test_tokens.to(device),
        d.test_labels.to(device),
        d.prompt_tokens.to(device),
    )


def seeded_two_tower(d: PairsData, cfg: PairsFmnistConfig, *, seed: int, device) -> TwoTower:
    """A fresh two-tower model with weights fixed by ``seed``; the global RNGs are left as they were."""
    return seeded(
        lambda: TwoTower(len(d.vocabulary), embed_dim=cfg.embed_dim), seed=seed, device=device
    )


@dataclass
class PairReference:
    """The cached reference embeddings of a run folder and what producing them cost."""

    table: ReferenceEmbeddings
    cost: ReferenceCost
    info: dict


def _train_reference(cfg: PairsFmnistConfig, d: PairsData, seed: int, progress: bool):
    device = resolve_device(cfg.device)
    model = seeded_two_tower(d, cfg, seed=derive_seed(seed, "reference-init"), device=device)
    trained = train_two_tower(
        model,
        d.curated_images.to(device),
        d.curated_tokens.to(device),
        steps=cfg.reference_steps,
        seed=derive_seed(seed, "reference-train"),
        progress=progress,
    )
    quality = pair_evaluator(d, device)(model)
    info = {
        "train_flops": int(trained["flops"]),
        "train_seconds": float(trained["seconds"]),
        "zero_shot_acc": quality["test_acc"],
        "recall_at_1": quality["recall_at_1"],
    }
    return model, info


def _load_or_train(cfg, d: PairsData, out: Path, seed: int, progress: bool) -> ReferenceEmbeddings:
    cache = out / "reference_embeddings"
    fingerprint = dataset_fingerprint(d.pool_labels, (d.pool_images, d.pool_tokens))
    wanted = cfg.reference_options(seed)
    if not (cache / "manifest.json").exists():
        model, info = _train_reference(cfg, d, seed, progress)
        device = resolve_device(cfg.device)
        emb = embed_pairs(model, d.pool_images.to(device), d.pool_tokens.to(device))
        ids = torch.arange(len(d.pool_labels))
        save_reference_embeddings(
            cache, ids, emb.to("cpu"), fingerprint=fingerprint, meta={**wanted, **info}
        )
    table = load_reference_embeddings(cache, fingerprint=fingerprint)
    check_cache_options(table.manifest.get("meta") or {}, wanted, cache, "reference embeddings")
    return table


def _pair_forward_flops(model: nn.Module, d: PairsData, device) -> float:
    """FLOPs of one two-tower forward per pair, measured on 64 pairs."""
    images, tokens = d.pool_images[:64].to(device), d.pool_tokens[:64].to(device)
    with torch.no_grad():
        _, flops = count_flops(model, (images, tokens))
    return flops / 64


def pair_reference_for(
    cfg: PairsFmnistConfig, d: PairsData, out: Path, *, seed: int, progress: bool
) -> PairReference:
    """The reference-embeddings cache in ``out/reference_embeddings`` (trained if absent) and its
    costs: the cache fill is charged as one two-tower forward over the pool (FLOPs counted, seconds
    of a plain pass), its training separately (end-to-end figures)."""
    table = _load_or_train(cfg, d, out, seed, progress)
    info = dict(table.manifest.get("meta") or {})
    device = resolve_device(cfg.device)
    probe = seeded_two_tower(d, cfg, seed=0, device=device)
    flops = _pair_forward_flops(probe, d, device) * len(d.pool_labels)
    seconds = timed(lambda: embed_pairs(probe, d.pool_images, d.pool_tokens), device)
    cost = ReferenceCost(
        forward_flops=int(flops),
        forward_seconds=seconds,
        train_flops=int(info.get("train_flops", 0)),
        train_seconds=float(info.get("train_seconds", 0.0)),
    )
    return PairReference(table=table.to(device), cost=cost, info=info)
