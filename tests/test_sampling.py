"""Index selection: exact distributions checked by chi-square against hand-computed
probabilities, determinism under a seeded generator, and argument errors."""

import itertools
import math
from collections import Counter

import pytest
import torch

from siftdata.core.sampling import (
    gumbel_top_k,
    sample_with_replacement,
    top_k,
    uniform_without_replacement,
)
from siftdata.training.diagnostics import count_host_syncs

# Chi-square 0.999 quantiles by degrees of freedom, from standard tables (the statistic of a
# correct sampler exceeds these with probability 0.001; the seeds are fixed, so tests are
# deterministic).
CHI2_999 = {4: 18.467, 5: 20.515, 9: 27.877, 11: 31.264}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _chi2(counts: dict, probs: dict) -> float:
    """Pearson's statistic over the keys of ``probs`` (every outcome, observed or not)."""
    total = sum(counts.values())
    assert set(counts) <= set(probs), "an impossible outcome was drawn"
    return sum((counts.get(o, 0) - total * p) ** 2 / (total * p) for o, p in probs.items())


def _plackett_luce(scores, order, temperature):
    """P(drawing ``order`` first, in that order) with weights exp(s / τ), written out by hand."""
    weights = [math.exp(s / temperature) for s in scores]
    remaining = sum(weights)
    prob = 1.0
    for i in order:
        prob *= weights[i] / remaining
        remaining -= weights[i]
    return prob


# ------------------------------------------------------------------------------------- top_k


def test_top_k_returns_largest_in_order():
    scores = torch.tensor([0.3, -1.0, 2.5, 0.9, 2.0])
    assert top_k(scores, 3).tolist() == [2, 4, 3]
    assert top_k(scores, 5).tolist() == [2, 4, 3, 0, 1]
    assert top_k(scores, 1).dtype == torch.int64


# ------------------------------------------------------------------------------ gumbel_top_k

SCORES4 = [0.0, 0.4, 1.0, -0.5]
TAU = 0.6
N_DRAWS = 20_000


def _ordered_pair_counts(temperature, seed=0):
    scores = torch.tensor(SCORES4)
    g = _gen(seed)
    return Counter(
        tuple(gumbel_top_k(scores, 2, temperature=temperature, generator=g).tolist())
        for _ in range(N_DRAWS)
    )


def test_gumbel_top_k_ordered_pairs_follow_plackett_luce():
    counts = _ordered_pair_counts(TAU)
    probs = {o: _plackett_luce(SCORES4, o, TAU) for o in itertools.permutations(range(4), 2)}
    assert sum(probs.values()) == pytest.approx(1.0)
    # 12 ordered pairs -> 11 degrees of freedom
    assert _chi2(counts, probs) < CHI2_999[11]
    # Power check: the same draws are far from the τ = 1 distribution, so a sampler that
    # ignored the temperature would fail the test above.
    wrong = {o: _plackett_luce(SCORES4, o, 1.0) for o in probs}
    assert _chi2(counts, wrong) > 5 * CHI2_999[11]


def test_gumbel_top_k_unordered_triples_marginal():
    scores = [0.2, -0.3, 0.9, 0.0, 0.5]
    tau = 1.7
    g = _gen(3)
    t = torch.tensor(scores)
    counts = Counter(
        tuple(sorted(gumbel_top_k(t, 3, temperature=tau, generator=g).tolist()))
        for _ in range(N_DRAWS)
    )
    probs = {
        subset: sum(_plackett_luce(scores, o, tau) for o in itertools.permutations(subset))
        for subset in itertools.combinations(range(5), 3)
    }
    assert sum(probs.values()) == pytest.approx(1.0)
    # 10 subsets -> 9 degrees of freedom
    assert _chi2(counts, probs) < CHI2_999[9]


def test_tensor_temperature_gives_same_draws_as_float():
    scores = torch.randn(50, generator=_gen(1))
    for seed in range(5):
        a = gumbel_top_k(scores, 10, temperature=0.37, generator=_gen(seed))
        b = gumbel_top_k(scores, 10, temperature=torch.tensor(0.37), generator=_gen(seed))
        assert torch.equal(a, b)


def test_std_relative_tensor_temperature_gives_same_draws_as_its_value():
    scores = torch.randn(50, generator=_gen(1))
    tau = 0.5 * scores.std()
    out = gumbel_top_k(scores, 10, temperature=tau, generator=_gen(0))
    assert torch.equal(out, gumbel_top_k(scores, 10, temperature=float(tau), generator=_gen(0)))
    checked = gumbel_top_k(scores, 10, temperature=tau, generator=_gen(0), check_values=True)
    assert torch.equal(out, checked)


@pytest.mark.parametrize("value, tau", [(0.0, 1.0), (1000.0, 1e-6), (-3e4, 1e-3)])
def test_constant_scores_are_drawn_uniformly_at_any_scale_and_temperature(value, tau):
    # Keys s + τ·G would round the noise away for large s and tiny τ (1000 + 1e-6·G == 1000 in
    # float32), leaving ties that topk breaks the same way every time; (s − max s) + τ·G does not.
    n, reps = 6, 6000
    scores = torch.full((n,), value)
    g = _gen(11)
    firsts = Counter(
        int(gumbel_top_k(scores, 2, temperature=tau, generator=g)[0]) for _ in range(reps)
    )
    # 6 outcomes -> 5 degrees of freedom
    assert _chi2(firsts, dict.fromkeys(range(n), 1 / n)) < CHI2_999[5]


