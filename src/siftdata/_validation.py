"""Argument checks shared by the public functions; each raises a ``ValueError`` naming the argument."""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor

__all__ = [
    "check_vector",
    "check_finite",
    "check_k",
    "check_fraction",
    "check_positive",
    "check_logits_labels",
    "check_same_length",
    "check_int_range",
    "check_seed",
    "check_class_labels",
    "check_bool",
    "canonical_device",
]


def check_vector(x: Tensor, name: str) -> Tensor:
    """Require a 1-D floating tensor."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 1:
        raise ValueError(f"{name} must be 1-D (one value per example), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    return x


def check_finite(x: Tensor, name: str) -> Tensor:
    """Require every value to be finite (no NaN or inf).

    One reduction and one device-to-host sync: a NaN or inf anywhere makes the sum non-finite, and
    only then are the values counted one by one (a finite tensor whose sum overflows passes).
    A *value* check: the per-step functions run it only with ``check_values=True``.
    """
    if math.isfinite(float(x.detach().sum())):
        return x
    n_bad = int((~torch.isfinite(x)).sum())
    if n_bad:
        raise ValueError(f"{name} has {n_bad} non-finite value(s) (NaN or inf); refusing to select")
    return x


def check_sampling_weights(x: Tensor, name: str) -> Tensor:
    """Require finite, nonnegative values with a positive sum (weights to sample in proportion
    to). A *value* check (host syncs): run it only with ``check_values=True``."""
    check_finite(x, name)
    if bool((x < 0).any()):
        raise ValueError(f"{name} must be nonnegative (they are sampling weights)")
    if not bool(x.sum() > 0):
        raise ValueError(
            f"{name} must have a positive sum and must not all be zero: with all zero there "
            "is nothing to sample in proportion to"
        )
    return x


def check_k(k: int, n: int, name: str = "k", *, of: str = "the super-batch size") -> int:
    """Require ``0 < k <= n`` for an integer ``k``; ``of`` says what ``n`` is in the message."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise ValueError(f"{name} must be an int, got {type(k).__name__}")
    if not 0 < k <= n:
        raise ValueError(f"{name} must be in [1, {n}] ({of}), got {k}")
    return k


def check_fraction(
    x: float, name: str, *, low_open: bool = False, high_open: bool = False
) -> float:
    """Require ``x`` in [0, 1] (with optionally open ends)."""
    x = float(x)
    lo_ok = x > 0 if low_open else x >= 0
    hi_ok = x < 1 if high_open else x <= 1
    if not (lo_ok and hi_ok):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}0, 1{hi}, got {x}")
    return x


def check_positive(x: float, name: str) -> float:
    """Require a finite ``x > 0``."""
    if not (float(x) > 0 and float(x) != float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {x}")
    return float(x)


def check_same_length(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Require two per-example tensors to have the same first dimension."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have one entry per example; got {a.shape[0]} and {b.shape[0]}"
        )


def check_logits_labels(
    logits: Tensor, labels: Tensor | None = None, *, check_values: bool = True
) -> None:
    """Require 2-D floating logits ``(N, C)`` and, if given, integer labels ``(N,)``.

    With ``check_values`` the labels must also lie in ``[0, C)`` (one host sync).
    """
    if not isinstance(logits, Tensor) or logits.dim() != 2 or not logits.is_floating_point():
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a floating tensor of shape (N, C), got {shape}")
    if labels is None:
        return
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape (N,), got {shape}")
    check_same_length(logits, labels, "logits", "labels")
    if check_values and labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must be in [0, {logits.shape[1]}) (the number of classes)")


def check_int_range(x: int, name: str, *, low: int, high: int | None = None) -> int:
    """Require an integer ``x`` (not a bool) with ``low <= x <= high`` (no upper bound if ``high`` is None)."""
    if isinstance(x, bool) or not isinstance(x, int):
        raise ValueError(f"{name} must be an int, got {type(x).__name__}")
    if x < low or (high is not None and x > high):
        upper = "inf)" if high is None else f"{high}]"
        raise ValueError(f"{name} must be in [{low}, {upper}, got {x}")
    return x


def check_seed(seed: int, name: str = "seed") -> int:
    """Require an integer seed (a Python or NumPy int, not a bool, a float or a string) in the
    range ``torch.Generator.manual_seed`` takes; ``1.5`` must not quietly become ``1``."""
    if isinstance(seed, bool):
        raise ValueError(f"{name} must be an int, got bool")
    try:
        value = operator.index(seed)
    except TypeError:
        raise ValueError(f"{name} must be an int, got {type(seed).__name__} {seed!r}") from None
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"{name} must be in [-2**63, 2**64), got {value}")
    return value


def check_class_labels(labels: Tensor, num_classes: int, name: str = "labels") -> None:
    """Require integer class labels in ``0 … num_classes−1`` (one host sync): a label outside
    is named with the class count, instead of an opaque indexing error (or, on a GPU, a
    device-side assert that ends the process)."""
    if labels.numel() == 0:
        return
    outside = (labels < 0) | (labels >= num_classes)
    if bool(outside.any()):
        bad = labels[outside]
        raise ValueError(
            f"{name} holds {bad.numel()} label(s) outside the model's {num_classes} classes "
            f"(0 … {num_classes - 1}), e.g. {bad[0].item()}; are the labels 1-based, or is the "
            "model's output width wrong?"
        )


def canonical_device(device: torch.device | str) -> torch.device:
    """``device`` with its index: a bare ``cuda`` means the current CUDA device."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


def check_bool(x: bool, name: str) -> bool:
    """Require a real ``bool`` (not 0/1 or a string)."""
    if not isinstance(x, bool):
        raise ValueError(f"{name} must be True or False, got {x!r}")
    return x
