"""A small convolutional network (no BatchNorm, no dropout) in channels_last memory format."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validation import check_int_range

__all__ = ["SmallCNN"]


class SmallCNN(nn.Module):
    """``(conv3x3-ReLU-maxpool2) x len(channels)``, then ``Linear-ReLU-Linear``.

    Parameters
    ----------
    num_classes : int, default 10
        Number of output logits.
    channels : sequence of int, default (32, 64)
        Output channels of each convolution block; each block halves the image side.
    hidden : int, default 128
        Width of the hidden linear layer.
    in_channels : int, default 1
        Input channels.
    image_size : int, default 28
        Side of the square input images.
    channels_last : bool, default True
        Keep parameters and activations in ``torch.channels_last`` memory format (the input
        is converted in :meth:`forward`); faster for convolutions on most CPUs and GPUs.

    Notes
    -----
    Accepts ``(N, C, H, W)``, ``(N, H, W)`` (for one channel) or flattened ``(N, C*H*W)`` input.
    Without BatchNorm or dropout the outputs are the same in ``train()`` and ``eval()`` mode.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        in_channels: int = 1,
        image_size: int = 28,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("hidden", hidden)):
            check_int_range(value, name, low=1)
        check_int_range(in_channels, "in_channels", low=1)
        check_int_range(len(channels), "len(channels)", low=1)
        side = image_size
        blocks: list[nn.Module] = []
        width = in_channels
        for c in channels:
            check_int_range(c, "channels (each block)", low=1)
            blocks += [nn.Conv2d(width, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width, side = c, side // 2
        check_int_range(side, "image_size // 2**len(channels)", low=1)
        self.in_shape = (in_channels, image_size, image_size)
        self.channels_last = bool(channels_last)
        self.conv = nn.Sequential(*blocks)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def _as_images(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            x = x.reshape(x.shape[0], *self.in_shape)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations ``(N, hidden)`` (embeddings for k-center and the like)."""
        return self.body(self.conv(self._as_images(x)))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)``."""
        return self.head(self.features(x))
