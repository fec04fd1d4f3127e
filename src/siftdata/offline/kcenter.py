r"""Greedy k-center on embeddings (Sener & Savarese 2018; SVP's coverage core-set), in O(N) memory.

Each pick is the example farthest from its nearest chosen center:

.. math:: c_{t+1} = \arg\max_i \min_{c \in C_t} \lVert x_i - c \rVert_2 .

Only one (squared) distance-to-nearest-center vector of length ``N`` is kept and updated with the
newest center, so memory is ``O(N)`` beyond the embeddings whatever ``k`` is (the published SVP
code keeps an ``N × k`` matrix). The update is one matrix-vector product per pick,
``‖x − c‖² = ‖x‖² − 2·x·c + ‖c‖²``, with the pick's index kept on the device, so a GPU is never
stalled between picks. Candidates whose distances differ by less than float rounding may be
ordered differently from an exact computation (give float64 embeddings where that matters). With
no initial centers the first pick is a seeded uniform draw (an empty initial set is not an error,
unlike there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._validation import check_finite, check_int_range, check_seed

__all__ = ["k_center_greedy", "nearest_center_distances"]


def nearest_center_distances(
    embeddings: Tensor, centers: Tensor, *, chunk_size: int = 8192
) -> Tensor:
    """``(N,)`` Euclidean distance of every row to its nearest row of ``centers`` (``(C, D)``;
    ``C = 0`` gives ``+inf``). Rows go ``chunk_size`` at a time against blocks of centers sized
    so that no distance block holds more than ``chunk_size·D`` values."""
    n, d = embeddings.shape
    nearest = embeddings.new_full((n,), float("inf"))
    for start in range(0, n, chunk_size):
        rows = embeddings[start : start + chunk_size]
        block = max(1, chunk_size * d // rows.shape[0])
        for first in range(0, centers.shape[0], block):
            distance = torch.cdist(
                rows, centers[first : first + block], compute_mode="donot_use_mm_for_euclid_dist"
            )
            part = nearest[start : start + chunk_size]
            torch.minimum(part, distance.amin(dim=1), out=part)
    return nearest


def _fold_in(nearest_sq: Tensor, embeddings: Tensor, sq_norms: Tensor, pick: Tensor) -> None:
    """``nearest² = min(nearest², ‖x − c‖²)`` in place for the center at row ``pick`` (a 1-element
    index tensor, so nothing is read back to the host), with ``‖x − c‖² = ‖x‖² − 2·x·c + ‖c‖²``:
    one matrix-vector product over all rows, whose result is no larger than ``nearest²``."""
    center = embeddings.index_select(0, pick).squeeze(0)
    d_sq = torch.addmv(sq_norms, embeddings, center, alpha=-2.0)
    d_sq.add_(sq_norms.index_select(0, pick)).clamp_(min=0.0)
    torch.minimum(nearest_sq, d_sq, out=nearest_sq)
    nearest_sq.index_fill_(0, pick, -1.0)  # chosen: never picked again, even if tied


def _check_initial(initial: Tensor | None, n: int) -> Tensor:
    if initial is None:
        return torch.empty(0, dtype=torch.long)
    initial = torch.as_tensor(initial).reshape(-1).long().cpu()
    if initial.numel() and (int(initial.min()) < 0 or int(initial.max()) >= n):
        raise ValueError(f"initial centers must be row indices in [0, {n})")
    if initial.unique().numel() != initial.numel():
        raise ValueError("initial centers hold repeated indices")
    return initial


def k_center_greedy(
    embeddings: Tensor,
    k: int,
    *,
    initial: Tensor | None = None,
    seed: int = 0,
    chunk_size: int = 8192,
) -> Tensor:
    """Pick ``k`` new centers greedily; returns their row indices in pick order.

    Parameters
    ----------
    embeddings : Tensor
        ``(N, D)`` finite floating embeddings (e.g. a proxy's penultimate layer), on any device.
    k : int
        How many to pick, ``1 ≤ k ≤ N − len(initial)``.
    initial : Tensor, optional
        Row indices already chosen (e.g. the labeled set in active learning); may be empty.
    seed : int
        Seeds the first pick when there are no initial centers.
    chunk_size : int
        Rows per block of the distances to the initial centers (memory ``O(chunk_size·D)``
        beyond the ``N`` distances).
    """
    if embeddings.dim() != 2 or not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be a 2-D float tensor, got {tuple(embeddings.shape)}")
    n = embeddings.shape[0]
    check_int_range(chunk_size, "chunk_size", low=1)
    initial = _check_initial(initial, n)
    check_int_range(k, "k", low=1, high=n - initial.numel())
    check_finite(embeddings, "embeddings")
    nearest = nearest_center_distances(
        embeddings, embeddings[initial.to(embeddings.device)], chunk_size=chunk_size
    ).square_()  # squared from here on: the same order, and cheaper to update
    nearest[initial.to(embeddings.device)] = -1.0  # chosen: never picked again, even if tied
    sq_norms = embeddings.square().sum(dim=1)
    picks = torch.empty(k, dtype=torch.long, device=embeddings.device)
    if initial.numel() == 0:
        g = torch.Generator().manual_seed(check_seed(seed))
        pick = torch.randint(n, (1,), generator=g).to(embeddings.device)
    else:
        pick = nearest.argmax().view(1)
    for t in range(k):
        if t > 0:
            pick = nearest.argmax().view(1)  # stays on the device: no host sync per pick
        picks[t : t + 1] = pick
        _fold_in(nearest, embeddings, sq_norms, pick)
    return picks
