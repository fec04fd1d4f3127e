"""Per-example scores from logits, labels and losses: one value per example, higher = "more".

Every function is pure (tensors in, a 1-D floating tensor of length ``N`` out), runs on the
input's device and makes no host round-trip: shapes and dtypes (free to check) are always checked;
the *values* (label range, finiteness: one or two device-to-host syncs each) only with
``check_values=True``. Either way a bad input raises ``ValueError`` naming the argument.

Notation: ``z`` is a row of logits ``(C,)``, ``p = softmax(z)``, ``y`` the integer label and
``e_y`` its one-hot vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._validation import (
    check_finite,
    check_fraction,
    check_logits_labels,
    check_positive,
    check_same_length,
    check_vector,
)

__all__ = [
    "per_example_loss",
    "learnability",
    "grad_norm_bound",
    "sigmoid_grad_norm_bound",
    "mse_grad_norm_bound",
    "entropy",
    "least_confidence",
    "margin",
]


def _check_logits(logits: Tensor, labels: Tensor | None, check_values: bool) -> None:
    check_logits_labels(logits, labels, check_values=check_values)
    if check_values:
        check_finite(logits, "logits")


def per_example_loss(
    logits: Tensor,
    labels: Tensor,
    *,
    label_smoothing: float = 0.0,
    check_values: bool = False,
) -> Tensor:
    r"""Softmax cross-entropy of each example (``reduction='none'``).

    .. math:: \ell_i = -\sum_c t_{ic} \log p_{ic}, \quad
              t_i = (1 - \varepsilon)\, e_{y_i} + \varepsilon / C

    With the learner's logits this is the *learner loss*; with a reference model's logits on the
    same examples it is the *reference loss* (RHO-LOSS "irreducible loss", JEST reference), so
    the two can be passed straight to :func:`learnability`.

    Parameters
    ----------
    logits : Tensor
        ``(N, C)`` floating logits.
    labels : Tensor
        ``(N,)`` integer class labels in ``[0, C)``.
    label_smoothing : float
        ``ε`` in ``[0, 1]``; 0 gives the plain cross-entropy ``-log p_{y}``.
    check_values : bool
        Also check the label range and finiteness (host syncs).

    Returns
    -------
    Tensor
        ``(N,)`` losses in nats, in the logits' dtype and on their device.
    """
    _check_logits(logits, labels, check_values)
    check_fraction(label_smoothing, "label_smoothing")
    return F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)


def learnability(
    learner_loss: Tensor,
    reference_loss: Tensor,
    *,
    learner_loss_cap: float | None = None,
    check_values: bool = False,
) -> Tensor:
    r"""RHO-LOSS reducible loss: ``learner_loss − reference_loss``, optionally with a capped learner loss.

    .. math:: r_i = \min(\ell^{\text{learner}}_i, c) - \ell^{\text{reference}}_i

    High values mark examples the learner has not learnt yet but that are learnable (the
    reference model, trained on holdout or curated data, fits them), as opposed to noisy or
    ambiguous examples (high reference loss) or ones already learnt (low learner loss).

    Parameters
    ----------
    learner_loss, reference_loss : Tensor
        ``(N,)`` floating per-example losses of the same examples in the same order (e.g. from
        :func:`per_example_loss`).
    learner_loss_cap : float, optional
        ``c``: clip the learner loss at this value; ``None`` (default) does not clip. A learner
        loss above ``log C`` means the learner is confidently wrong, which on noisy data mostly
        means a wrong label; unclipped, such examples outrank everything whenever the reference
        is less confident than the learner (as one trained on noisy labels is). ``log C`` is
        the value the benchmarks use.
    check_values : bool
        Also check that both are finite (host syncs); shapes and dtypes are always checked.

    Returns
    -------
    Tensor
        ``(N,)`` reducible losses.
    """
    check_vector(learner_loss, "learner_loss")
    check_vector(reference_loss, "reference_loss")
    check_same_length(learner_loss, reference_loss, "learner_loss", "reference_loss")
    if learner_loss_cap is not None:
        check_positive(learner_loss_cap, "learner_loss_cap")
    if check_values:
        check_finite(learner_loss, "learner_loss")
        check_finite(reference_loss, "reference_loss")
    if learner_loss_cap is not None:
        learner_loss = learner_loss.clamp(max=learner_loss_cap)
    return learner_loss - reference_loss


def grad_norm_bound(
    logits: Tensor,
    labels: Tensor,
    *,
    label_smoothing: float = 0.0,
    check_values: bool = False,
) -> Tensor:
    r"""Norm of the softmax cross-entropy gradient with respect to the logits.

    For the per-example loss of :func:`per_example_loss` (``F.cross_entropy(logits, labels,
    reduction='none', label_smoothing=ε)``), with target ``t_i = (1 − ε) e_{y_i} + ε / C``:

    .. math:: g_i = \lVert \partial \ell_i / \partial z_i \rVert_2
                  = \lVert \operatorname{softmax}(z_i) - t_i \rVert_2

    Katharopoulos & Fleuret (2018) use it as an upper bound (up to a constant) on the norm of the
    per-example parameter gradient, for importance sampling: the last linear layer's gradient is
    exactly ``g_i · ‖h_i‖`` for its input ``h_i``. Without smoothing it is also the EL2N score
    (Paul et al., 2021) and lies in ``[0, √2)``.

    Parameters
    ----------
    logits : Tensor
        ``(N, C)`` floating logits.
    labels : Tensor
        ``(N,)`` integer labels in ``[0, C)``.
    label_smoothing : float
        ``ε`` in ``[0, 1)``; 0 (default) gives ``‖softmax(z_i) − e_{y_i}‖``.
    check_values : bool
        Also check the label range and finiteness (host syncs).

    Returns
    -------
    Tensor
        ``(N,)`` gradient norms.
    """
    _check_logits(logits, labels, check_values)
    eps = check_fraction(label_smoothing, "label_smoothing", high_open=True)
    probs = torch.softmax(logits, dim=1)
    at_label = labels.unsqueeze(1)
    # 1 − p_y summed from the other classes: p_y − 1 itself loses its digits when p_y ≈ 1
    others = probs.scatter(1, at_label, 0.0)
    one_minus_py = others.sum(dim=1, keepdim=True)
    smoothing = eps / logits.shape[1]
    residual = (others - smoothing).scatter(1, at_label, eps - smoothing - one_minus_py)
    return torch.linalg.vector_norm(residual, dim=1)


def _check_outputs_targets(outputs: Tensor, targets: Tensor, name: str, check_values: bool) -> None:
    """``outputs`` floating ``(N,)`` or ``(N, K)``; ``targets`` floating of the same shape."""
    if not isinstance(outputs, Tensor) or outputs.dim() not in (1, 2):
        shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
        raise ValueError(f"{name} must be a tensor of shape (N,) or (N, K), got {shape}")
    if not outputs.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {outputs.dtype}")
    if not isinstance(targets, Tensor) or not targets.is_floating_point():
        what = targets.dtype if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a floating tensor, got {what}")
    if targets.shape != outputs.shape:
        raise ValueError(
            f"{name} and targets must have the same shape, got {tuple(outputs.shape)} "
            f"and {tuple(targets.shape)}"
        )
    if check_values:
        check_finite(outputs, name)
        check_finite(targets, "targets")


def _row_norms(x: Tensor) -> Tensor:
    """``|x_i|`` for ``(N,)``, ``‖x_i‖₂`` over the last dim for ``(N, K)``."""
    return x.abs() if x.dim() == 1 else torch.linalg.vector_norm(x, dim=1)


def sigmoid_grad_norm_bound(
    logits: Tensor, targets: Tensor, *, check_values: bool = False
) -> Tensor:
    r"""Norm of the sigmoid binary cross-entropy gradient with respect to the logits.

    For the per-example loss *summed* over the ``K`` outputs,
    ``F.binary_cross_entropy_with_logits(logits, targets, reduction='none').sum(dim=1)``:

    .. math:: \ell_i = -\sum_k \big[y_{ik} \log \sigma(z_{ik})
                       + (1 - y_{ik}) \log(1 - \sigma(z_{ik}))\big], \qquad
              g_i = \lVert \partial \ell_i / \partial z_i \rVert_2
                  = \lVert \sigma(z_i) - y_i \rVert_2

    (divide by ``K`` for the per-example *mean* over outputs). The importance-sampling bound of
    :func:`grad_norm_bound` for multi-label or binary classifiers; lies in ``[0, √K]``.

    Parameters
    ----------
    logits : Tensor
        ``(N,)`` (one output) or ``(N, K)`` floating logits.
    targets : Tensor
        Floating targets in ``[0, 1]`` (soft labels allowed), of the logits' shape.
    check_values : bool
        Also check finiteness and the target range (host syncs).

    Returns
    -------
    Tensor
        ``(N,)`` gradient norms.
    """
    _check_outputs_targets(logits, targets, "logits", check_values)
    if check_values and targets.numel() and (targets.min() < 0 or targets.max() > 1):
        raise ValueError("targets must be in [0, 1] (probabilities) for the sigmoid loss")
    return _row_norms(torch.sigmoid(logits) - targets)


def mse_grad_norm_bound(outputs: Tensor, targets: Tensor, *, check_values: bool = False) -> Tensor:
    r"""Norm of the mean-squared-error gradient with respect to the outputs.

    For the per-example loss *averaged* over the ``K`` outputs,
    ``F.mse_loss(outputs, targets, reduction='none').mean(dim=1)``:

    .. math:: \ell_i = \frac{1}{K} \sum_k (z_{ik} - y_{ik})^2, \qquad
              g_i = \lVert \partial \ell_i / \partial z_i \rVert_2
                  = \frac{2}{K} \lVert z_i - y_i \rVert_2

    ``(N,)`` outputs mean ``K = 1``: ``g_i = 2 |z_i − y_i|``. The importance-sampling bound of
    :func:`grad_norm_bound` for regression.

    Parameters
    ----------
    outputs : Tensor
        ``(N,)`` or ``(N, K)`` floating model outputs.
    targets : Tensor
        Floating targets of the outputs' shape.
    check_values : bool
        Also check finiteness (host syncs).

    Returns
    -------
    Tensor
        ``(N,)`` gradient norms.
    """
    _check_outputs_targets(outputs, targets, "outputs", check_values)
    k = 1 if outputs.dim() == 1 else outputs.shape[1]
    return _row_norms(outputs - targets) * (2.0 / k)


def entropy(logits: Tensor, *, check_values: bool = False) -> Tensor:
    r"""Predictive entropy in nats, computed from ``log_softmax`` (no ``log 0``).

    .. math:: H_i = -\sum_c p_{ic} \log p_{ic}

    Parameters
    ----------
    logits : Tensor
        ``(N, C)`` floating logits.
    check_values : bool
        Also check finiteness (host sync); the shape is always checked.

    Returns
    -------
    Tensor
        ``(N,)`` entropies in ``[0, log C]``.
    """
    _check_logits(logits, None, check_values)
    log_probs = torch.log_softmax(logits, dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1)


def least_confidence(logits: Tensor, *, check_values: bool = False) -> Tensor:
    r"""One minus the top class probability (higher = less confident).

    .. math:: u_i = 1 - \max_c p_{ic} = \sum_{c \ne c^*_i} p_{ic}, \quad
              c^*_i = \operatorname{argmax}_c p_{ic}

    Summing the other classes' probabilities keeps precision when the model is very confident
    (``1 − p_max`` would round to 0 once ``p_max`` rounds to 1).

    Parameters
    ----------
    logits : Tensor
        ``(N, C)`` floating logits.
    check_values : bool
        Also check finiteness (host sync); the shape is always checked.

    Returns
    -------
    Tensor
        ``(N,)`` values in ``[0, 1 − 1/C]``.
    """
    _check_logits(logits, None, check_values)
    probs = torch.softmax(logits, dim=1)
    top = probs.argmax(dim=1, keepdim=True)
    return probs.scatter(1, top, 0.0).sum(dim=1)


def margin(logits: Tensor, *, check_values: bool = False) -> Tensor:
    """Gap between the two largest class probabilities (smaller = more uncertain).

    .. math:: m_i = p_{i,(1)} - p_{i,(2)}

    where ``p_{(1)} ≥ p_{(2)}`` are the largest and second-largest probabilities. Note the
    direction: to pick the *most uncertain* examples, select on ``-margin(logits)``.

    Parameters
    ----------
    logits : Tensor
        ``(N, C)`` floating logits with ``C ≥ 2``.
    check_values : bool
        Also check finiteness (host sync); the shape and ``C ≥ 2`` are always checked.

    Returns
    -------
    Tensor
        ``(N,)`` values in ``[0, 1]``.
    """
    _check_logits(logits, None, check_values)
    if logits.shape[1] < 2:
        raise ValueError(f"logits must have at least 2 classes for margin, got C={logits.shape[1]}")
    top2 = torch.softmax(logits, dim=1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]
