"""Train a model from a :class:`~siftdata.offline.recipe.Recipe`, timed, optionally tracking forgetting.

The plain supervised loop SVP needs for its proxies and for the target: seeded initial weights and
shuffling (no global RNG touched), AdamW, the recipe's schedule decayed to the run's own last step,
one host sync per epoch (the mean loss). Forgetting events are read off the training forward's
predictions, so tracking them costs no extra pass (Toneva et al. 2019 do the same).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._seeding import derive_seed, seeded
from .._validation import check_int_range
from ..models import build_model
from ..models.evaluation import evaluate
from ..schedules import lr_factor, set_lr
from .forgetting import ForgettingTracker
from .recipe import Recipe

__all__ = ["Fitted", "fit", "accuracy", "sync"]


@dataclass
class Fitted:
    """A model trained by :func:`fit`, and what its training took."""

    model: nn.Module
    recipe: Recipe
    seconds: float
    """Wall-clock of the training (data on the device already; the GPU waited for at the end)."""
    steps: int
    examples: int
    """How many examples it was trained on."""
    forgetting: ForgettingTracker | None = None
    history: list[dict] = field(default_factory=list)
    """One ``{"epoch", "train_loss"}`` per epoch."""


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (a no-op on the CPU): call before reading a clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_data(inputs: Tensor, labels: Tensor) -> None:
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be 1-D integers, got {labels.dtype} {tuple(labels.shape)}")
    if inputs.dim() == 0 or inputs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"inputs must have one row per label ({labels.shape[0]}), got {tuple(inputs.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("cannot train on an empty dataset")


def fit(
    recipe: Recipe,
    inputs: Tensor,
    labels: Tensor,
    *,
    seed: int,
    num_classes: int = 10,
    device: torch.device | str = "cpu",
    track_forgetting: bool = False,
    progress: bool = True,
    desc: str = "fit",
) -> Fitted:
    """Train a fresh ``recipe.model`` on ``(inputs, labels)`` for ``recipe.epochs`` epochs.

    Parameters
    ----------
    recipe : Recipe
        Architecture, width, epochs, batch size, optimizer and schedule.
    inputs, labels : Tensor
        ``(N, ...)`` float inputs and ``(N,)`` integer labels; moved to ``device`` once.
    seed : int
        Fixes the initial weights and the shuffling.
    num_classes : int
        Output logits.
    device : torch.device or str
        Where to train.
    track_forgetting : bool
        Keep a :class:`ForgettingTracker` over the ``N`` examples (positions ``0 … N−1``).
    progress : bool
        Show a progress bar over steps.
    desc : str
        The bar's label.
    """
    _check_data(inputs, labels)
    check_int_range(seed, "seed", low=0)
    device = torch.device(device)
    model = seeded(
        lambda: build_model(recipe.model, num_classes=num_classes, width=recipe.width),
        seed=derive_seed(seed, "svp-init"),
        device=device,
    )
    x, y = inputs.to(device), labels.to(device)
    n = y.shape[0]
    per_epoch = math.ceil(n / recipe.batch_size)
    total = per_epoch * recipe.epochs
    tracker = ForgettingTracker(n, device=device) if track_forgetting else None
    optimizer = _optimizer(model, recipe)
    base = [group["lr"] for group in optimizer.param_groups]
    order_gen = torch.Generator().manual_seed(derive_seed(seed, "svp-order"))
    history: list[dict] = []
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    sync(device)
    start = time.perf_counter()
    step = 0
    for epoch in range(recipe.epochs):
        order = torch.randperm(n, generator=order_gen).to(device)
        loss_sum = torch.zeros((), device=device)
        for first in range(0, n, recipe.batch_size):
            set_lr(optimizer, base, lr_factor(step, total, schedule=recipe.schedule))
            idx = order[first : first + recipe.batch_size]
            loss_sum += _step(model, optimizer, x[idx], y[idx], idx, tracker)
            step += 1
            bar.update(1)
        history.append({"epoch": epoch + 1, "train_loss": float(loss_sum) / n})
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.4f}")
    sync(device)
    seconds = time.perf_counter() - start
    bar.close()
    _check_diverged(history)
    model.eval()
    return Fitted(model, recipe, seconds, step, n, tracker, history)


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = list(model.parameters())
    try:
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def _step(model, optimizer, x, y, idx, tracker: ForgettingTracker | None) -> Tensor:
    """One update; returns the batch's summed loss (on the device, no sync)."""
    logits = model(x)
    losses = F.cross_entropy(logits, y, reduction="none")
    optimizer.zero_grad(set_to_none=True)
    losses.mean().backward()
    optimizer.step()
    if tracker is not None:
        tracker.update(idx, logits.detach().argmax(1) == y)
    return losses.detach().sum()


def _check_diverged(history: list[dict]) -> None:
    last = history[-1]
    if not math.isfinite(last["train_loss"]):
        raise ValueError(
            f"training diverged: the mean loss of epoch {last['epoch']} is {last['train_loss']}; "
            "lower the learning rate or check the data for NaN/inf"
        )


def accuracy(model: nn.Module, inputs: Tensor, labels: Tensor, *, batch_size: int = 4096) -> float:
    """Top-1 accuracy of ``model`` on ``(inputs, labels)`` (moved to the model's device)."""
    device = next(model.parameters()).device
    result = evaluate(model, inputs.to(device), labels.to(device), batch_size=batch_size)
    return result["test_acc"]
