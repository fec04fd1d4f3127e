"""Reference models and their caches: per-example reference losses by example id (RHO-LOSS),
reference embeddings by example id (JEST), and two-tower (SigLIP) reference training."""

from .embeddings import (
    REFERENCE_EMBEDDINGS_KIND,
    ReferenceEmbeddings,
    embed_pairs,
    load_reference_embeddings,
    save_reference_embeddings,
)
from .losses import (
    REFERENCE_LOSS_KIND,
    ReferenceResult,
    compute_losses,
    load_reference_losses,
    save_reference_losses,
    train_reference_model,
)
from .pair_training import pair_flops, siglip_optimizer, train_two_tower
from .two_halves import two_halves_losses

__all__ = [
    "REFERENCE_LOSS_KIND",
    "ReferenceResult",
    "train_reference_model",
    "compute_losses",
    "two_halves_losses",
    "save_reference_losses",
    "load_reference_losses",
    "REFERENCE_EMBEDDINGS_KIND",
    "ReferenceEmbeddings",
    "embed_pairs",
    "save_reference_embeddings",
    "load_reference_embeddings",
    "siglip_optimizer",
    "train_two_tower",
    "pair_flops",
]
