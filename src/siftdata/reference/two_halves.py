"""Reference losses without a holdout: two references, each trained on one seeded half of the
data, score the other half, so no example is scored by a model that saw it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .._seeding import derive_seed
from .._validation import check_fraction, check_int_range
from ..ledger import ComputeLedger
from .losses import _check_data, _Options, _train_seeded, compute_losses

__all__ = ["two_halves_losses"]


def _split_halves(n: int, val_fraction: float, seed: int) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Two seeded halves; for each: (train part, val part) of one half and the other half to score."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    halves = (perm[: n // 2], perm[n // 2 :])
    plans = []
    for own, other in (halves, halves[::-1]):
        n_val = min(max(1, round(val_fraction * own.numel())), own.numel() - 1)
        plans.append((own[n_val:], own[:n_val], other))
    return plans


def two_halves_losses(
    build_model: Callable[[], nn.Module],
    inputs: Tensor,
    labels: Tensor,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 128,
    patience: int = 3,
    eval_batch_size: int = 1024,
    temperature: float = 1.0,
    ledger: ComputeLedger | None = None,
    progress: bool = True,
    check_chance: bool = True,
) -> Tensor:
    """Reference losses without a holdout: each half of the data is scored by a model trained on the other.

    The examples are split into two seeded halves A and B. A fresh ``build_model()`` is trained on A
    (early-stopping on a ``val_fraction`` slice of A) and scores B; another is trained on B and scores
    A. No example is scored by a model that saw it, so the losses estimate held-out loss.

    Parameters
    ----------
    build_model : callable
        Returns a fresh, untrained model (called twice).
    inputs, labels : Tensor
        All examples (dim 0, at least 4) and their integer labels ``(N,)``.
    val_fraction : float, default 0.1
        Share of each half held out for early stopping, in (0, 1).
    seed : int, default 0
        Seeds the split; each model's shuffling and initial randomness get their own seed
        derived from it (:func:`siftdata._seeding.derive_seed`), unrelated to the split's.
    epochs, lr, weight_decay, batch_size, patience, ledger, progress, check_chance
        As in :func:`train_reference_model`.
    eval_batch_size : int, default 1024
        Batch size for scoring the other half.
    temperature : float, default 1.0
        As in :func:`compute_losses`: both references are trained on the (noisy) data itself, so
        a value below 1 is usually wanted (the noisy-fmnist benchmark uses 1/3).

    Returns
    -------
    Tensor
        Per-example cross-entropy, shape ``(N,)``, in the original order, on the models' device.
    """
    _check_data(inputs, labels, "inputs", "labels")
    if inputs.shape[0] < 4:
        raise ValueError(f"inputs must hold at least 4 examples, got {inputs.shape[0]}")
    check_fraction(val_fraction, "val_fraction", low_open=True, high_open=True)
    check_int_range(seed, "seed", low=0)
    check_int_range(eval_batch_size, "eval_batch_size", low=1)
    opts = _Options(epochs, lr, weight_decay, batch_size, patience, ledger, progress, check_chance)
    out: Tensor | None = None
    for i, (train_idx, val_idx, score_idx) in enumerate(
        _split_halves(inputs.shape[0], val_fraction, derive_seed(seed, "two-halves-split"))
    ):
        data = tuple(t[idx.to(t.device)] for idx in (train_idx, val_idx) for t in (inputs, labels))
        half_seed = derive_seed(seed, f"two-halves-reference-{i}")
        model = _train_seeded(build_model(), data, opts, half_seed).model
        x, y = inputs[score_idx.to(inputs.device)], labels[score_idx.to(labels.device)]
        losses = compute_losses(model, x, y, batch_size=eval_batch_size, temperature=temperature)
        if out is None:
            out = torch.empty(inputs.shape[0], dtype=losses.dtype, device=losses.device)
        out[score_idx.to(out.device)] = losses
    return out
