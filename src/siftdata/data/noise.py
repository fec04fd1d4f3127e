"""Label-noise injection: symmetric (uniform over other classes) and class-dependent flips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import check_fraction, check_int_range, check_seed

__all__ = ["NoisyLabels", "FMNIST_CONFUSABLE", "symmetric_noise", "asymmetric_noise"]

FMNIST_CONFUSABLE: tuple[int, ...] = (6, 3, 4, 1, 2, 7, 0, 5, 2, 7)
"""Default class-dependent flips for Fashion-MNIST: ``FMNIST_CONFUSABLE[c]`` is where class ``c`` goes.

T-shirt/top→Shirt, Trouser→Dress, Pullover→Coat, Dress→Trouser, Coat→Pullover,
Sandal→Sneaker, Shirt→T-shirt/top, Sneaker→Sandal, Bag→Pullover, Ankle boot→Sneaker.
Pairs that look alike, so the noise resembles real annotator mistakes.
"""


@dataclass(frozen=True)
class NoisyLabels:
    """Labels after noise injection, with the clean labels kept for evaluation."""

    labels: Tensor
    """Noisy labels, ``int64`` of shape ``(N,)``: train on these."""
    clean_labels: Tensor
    """The original labels, ``int64`` of shape ``(N,)``."""
    is_corrupted: Tensor
    """``bool`` of shape ``(N,)``, equal to ``labels != clean_labels``."""

    @property
    def rate(self) -> float:
        """Achieved fraction of corrupted examples (0.0 for no examples)."""
        n = self.is_corrupted.numel()
        return float(self.is_corrupted.sum()) / n if n else 0.0


def _check_labels(labels: Tensor, num_classes: int) -> Tensor:
    check_int_range(num_classes, "num_classes", low=2)
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be an integer tensor of shape (N,), got {shape}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}) (num_classes), got values outside")
    return labels.to(torch.int64)


def _result(clean: Tensor, noisy: Tensor) -> NoisyLabels:
    return NoisyLabels(labels=noisy, clean_labels=clean, is_corrupted=noisy != clean)


def symmetric_noise(labels: Tensor, rate: float, *, num_classes: int, seed: int) -> NoisyLabels:
    """Flip ``round(rate * N)`` uniformly chosen labels, each to a uniformly random other class.

    Parameters
    ----------
    labels : Tensor
        Clean integer labels of shape ``(N,)`` in ``[0, num_classes)``.
    rate : float
        Fraction of examples to corrupt, in ``[0, 1)``.
    num_classes : int
        Number of classes, at least 2.
    seed : int
        Seed of the private ``torch.Generator``; global RNG is untouched.

    Returns
    -------
    NoisyLabels
        Exactly ``round(rate * N)`` entries differ from the clean labels. A corrupted label is
        ``(y + u) mod C`` with ``u`` uniform on ``{1, ..., C - 1}``: uniform over the other classes.
    """
    clean = _check_labels(labels, num_classes)
    rate = check_fraction(rate, "rate", high_open=True)
    generator = torch.Generator().manual_seed(check_seed(seed))
    n = clean.numel()
    k = round(rate * n)
    chosen = torch.randperm(n, generator=generator)[:k].to(clean.device)
    shift = torch.randint(1, num_classes, (k,), generator=generator).to(clean.device)
    noisy = clean.clone()
    noisy[chosen] = (clean[chosen] + shift) % num_classes
    return _result(clean, noisy)


def _mapping_tensor(mapping: Mapping[int, int] | Sequence[int], num_classes: int) -> Tensor:
    """Turn ``mapping`` into a ``(num_classes,)`` target tensor, checking coverage and no self-maps."""
    if isinstance(mapping, Mapping):
        if sorted(mapping) != list(range(num_classes)):
            raise ValueError(
                f"mapping must have exactly the keys 0..{num_classes - 1} (every class), "
                f"got keys {sorted(mapping)}"
            )
        targets = [mapping[c] for c in range(num_classes)]
    else:
        targets = list(mapping)
        if len(targets) != num_classes:
            raise ValueError(
                f"mapping must have one target per class ({num_classes}), got {len(targets)}"
            )
    for c, t in enumerate(targets):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < num_classes:
            raise ValueError(f"mapping[{c}] must be a class in [0, {num_classes}), got {t!r}")
        if t == c:
            raise ValueError(f"mapping[{c}] maps class {c} to itself; every class must change")
    return torch.tensor(targets, dtype=torch.int64)


def asymmetric_noise(
    labels: Tensor,
    rate: float,
    *,
    mapping: Mapping[int, int] | Sequence[int] | None = None,
    num_classes: int,
    seed: int,
) -> NoisyLabels:
    """Class-dependent noise: in each class ``c`` flip ``round(rate * n_c)`` labels to ``mapping[c]``.

    Parameters
    ----------
    labels : Tensor
        Clean integer labels of shape ``(N,)`` in ``[0, num_classes)``.
    rate : float
        Fraction of each class to corrupt, in ``[0, 1)``.
    mapping : dict or sequence of int, or None, default None
        Target class for every class (``mapping[c] != c``); None means
        :data:`FMNIST_CONFUSABLE` (which needs ``num_classes == 10``).
    num_classes : int
        Number of classes, at least 2.
    seed : int
        Seed of the private ``torch.Generator``; global RNG is untouched.

    Returns
    -------
    NoisyLabels
        ``n_c`` is the number of examples with clean label ``c``; which of them flip is uniform.
    """
    clean = _check_labels(labels, num_classes)
    rate = check_fraction(rate, "rate", high_open=True)
    targets = _mapping_tensor(FMNIST_CONFUSABLE if mapping is None else mapping, num_classes)
    generator = torch.Generator().manual_seed(check_seed(seed))
    noisy = clean.clone()
    clean_cpu = clean.cpu()
    for c in range(num_classes):
        members = torch.nonzero(clean_cpu == c).flatten()
        k = round(rate * members.numel())
        chosen = members[torch.randperm(members.numel(), generator=generator)[:k]]
        noisy[chosen.to(clean.device)] = int(targets[c])
    return _result(clean, noisy)
