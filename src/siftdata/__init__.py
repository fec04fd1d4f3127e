"""siftdata: choose which examples to train on."""

__version__ = "0.1.0"
