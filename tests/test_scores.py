"""Per-example scores: exactness against explicit per-row numpy code, properties, and errors."""

import math

import numpy as np
import pytest
import torch

from siftdata.core.scores import (
    entropy,
    grad_norm_bound,
    learnability,
    least_confidence,
    margin,
    per_example_loss,
)
from siftdata.training.diagnostics import count_host_syncs

N, C = 7, 5


def _logits_labels(n=N, c=C, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels


def _softmax_row(z):
    """Softmax of one row, written out by hand (max-shifted for safety)."""
    e = [math.exp(v - max(z)) for v in z]
    total = sum(e)
    return [v / total for v in e]


# ----------------------------------------------------------------- exactness vs reference code


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.35])
def test_per_example_loss_matches_per_row_reference(label_smoothing):
    logits, labels = _logits_labels()
    got = per_example_loss(logits, labels, label_smoothing=label_smoothing)
    expected = []
    for z, y in zip(logits.tolist(), labels.tolist(), strict=True):
        p = _softmax_row(z)
        target = [label_smoothing / C + (1 - label_smoothing) * (c == y) for c in range(C)]
        expected.append(-sum(t * math.log(pc) for t, pc in zip(target, p, strict=True)))
    assert got.shape == (N,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_label_smoothing_changes_the_loss():
    logits, labels = _logits_labels()
    assert not torch.allclose(
        per_example_loss(logits, labels), per_example_loss(logits, labels, label_smoothing=0.2)
    )


def test_learnability_is_learner_minus_reference():
    learner = torch.tensor([2.0, 0.5, 1.0, 3.0])
    reference = torch.tensor([0.5, 0.5, 2.0, 0.0])
    assert torch.equal(learnability(learner, reference), torch.tensor([1.5, 0.0, -1.0, 3.0]))


def test_learnability_of_two_models_losses():
    learner_logits, labels = _logits_labels(seed=1)
    reference_logits, _ = _logits_labels(seed=2)
    got = learnability(
        per_example_loss(learner_logits, labels), per_example_loss(reference_logits, labels)
    )
    expected = [
        -math.log(_softmax_row(zl)[y]) + math.log(_softmax_row(zr)[y])
        for zl, zr, y in zip(
            learner_logits.tolist(), reference_logits.tolist(), labels.tolist(), strict=True
        )
    ]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_grad_norm_bound_matches_per_row_reference():
    logits, labels = _logits_labels()
    got = grad_norm_bound(logits, labels)
    expected = []
    for z, y in zip(logits.tolist(), labels.tolist(), strict=True):
        p = _softmax_row(z)
        expected.append(math.sqrt(sum((pc - (c == y)) ** 2 for c, pc in enumerate(p))))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_grad_norm_bound_equals_autograd_gradient_norm():
    logits, labels = _logits_labels()
    z = logits.clone().requires_grad_(True)
    per_example_loss(z, labels).sum().backward()
    np.testing.assert_allclose(
        grad_norm_bound(logits, labels).numpy(), z.grad.norm(dim=1).numpy(), rtol=1e-12
    )


def test_entropy_matches_per_row_reference():
    logits, _ = _logits_labels()
    got = entropy(logits)
    expected = [-sum(pc * math.log(pc) for pc in _softmax_row(z)) for z in logits.tolist()]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_entropy_is_stable_for_extreme_logits():
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    got = entropy(logits)
    assert torch.isfinite(got).all()
    assert got[0].abs() < 1e-6
    assert got[1] == pytest.approx(math.log(3), rel=1e-6)


def test_least_confidence_matches_per_row_reference():
    logits, _ = _logits_labels()
    got = least_confidence(logits)
    expected = [1 - max(_softmax_row(z)) for z in logits.tolist()]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_least_confidence_keeps_precision_for_confident_float32_rows():
    # 1 − p_max = e^−30 / (1 + e^−30) ≈ 9.4e-14, which "1 − p_max" in float32 rounds to 0
    logits = torch.tensor([[30.0, 0.0]])
    expected = math.exp(-30) / (1 + math.exp(-30))
    assert least_confidence(logits).item() == pytest.approx(expected, rel=1e-5, abs=0.0)


def test_margin_matches_per_row_reference():
    logits, _ = _logits_labels()
    got = margin(logits)
    expected = []
    for z in logits.tolist():
        p = sorted(_softmax_row(z), reverse=True)
        expected.append(p[0] - p[1])
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_known_values_for_uniform_and_confident_rows():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, -1e4, -1e4]])
    assert least_confidence(logits).tolist() == pytest.approx([0.75, 0.25])
    assert margin(logits).tolist() == pytest.approx([0.0, 0.5])
    assert entropy(logits)[0].item() == pytest.approx(math.log(4))


