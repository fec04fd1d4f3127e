"""Pure tensor math, no state and no I/O: per-example scores, sampling, pairwise (SigLIP) losses
and JEST's joint sampler, importance weights and τ, gradient-norm bounds, rank statistics.

Nothing here imports siftdata beyond its private helpers (``siftdata._*``).
"""
