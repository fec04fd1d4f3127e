r"""Per-example gradients and the variance of importance sampling: offline diagnostics.

What the closed-form bounds of :mod:`siftdata.core.scores` (``grad_norm_bound`` and friends) stand in
for, computed exactly, to check them and to measure what importance sampling buys:

- :func:`per_example_gradients`: ``∂ℓ_i/∂θ`` for every example, flattened, with
  :mod:`torch.func` (``vmap`` over ``grad`` of a ``functional_call``);
- :func:`per_example_output_gradients`: ``∂ℓ_i/∂z_i``, whose norm the closed forms give;
- :func:`importance_sampling_variance`: the variance of the one-draw gradient estimator
  ``G_I / (B·p_I)`` under a sampling distribution, against uniform and the optimum;
- :func:`spearman`: rank agreement of a bound with the true gradient norms.

Not for the per-step path: these run extra backward passes and sync with the host freely.
The model is put in eval mode for the duration (so BatchNorm uses its running statistics and
each example's loss depends on that example alone) and every submodule's mode is restored after.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .._modes import eval_mode
from .._validation import check_int_range, check_same_length
from .rank_stats import spearman

__all__ = [
    "LossFn",
    "gradient_columns",
    "per_example_gradients",
    "per_example_output_gradients",
    "importance_sampling_variance",
    "spearman",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(outputs, targets) -> (N,)`` per-example losses (``reduction='none'``)."""


def _trainable(model: nn.Module) -> dict[str, Tensor]:
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters (none with requires_grad=True)")
    return params


def _check_batch(inputs: Tensor, targets: Tensor) -> None:
    for x, name in ((inputs, "inputs"), (targets, "targets")):
        if not isinstance(x, Tensor) or x.dim() == 0:
            what = "a 0-d tensor" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor with a leading batch dimension, got {what}")
    check_same_length(inputs, targets, "inputs", "targets")
    if inputs.shape[0] == 0:
        raise ValueError("inputs must hold at least one example")


def _check_losses(losses: Tensor, n: int) -> None:
    if not isinstance(losses, Tensor) or losses.shape != (n,):
        shape = tuple(losses.shape) if isinstance(losses, Tensor) else type(losses).__name__
        raise ValueError(
            f"loss_fn must return one loss per example, shape ({n},) (reduction='none'), "
            f"got {shape}"
        )


def gradient_columns(model: nn.Module) -> dict[str, slice]:
    """Which columns of :func:`per_example_gradients` hold each trainable parameter.

    Parameters come in ``model.named_parameters()`` order, each flattened (row-major).
    """
    columns, start = {}, 0
    for name, p in _trainable(model).items():
        columns[name] = slice(start, start + p.numel())
        start += p.numel()
    return columns


