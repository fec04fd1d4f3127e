"""The selection interface: a :class:`Selector` (or a :class:`JointSelector`) turns scores into a
:class:`Selection`; selectors own explicit random generators, saved in their ``state_dict``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .._seeding import derive_seed
from .._validation import canonical_device, check_seed

__all__ = ["Selection", "Selector", "JointSelector", "PairwiseScores", "GeneratorOwner"]


@dataclass(frozen=True)
class Selection:
    """What a selector chose from a super-batch.

    Attributes
    ----------
    indices:
        ``LongTensor (k,)`` positions in the super-batch (not example ids), on the scores' device.
        They may repeat when a selector draws with replacement (importance sampling).
    weights:
        ``Tensor (k,)`` per-example loss weights, or ``None`` for plain averaging. Selectors that keep
        the gradient unbiased return weights whose expectation makes the weighted mean loss equal
        the super-batch mean.
    stats:
        Diagnostics the selector had for free, as 0-d tensors (never synced to the host here); the
        training loop averages them between evaluations into the metrics log.
    """

    indices: Tensor
    weights: Tensor | None = None
    stats: dict[str, Tensor] = field(default_factory=dict)

    def score_stats(self, scores: Tensor) -> dict[str, Tensor]:
        """Mean score of the selected examples and of the whole super-batch (0-d tensors, no sync)."""
        return {
            "selected_score_mean": scores.index_select(0, self.indices).mean(),
            "score_mean": scores.mean(),
        }


@runtime_checkable
class Selector(Protocol):
    """Chooses ``k`` of the ``N`` scored examples of a super-batch from per-example scores.

    A selector never owns the model, optimizer or data; it owns only its random generator and
    whatever history it keeps, and saves both in :meth:`state_dict`.
    """

    def select(self, scores: Tensor, k: int) -> Selection: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class PairwiseScores(Protocol):
    """A ``B × B`` score matrix ``S`` over a super-batch that need never be materialised.

    For contrastive losses an example's value depends on the rest of the batch (JEST): ``S_ij`` is
    the score of pairing example ``i`` with example ``j``, and the gain of adding ``i`` to a chosen
    set ``A`` is ``S_ii + Σ_{k∈A} (S_ik + S_ki)``. Implementations may hold ``S`` densely or
    compute blocks from embeddings on demand.
    """

    @property
    def size(self) -> int:
        """``B``, the number of candidates."""
        ...

    def diagonal(self) -> Tensor:
        """``(B,)``: the independent score of each candidate, ``S_ii``."""
        ...

    def rows(self, index: Tensor) -> Tensor:
        """``(len(index), B)``: ``S[index, :]``."""
        ...

    def columns(self, index: Tensor) -> Tensor:
        """``(B, len(index))``: ``S[:, index]``."""
        ...


@runtime_checkable
class JointSelector(Protocol):
    """Chooses ``k`` of ``B`` candidates jointly from :class:`PairwiseScores` (e.g. JEST)."""

    def select(self, scores: PairwiseScores, k: int) -> Selection: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GeneratorOwner:
    """Mixin: an explicit ``torch.Generator`` on a device, seeded once and saved in ``state_dict``.

    Parameters
    ----------
    seed:
        Seed of the selector's own generator; global RNG state is never touched.
    device:
        Device the generator (and hence the random draws) lives on; use the scores' device.

    Notes
    -----
    CPU and CUDA generators hold different kinds of state, so a state saved on one device type
    cannot continue on another: :meth:`load_state_dict` then reseeds from ``(seed, device)`` and
    warns that the draws will differ from an uninterrupted run.
    """

    def __init__(self, *, seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.device = canonical_device(device)
        self.seed = check_seed(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)

    def __call__(self, scores: Tensor, k: int) -> Selection:
        return self.select(scores, k)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "device_type": self.device.type}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("device_type", "cpu")
        if saved == self.device.type:
            self.generator.set_state(state["generator"].to("cpu"))
            return
        warnings.warn(
            f"{type(self).__name__}: the saved random state is from a {saved} generator and this "
            f"one is on {self.device.type}; continuing from a fresh seed, so the draws will "
            "differ from an uninterrupted run",
            stacklevel=2,
        )
        self.generator.manual_seed(derive_seed(self.seed, f"resumed-on-{self.device.type}"))
