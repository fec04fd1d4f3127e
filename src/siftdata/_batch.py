"""Inputs that are one tensor or a tuple of tensors sharing dim 0 (e.g. ``(images, tokens)``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

Inputs = Tensor | tuple[Tensor, ...]


def _parts(inputs: Any) -> tuple[Tensor, ...]:
    parts = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not parts or not all(isinstance(p, Tensor) for p in parts):
        raise ValueError(
            "inputs must be a tensor or a tuple of tensors with examples along dim 0, got "
            f"{type(inputs).__name__}"
        )
    return parts


def batch_len(inputs: Any, name: str = "inputs") -> int:
    """The number of examples; every part of a tuple must have the same."""
    parts = _parts(inputs)
    lengths = {int(p.shape[0]) if p.dim() else -1 for p in parts}
    if len(lengths) != 1 or -1 in lengths:
        shapes = ", ".join(str(tuple(p.shape)) for p in parts)
        raise ValueError(f"every part of {name} must hold the same examples along dim 0: {shapes}")
    return lengths.pop()


def index_inputs(inputs: Any, index: Tensor) -> Any:
    """The examples at ``index`` (``index_select`` on every part)."""
    if isinstance(inputs, Tensor):
        return inputs.index_select(0, index)
    return tuple(p.index_select(0, index) for p in _parts(inputs))


def inputs_to(inputs: Any, device: torch.device | str) -> Any:
    if isinstance(inputs, Tensor):
        return inputs.to(device)
    return tuple(p.to(device) for p in _parts(inputs))


def first_part(inputs: Any) -> Tensor:
    """The tensor itself, or a tuple's first part (the images of ``(images, tokens)``)."""
    return _parts(inputs)[0]


def check_pairs(images: Tensor, tokens: Tensor) -> int:
    """The number of image–text pairs; ``images`` and ``tokens`` must hold the same ones."""
    for name, x in (("images", images), ("tokens", tokens)):
        if not isinstance(x, Tensor) or x.dim() == 0:
            raise ValueError(f"{name} must be a tensor with pairs along dim 0")
    if images.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"images and tokens must hold the same pairs; got {images.shape[0]} and "
            f"{tokens.shape[0]}"
        )
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one pair")
    return int(images.shape[0])


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
