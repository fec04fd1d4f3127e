"""The online-selection interface: a :class:`Selector` turns per-example scores into a :class:`Selection`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Selection", "Selector", "GeneratorOwner"]


@dataclass(frozen=True)
class Selection:
    """What a selector chose from a super-batch.

    Attributes
    ----------
    indices:
        ``LongTensor (k,)`` positions in the super-batch (not example ids), on the scores' device.
    weights:
        ``Tensor (k,)`` per-example loss weights, or ``None`` for plain averaging. Selectors that keep
        the gradient unbiased (importance sampling) return weights whose expectation makes the
        weighted mean loss equal the super-batch mean.
    stats:
        Diagnostics the selector had for free, as 0-d tensors (never synced to the host here); e.g.
        the temperature used. :meth:`score_stats` computes more on demand.
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
    """Chooses ``k`` of the ``N`` scored examples of a super-batch.

    A selector never owns the model, optimizer or data; it owns only its random generator and
    whatever history it keeps, and saves both in :meth:`state_dict`.
    """

    def select(self, scores: Tensor, k: int) -> Selection: ...

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
    """

    def __init__(self, *, seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __call__(self, scores: Tensor, k: int) -> Selection:
        return self.select(scores, k)  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].to("cpu"))
