"""Gradient-norm bounds (Katharopoulos & Fleuret, 2018): the closed forms against autograd on a
small MLP, per-example gradients against a slow loop, the bound's rank agreement with the full
gradient norm, importance-sampling variance against enumeration, and errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from siftdata.core.grad_norms import (
    gradient_columns,
    importance_sampling_variance,
    per_example_gradients,
    per_example_output_gradients,
    spearman,
)
from siftdata.core.scores import grad_norm_bound, mse_grad_norm_bound, sigmoid_grad_norm_bound
from siftdata.scoring.scorers import GradNormBound, Need, ScoringBatch
from siftdata.training.diagnostics import count_host_syncs

N, D, H, C = 12, 20, 16, 5


def _mlp(seed=0, batch_norm=False):
    torch.manual_seed(seed)  # nn.Linear's initialisation has no generator argument
    hidden = [nn.Linear(D, H), *([nn.BatchNorm1d(H)] if batch_norm else []), nn.ReLU()]
    return nn.Sequential(*hidden, nn.Linear(H, C)).double()


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    labels = torch.randint(0, C, (N,), generator=g)
    probs = torch.rand(N, C, generator=g, dtype=torch.float64)  # soft targets in [0, 1]
    values = torch.randn(N, C, generator=g, dtype=torch.float64)
    return x, labels, probs, values


def _cross_entropy(eps):
    return lambda z, y: F.cross_entropy(z, y, reduction="none", label_smoothing=eps)


def _sigmoid(z, y):
    return F.binary_cross_entropy_with_logits(z, y, reduction="none").sum(dim=1)


def _mse(z, y):
    return F.mse_loss(z, y, reduction="none").mean(dim=1)


def _cases():
    """(name, loss_fn, targets, bound(outputs, targets)) for the four closed forms."""
    _, labels, probs, values = _data()
    return [
        ("cross-entropy", _cross_entropy(0.0), labels, grad_norm_bound),
        (
            "label smoothing 0.1",
            _cross_entropy(0.1),
            labels,
            lambda z, y: grad_norm_bound(z, y, label_smoothing=0.1),
        ),
        ("sigmoid", _sigmoid, probs, sigmoid_grad_norm_bound),
        ("mse", _mse, values, mse_grad_norm_bound),
    ]


CASES = _cases()
IDS = [case[0] for case in CASES]


def _bound(model, x, targets, bound):
    with torch.no_grad():
        return bound(model(x), targets)


# ------------------------------------------------------------ closed forms are the exact norms


@pytest.mark.parametrize("name, loss_fn, targets, bound", CASES, ids=IDS)
def test_output_gradient_norm_is_the_closed_form(name, loss_fn, targets, bound):
    model, x = _mlp(), _data()[0]
    got = per_example_output_gradients(model, loss_fn, x, targets)
    assert got.shape == (N, C)
    torch.testing.assert_close(
        got.norm(dim=1), _bound(model, x, targets, bound), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name, loss_fn, targets, bound", CASES, ids=IDS)
def test_last_layer_gradient_is_bound_times_input_norm(name, loss_fn, targets, bound):
    # ∂ℓ_i/∂W = g_i h_iᵀ for the last layer z = W h + b, so ‖∂ℓ_i/∂W‖_F = ‖g_i‖·‖h_i‖, ∂ℓ_i/∂b = g_i
    model, x = _mlp(), _data()[0]
    grads = per_example_gradients(model, loss_fn, x, targets)
    columns = gradient_columns(model)
    with torch.no_grad():
        h_norm = model[:-1](x).norm(dim=1)
    g = _bound(model, x, targets, bound)
    torch.testing.assert_close(grads[:, columns["2.weight"]].norm(dim=1), g * h_norm)
    torch.testing.assert_close(grads[:, columns["2.bias"]].norm(dim=1), g)


@pytest.mark.parametrize("shape", [(N,), (N, 1), (N, 3)])
def test_sigmoid_and_mse_closed_forms_for_one_or_few_outputs(shape):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(shape, generator=g, dtype=torch.float64)
    k = 1 if len(shape) == 1 else shape[1]
    for loss, bound in (
        (F.binary_cross_entropy_with_logits(z, y, reduction="none"), sigmoid_grad_norm_bound),
        (F.mse_loss(z, y, reduction="none"), mse_grad_norm_bound),
    ):
        per_example = loss if len(shape) == 1 else loss.sum(1)
        per_example = per_example / k if bound is mse_grad_norm_bound else per_example
        (dz,) = torch.autograd.grad(per_example.sum(), z)
        expected = dz.abs() if len(shape) == 1 else dz.norm(dim=1)
        torch.testing.assert_close(bound(z.detach(), y), expected)


def test_label_smoothing_bound_matches_per_row_reference():
    logits, labels = _data()[3], _data()[1]
    eps = 0.25
    probs = torch.softmax(logits, dim=1)
    expected = [
        math.sqrt(sum((p - (eps / C + (1 - eps) * (c == y))) ** 2 for c, p in enumerate(row)))
        for row, y in zip(probs.tolist(), labels.tolist(), strict=True)
    ]
    got = grad_norm_bound(logits, labels, label_smoothing=eps)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    assert torch.equal(  # ε = 0 is the plain bound, bit for bit
        grad_norm_bound(logits, labels, label_smoothing=0.0), grad_norm_bound(logits, labels)
    )


@pytest.mark.parametrize("name, loss_fn, targets, bound", CASES, ids=IDS)
def test_bounds_make_no_host_sync_by_default(name, loss_fn, targets, bound):
    logits = _data()[3]
    with count_host_syncs() as syncs:
        bound(logits, targets)
    assert syncs.total == 0, syncs.counts


def test_check_values_syncs_and_catches_bad_values():
    _, _, probs, values = _data()
    with count_host_syncs() as syncs:
        sigmoid_grad_norm_bound(values, probs, check_values=True)
    assert syncs.total > 0
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        sigmoid_grad_norm_bound(values, probs * 2, check_values=True)
    bad = values.clone()
    bad[1, 2] = math.nan
    with pytest.raises(ValueError, match="outputs"):
        mse_grad_norm_bound(bad, values, check_values=True)
    with pytest.raises(ValueError, match="targets"):
        mse_grad_norm_bound(values, bad, check_values=True)


# ------------------------------------------------------------------- per-example gradients


def _slow_per_example_gradients(model, loss_fn, x, targets):
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        loss = loss_fn(model(x[i : i + 1]), targets[i : i + 1])[0]
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


@pytest.mark.parametrize("name, loss_fn, targets, bound", CASES, ids=IDS)
def test_per_example_gradients_match_a_slow_loop(name, loss_fn, targets, bound):
    model, x = _mlp(1, batch_norm=True), _data()[0]
    with torch.no_grad():  # non-trivial running statistics, so eval mode matters
        model(x)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model[1].weight.requires_grad_(False)  # a frozen parameter gets no column
    got = per_example_gradients(model, loss_fn, x, targets, chunk_size=5)
    assert model.training and model[1].training  # modes restored
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # stats unchanged
    assert got.shape == (N, sum(p.numel() for p in model.parameters() if p.requires_grad))
    assert "1.weight" not in gradient_columns(model)
    torch.testing.assert_close(got, _slow_per_example_gradients(model, loss_fn, x, targets))


def test_bound_ranks_examples_like_the_full_gradient_norm():
    # The last layer's gradient is exactly bound·‖h_i‖ and every earlier layer's is the bound's
    # vector g_i back-propagated (linear in g_i), so ‖∂ℓ_i/∂θ‖ ≤ bound·const and the two rank
    # examples alike once ‖h_i‖ varies little. Measured over seeds 0–19: ρ ≥ 0.97, reduction ≥ 1.7.
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(D, C, generator=g)
    x = torch.randn(256, D, generator=g)
    y = (x @ w_true).argmax(dim=1)  # learnable: a linear teacher
    model = _mlp(0).float()
    loss_fn = _cross_entropy(0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(40):
        idx = torch.randint(0, 256, (32,), generator=g)
        opt.zero_grad()
        loss_fn(model(x[idx]), y[idx]).mean().backward()
        opt.step()
    xe = torch.randn(64, D, generator=g)
    ye = (xe @ w_true).argmax(dim=1)
    full = per_example_gradients(model, loss_fn, xe, ye)
    bound = _bound(model, xe, ye, grad_norm_bound)
    assert spearman(bound, full.norm(dim=1)) > 0.8
    # and sampling ∝ the bound beats uniform on the true gradients
    assert importance_sampling_variance(full, bound / bound.sum())["reduction"] > 1.2


# --------------------------------------------------------------- importance-sampling variance


def _enumerated_variance(grads, probs):
    """E‖X − Ḡ‖² over the B outcomes of X = G_I / (B p_I), I ~ p (those with p_I > 0)."""
    b = grads.shape[0]
    drawn = [i for i in range(b) if float(probs[i]) > 0]
    outcomes = {i: grads[i] / (b * probs[i]) for i in drawn}
    mean = sum(float(probs[i]) * outcomes[i] for i in drawn)
    torch.testing.assert_close(mean, grads.mean(dim=0))  # unbiased
    return sum(float(probs[i]) * float((outcomes[i] - mean).square().sum()) for i in drawn)


def _pool(seed=0, b=6, p=4):
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(b, 1, generator=g, dtype=torch.float64) * 3  # varied norms
    grads = scale * torch.randn(b, p, generator=g, dtype=torch.float64) + 0.5
    weights = -torch.rand(b, generator=g, dtype=torch.float64).log()  # normalised: Dirichlet(1)
    probs = weights / weights.sum()
    return grads, probs


def test_importance_sampling_variance_matches_enumeration():
    grads, probs = _pool()
    b = grads.shape[0]
    got = importance_sampling_variance(grads, probs)
    assert set(got) == {"uniform", "importance", "reduction", "optimal"}
    uniform = torch.full((b,), 1 / b, dtype=torch.float64)
    best = grads.norm(dim=1) / grads.norm(dim=1).sum()
    assert got["importance"] == pytest.approx(_enumerated_variance(grads, probs), rel=1e-10)
    assert got["uniform"] == pytest.approx(_enumerated_variance(grads, uniform), rel=1e-10)
    assert got["optimal"] == pytest.approx(_enumerated_variance(grads, best), rel=1e-10)
    assert got["reduction"] == pytest.approx(got["uniform"] / got["importance"], rel=1e-12)
    same = importance_sampling_variance(grads, uniform)
    assert same["reduction"] == pytest.approx(1.0, rel=1e-12)
    assert same["importance"] == pytest.approx(same["uniform"], rel=1e-12)


def test_probs_proportional_to_gradient_norm_minimise_the_variance():
    grads, _ = _pool(1, b=8, p=5)
    best = grads.norm(dim=1) / grads.norm(dim=1).sum()
    optimal = importance_sampling_variance(grads, best)
    assert optimal["importance"] == pytest.approx(optimal["optimal"], rel=1e-10)
    for seed in range(5):
        _, probs = _pool(seed, b=8, p=5)
        assert importance_sampling_variance(grads, probs)["importance"] >= optimal["importance"]


def test_zero_probability_is_allowed_only_for_zero_gradients():
    grads = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    probs = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)
    got = importance_sampling_variance(grads, probs)["importance"]
    assert got == pytest.approx(_enumerated_variance(grads, probs), rel=1e-10)
    with pytest.raises(ValueError, match="positive wherever a gradient is nonzero"):
        importance_sampling_variance(grads, torch.tensor([0.0, 0.5, 0.5]))


# --------------------------------------------------------------------------------- spearman


def test_spearman_with_ties_matches_hand_computed_average_ranks():
    a = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0])
    b = torch.tensor([2.0, 1.0, 4.0, 4.0, 4.0])
    ra = torch.tensor([1.0, 2.5, 2.5, 4.0, 5.0])  # average ranks, written out
    rb = torch.tensor([2.0, 1.0, 4.0, 4.0, 4.0])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    assert spearman(a, b) == pytest.approx(float((ra * rb).sum() / (ra.norm() * rb.norm())))
    assert spearman(a, a * 10 + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(spearman(a, torch.ones(5)))


# ---------------------------------------------------------------------------------- scorer


def test_grad_norm_bound_scorer_options():
    _, labels, probs, values = _data()
    logits = values.flip(0)
    batch = ScoringBatch(ids=torch.arange(N), labels=labels, outputs=logits)
    assert torch.equal(GradNormBound()(batch), grad_norm_bound(logits, labels))
    smoothed = GradNormBound(label_smoothing=0.1)
    assert torch.equal(smoothed(batch), grad_norm_bound(logits, labels, label_smoothing=0.1))
    soft = ScoringBatch(ids=torch.arange(N), labels=probs, outputs=logits)
    assert torch.equal(GradNormBound(loss="sigmoid")(soft), sigmoid_grad_norm_bound(logits, probs))
    regression = ScoringBatch(ids=torch.arange(N), labels=values, outputs=logits)
    assert torch.equal(GradNormBound(loss="mse")(regression), mse_grad_norm_bound(logits, values))
    for scorer in (GradNormBound(), smoothed, GradNormBound(loss="mse")):
        assert scorer.needs == frozenset({Need.OUTPUTS})


def test_grad_norm_bound_scorer_repr_shows_non_default_options():
    assert repr(GradNormBound()) == "GradNormBound()"
    assert repr(GradNormBound(loss="mse")) == "GradNormBound(loss='mse')"
    assert repr(GradNormBound(loss="sigmoid")) == "GradNormBound(loss='sigmoid')"
    assert repr(GradNormBound(label_smoothing=0.1)) == "GradNormBound(label_smoothing=0.1)"


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5])
def test_label_smoothing_outside_zero_one_raises(eps):
    _, labels, _, logits = _data()
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        grad_norm_bound(logits, labels, label_smoothing=eps)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        GradNormBound(label_smoothing=eps)


def test_scorer_construction_errors():
    with pytest.raises(ValueError, match="loss must be one of 'cross-entropy', 'sigmoid', 'mse'"):
        GradNormBound(loss="hinge")
    with pytest.raises(ValueError, match="label_smoothing applies only to loss='cross-entropy'"):
        GradNormBound(loss="mse", label_smoothing=0.1)


@pytest.mark.parametrize("bound", [sigmoid_grad_norm_bound, mse_grad_norm_bound])
def test_sigmoid_and_mse_shape_errors(bound):
    _, labels, probs, values = _data()
    name = "logits" if bound is sigmoid_grad_norm_bound else "outputs"
    with pytest.raises(ValueError, match=f"{name} and targets must have the same shape"):
        bound(values, probs[:, :3])
    with pytest.raises(ValueError, match=f"{name} and targets must have the same shape"):
        bound(values, probs[:-1])
    with pytest.raises(ValueError, match="targets must be a floating tensor"):
        bound(values, labels)
    with pytest.raises(ValueError, match=rf"{name} must be a tensor of shape \(N,\) or \(N, K\)"):
        bound(values[None], probs[None])
    with pytest.raises(ValueError, match=f"{name} must be a floating tensor"):
        bound(labels, labels.double())


def test_diagnostics_errors():
    model, (x, labels, _, _) = _mlp(), _data()
    loss_fn = _cross_entropy(0.0)
    with pytest.raises(ValueError, match="inputs and targets must have one entry per example"):
        per_example_gradients(model, loss_fn, x, labels[:-1])
    with pytest.raises(ValueError, match="inputs and targets must have one entry per example"):
        per_example_output_gradients(model, loss_fn, x, labels[:-1])
    with pytest.raises(ValueError, match="chunk_size"):
        per_example_gradients(model, loss_fn, x, labels, chunk_size=0)
    mean_loss = lambda z, y: F.cross_entropy(z, y)  # noqa: E731 (reduced: one value per batch)
    with pytest.raises(ValueError, match=r"loss_fn must return one loss per example"):
        per_example_output_gradients(model, mean_loss, x, labels)
    with pytest.raises(ValueError, match=r"loss_fn must return one loss per example"):
        per_example_gradients(model, mean_loss, x, labels)
    grads, probs = _pool()
    with pytest.raises(ValueError, match="per_example_grads and probs"):
        importance_sampling_variance(grads, probs[:-1])
    with pytest.raises(ValueError, match=r"per_example_grads must be a \(B, P\) tensor"):
        importance_sampling_variance(grads[0], probs)
    with pytest.raises(ValueError, match="probs must sum to 1"):
        importance_sampling_variance(grads, probs * 2)
    with pytest.raises(ValueError, match="nonnegative"):
        importance_sampling_variance(grads, probs - probs.mean())
    with pytest.raises(ValueError, match="one length"):
        spearman(torch.rand(4), torch.rand(5))
    with pytest.raises(ValueError, match="at least 2"):
        spearman(torch.rand(1), torch.rand(1))


def test_identical_gradients_have_no_uniform_variance():
    grads = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64).repeat(4, 1)
    uniform = importance_sampling_variance(grads, torch.full((4,), 0.25, dtype=torch.float64))
    assert uniform == {"uniform": 0.0, "importance": 0.0, "reduction": 1.0, "optimal": 0.0}
    skewed = importance_sampling_variance(grads, torch.tensor([0.1, 0.2, 0.3, 0.4]))
    assert skewed["importance"] > 0 and skewed["reduction"] == 0.0
