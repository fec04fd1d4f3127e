"""Offline selection via a proxy (SVP): scores over a whole dataset and the pieces that use them.

Groundwork so far: greedy k-center in O(N) memory and forgetting-event tracking.
"""

from .forgetting import ForgettingTracker
from .kcenter import k_center_greedy, nearest_center_distances

__all__ = ["ForgettingTracker", "k_center_greedy", "nearest_center_distances"]