def test_tiny_temperature_equals_top_k():
    scores = torch.randn(200, generator=_gen(2))
    for seed in range(5):
        out = gumbel_top_k(scores, 20, temperature=1e-9, generator=_gen(seed))
        assert torch.equal(out, top_k(scores, 20))


def test_huge_temperature_is_not_top_k():
    # guards the previous test: at large τ the draws must differ from top-k
    scores = torch.randn(200, generator=_gen(2))
    out = gumbel_top_k(scores, 20, temperature=100.0, generator=_gen(0))
    assert not torch.equal(out, top_k(scores, 20))


def test_same_seed_same_draws_and_different_seed_different_draws():
    scores = torch.randn(100, generator=_gen(4))
    a = gumbel_top_k(scores, 30, generator=_gen(7))
    b = gumbel_top_k(scores, 30, generator=_gen(7))
    c = gumbel_top_k(scores, 30, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_gumbel_top_k_indices_are_distinct_and_in_range():
    scores = torch.randn(64, generator=_gen(5))
    g = _gen(0)
    for k in (1, 17, 64):
        out = gumbel_top_k(scores, k, temperature=0.3, generator=g)
        assert out.dtype == torch.int64 and out.shape == (k,)
        assert out.unique().numel() == k
        assert int(out.min()) >= 0 and int(out.max()) < 64


def test_gumbel_top_k_half_precision_scores():
    scores = torch.randn(32, generator=_gen(6)).to(torch.bfloat16)
    out = gumbel_top_k(scores, 8, generator=_gen(0))
    assert out.unique().numel() == 8


# ------------------------------------------------------------------ sample_with_replacement


def test_sample_with_replacement_matches_probs():
    probs = torch.tensor([0.5, 0.0, 2.0, 1.0, 1.5, 0.25])
    draws = sample_with_replacement(probs, 50_000, generator=_gen(0))
    assert draws.dtype == torch.int64 and draws.shape == (50_000,)
    counts = Counter(draws.tolist())
    assert 1 not in counts  # zero-probability index never drawn
    total = float(probs.sum())
    expected = {i: p / total for i, p in enumerate(probs.tolist()) if p > 0}
    # 5 possible outcomes -> 4 degrees of freedom
    assert _chi2(counts, expected) < CHI2_999[4]
    # power check: far from uniform over the possible outcomes
    assert _chi2(counts, dict.fromkeys(expected, 1 / 5)) > 5 * CHI2_999[4]


def test_sample_with_replacement_allows_k_above_n_and_is_seeded():
    probs = torch.tensor([1.0, 3.0])
    a = sample_with_replacement(probs, 10, generator=_gen(1))
    assert a.shape == (10,)
    assert torch.equal(a, sample_with_replacement(probs, 10, generator=_gen(1)))


# --------------------------------------------------------------- uniform_without_replacement


def test_uniform_without_replacement_is_distinct_and_uniform():
    n, k, reps = 6, 3, 12_000
    g = _gen(0)
    firsts = Counter()
    for _ in range(reps):
        out = uniform_without_replacement(n, k, generator=g)
        assert out.dtype == torch.int64 and out.shape == (k,)
        assert out.unique().numel() == k
        firsts[int(out[0])] += 1
    # 6 outcomes -> 5 degrees of freedom
    assert _chi2(firsts, dict.fromkeys(range(n), 1 / n)) < CHI2_999[5]


def test_uniform_without_replacement_full_permutation_and_seed():
    out = uniform_without_replacement(10, 10, generator=_gen(3))
    assert sorted(out.tolist()) == list(range(10))
    assert torch.equal(out, uniform_without_replacement(10, 10, generator=_gen(3)))


# ------------------------------------------------------------------------------------- errors

SCORE_FNS = [
    lambda s, k: top_k(s, k),
    lambda s, k: gumbel_top_k(s, k, generator=_gen()),
]


CHECKED_SCORE_FNS = [
    lambda s, k: top_k(s, k, check_values=True),
    lambda s, k: gumbel_top_k(s, k, generator=_gen(), check_values=True),
]


@pytest.mark.parametrize("checked, unchecked", list(zip(CHECKED_SCORE_FNS, SCORE_FNS, strict=True)))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_scores_raise_with_check_values(checked, unchecked, bad):
    scores = torch.tensor([0.1, bad, 0.3])
    with pytest.raises(ValueError, match="scores has 1 non-finite"):
        checked(scores, 1)
    assert unchecked(scores, 1).shape == (1,)  # values are not checked by default


NO_SYNC_CALLS = {
    "top_k": lambda s: top_k(s, 3),
    "gumbel_top_k": lambda s: gumbel_top_k(s, 3, temperature=0.5, generator=_gen()),
    "gumbel_top_k tensor τ": lambda s: gumbel_top_k(
        s, 3, temperature=0.5 * s.std(), generator=_gen()
    ),
    "sample_with_replacement": lambda s: sample_with_replacement(s.exp(), 9, generator=_gen()),
    "uniform_without_replacement": lambda s: uniform_without_replacement(8, 3, generator=_gen()),
}


@pytest.mark.parametrize("call", list(NO_SYNC_CALLS.values()), ids=list(NO_SYNC_CALLS))
def test_default_makes_no_host_sync(call):
    scores = torch.randn(8, generator=_gen(2))
    with count_host_syncs() as syncs:
        call(scores)
    assert syncs.total == 0, syncs.counts


def test_check_values_syncs():  # guards the test above: the counter does see these checks
    scores = torch.randn(8, generator=_gen(2))
    for call in (
        lambda: top_k(scores, 3, check_values=True),
        lambda: gumbel_top_k(scores, 3, temperature=scores.std(), check_values=True),
        lambda: sample_with_replacement(scores.exp(), 3, check_values=True),
    ):
        with count_host_syncs() as syncs:
            call()
        assert syncs.total > 0


@pytest.mark.parametrize("fn", SCORE_FNS)  # argument checks run without check_values
def test_scores_shape_and_dtype_errors(fn):
    with pytest.raises(ValueError, match="scores must be 1-D"):
        fn(torch.zeros(3, 2), 1)
    with pytest.raises(ValueError, match="scores must be a floating"):
        fn(torch.tensor([1, 2, 3]), 1)
    with pytest.raises(ValueError, match="scores must be a torch.Tensor"):
        fn([0.1, 0.2], 1)


@pytest.mark.parametrize("fn", SCORE_FNS)
def test_k_errors(fn):
    scores = torch.tensor([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\] \(the super-batch size\), got 0"):
        fn(scores, 0)
    with pytest.raises(ValueError, match=r"\[1, 3\] \(the super-batch size\), got 4"):
        fn(scores, 4)
    for bad_k in (2.0, True, torch.tensor(2)):
        with pytest.raises(ValueError, match="k must be an int"):
            fn(scores, bad_k)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_float_temperature_raises(tau):
    # a float temperature is always checked (it costs no sync)
    with pytest.raises(ValueError, match="temperature"):
        gumbel_top_k(torch.tensor([0.1, 0.2]), 1, temperature=tau)
    with pytest.raises(ValueError, match="temperature"):
        gumbel_top_k(torch.tensor([0.1, 0.2]), 1, temperature=tau, check_values=True)


@pytest.mark.parametrize(
    "tau",
    [torch.tensor([0.5]), torch.tensor(1), torch.tensor(0.5, device="meta")],
    ids=["shape", "dtype", "device"],
)
def test_tensor_temperature_argument_errors_always_raise(tau):
    with pytest.raises(ValueError, match="temperature"):
        gumbel_top_k(torch.tensor([0.1, 0.2]), 1, temperature=tau)


@pytest.mark.parametrize("tau", [torch.tensor(0.0), torch.tensor(-0.5), torch.tensor(float("nan"))])
def test_bad_tensor_temperature_value_raises_with_check_values(tau):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        gumbel_top_k(torch.tensor([0.1, 0.2]), 1, temperature=tau, check_values=True)


def test_bad_scores_reported_before_a_temperature_derived_from_them():
    scores = torch.tensor([0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="scores has 1 non-finite"):
        gumbel_top_k(scores, 1, temperature=0.5 * scores.std(), check_values=True)


def test_sample_with_replacement_errors():
    with pytest.raises(ValueError, match="probs must be nonnegative"):
        sample_with_replacement(torch.tensor([0.5, -0.1, 0.6]), 2, check_values=True)
    with pytest.raises(ValueError, match="probs must have a positive sum"):
        sample_with_replacement(torch.zeros(3), 2, check_values=True)
    with pytest.raises(ValueError, match="probs has 1 non-finite"):
        sample_with_replacement(torch.tensor([0.5, float("nan")]), 2, check_values=True)
    with pytest.raises(ValueError, match="probs has 1 non-finite"):
        sample_with_replacement(torch.tensor([0.5, float("inf")]), 2, check_values=True)
    # argument checks always run
    with pytest.raises(ValueError, match="probs must be 1-D"):
        sample_with_replacement(torch.ones(2, 2), 2)
    with pytest.raises(ValueError, match="k must be in"):
        sample_with_replacement(torch.ones(3), 0)
    with pytest.raises(ValueError, match="k must be an int"):
        sample_with_replacement(torch.ones(3), 1.5)


def test_uniform_without_replacement_errors():
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\] \(n\), got 6"):
        uniform_without_replacement(5, 6)
    with pytest.raises(ValueError, match="k must be in"):
        uniform_without_replacement(5, 0)
    with pytest.raises(ValueError, match="n must be in"):
        uniform_without_replacement(0, 1)
    with pytest.raises(ValueError, match="k must be an int"):
        uniform_without_replacement(5, 2.0)
