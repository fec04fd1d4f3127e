"""Datasets and data helpers: Fashion-MNIST from local files, seeded splits, label noise, ids,
and image–caption pairs with captions from WordNet.

Nothing here downloads: Fashion-MNIST comes from the Debian package ``dataset-fashion-mnist``,
WordNet from ``wordnet-base``.
"""

from .captions import (
    ATTRIBUTE_WORDS,
    CLASS_QUERIES,
    INK_LEVEL,
    ClassText,
    Vocabulary,
    attribute_thresholds,
    attribute_words,
    caption_vocabulary,
    class_prompts,
    class_texts,
    coarse_captions,
    fine_captions,
    image_attributes,
)
from .fmnist import (
    DEFAULT_FMNIST_DIR,
    FASHION_MNIST_CLASSES,
    FMNIST_ENV_VAR,
    FMNIST_MEAN,
    FMNIST_STD,
    find_fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
    to_float_images,
)
from .indexed import WithIndex
from .noise import FMNIST_CONFUSABLE, NoisyLabels, asymmetric_noise, symmetric_noise
from .pairs import CAPTION_VARIANTS, PairsData, build_pairs, mismatch_donors
from .splits import pool_holdout_split
from .supersenses import NOUN_SUPERSENSES, SupersenseData, load_supersenses
from .wordnet import WORDNET_DIR, WORDNET_ENV_VAR, Synset, find_wordnet_dir, lookup_noun

__all__ = [
    "NOUN_SUPERSENSES",
    "SupersenseData",
    "load_supersenses",
    "DEFAULT_FMNIST_DIR",
    "FMNIST_ENV_VAR",
    "FASHION_MNIST_CLASSES",
    "FMNIST_MEAN",
    "FMNIST_STD",
    "find_fashion_mnist_dir",
    "read_idx",
    "load_fashion_mnist",
    "to_float_images",
    "pool_holdout_split",
    "NoisyLabels",
    "FMNIST_CONFUSABLE",
    "symmetric_noise",
    "asymmetric_noise",
    "WithIndex",
    "WORDNET_DIR",
    "WORDNET_ENV_VAR",
    "Synset",
    "find_wordnet_dir",
    "lookup_noun",
    "CLASS_QUERIES",
    "ATTRIBUTE_WORDS",
    "INK_LEVEL",
    "ClassText",
    "class_texts",
    "image_attributes",
    "attribute_thresholds",
    "attribute_words",
    "coarse_captions",
    "fine_captions",
    "class_prompts",
    "Vocabulary",
    "caption_vocabulary",
    "CAPTION_VARIANTS",
    "PairsData",
    "build_pairs",
    "mismatch_donors",
]
