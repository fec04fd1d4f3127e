"""The RHO-LOSS "irreducible loss" reference model and its cache of per-example losses.

RHO-LOSS scores an example by its *learnability*, ``learner loss - reference loss``, where the
reference is a model trained on a holdout split. For a fixed reference and per-example losses, the
reference loss of each example is computed once and cached by example id
(:func:`save_reference_losses` / :func:`load_reference_losses`, fingerprint-checked).

- :func:`train_reference_model` trains a reference on a holdout with AdamW and early stopping on
  validation cross-entropy.
- :func:`compute_losses` gives per-example cross-entropy under a model.
- :func:`siftdata.reference.two_halves.two_halves_losses` needs no holdout (its own module).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._modes import eval_mode
from .._validation import (
    check_class_labels,
    check_int_range,
    check_positive,
    check_same_length,
)
from ..ledger import ComputeLedger
from ..store import ScoreTable, load_scores, save_scores

__all__ = [
    "REFERENCE_LOSS_KIND",
    "ReferenceResult",
    "train_reference_model",
    "compute_losses",
    "save_reference_losses",
    "load_reference_losses",
]

REFERENCE_LOSS_KIND = "reference-loss"


@dataclass
class ReferenceResult:
    """What :func:`train_reference_model` returns."""

    model: nn.Module
    """The trained model (the same object that was passed in), with the best epoch's weights, in
    eval mode."""
    best_val_loss: float
    """Mean validation cross-entropy of the restored weights."""
    best_epoch: int
    """The (1-based) epoch whose weights were restored."""
    epochs_run: int
    """How many epochs ran before early stopping (or ``epochs``)."""
    history: list[dict] = field(default_factory=list)
    """One dict per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``val_acc``."""


def _check_data(inputs: Tensor, labels: Tensor, name_x: str, name_y: str) -> None:
    if not isinstance(inputs, Tensor) or inputs.dim() == 0:
        raise ValueError(f"{name_x} must be a tensor with examples along dim 0")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point():
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"{name_y} must be an integer tensor of shape (N,), got {shape}")
    check_same_length(inputs, labels, name_x, name_y)
    if inputs.shape[0] == 0:
        raise ValueError(f"{name_x} must hold at least one example")


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _eval_pass(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    batch_size: int,
    ledger: ComputeLedger | None = None,
    *,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Per-example losses of ``logits / temperature`` and correctness, in eval mode, no grad."""
    device = _device(model)
    losses, correct = [], []
    with eval_mode(model), torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start : start + batch_size].to(device, non_blocking=True)
            y = labels[start : start + batch_size].to(device, non_blocking=True)
            if ledger is None:
                logits = model(x)
            else:
                with ledger.track("reference_train", ("eval", tuple(x.shape))):
                    logits = model(x)
            losses.append(F.cross_entropy(logits.float() / temperature, y, reduction="none"))
            correct.append(logits.argmax(dim=-1) == y)
    return torch.cat(losses), torch.cat(correct)


