"""The reference training loop and its parts: config, batch sources, recorder, checkpoints, run
folders, pair evaluation and the host-sync diagnostics."""

from .config import ReferenceCost, TrainConfig, TrainData
from .loop import TrainResult, default_optimizer, train

__all__ = ["TrainConfig", "TrainData", "ReferenceCost", "TrainResult", "default_optimizer", "train"]