def per_example_gradients(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    chunk_size: int = 256,
) -> Tensor:
    r"""Each example's loss gradient with respect to all trainable parameters, flattened.

    .. math:: G_i = \operatorname{vec}\big(\partial \ell(f_\theta(x_i), y_i) / \partial \theta\big)

    ``loss_fn`` is applied inside ``vmap`` to one example at a time, with a batch dimension of 1
    added to its input and target. Columns follow :func:`gradient_columns`.

    Parameters
    ----------
    model : nn.Module
        The model, in eval mode for the call (restored after); buffers are used, not updated.
    loss_fn : callable
        ``loss_fn(outputs, targets) -> (N,)`` per-example losses, e.g.
        ``lambda z, y: F.cross_entropy(z, y, reduction="none")``.
    inputs, targets : Tensor
        ``(N, ...)`` model inputs and the matching targets.
    chunk_size : int
        Examples per vectorised chunk (memory: about ``chunk_size`` copies of the gradients).

    Returns
    -------
    Tensor
        ``(N, P)`` gradients, ``P`` the number of trainable parameter entries.
    """
    _check_batch(inputs, targets)
    check_int_range(chunk_size, "chunk_size", low=1)
    params = {name: p.detach() for name, p in _trainable(model).items()}
    buffers = dict(model.named_buffers())

    def loss_of_one(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        outputs = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        losses = loss_fn(outputs, y.unsqueeze(0))
        _check_losses(losses, 1)
        return losses[0]

    per_example = vmap(grad(loss_of_one), in_dims=(None, 0, 0), chunk_size=chunk_size)
    with eval_mode(model), torch.enable_grad():
        grads = per_example(params, inputs, targets)
    return torch.cat([g.reshape(inputs.shape[0], -1) for g in grads.values()], dim=1)


def per_example_output_gradients(
    model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor
) -> Tensor:
    r"""Each example's loss gradient with respect to its own outputs, ``∂ℓ_i / ∂z_i``.

    One forward and one backward of the summed loss: ``ℓ_i`` depends on ``z_i`` alone (eval mode,
    and ``loss_fn`` must not mix examples), so ``∂(Σ_j ℓ_j)/∂z_i = ∂ℓ_i/∂z_i``. Its row norms are
    what :func:`siftdata.core.scores.grad_norm_bound` (and the sigmoid and MSE forms) give in closed
    form.

    Parameters
    ----------
    model : nn.Module
        The model, in eval mode for the call (restored after).
    loss_fn : callable
        ``loss_fn(outputs, targets) -> (N,)`` per-example losses.
    inputs, targets : Tensor
        ``(N, ...)`` model inputs and the matching targets.

    Returns
    -------
    Tensor
        Gradients of the outputs' shape, ``(N, C)`` for a classifier.
    """
    _check_batch(inputs, targets)
    with eval_mode(model), torch.no_grad():
        outputs = model(inputs)
    outputs = outputs.detach().requires_grad_(True)
    with torch.enable_grad():
        losses = loss_fn(outputs, targets)
        _check_losses(losses, inputs.shape[0])
        (outputs_grad,) = torch.autograd.grad(losses.sum(), outputs)
    return outputs_grad


def importance_sampling_variance(per_example_grads: Tensor, probs: Tensor) -> dict[str, float]:
    r"""Variance of the one-draw importance-sampling gradient estimator: ``probs`` vs uniform.

    For a pool of ``B`` examples with gradients ``G_i`` and mean ``Ḡ``, draw ``I ~ p`` and
    estimate ``Ḡ`` by ``X = G_I / (B p_I)`` (unbiased). Its variance (trace of the covariance) is

    .. math:: V(p) = \mathbb{E}\lVert X - \bar G \rVert^2
                   = \sum_i \frac{\lVert G_i \rVert^2}{B^2 p_i} - \lVert \bar G \rVert^2 ,

    ``V(u) = Σ_i ‖G_i‖² / B − ‖Ḡ‖²`` for uniform ``u_i = 1/B``, and the least over all ``p`` is at
    ``p_i ∝ ‖G_i‖`` (Cauchy–Schwarz): ``V* = (Σ_i ‖G_i‖ / B)² − ‖Ḡ‖²``. A mini-batch of ``b``
    independent draws divides each by ``b``, so the ratios hold for any ``b``.

    Parameters
    ----------
    per_example_grads : Tensor
        ``(B, P)`` per-example gradients (e.g. from :func:`per_example_gradients`).
    probs : Tensor
        ``(B,)`` sampling probabilities: nonnegative, summing to 1, and positive wherever a
        gradient is nonzero (else the estimator is biased).

    Returns
    -------
    dict
        ``uniform`` ``V(u)``, ``importance`` ``V(p)``, ``reduction`` ``V(u) / V(p)`` (> 1 when
        ``p`` beats uniform; ``inf`` if ``V(p) = 0 < V(u)``, 1 if both are 0) and ``optimal`` ``V*``,
        all Python floats. Computed in float64; a variance within ``1e-12 · E‖X‖²`` of 0
        (rounding) is 0.
    """
    grads, p = _check_variance_inputs(per_example_grads, probs)
    b = grads.shape[0]
    sq_norms = grads.square().sum(dim=1)
    if bool(((p == 0) & (sq_norms > 0)).any()):
        raise ValueError(
            "probs must be positive wherever a gradient is nonzero (else the estimator is biased)"
        )
    mean_sq = float(grads.mean(dim=0).square().sum())
    uniform = _variance(float(sq_norms.sum()) / b, mean_sq)
    importance = _variance(float(torch.where(p > 0, sq_norms / p, 0.0).sum()) / b**2, mean_sq)
    optimal = _variance((float(sq_norms.sqrt().sum()) / b) ** 2, mean_sq)
    reduction = uniform / importance if importance > 0 else (math.inf if uniform > 0 else 1.0)
    return {
        "uniform": uniform,
        "importance": importance,
        "reduction": reduction,
        "optimal": optimal,
    }


def _variance(second_moment: float, mean_sq: float) -> float:
    """``E‖X‖² − ‖Ḡ‖²``, with a difference within rounding of ``E‖X‖²`` taken as 0."""
    variance = second_moment - mean_sq
    return variance if variance > 1e-12 * second_moment else 0.0


def _check_variance_inputs(per_example_grads: Tensor, probs: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(per_example_grads, Tensor) or per_example_grads.dim() != 2:
        shape = (
            tuple(per_example_grads.shape)
            if isinstance(per_example_grads, Tensor)
            else type(per_example_grads).__name__
        )
        raise ValueError(f"per_example_grads must be a (B, P) tensor, got {shape}")
    if not isinstance(probs, Tensor) or probs.dim() != 1:
        shape = tuple(probs.shape) if isinstance(probs, Tensor) else type(probs).__name__
        raise ValueError(f"probs must be a (B,) tensor, got {shape}")
    check_same_length(per_example_grads, probs, "per_example_grads", "probs")
    if probs.shape[0] == 0:
        raise ValueError("per_example_grads must hold at least one example")
    grads, p = per_example_grads.detach().double(), probs.detach().double()
    if not bool(torch.isfinite(grads).all()):
        raise ValueError("per_example_grads has non-finite values (NaN or inf)")
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("probs must be finite and nonnegative")
    if abs(float(p.sum()) - 1.0) > 1e-5:
        raise ValueError(f"probs must sum to 1, got {float(p.sum()):.8g}")
    return grads, p
