"""Adapters for the engines users already run: each imports its framework lazily and is installed
as an extra (``ray``: :mod:`siftdata.integrations.ray_scoring`)."""
