"""SVP groundwork: greedy k-center against brute force, in O(N) memory; forgetting events."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from siftdata.offline import ForgettingTracker, k_center_greedy


def _brute_force_k_center(x, k, initial, first):
    """The textbook version: the full N × |C| distance matrix every step."""
    chosen = list(initial)
    picks = []
    for t in range(k):
        if t == 0 and not chosen:
            pick = first
        else:
            d = torch.cdist(x, x[chosen]).min(dim=1).values
            d[chosen] = -1
            pick = int(d.argmax())
        picks.append(pick)
        chosen.append(pick)
    return picks


@pytest.mark.parametrize("initial", [[], [3], [0, 7, 19]])
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_k_center_picks_what_brute_force_picks(initial, chunk_size):
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    picks = k_center_greedy(x, 12, initial=torch.tensor(initial), seed=4, chunk_size=chunk_size)
    first = int(picks[0])
    assert picks.tolist() == _brute_force_k_center(x, 12, initial, first)
    assert len(set(picks.tolist()) | set(initial)) == 12 + len(initial)


def test_k_center_first_pick_is_seeded_and_duplicates_are_never_repicked():
    x = torch.randn(30, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(k_center_greedy(x, 5, seed=1), k_center_greedy(x, 5, seed=1))
    same = torch.zeros(6, 2)  # all rows equal: every distance ties at 0
    assert sorted(k_center_greedy(same, 6).tolist()) == list(range(6))


class _LargestTensor(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_k_center_memory_stays_linear_in_n():
    n, d, k, chunk = 2000, 4, 200, 256
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    with _LargestTensor() as mode:
        k_center_greedy(x, k, initial=torch.arange(50), chunk_size=chunk)
    # nothing larger than the input (N·D = 8000); an N × k matrix would hold 400 000
    assert mode.largest <= n * d


def test_k_center_bad_input():
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="k must be in"):
        k_center_greedy(x, 9, initial=torch.arange(2))
    with pytest.raises(ValueError, match="row indices"):
        k_center_greedy(x, 2, initial=torch.tensor([10]))
    with pytest.raises(ValueError, match="repeated"):
        k_center_greedy(x, 2, initial=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        k_center_greedy(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), 1)
    with pytest.raises(ValueError, match="2-D"):
        k_center_greedy(torch.randn(10), 1)


def test_forgetting_counts_a_scripted_history():
    tracker = ForgettingTracker(4)
    history = [  # presentations of examples 0..3: correct?
        [True, False, True, False],
        [False, False, True, False],  # 0 forgotten
        [True, True, True, False],
        [False, False, True, False],  # 0 and 1 forgotten
        [True, False, False, False],  # 2 forgotten
    ]
    for row in history:
        tracker.update(torch.arange(4), torch.tensor(row))
    assert tracker.scores().tolist() == [2.0, 1.0, 1.0, float("inf")]  # 3 never learned
    assert tracker.presented.tolist() == [5, 5, 5, 5]


def test_forgetting_partial_updates_state_and_bad_input():
    tracker = ForgettingTracker(3)
    tracker.update(torch.tensor([2]), torch.tensor([True]))
    tracker.update(torch.tensor([2, 0]), torch.tensor([False, True]))
    assert tracker.scores().tolist() == [0.0, float("inf"), 1.0]
    other = ForgettingTracker(3)
    other.load_state_dict(tracker.state_dict())
    assert torch.equal(other.scores(), tracker.scores())
    with pytest.raises(ValueError, match="one length"):
        tracker.update(torch.tensor([0, 1]), torch.tensor([True]))
    with pytest.raises(ValueError, match="this tracker"):
        ForgettingTracker(4).load_state_dict(tracker.state_dict())
