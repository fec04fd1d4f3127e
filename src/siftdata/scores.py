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

from ._validation import (
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


def grad_norm_bound(logits: Tensor, labels: Tensor, *, check_values: bool = False) -> Tensor:
    r"""Norm of the cross-entropy gradient with respect to the logits.

    .. math:: g_i = \lVert \partial \ell_i / \partial z_i \rVert_2
                  = \lVert \operatorname{softmax}(z_i) - e_{y_i} \rVert_2

    Katharopoulos & Fleuret (2018) use it as an upper bound (up to a constant) on the norm of the
    per-example parameter gradient, for importance sampling; it is also the EL2N score
    (Paul et al., 2021). Lies in ``[0, √2)``.

    Parameters
    ----------
    logits : Tensor
        ``(N, C)`` floating logits.
    labels : Tensor
        ``(N,)`` integer labels in ``[0, C)``.
    check_values : bool
        Also check the label range and finiteness (host syncs).

    Returns
    -------
    Tensor
        ``(N,)`` gradient norms.
    """
    _check_logits(logits, labels, check_values)
    probs = torch.softmax(logits, dim=1)
    # p − e_y by subtracting 1 at each label (F.one_hot would check the label range: a host sync)
    residual = probs.scatter_add(1, labels.unsqueeze(1), probs.new_full((labels.shape[0], 1), -1.0))
    return torch.linalg.vector_norm(residual, dim=1)


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
