"""Property-based tests (hypothesis) over the samplers, unbiased weights, the joint sampler, the
stores and the id tables: sizes, no duplicates, exact expectations on small pools, determinism
under a seed, and invariance to the order of the ids."""

from __future__ import annotations

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from siftdata._ids import IdIndex
from siftdata.core.joint_sampling import chunk_sizes, joint_sample
from siftdata.core.pairwise import DensePairScores
from siftdata.core.sampling import (
    gumbel_top_k,
    sample_with_replacement,
    top_k,
    uniform_without_replacement,
)
from siftdata.core.unbiased import (
    horvitz_thompson_weights,
    importance_weights,
    inclusion_probabilities,
)
from siftdata.store import load_scores, save_scores

SETTINGS = settings(max_examples=50, deadline=None)
finite = st.floats(-50, 50, allow_nan=False, width=32)


@st.composite
def pool_and_k(draw, low: int = 1, high: int = 40):
    n = draw(st.integers(low, high))
    scores = torch.tensor(draw(st.lists(finite, min_size=n, max_size=n)), dtype=torch.float32)
    return scores, draw(st.integers(1, n))


def _unique(idx: torch.Tensor) -> bool:
    return idx.unique().numel() == idx.numel()


@SETTINGS
@given(pool_and_k())
def test_top_k_picks_k_distinct_indices_none_below_the_rest(case):
    scores, k = case
    idx = top_k(scores, k)
    assert idx.numel() == k and _unique(idx)
    rest = torch.ones(len(scores), dtype=torch.bool)
    rest[idx] = False
    if rest.any():
        assert scores[idx].min() >= scores[rest].max()


@SETTINGS
@given(pool_and_k(), st.floats(0.05, 10), st.integers(0, 2**31))
def test_gumbel_top_k_draws_k_distinct_indices_the_same_under_a_seed(case, temperature, seed):
    scores, k = case

    def draw():
        g = torch.Generator().manual_seed(seed)
        return gumbel_top_k(scores, k, temperature=temperature, generator=g)

    idx = draw()
    assert idx.numel() == k and _unique(idx) and int(idx.max()) < len(scores)
    assert torch.equal(idx, draw())


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 2**31), st.data())
def test_uniform_without_replacement_is_a_k_permutation(n, seed, data):
    k = data.draw(st.integers(1, n))
    idx = uniform_without_replacement(n, k, generator=torch.Generator().manual_seed(seed))
    assert idx.numel() == k and _unique(idx) and int(idx.min()) >= 0 and int(idx.max()) < n


@SETTINGS
@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=20), st.integers(1, 50))
def test_sampling_with_replacement_never_draws_a_zero_probability(probs, k):
    p = torch.tensor(probs + [0.0])  # the last one can never be drawn
    idx = sample_with_replacement(p, k, generator=torch.Generator().manual_seed(0))
    assert idx.numel() == k and int(idx.max()) < len(probs)


@SETTINGS
@given(st.lists(st.floats(0.01, 100), min_size=1, max_size=20), st.data())
def test_importance_weights_make_the_sampled_mean_unbiased_exactly(scores, data):
    s = torch.tensor(scores, dtype=torch.float64)
    x = torch.tensor(
        data.draw(st.lists(finite, min_size=len(s), max_size=len(s))), dtype=torch.float64
    )
    every = torch.arange(len(s))
    w = importance_weights(s, every)
    expectation = ((s / s.sum()) * w * x).sum()  # E over one draw I ~ p of w_I · x_I
    assert torch.allclose(expectation, x.mean(), rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 7), st.data())
def test_inclusion_probabilities_sum_to_k_and_horvitz_thompson_is_unbiased(n, data):
    k = data.draw(st.integers(1, n))
    logw = torch.tensor(data.draw(st.lists(st.floats(-3, 3), min_size=n, max_size=n)))
    pi = inclusion_probabilities(logw.double(), k)
    assert torch.allclose(pi.sum(), torch.tensor(float(k), dtype=pi.dtype), atol=1e-9)
    assert bool(((pi > 0) & (pi <= 1 + 1e-12)).all())
    w = horvitz_thompson_weights(pi, torch.arange(n))
    assert torch.allclose(pi * w, torch.ones(n, dtype=pi.dtype), atol=1e-9)


@SETTINGS
@given(st.integers(1, 200), st.integers(1, 32))
def test_chunk_sizes_cover_k_in_near_equal_chunks(k, chunks):
    sizes = chunk_sizes(k, min(chunks, k))
    assert sum(sizes) == k and max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 24), st.integers(1, 4), st.integers(0, 2**31), st.data())
def test_joint_sample_draws_k_distinct_candidates_the_same_under_a_seed(n, chunks, seed, data):
    k = data.draw(st.integers(1, n))
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, n, generator=g)

    def draw():
        gen = torch.Generator().manual_seed(seed)
        return joint_sample(DensePairScores(scores), k, chunks=min(chunks, k), generator=gen)

    idx = draw()
    assert idx.numel() == k and _unique(idx) and int(idx.max()) < n
    assert torch.equal(idx, draw())


@SETTINGS
@given(st.integers(1, 60), st.integers(0, 2**31))
def test_id_index_rows_invert_the_ids_whatever_their_order(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(3 * n, generator=g)[:n] * 7 + 5  # sparse, unordered
    index = IdIndex(ids)
    query = ids[torch.randperm(n, generator=g)]
    assert torch.equal(index.ids[index.rows(query)], query)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**31))
def test_a_store_looks_up_the_same_scores_whatever_order_it_was_saved_in(n, seed):
    import tempfile
    from pathlib import Path

    g = torch.Generator().manual_seed(seed)
    ids = torch.randperm(5 * n, generator=g)[:n]
    scores = torch.randn(n, generator=g)
    perm = torch.randperm(n, generator=g)
    with tempfile.TemporaryDirectory() as tmp:
        a = save_scores(Path(tmp) / "a", ids, scores, kind="k", fingerprint={"count": 5 * n})
        b = save_scores(Path(tmp) / "b", ids[perm], scores[perm], kind="k", fingerprint={})
        query = ids[torch.randperm(n, generator=g)]
        found_a, found_b = load_scores(a).lookup(query), load_scores(b).lookup(query)
    assert torch.equal(found_a, found_b)
    expected = {int(i): float(s) for i, s in zip(ids, scores, strict=True)}
    assert found_a.tolist() == [expected[int(i)] for i in query]


def test_every_subset_of_a_tiny_pool_is_reachable_by_gumbel_top_k():
    scores, k = torch.zeros(4), 2
    seen = {
        tuple(sorted(gumbel_top_k(scores, k, generator=torch.Generator().manual_seed(s)).tolist()))
        for s in range(200)
    }
    assert seen == set(itertools.combinations(range(4), k))
