"""JEST's pairwise losses and joint sampler against slow, obviously correct reference code."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from siftdata.core.joint_sampling import chunk_sizes, joint_sample
from siftdata.core.pairwise import (
    DensePairScores,
    EmbeddingPairScores,
    PairEmbeddings,
    pair_score_matrix,
    per_example_sigmoid_loss,
    sigmoid_pair_losses,
)
from siftdata.online.joint import JointSampler
from siftdata.training.diagnostics import count_host_syncs


def _embeddings(n: int, d: int, seed: int, dtype=torch.float32) -> PairEmbeddings:
    g = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    text = F.normalize(image + 0.8 * torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    scale = torch.tensor(10.0 + seed, dtype=dtype)
    return PairEmbeddings(image, text, scale, torch.tensor(-5.0 - seed, dtype=dtype))


def _slow_losses(emb: PairEmbeddings) -> torch.Tensor:
    n = len(emb)
    out = torch.empty(n, n, dtype=torch.float64)
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            logit = float(emb.scale) * float(emb.image[i] @ emb.text[j]) + float(emb.bias)
            out[i, j] = -math.log(1.0 / (1.0 + math.exp(-z * logit)))
    return out


def test_sigmoid_pair_losses_match_the_formula():
    emb = _embeddings(7, 5, seed=0, dtype=torch.float64)
    torch.testing.assert_close(sigmoid_pair_losses(emb), _slow_losses(emb))


def test_per_example_loss_averages_to_the_siglip_loss_and_is_symmetric():
    emb = _embeddings(9, 4, seed=1, dtype=torch.float64)
    losses = _slow_losses(emb)
    per_example = per_example_sigmoid_loss(emb)
    torch.testing.assert_close(per_example.mean(), losses.sum() / 9)
    torch.testing.assert_close(per_example, 0.5 * (losses.sum(1) + losses.sum(0)))


def test_criteria_matrices():
    learner, reference = _embeddings(6, 4, 2, torch.float64), _embeddings(6, 4, 3, torch.float64)
    l_learner, l_reference = _slow_losses(learner), _slow_losses(reference)
    torch.testing.assert_close(
        pair_score_matrix("learnability", learner=learner, reference=reference),
        l_learner - l_reference,
    )
    torch.testing.assert_close(pair_score_matrix("hard-learner", learner=learner), l_learner)
    torch.testing.assert_close(
        pair_score_matrix("easy-reference", reference=reference), -l_reference
    )


def _slow_joint(matrix: torch.Tensor, k: int, chunks: int, tau: float, generator) -> list[int]:
    """Recompute every gain from scratch in float64; draw the same noise as the sampler."""
    n = matrix.shape[0]
    chosen: list[int] = []
    for size in chunk_sizes(k, chunks):
        gains = torch.tensor(
            [
                float(matrix[i, i]) + sum(float(matrix[i, j] + matrix[j, i]) for j in chosen)
                for i in range(n)
            ],
            dtype=torch.float64,
        )
        neg_gumbel = torch.rand(n, generator=generator, dtype=torch.float64).log_().neg_().log_()
        logits = gains / tau
        logits[chosen] = float("-inf")
        keys = logits - logits.max() - neg_gumbel
        chosen += torch.topk(keys, size).indices.tolist()
    return chosen


@pytest.mark.parametrize(("n", "k", "chunks", "tau"), [(12, 7, 3, 1.0), (30, 12, 12, 0.3)])
def test_gains_match_brute_force_recomputation(n, k, chunks, tau):
    matrix = torch.randn(n, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    fast = joint_sample(
        DensePairScores(matrix),
        k,
        chunks=chunks,
        temperature=tau,
        generator=torch.Generator().manual_seed(5),
    )
    slow = _slow_joint(matrix, k, chunks, tau, torch.Generator().manual_seed(5))
    assert fast.tolist() == slow


@pytest.mark.parametrize("criterion", ["learnability", "hard-learner", "easy-reference"])
@pytest.mark.parametrize(("n", "k", "chunks"), [(300, 60, 16), (257, 97, 97), (64, 13, 5)])
def test_matrix_free_selects_exactly_what_dense_selects(criterion, n, k, chunks):
    learner, reference = _embeddings(n, 16, 0), _embeddings(n, 16, 1)
    free = EmbeddingPairScores(criterion, learner=learner, reference=reference)
    dense = DensePairScores.from_embeddings(criterion, learner=learner, reference=reference)
    for seed in range(3):
        a = joint_sample(free, k, chunks=chunks, generator=torch.Generator().manual_seed(seed))
        b = joint_sample(dense, k, chunks=chunks, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)


def test_matrix_free_blocks_equal_the_dense_matrix():
    learner, reference = _embeddings(40, 8, 0), _embeddings(40, 8, 1)
    free = EmbeddingPairScores("learnability", learner=learner, reference=reference)
    dense = DensePairScores.from_embeddings("learnability", learner=learner, reference=reference)
    index = torch.tensor([3, 17, 0])
    torch.testing.assert_close(free.rows(index), dense.rows(index))
    torch.testing.assert_close(free.columns(index), dense.columns(index))
    torch.testing.assert_close(free.diagonal(), dense.matrix.diagonal())


def _plackett_luce_sets(logits: torch.Tensor, k: int) -> dict[frozenset, float]:
    """Exact probability of each k-set drawn without replacement from softmax(logits)."""
    weights = logits.double().exp().tolist()
    sets: dict[frozenset, float] = {}
    for order in itertools.permutations(range(len(weights)), k):
        p, left = 1.0, sum(weights)
        for i in order:
            p *= weights[i] / left
            left -= weights[i]
        sets[frozenset(order)] = sets.get(frozenset(order), 0.0) + p
    return sets


def _empirical_sets(draw, trials: int) -> dict[frozenset, float]:
    counts: dict[frozenset, int] = {}
    for _ in range(trials):
        key = frozenset(draw().tolist())
        counts[key] = counts.get(key, 0) + 1
    return {key: c / trials for key, c in counts.items()}


def _assert_same_distribution(empirical: dict, exact: dict, trials: int) -> None:
    assert set(empirical) <= set(exact)
    for key, p in exact.items():
        q = empirical.get(key, 0.0)
        assert abs(q - p) <= 4.5 * math.sqrt(p * (1 - p) / trials) + 1e-9, (key, p, q)


def test_first_chunk_is_exact_softmax_sampling_without_replacement():
    diagonal = torch.tensor([1.5, 0.0, -1.0, 0.7, 0.2])
    matrix = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    matrix.diagonal().copy_(diagonal)
    scores, g, trials = DensePairScores(matrix), torch.Generator().manual_seed(1), 6000
    empirical = _empirical_sets(
        lambda: joint_sample(scores, 4, chunks=2, temperature=0.5, generator=g)[:2], trials
    )
    _assert_same_distribution(empirical, _plackett_luce_sets(diagonal / 0.5, 2), trials)


def test_per_example_scores_reduce_to_independent_sampling():
    """With no pair terms (S diagonal) the chunked draw is one softmax draw without replacement."""
    diagonal = torch.tensor([2.0, 1.0, 0.0, -0.5])
    scores, g, trials = (
        DensePairScores(torch.diag(diagonal)),
        torch.Generator().manual_seed(2),
        6000,
    )
    empirical = _empirical_sets(lambda: joint_sample(scores, 3, chunks=3, generator=g), trials)
    _assert_same_distribution(empirical, _plackett_luce_sets(diagonal, 3), trials)


def test_uniform_first_chunk_ignores_the_scores():
    matrix = torch.diag(torch.tensor([50.0, 0.0, 0.0, 0.0]))
    scores, g, trials = DensePairScores(matrix), torch.Generator().manual_seed(3), 4000
    firsts = torch.stack(
        [
            joint_sample(scores, 2, chunks=2, first_chunk="uniform", generator=g)[0]
            for _ in range(trials)
        ]
    )
    freq = torch.bincount(firsts, minlength=4).double() / trials
    assert torch.all((freq - 0.25).abs() < 0.035), freq


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_never_give_duplicates(bad):
    """Without check_values a NaN or inf must not break the without-replacement guarantee."""
    matrix = torch.randn(20, 20, generator=torch.Generator().manual_seed(0))
    matrix[0, 5] = matrix[7, 7] = bad
    for k, chunks in ((10, 5), (20, 4)):
        picks = joint_sample(
            DensePairScores(matrix), k, chunks=chunks, generator=torch.Generator().manual_seed(1)
        )
        assert picks.unique().numel() == k


def test_chunk_sizes_spread_the_remainder():
    assert chunk_sizes(10, 3) == [4, 3, 3]
    assert chunk_sizes(16, 16) == [1] * 16
    assert sum(chunk_sizes(819, 16)) == 819


def test_no_duplicates_and_deterministic_for_a_generator():
    learner, reference = _embeddings(500, 8, 0), _embeddings(500, 8, 1)
    scores = EmbeddingPairScores("learnability", learner=learner, reference=reference)
    a = joint_sample(scores, 100, generator=torch.Generator().manual_seed(9))
    b = joint_sample(scores, 100, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.unique().numel() == 100


def test_joint_sampler_makes_no_host_sync():
    learner, reference = _embeddings(128, 8, 0), _embeddings(128, 8, 1)
    scores = EmbeddingPairScores("learnability", learner=learner, reference=reference)
    sampler = JointSampler(chunks=8, seed=0)
    sampler.select(scores, 32)  # warm-up
    with count_host_syncs() as syncs:
        selection = sampler.select(scores, 32)
    assert syncs.total == 0, syncs.counts
    assert selection.indices.shape == (32,) and set(selection.stats) == {
        "selected_score_mean",
        "score_mean",
        "nonfinite_scores",
    }


def test_joint_sampler_state_round_trip_repeats_the_draws():
    scores = DensePairScores(torch.randn(50, 50, generator=torch.Generator().manual_seed(0)))
    sampler = JointSampler(chunks=4, seed=3)
    state = sampler.state_dict()
    first = sampler.select(scores, 10).indices
    sampler.load_state_dict(state)
    assert torch.equal(sampler.select(scores, 10).indices, first)


def test_a_high_learnability_cluster_is_preferred():
    """Pairs that are learnable *together* win once one of them is chosen: the joint effect."""
    n = 200
    matrix = torch.zeros(n, n)
    matrix[:40, :40] = 1.0  # the first 40 are learnable together
    scores = DensePairScores(matrix)
    picks = joint_sample(scores, 40, chunks=8, generator=torch.Generator().manual_seed(0))
    assert (picks[5:] < 40).float().mean() > 0.9  # the first chunk (5) barely sees the cluster


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="square"):
        DensePairScores(torch.zeros(3, 4))
    scores = DensePairScores(torch.zeros(5, 5))
    with pytest.raises(ValueError, match="k"):
        joint_sample(scores, 6)
    with pytest.raises(ValueError, match="chunks"):
        joint_sample(scores, 3, chunks=4)
    with pytest.raises(ValueError, match="temperature"):
        joint_sample(scores, 3, chunks=1, temperature=0.0)
    with pytest.raises(ValueError, match="first_chunk"):
        joint_sample(scores, 3, chunks=1, first_chunk="best")
    with pytest.raises(ValueError, match="normalise"):
        JointSampler(normalise="mean")
    with pytest.raises(TypeError, match="PairwiseScores"):
        joint_sample(torch.zeros(5), 3, chunks=1)
    nan = torch.zeros(5, 5)
    nan[1, 1] = float("nan")  # on the diagonal: read before the first chunk
    with pytest.raises(ValueError, match="NaN"):
        joint_sample(DensePairScores(nan), 4, chunks=2, check_values=True)
    nan = torch.zeros(5, 5)
    nan[:, 3] = float("nan")  # in a column: read after the first chunk, whichever it is
    with pytest.raises(ValueError, match="NaN"):
        joint_sample(
            DensePairScores(nan), 4, chunks=2, check_values=True, generator=torch.Generator()
        )
    with pytest.raises(ValueError, match="same count and width"):
        PairEmbeddings(torch.zeros(4, 3), torch.zeros(4, 2), torch.tensor(1.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="same pairs"):
        EmbeddingPairScores(
            "learnability", learner=_embeddings(4, 3, 0), reference=_embeddings(5, 3, 0)
        )
    with pytest.raises(ValueError, match="needs the reference"):
        EmbeddingPairScores("learnability", learner=_embeddings(4, 3, 0))
    with pytest.raises(ValueError, match="criterion"):
        EmbeddingPairScores("hardest", learner=_embeddings(4, 3, 0))
