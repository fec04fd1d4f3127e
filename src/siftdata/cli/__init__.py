"""The ``siftdata`` command: ``train``, ``bench``, ``score``, ``select``, ``report`` and ``demo``."""

from .main import main

__all__ = ["main"]
