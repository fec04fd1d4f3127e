"""Derived seeds: stable, distinct per purpose, and validated."""

import pytest
import torch

from siftdata._seeding import derive_seed
from siftdata.data import symmetric_noise
from siftdata.training.sources import SuperBatchStream


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "pool-noise") == derive_seed(0, "pool-noise")
    seeds = {derive_seed(s, p) for s in range(3) for p in ("a", "b", "c")}
    assert len(seeds) == 9
    assert all(0 <= s < 2**63 for s in seeds)


def test_stream_and_noise_with_one_base_seed_are_unrelated():
    # Regression: both once seeded a generator with the same value, so the first super-batches
    # were exactly the corrupted examples.
    labels = torch.arange(5000) % 10
    noisy = symmetric_noise(labels, 0.4, num_classes=10, seed=derive_seed(0, "pool-noise"))
    stream = SuperBatchStream(
        5000, seed=derive_seed(0, "super-batch-order"), device="cpu", max_size=500
    )
    share = noisy.is_corrupted[stream.next(500)].float().mean().item()
    assert 0.3 < share < 0.5


@pytest.mark.parametrize("seed, purpose", [(1.5, "x"), (True, "x"), (0, ""), (0, None)])
def test_bad_arguments(seed, purpose):
    with pytest.raises(ValueError):
        derive_seed(seed, purpose)
