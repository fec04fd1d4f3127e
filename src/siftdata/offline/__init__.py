"""Offline selection via a proxy (SVP): score a whole dataset with a cheap model, keep a core-set.

- :mod:`.recipe`, :mod:`.fit`: the target's training recipe, a proxy's derived from it (narrower,
  fewer epochs), and a timed training loop that tracks forgetting events on the way;
- :mod:`.scoring`: batched, no-grad, resumable scoring of a dataset with the online path's scorers;
- :mod:`.proxy_scores`: every SVP score of a dataset by one recipe (uncertainty, EL2N, forgetting,
  k-center), each stage timed;
- :mod:`.kcenter`, :mod:`.forgetting`: greedy k-center in O(N) memory, forgetting events;
- :mod:`.subsets`: selection policies (hardest, easiest, middle, stratified; class-balanced);
- :mod:`.stored`: scores and selections keyed by example id on disk, and loading a selection
  into a ``Subset`` or sampler;
- :mod:`.agreement`, :mod:`.agreement_report`: rank agreement (Spearman, Kendall, top-k overlap),
  as tables and a scatter plot.
"""

from ..core.rank_stats import average_ranks, kendall_tau, spearman, top_k_overlap
from .agreement_report import (
    agreement_matrix,
    agreement_rows,
    format_agreement_matrix,
    format_agreement_table,
    plot_agreement,
)
from .fit import Fitted, accuracy, fit
from .forgetting import ForgettingTracker
from .kcenter import k_center_greedy, nearest_center_distances
from .proxy_scores import (
    SCORE_DIRECTIONS,
    SCORE_NAMES,
    ScoreRun,
    forgetting_scores,
    kcenter_scores,
    parse_score_names,
    score_with_recipe,
)
from .recipe import Recipe
from .scoring import ScoredDataset, forward_with_embeddings, model_digest, score_dataset
from .stored import (
    DIRECTIONS,
    Selected,
    keep_priority,
    load_score,
    load_selection,
    save_score,
    save_selection,
    selection_sampler,
    source_of,
    subset_of,
)
from .subsets import POLICIES, select_subset, subset_size

__all__ = [
    "Recipe",
    "Fitted",
    "fit",
    "accuracy",
    "ScoredDataset",
    "score_dataset",
    "forward_with_embeddings",
    "model_digest",
    "SCORE_NAMES",
    "SCORE_DIRECTIONS",
    "ScoreRun",
    "parse_score_names",
    "forgetting_scores",
    "kcenter_scores",
    "score_with_recipe",
    "ForgettingTracker",
    "k_center_greedy",
    "nearest_center_distances",
    "POLICIES",
    "select_subset",
    "subset_size",
    "DIRECTIONS",
    "Selected",
    "keep_priority",
    "save_score",
    "load_score",
    "save_selection",
    "load_selection",
    "source_of",
    "subset_of",
    "selection_sampler",
    "average_ranks",
    "spearman",
    "kendall_tau",
    "top_k_overlap",
    "agreement_rows",
    "format_agreement_table",
    "plot_agreement",
    "agreement_matrix",
    "format_agreement_matrix",
]
