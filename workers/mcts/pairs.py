"""Step-level preference pairs from a searched tree: at each branching node, the best and the worst child.

iTool (mcts_vllm.py get_perference_data): at every node with at least two children, chosen = the
highest-valued child, rejected = the lowest; the pair is kept if the value gap is at least `gap_min`, the
two fragments' word overlap at most `overlap_max` and the chosen value at least `chosen_value_min`.
iTool compares accumulated value sums; here a child's value is its mean rollout reward
(value_sum / visits), so children visited more often are not favoured for that alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .config import PairConfig
from .tree import Node, Tree


@dataclass
class PairCandidate:
    """A chosen/rejected pair of sibling fragments after a shared assistant prefix."""

    node_key: str  # the branching node; its path text is the prefix
    chosen_key: str
    rejected_key: str
    prefix: str
    chosen: str
    rejected: str
    chosen_value: float
    rejected_value: float
    chosen_visits: int
    rejected_visits: int
    gap: float
    deficiency: str  # the rejected rollout's deficiency ("" if it had none)
    rejected_span: tuple[int, int] | None  # the offending span within the rejected fragment, if it is there
    chosen_verdict: dict | None
    rejected_verdict: dict | None
    dedup_key: str
    # The sampled token ids (None where a node has none): the prefix's after the prompt's, and each fragment's.
    prefix_ids: list[int] | None = None
    chosen_ids: list[int] | None = None
    rejected_ids: list[int] | None = None


def word_overlap(first: str, second: str) -> float:
    """iTool's calculate_overlap_ratio: shared whitespace-separated words over the smaller word set.

    Two empty fragments overlap fully; an empty one and a non-empty one not at all (iTool divides by
    zero there).
    """
    first_words, second_words = set(first.split()), set(second.split())
    if not first_words or not second_words:
        return 1.0 if first_words == second_words else 0.0
    return len(first_words & second_words) / min(len(first_words), len(second_words))


def dedup_key(prompt: str, prefix: str, chosen: str, rejected: str) -> str:
    """sha256 of the texts, NUL-separated (so that moving text between fields changes the key).

    The prompt is included: the same fragments after the same assistant prefix are a different pair for a
    different query.
    """
    return hashlib.sha256("\0".join((prompt, prefix, chosen, rejected)).encode()).hexdigest()


def span_in_fragment(verdict: dict | None, fragment_start: int, fragment: str) -> tuple[int, int] | None:
    """The verdict's span (offsets in the full response) relative to the fragment, if it lies inside it."""
    span = (verdict or {}).get("span")
    if not span:
        return None
    start, end = span[0] - fragment_start, span[1] - fragment_start
    return (start, end) if 0 <= start <= end <= len(fragment) else None


def pair_at(tree: Tree, node: Node, config: PairConfig) -> PairCandidate | None:
    """The pair at `node` if it has two children or more and the pair passes the filters."""
    children = tree.children_of(node)
    if len(children) < 2:
        return None
    chosen = max(children, key=lambda c: (c.value, -c.ordinal))
    rejected = min((c for c in children if c is not chosen), key=lambda c: (c.value, c.ordinal))
    gap = chosen.value - rejected.value
    if gap < config.gap_min or chosen.value < config.chosen_value_min:
        return None
    if word_overlap(chosen.fragment, rejected.fragment) > config.overlap_max:
        return None
    prefix = tree.path_text(node)
    return PairCandidate(
        node_key=node.key,
        chosen_key=chosen.key,
        rejected_key=rejected.key,
        prefix=prefix,
        chosen=chosen.fragment,
        rejected=rejected.fragment,
        chosen_value=chosen.value,
        rejected_value=rejected.value,
        chosen_visits=chosen.visits,
        rejected_visits=rejected.visits,
        gap=gap,
        deficiency=(rejected.verdict or {}).get("deficiency") or "",
        rejected_span=span_in_fragment(rejected.verdict, len(prefix), rejected.fragment),
        chosen_verdict=chosen.verdict,
        rejected_verdict=rejected.verdict,
        dedup_key=dedup_key(tree.prompt, prefix, chosen.fragment, rejected.fragment),
        prefix_ids=tree.path_ids(node),
        chosen_ids=chosen.token_ids,
        rejected_ids=rejected.token_ids,
    )


def extract_pairs(tree: Tree, config: PairConfig) -> list[PairCandidate]:
    """Every pair the tree gives, shallow nodes first."""
    nodes = sorted(tree.nodes.values(), key=lambda n: (n.depth, n.key))
    return [pair for pair in (pair_at(tree, node, config) for node in nodes) if pair is not None]


def dedupe(candidates: list[PairCandidate]) -> list[PairCandidate]:
    """One candidate per dedup_key, the one with the larger gap, in order of first appearance."""
    best: dict[str, PairCandidate] = {}
    for candidate in candidates:
        kept = best.get(candidate.dedup_key)
        if kept is None or candidate.gap > kept.gap:
            best[candidate.dedup_key] = candidate
    return list(best.values())