def compute_losses(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    *,
    batch_size: int = 1024,
    temperature: float = 1.0,
) -> Tensor:
    """Per-example cross-entropy of ``model`` on ``(inputs, labels)``, from logits divided by ``temperature``.

    Runs under :func:`torch.no_grad` with the model in eval mode; its previous mode is restored.

    Parameters
    ----------
    model : nn.Module
        Maps a batch of inputs to logits ``(B, C)``.
    inputs : Tensor
        Inputs with examples along dim 0 (moved batch by batch to the model's device).
    labels : Tensor
        Integer class labels, shape ``(N,)``.
    batch_size : int, default 1024
        Examples per forward pass.
    temperature : float, default 1.0
        ``T > 0``; the losses are those of ``logits / T``. A reference trained on noisy labels
        (and early-stopped on noisy validation data) is calibrated to the noise: its confidence
        stays near the clean-label rate. ``T < 1`` sharpens it back without changing its ranking
        of classes, so confidently contradicted labels get the high loss a clean reference
        would give them.

    Returns
    -------
    Tensor
        ``-log softmax(model(x_i) / T)[y_i]`` per example, float32, shape ``(N,)``, on the
        model's device.
    """
    _check_data(inputs, labels, "inputs", "labels")
    check_int_range(batch_size, "batch_size", low=1)
    temperature = check_positive(temperature, "temperature")
    return _eval_pass(model, inputs, labels, batch_size, temperature=temperature)[0]


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    labels: Tensor,
    batch_size: int,
    generator: torch.Generator,
    ledger: ComputeLedger | None,
) -> float:
    """One shuffled pass over the data; returns the mean training loss."""
    device, n = _device(model), inputs.shape[0]
    order = torch.randperm(n, generator=generator).to(inputs.device)
    model.train()
    total = torch.zeros((), device=device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x = inputs[idx].to(device, non_blocking=True)
        y = labels[idx.to(labels.device)].to(device, non_blocking=True)
        if ledger is None:
            loss = _step(model, optimizer, x, y)
        else:
            with ledger.track("reference_train", ("train", tuple(x.shape))):
                loss = _step(model, optimizer, x, y)
        total += loss.detach() * x.shape[0]
    return float(total) / n  # one host sync per epoch


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


@dataclass(frozen=True)
class _Options:
    """Training options shared by :func:`train_reference_model` and :func:`two_halves_losses`."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    ledger: ComputeLedger | None
    progress: bool
    check_chance: bool = True

    def __post_init__(self) -> None:
        check_int_range(self.epochs, "epochs", low=1)
        check_positive(self.lr, "lr")
        if not (math.isfinite(float(self.weight_decay)) and float(self.weight_decay) >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        check_int_range(self.batch_size, "batch_size", low=1)
        check_int_range(self.patience, "patience", low=1)


def train_reference_model(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    *,
    val_inputs: Tensor,
    val_labels: Tensor,
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch_size: int = 128,
    patience: int = 3,
    seed: int = 0,
    ledger: ComputeLedger | None = None,
    progress: bool = True,
    check_chance: bool = True,
) -> ReferenceResult:
    """Train a reference ("irreducible loss") model with AdamW and early stopping.

    After each epoch the mean validation cross-entropy is measured; training stops once it has not
    improved for ``patience`` epochs, and the best epoch's weights are restored.

    Parameters
    ----------
    model : nn.Module
        Maps inputs to logits; trained in place on its parameters' device.
    inputs, labels : Tensor
        Training examples (dim 0) and integer labels ``(N,)``.
    val_inputs, val_labels : Tensor
        Validation examples for early stopping (at least one).
    epochs : int, default 30
        Maximum number of epochs.
    lr : float, default 1e-3
        AdamW learning rate.
    weight_decay : float, default 1e-2
        AdamW weight decay (>= 0).
    batch_size : int, default 128
        Training batch size (validation uses larger batches).
    patience : int, default 3
        Epochs without a validation improvement before stopping (>= 1).
    seed : int, default 0
        Seeds the generator that shuffles each epoch, and (inside
        :func:`torch.random.fork_rng`, so the global RNG state is restored afterwards) any
        randomness in the model such as dropout.
    ledger : ComputeLedger or None, default None
        If given, training steps and validation forwards are charged to phase ``"reference_train"``.
    progress : bool, default True
        Show a tqdm bar over epochs.
    check_chance : bool, default True
        Refuse (``ValueError``) a reference whose best validation loss is not below ``ln C``,
        the loss of a uniform guess over the model's ``C`` outputs: it learnt nothing (or
        diverged to a finite loss), and its losses would rank the pool by noise.

    Returns
    -------
    ReferenceResult
    """
    _check_data(inputs, labels, "inputs", "labels")
    _check_data(val_inputs, val_labels, "val_inputs", "val_labels")
    check_int_range(seed, "seed", low=0)
    opts = _Options(epochs, lr, weight_decay, batch_size, patience, ledger, progress, check_chance)
    return _train_seeded(model, (inputs, labels, val_inputs, val_labels), opts, seed)


def _train_seeded(model: nn.Module, data: tuple, opts: _Options, seed: int) -> ReferenceResult:
    """Run :func:`_fit` with shuffling and (scoped) model randomness fixed by ``seed``."""
    device = _device(model)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)  # scoped: dropout etc. repeat per seed; global state is restored
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay
        )
        return _fit(model, data, opts, optimizer, torch.Generator().manual_seed(seed))


def _fit(
    model: nn.Module,
    data: tuple[Tensor, Tensor, Tensor, Tensor],
    opts: _Options,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> ReferenceResult:
    """The epoch loop: train, validate, keep the best weights, stop after ``patience`` bad epochs."""
    inputs, labels, val_x, val_y = data
    num_classes = _check_labels(model, data)
    best = {"loss": math.inf, "epoch": 0, "state": None}
    history: list[dict] = []
    bar = tqdm(range(1, opts.epochs + 1), desc="reference", disable=not opts.progress, leave=False)
    for epoch in bar:
        train_loss = _train_epoch(
            model, optimizer, inputs, labels, opts.batch_size, generator, opts.ledger
        )
        val_losses, correct = _eval_pass(
            model, val_x, val_y, max(opts.batch_size, 1024), opts.ledger
        )
        val_loss, val_acc = float(val_losses.mean()), float(correct.float().mean())
        if not math.isfinite(val_loss) and best["state"] is not None:
            break  # diverged after a good epoch: keep that epoch's weights
        history.append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc}
        )
        bar.set_postfix(val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}")
        if val_loss < best["loss"]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = {"loss": val_loss, "epoch": epoch, "state": state}
        elif epoch - best["epoch"] >= opts.patience:
            break
    bar.close()
    if best["state"] is None:
        raise ValueError(
            "the reference model diverged: its validation loss was never finite "
            f"({history[-1]['val_loss']} after epoch {history[-1]['epoch']}); lower the learning "
            "rate or check the data for NaN/inf"
        )
    if opts.check_chance:
        _check_beats_chance(best, num_classes)
    model.load_state_dict(best["state"])
    model.eval()
    return ReferenceResult(model, float(best["loss"]), int(best["epoch"]), len(history), history)


def _check_labels(model: nn.Module, data: tuple[Tensor, Tensor, Tensor, Tensor]) -> int:
    """The model's class count (one forward of one example); every label must lie below it."""
    inputs, labels, val_x, val_y = data
    with eval_mode(model), torch.no_grad():
        num_classes = int(model(inputs[:1].to(_device(model))).shape[-1])
    check_class_labels(labels, num_classes, "the reference's training labels")
    check_class_labels(val_y, num_classes, "the reference's validation labels")
    return num_classes


