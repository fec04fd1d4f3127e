"""Contrastive image–caption pairs from Fashion-MNIST (scenario ``pairs-fmnist``).

The 60k training images are split at random into a pool and a holdout; a small clean *curated*
set for the reference model is drawn from the holdout. Every image gets a caption of its own class
(coarse or fine, :mod:`siftdata.data.captions`); then exactly ``round(mismatch · N)`` pool pairs
get instead the caption of a random pool image of another class, as scraped web data does. The
test set is the 10k Fashion-MNIST test images with clean captions of the same variant.

Nothing is cached on disk: a 50k pool builds in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._seeding import derive_seed
from .._validation import check_fraction, check_int_range
from .captions import (
    ClassText,
    Vocabulary,
    attribute_thresholds,
    attribute_words,
    caption_vocabulary,
    class_prompts,
    class_texts,
    coarse_captions,
    fine_captions,
    image_attributes,
)
from .fmnist import load_fashion_mnist, to_float_images
from .splits import pool_holdout_split

__all__ = ["CAPTION_VARIANTS", "PairsData", "build_pairs", "mismatch_donors"]

CAPTION_VARIANTS = ("coarse", "fine")
"""The caption variants of :func:`build_pairs`."""

_TRAIN_SIZE = 60_000


@dataclass(frozen=True)
class PairsData:
    """The pool, curated and test pairs of the ``pairs-fmnist`` scenario (CPU tensors)."""

    pool_images: Tensor
    """float32 ``(N, 1, 28, 28)``, normalised by :func:`~siftdata.data.to_float_images`."""
    pool_tokens: Tensor
    """int64 ``(N, L)`` caption token ids (0 pads)."""
    pool_labels: Tensor
    """int64 ``(N,)`` the class of each *image* (its caption may be of another class)."""
    pool_mismatched: Tensor
    """bool ``(N,)`` True where the caption belongs to a pool image of another class."""
    pool_caption_source: Tensor
    """int64 ``(N,)`` the pool index of the image whose caption each pair carries (``i`` if clean)."""
    pool_indices: Tensor
    """int64 ``(N,)`` sorted indices of the pool images in the 60k Fashion-MNIST training set."""
    curated_images: Tensor
    """float32 ``(M, 1, 28, 28)`` clean held-out pairs, disjoint from the pool."""
    curated_tokens: Tensor
    """int64 ``(M, L)``."""
    curated_labels: Tensor
    """int64 ``(M,)``."""
    curated_indices: Tensor
    """int64 ``(M,)`` sorted training-set indices of the curated images (none in the pool)."""
    test_images: Tensor
    """float32 ``(10000, 1, 28, 28)`` the Fashion-MNIST test images."""
    test_tokens: Tensor
    """int64 ``(10000, L)`` clean captions of the same variant."""
    test_labels: Tensor
    """int64 ``(10000,)``."""
    prompt_tokens: Tensor
    """int64 ``(C, P, L)`` zero-shot class prompts (:func:`~siftdata.data.captions.class_prompts`)."""
    vocabulary: Vocabulary
    """The tokenizer that made every token tensor."""
    captions: str
    """``"coarse"`` or ``"fine"``."""
    mismatch: float
    """The share of mismatched pool pairs asked for."""


def mismatch_donors(labels: Tensor, *, count: int, generator: torch.Generator) -> Tensor:
    """Choose ``count`` examples to mismatch and, for each, an example of another class.

    Parameters
    ----------
    labels : Tensor
        int64 ``(N,)`` classes.
    count : int
        How many examples get another example's caption, in ``[0, N]``.
    generator : torch.Generator
        Draws the chosen examples (uniformly, without replacement), then their donors.

    Returns
    -------
    Tensor
        int64 ``(N,)`` source: ``source[i] = i`` for the ``N - count`` untouched examples; for a
        chosen ``i``, a uniformly drawn ``j`` with ``labels[j] != labels[i]``.
    """
    n = labels.shape[0]
    check_int_range(count, "count", low=0, high=n)
    source = torch.arange(n)
    chosen = torch.randperm(n, generator=generator)[:count]
    chosen_labels = labels[chosen]
    for c in chosen_labels.unique().tolist():
        takers = chosen[chosen_labels == c]
        others = (labels != c).nonzero().flatten()
        if others.numel() == 0:
            raise ValueError("every example has the same class; no caption of another class")
        pick = torch.randint(0, others.numel(), (takers.numel(),), generator=generator)
        source[takers] = others[pick]
    return source


def _check(captions, mismatch, pool_size, curated_size, max_tokens) -> float:
    if captions not in CAPTION_VARIANTS:
        raise ValueError(f"captions must be one of {CAPTION_VARIANTS}, got {captions!r}")
    if isinstance(mismatch, bool) or not isinstance(mismatch, int | float):
        raise ValueError(f"mismatch must be a number in [0, 1), got {mismatch!r}")
    mismatch = check_fraction(mismatch, "mismatch", high_open=True)
    check_int_range(pool_size, "pool_size", low=1, high=_TRAIN_SIZE - 1)
    check_int_range(curated_size, "curated_size", low=1, high=_TRAIN_SIZE - pool_size)
    check_int_range(max_tokens, "max_tokens", low=1)
    return mismatch


def _generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, f"pairs-{purpose}"))


def _clean_tokens(
    splits: dict[str, tuple[Tensor, Tensor]],
    *,
    fine: bool,
    texts: tuple[ClassText, ...],
    vocabulary: Vocabulary,
    max_tokens: int,
    seed: int,
) -> dict[str, Tensor]:
    """Clean caption tokens of every split ``name: (uint8 images, labels)``.

    Fine captions bucket the attributes by the tertiles of the ``"pool"`` split's images.
    """
    attributes = (
        {name: image_attributes(images) for name, (images, _) in splits.items()} if fine else {}
    )
    thresholds = attribute_thresholds(attributes["pool"]) if fine else {}
    tokens = {}
    for name, (_, labels) in splits.items():
        generator = _generator(seed, f"{name}-captions")
        if fine:
            buckets = attribute_words(attributes[name], thresholds)
            texts_ = fine_captions(labels, buckets, texts=texts, generator=generator)
        else:
            texts_ = coarse_captions(labels, texts=texts, generator=generator)
        tokens[name] = vocabulary.encode(texts_, max_tokens=max_tokens)
    return tokens


def build_pairs(
    *,
    captions: str = "coarse",
    mismatch: float = 0.5,
    pool_size: int = 50_000,
    curated_size: int = 5_000,
    max_tokens: int = 24,
    seed: int = 0,
    root=None,
    wordnet_root=None,
) -> PairsData:
    """Build the ``pairs-fmnist`` pool, curated and test pairs (see the module docstring).

    Parameters
    ----------
    captions : {"coarse", "fine"}, default "coarse"
        Class-level captions, or captions that also state measured image attributes.
    mismatch : float, default 0.5
        Share of pool pairs, in ``[0, 1)``, whose caption is that of a pool image of another
        class; exactly ``round(mismatch * pool_size)`` pairs (Python rounding) are mismatched.
    pool_size : int, default 50_000
        Training images in the pool, in ``[1, 59999]``; the rest of the 60k are held out.
    curated_size : int, default 5_000
        Clean pairs drawn from the holdout, in ``[1, 60000 - pool_size]``.
    max_tokens : int, default 24
        Tokens per caption (truncated or padded); the longest caption here has 21.
    seed : int, default 0
        Fixes the split, the captions and the mismatches (each from its own derived seed).
    root : path-like or None, default None
        Fashion-MNIST directory; see :func:`~siftdata.data.find_fashion_mnist_dir`.
    wordnet_root : path-like or None, default None
        WordNet directory; see :func:`~siftdata.data.wordnet.find_wordnet_dir`.

    Returns
    -------
    PairsData
        CPU tensors. The attribute tertiles of fine captions are fixed on the pool images and
        used for the curated and test captions too.
    """
    mismatch = _check(captions, mismatch, pool_size, curated_size, max_tokens)
    split_seed = derive_seed(seed, "pairs-split")  # also checks that seed is an int
    images, labels = load_fashion_mnist("train", root=root)
    test_images, test_labels = load_fashion_mnist("test", root=root)
    texts = class_texts(root=wordnet_root)
    vocabulary = caption_vocabulary(texts)

    pool_idx, holdout_idx = pool_holdout_split(
        images.shape[0], holdout_size=images.shape[0] - pool_size, seed=split_seed
    )
    pick = torch.randperm(holdout_idx.numel(), generator=_generator(seed, "curated"))
    curated_idx = holdout_idx[pick[:curated_size].sort().values]
    splits = {
        "pool": (images[pool_idx], labels[pool_idx]),
        "curated": (images[curated_idx], labels[curated_idx]),
        "test": (test_images, test_labels),
    }
    tokens = _clean_tokens(
        splits,
        fine=captions == "fine",
        texts=texts,
        vocabulary=vocabulary,
        max_tokens=max_tokens,
        seed=seed,
    )
    source = mismatch_donors(
        splits["pool"][1], count=round(mismatch * pool_size), generator=_generator(seed, "mismatch")
    )
    prompts = class_prompts(texts=texts)
    flat_prompts = vocabulary.encode([p for row in prompts for p in row], max_tokens=max_tokens)
    return PairsData(
        pool_images=to_float_images(splits["pool"][0]),
        pool_tokens=tokens["pool"][source],
        pool_labels=splits["pool"][1],
        pool_mismatched=source != torch.arange(pool_size),
        pool_caption_source=source,
        pool_indices=pool_idx,
        curated_images=to_float_images(splits["curated"][0]),
        curated_tokens=tokens["curated"],
        curated_labels=splits["curated"][1],
        curated_indices=curated_idx,
        test_images=to_float_images(test_images),
        test_tokens=tokens["test"],
        test_labels=test_labels.clone(),
        prompt_tokens=flat_prompts.reshape(len(prompts), len(prompts[0]), max_tokens),
        vocabulary=vocabulary,
        captions=captions,
        mismatch=mismatch,
    )
