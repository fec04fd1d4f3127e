"""Offline selection via a proxy (SVP): scores over a whole dataset and the pieces that use them.

Groundwork so far: greedy k-center in O(N) memory, forgetting events, subset policies and rank
agreement. Proxy training, dataset scoring, the store and the scenarios are still to come.
"""

from .agreement import average_ranks, kendall_tau, spearman, top_k_overlap
from .forgetting import ForgettingTracker
from .kcenter import k_center_greedy, nearest_center_distances
from .subsets import POLICIES, select_subset, subset_size

__all__ = [
    "ForgettingTracker",
    "k_center_greedy",
    "nearest_center_distances",
    "POLICIES",
    "select_subset",
    "subset_size",
    "average_ranks",
    "spearman",
    "kendall_tau",
    "top_k_overlap",
]
