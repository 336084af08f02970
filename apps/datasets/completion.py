"""Whole answers for the `complete` export: a side that stops mid-answer, followed by its best finished rollout.

A step-level pair compares two sibling fragments; a fragment that is not terminal stops mid-answer. Trainers that
end every completion with EOS (TRL's, for text rows) and formats without a partial assistant turn (OpenAI's,
LLaMA-Factory's) would train such a side as if the answer stopped there. `complete` exports each such side as
fragment + the rest of its **best finished rollout** in the search tree: the terminal node below it with the
highest reward (ties: the more visited, then the older node), its path's fragments (and sampled token ids)
appended. Rows are left out, and counted, when a side cannot be completed so: its pair or tree is gone, its
text is an annotator's edit (no rollout continues it), or no finished rollout is stored below it (the search
keeps only each sample's first fragment, so an unexpanded node has none); or when, completed, the chosen answer
no longer scores above the rejected one (it then states no preference).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from apps.curation.models import PreferencePair
from apps.search.models import TreeNode

from .rows import ITEM_FIELDS

_F = {name: index for index, name in enumerate(ITEM_FIELDS)}
REASONS = {
    "no_pair": "its pair or search tree is gone",
    "edited": "a side is an annotator's edit, which no stored rollout continues",
    "no_rollout": "no finished rollout is stored below a side that stops mid-answer",
    "no_preference": "completed, the chosen answer does not score above the rejected one",
}


@dataclass
class CompletionStats:
    """What a `complete` export did: rows completed, and rows left out by reason (keys of `REASONS`)."""

    completed: int = 0
    left_out: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        out = f"{self.completed} rows with a side completed by its best rollout"
        if self.left_out:
            out += "; left out: " + ", ".join(f"{n} ({REASONS[reason]})" for reason, n in sorted(self.left_out.items()))
        return out


@dataclass(frozen=True)
class _Node:
    parent_id: int | None
    fragment: str
    is_terminal: bool
    terminal_reward: float | None
    visits: int
    token_ids: list[int] | None


class _Forest:
    """The nodes of some trees, and the best finished rollout below any of them (memoised)."""

    def __init__(self, tree_ids: set[int]):
        self.nodes: dict[int, _Node] = {}
        self.children: dict[int, list[int]] = {}
        for pk, parent_id, *rest in TreeNode.objects.filter(tree_id__in=tree_ids).values_list(
            "id", "parent_id", "fragment", "is_terminal", "terminal_reward", "visits", "token_ids"
        ):
            self.nodes[pk] = _Node(parent_id, *rest)
            if parent_id is not None:
                self.children.setdefault(parent_id, []).append(pk)
        self._best: dict[int, tuple | None] = {}

    def best(self, node_id: int) -> tuple[float, list[int]] | None:
        """(reward, the node ids below `node_id` down to its best terminal node), or None when none is stored."""
        if node_id in self._best:
            return self._best[node_id]
        node = self.nodes[node_id]
        if node.is_terminal:
            found = (node.terminal_reward if node.terminal_reward is not None else float("-inf"), [])
        else:
            options = []
            for child in sorted(self.children.get(node_id, ())):
                below = self.best(child)
                if below is not None:
                    options.append((below[0], self.nodes[child].visits, -child, [child, *below[1]]))
            found = max(options)[0::3] if options else None
        self._best[node_id] = found
        return found

    def rest(self, path: list[int]) -> tuple[str, list[int] | None]:
        """The text and token ids of a path of nodes (ids None when a node has none)."""
        text = "".join(self.nodes[pk].fragment for pk in path)
        ids: list[int] | None = []
        for pk in path:
            node_ids = self.nodes[pk].token_ids
            ids = None if ids is None or node_ids is None else [*ids, *node_ids]
        return text, ids


def complete_chunk(values: list[tuple], stats: CompletionStats) -> list[tuple]:
    """One chunk of items (fields in `ITEM_FIELDS` order) as `ROW_FIELDS` tuples with each side that stops
    mid-answer completed; items that cannot be are left out and counted in `stats`."""
    unfinished = [v for v in values if not (v[_F["chosen_ends"]] and v[_F["rejected_ends"]])]
    pairs = {
        pk: (tree_id, chosen_node, rejected_node)
        for pk, tree_id, chosen_node, rejected_node in PreferencePair.objects.filter(
            pk__in={v[_F["pair_id"]] for v in unfinished} - {None}
        ).values_list("pk", "tree_id", "chosen_node_id", "rejected_node_id")
    }
    forest = _Forest({tree_id for tree_id, *_ in pairs.values() if tree_id is not None})
    out = []
    for value in values:
        if value[_F["chosen_ends"]] and value[_F["rejected_ends"]]:
            out.append((*value, False))
            continue
        made = _complete(value, pairs.get(value[_F["pair_id"]]), forest)
        if isinstance(made, str):
            stats.left_out[made] += 1
        else:
            stats.completed += 1
            out.append(made)
    return out


def _complete(value: tuple, pair, forest: _Forest) -> tuple | str:
    """The item completed (a `ROW_FIELDS` tuple), or the reason it cannot be (a key of `REASONS`)."""
    if pair is None or not any(pk in forest.nodes for pk in pair[1:] if pk is not None):
        return "no_pair"
    nodes = [pk for pk in pair[1:] if pk in forest.nodes]
    row = list(value)
    rewards = {}
    for side in ("chosen", "rejected"):
        text = value[_F[side]]
        # the side's node: the pair's node with this fragment (a swap after the freeze swapped the pair's nodes)
        node = next((pk for pk in nodes if forest.nodes[pk].fragment == text), None)
        if value[_F[f"{side}_ends"]]:
            terminal = node is not None and forest.nodes[node].is_terminal
            rewards[side] = forest.nodes[node].terminal_reward if terminal else None
            continue
        if node is None:
            return "edited"
        best = forest.best(node)
        if best is None:
            return "no_rollout"
        rewards[side] = best[0]
        rest, rest_ids = forest.rest(best[1])
        ids = value[_F[f"{side}_ids"]]
        row[_F[side]] = text + rest
        row[_F[f"{side}_ids"]] = None if ids is None or rest_ids is None else [*ids, *rest_ids]
        row[_F[f"{side}_ends"]] = True
    if None not in rewards.values() and rewards["chosen"] <= rewards["rejected"]:
        return "no_preference"
    return (*row, True)