def _check_beats_chance(best: dict, num_classes: int) -> None:
    """A finite but absurd validation loss (at or above ``ln C``, a uniform guess's) means the
    reference learnt nothing: its losses would rank the pool by noise, so refuse them."""
    chance = math.log(num_classes) if num_classes > 1 else math.inf
    if best["loss"] >= chance:
        raise ValueError(
            f"the reference model never beat chance: its best validation loss "
            f"{best['loss']:.4g} (epoch {best['epoch']}) is at or above ln({num_classes}) = "
            f"{chance:.4g}, the loss of a uniform guess; its losses would rank the pool by noise. "
            "Lower the learning rate, train longer, or check the holdout's labels"
        )


def save_reference_losses(
    path: str | os.PathLike,
    ids: Tensor,
    losses: Tensor,
    *,
    fingerprint: dict,
    meta: dict | None = None,
):
    """Cache reference losses by example id (:func:`~siftdata.store.save_scores`, kind ``"reference-loss"``).

    Returns
    -------
    Path
        The store's directory.
    """
    return save_scores(
        path, ids, losses, kind=REFERENCE_LOSS_KIND, fingerprint=fingerprint, meta=meta
    )


def load_reference_losses(path: str | os.PathLike, *, fingerprint: dict) -> ScoreTable:
    """Load cached reference losses, checking the kind and the dataset fingerprint.

    See :func:`~siftdata.store.load_scores`; raises ``ValueError`` if the cache was built for other
    data (rebuild it then), ``FileNotFoundError`` naming how to build one if there is none.
    """
    try:
        return load_scores(path, kind=REFERENCE_LOSS_KIND, fingerprint=fingerprint)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err}; build a reference-loss cache first: train a reference "
            "(train_reference_model on a clean holdout, or two_halves_losses without one), "
            "then save_reference_losses(path, ids, compute_losses(reference, inputs, labels), "
            "fingerprint=dataset_fingerprint(labels, inputs)); the README shows the lines"
        ) from None