def test_float32_inputs_keep_dtype_and_check_values_gives_same_values():
    logits, labels = _logits_labels()
    logits = logits.float()
    for fn, args in [
        (per_example_loss, (logits, labels)),
        (grad_norm_bound, (logits, labels)),
        (entropy, (logits,)),
        (least_confidence, (logits,)),
        (margin, (logits,)),
    ]:
        out = fn(*args)
        assert out.dtype == torch.float32 and out.shape == (N,)
        assert torch.equal(out, fn(*args, check_values=True))


# ------------------------------------------------------------------------------------- errors

LOGITS_ONLY = [entropy, least_confidence, margin]
WITH_LABELS = [per_example_loss, grad_norm_bound]


def _args(fn, logits, labels):
    return (logits, labels) if fn in WITH_LABELS else (logits,)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("fn", LOGITS_ONLY + WITH_LABELS)
def test_non_finite_logits_raise_with_check_values(fn, bad):
    logits, labels = _logits_labels()
    logits[2, 1] = bad
    with pytest.raises(ValueError, match="logits"):
        fn(*_args(fn, logits, labels), check_values=True)
    fn(*_args(fn, logits, labels))  # values are not checked by default


@pytest.mark.parametrize(
    "fn",
    [*LOGITS_ONLY, per_example_loss, grad_norm_bound],
)
def test_default_makes_no_host_sync_and_check_values_does(fn):
    logits, labels = _logits_labels()
    with count_host_syncs() as syncs:
        fn(*_args(fn, logits, labels))
    assert syncs.total == 0, syncs.counts
    with count_host_syncs() as syncs:  # guards the counter: the value checks do sync
        fn(*_args(fn, logits, labels), check_values=True)
    assert syncs.total > 0


def test_learnability_makes_no_host_sync_by_default():
    a, b = torch.rand(6), torch.rand(6)
    with count_host_syncs() as syncs:
        learnability(a, b, learner_loss_cap=1.0)
    assert syncs.total == 0, syncs.counts
    with count_host_syncs() as syncs:
        learnability(a, b, check_values=True)
    assert syncs.total > 0


@pytest.mark.parametrize("fn", LOGITS_ONLY + WITH_LABELS)
def test_logits_must_be_2d_floating(fn):
    logits, labels = _logits_labels()
    for bad in (logits[0], logits.long(), logits[None]):
        with pytest.raises(ValueError, match="logits"):  # argument checks always run
            fn(*_args(fn, bad, labels))


@pytest.mark.parametrize("fn", WITH_LABELS)
def test_label_errors(fn):
    logits, labels = _logits_labels()
    with pytest.raises(ValueError, match="logits and labels"):
        fn(logits, labels[:-1])
    for bad_label in (C, -1):
        bad = labels.clone()
        bad[0] = bad_label
        with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
            fn(logits, bad, check_values=True)
    with pytest.raises(ValueError, match="labels"):
        fn(logits, labels.double())
    with pytest.raises(ValueError, match="labels"):
        fn(logits, labels[:, None])


@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_label_smoothing_out_of_range_raises(eps):
    logits, labels = _logits_labels()
    with pytest.raises(ValueError, match="label_smoothing"):
        per_example_loss(logits, labels, label_smoothing=eps)


def test_margin_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        margin(torch.zeros(3, 1))


def test_learnability_errors():
    a = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="learner_loss and reference_loss"):
        learnability(a, a[:2])
    with pytest.raises(ValueError, match="reference_loss"):
        learnability(a, torch.tensor([1.0, float("nan"), 0.0]), check_values=True)
    with pytest.raises(ValueError, match="learner_loss"):
        learnability(torch.tensor([1.0, float("inf"), 0.0]), a, check_values=True)
    with pytest.raises(ValueError, match="learner_loss"):
        learnability(a[None], a[None])
    with pytest.raises(ValueError, match="reference_loss"):
        learnability(a, torch.tensor([1, 2, 3]))


def test_learnability_cap_clips_only_the_learner_loss():
    learner = torch.tensor([0.5, 2.0, 7.0])
    reference = torch.tensor([0.1, 3.0, 4.0])
    got = learnability(learner, reference, learner_loss_cap=math.log(10))
    expected = [
        min(a, math.log(10)) - b for a, b in zip(learner.tolist(), reference.tolist(), strict=False)
    ]
    torch.testing.assert_close(got, torch.tensor(expected))
    with pytest.raises(ValueError, match="learner_loss_cap"):
        learnability(learner, reference, learner_loss_cap=0.0)
