"""Training a two-tower model with the sigmoid (SigLIP) loss: JEST's reference, on a clean set.

The recipe, top to bottom: batches of ``batch_size`` pairs drawn epoch by epoch from a seeded
permutation (full batches only: the few pairs left over in an epoch wait for the next one, in a
new order); AdamW whose learning rate decays with a cosine to zero after the last step; weight
decay on weight matrices only (the temperature, the bias and the layers' biases are not decayed,
as in SigLIP); the loss is the SigLIP batch loss ``(1/B) Σ_ij L_ij``. FLOPs and seconds are
counted by a :class:`~siftdata.ledger.ComputeLedger` exactly as
:func:`~siftdata.reference.losses.train_reference_model` counts them (phase ``"reference_train"``: the
first step of each batch shape under the FLOP counter, forward and backward).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import schedules
from .._batch import check_pairs, model_device
from .._modes import eval_mode
from .._validation import check_bool, check_int_range, check_positive
from ..core.pairwise import per_example_sigmoid_loss
from ..ledger import ComputeLedger, count_flops

__all__ = ["siglip_optimizer", "train_two_tower", "pair_flops"]

FINAL_LOSS_WINDOW = 0.1
"""``final_loss`` averages the last tenth of the steps (at least one): a single step's loss is
noisy, and a window keeps the number comparable across runs of different lengths."""


def siglip_optimizer(model: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices (dim >= 2) only: not on biases, the learnt
    temperature or the pair-loss bias (as SigLIP)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    try:  # fused: one kernel per step and no host sync where the device supports it
        return torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr)


class _BatchOrder:
    """Full batches of positions from seeded permutations, one permutation per epoch."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.per_epoch = n // batch_size
        self.order, self.at = torch.empty(0, dtype=torch.long), self.per_epoch

    def next(self) -> Tensor:
        if self.at == self.per_epoch:
            self.order, self.at = torch.randperm(self.n, generator=self.generator), 0
        start = self.at * self.batch_size
        self.at += 1
        return self.order[start : start + self.batch_size]


def _step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: tuple[Tensor, Tensor]
) -> Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = per_example_sigmoid_loss(model(batch)).mean()
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_two_tower(
    model: nn.Module,
    images: Tensor,
    tokens: Tensor,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Train a two-tower model in place with the SigLIP loss (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        Maps ``(images, tokens)`` to :class:`~siftdata.core.pairwise.PairEmbeddings`; trained on its
        parameters' device. Each submodule's train/eval mode is restored afterwards.
    images, tokens : Tensor
        The training pairs (dim 0); batches are gathered on their device and moved to the model's.
    steps : int
        Optimizer updates (>= 1).
    batch_size : int, default 128
        Pairs per step, in ``[2, N]`` (a pair's negatives are the batch's other pairs).
    lr : float, default 2e-3
        Peak AdamW learning rate, decayed with a cosine to zero after the last step.
    weight_decay : float, default 1e-2
        AdamW weight decay of the weight matrices (>= 0); as in
        :func:`~siftdata.reference.losses.train_reference_model`.
    seed : int, default 0
        Seeds the generator of the batch order, and (inside :func:`torch.random.fork_rng`, so
        the global RNG state is restored afterwards) any randomness in the model.
    progress : bool, default False
        Show a tqdm bar over steps (its loss read-out costs a host sync every 100 steps).

    Returns
    -------
    dict
        ``flops`` (int: matmul/conv FLOPs of every step, forward and backward), ``seconds``
        (float: time in the steps) and ``final_loss`` (float: mean batch loss over the last
        tenth of the steps).
    """
    n = check_pairs(images, tokens)
    if n < 2:
        raise ValueError(f"images must hold at least 2 pairs, got {n}")
    check_int_range(steps, "steps", low=1)
    check_int_range(batch_size, "batch_size", low=2, high=n)
    check_positive(lr, "lr")
    if not (math.isfinite(float(weight_decay)) and float(weight_decay) >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
    check_int_range(seed, "seed", low=0)
    check_bool(progress, "progress")
    device = model_device(model)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    modes = [(module, module.training) for module in model.modules()]
    try:
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)  # scoped: the global state is restored
            model.train()
            return _fit(
                model, (images, tokens), steps, batch_size, lr, weight_decay, seed, progress
            )
    finally:
        for module, training in modes:
            module.training = training


def _fit(model, data, steps, batch_size, lr, weight_decay, seed, progress) -> dict[str, float]:
    """The step loop; losses stay on the device until the end (one host sync)."""
    images, tokens = data
    device = model_device(model)
    optimizer = siglip_optimizer(model, lr=lr, weight_decay=weight_decay)
    base_lrs = [lr] * len(optimizer.param_groups)
    order = _BatchOrder(images.shape[0], batch_size, torch.Generator().manual_seed(seed))
    ledger = ComputeLedger(device=device)
    window = max(1, round(FINAL_LOSS_WINDOW * steps))
    tail = torch.zeros((), device=device)
    bar = tqdm(range(steps), desc="reference", disable=not progress, leave=False)
    for step in bar:
        idx = order.next()
        batch = (
            images.index_select(0, idx.to(images.device)).to(device, non_blocking=True),
            tokens.index_select(0, idx.to(tokens.device)).to(device, non_blocking=True),
        )
        schedules.set_lr(optimizer, base_lrs, schedules.lr_factor(step, steps, schedule="cosine"))
        with ledger.track(
            "reference_train", ("train", tuple(batch[0].shape), tuple(batch[1].shape))
        ):
            loss = _step(model, optimizer, batch)
        if step >= steps - window:
            tail += loss
        if progress and step % 100 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}")
    bar.close()
    totals = ledger.totals()["reference_train"]
    return {
        "flops": int(totals["flops"]),
        "seconds": float(totals["seconds"]),
        "final_loss": float(tail) / window,
    }


def pair_flops(model: nn.Module, images: Tensor, tokens: Tensor) -> int:
    """Matmul/conv FLOPs of one no-grad forward of ``model`` on the pairs (eval mode).

    Divide by ``len(images)`` for the cost of embedding one pair (e.g. a cache fill's cost).
    """
    check_pairs(images, tokens)
    device = model_device(model)
    with eval_mode(model), torch.no_grad():
        _, flops = count_flops(model, (images.to(device), tokens.to(device)))
    return flops
