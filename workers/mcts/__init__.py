"""Monte Carlo Tree Search over fragments of the policy's responses, and the step-level pairs it yields."""

from .config import MCTSConfig, PairConfig
from .fragments import first_step, group_fragments, split_fragments
from .pairs import PairCandidate, dedupe, extract_pairs, word_overlap
from .search import (
    CheckerScorer,
    JudgeScorer,
    LeafScore,
    LeafScorer,
    NodeCounts,
    SearchStats,
    TreeStep,
    frozen_heap,
    leaf_scorer,
    run_search,
    run_search_sequential,
    search_stats,
)
from .tree import Node, Tree, child_key, root_key

__all__ = [
    "MCTSConfig",
    "PairConfig",
    "first_step",
    "group_fragments",
    "split_fragments",
    "PairCandidate",
    "dedupe",
    "extract_pairs",
    "word_overlap",
    "CheckerScorer",
    "JudgeScorer",
    "LeafScore",
    "LeafScorer",
    "NodeCounts",
    "SearchStats",
    "TreeStep",
    "frozen_heap",
    "leaf_scorer",
    "run_search",
    "run_search_sequential",
    "search_stats",
    "Node",
    "Tree",
    "child_key",
    "root_key",
]
