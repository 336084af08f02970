"""A search tree over response fragments: nodes with deterministic keys, UCT selection, backup, rows.

A node's text is the concatenation of the fragments on its path from the root (the root's fragment is
empty): the assistant prefix that the next expansion continues. Values follow iTool: `value_sum` adds
the rewards of every rollout through the node, `visits` counts them, and the selection rule is DESIGN.md's
`Q/(N+1) + c·prior·sqrt(ln N_parent / (N+1))` with Q = value_sum, N = visits (iTool mcts_vllm.py
Node.best_child).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields

KEY_LENGTH = 32  # hex characters of sha1 kept; TreeNode.key holds up to 64


def root_key(tree_id) -> str:
    """The root's key, from the tree's id (the SearchTree pk, or any stable name)."""
    return hashlib.sha1(f"root:{tree_id}".encode()).hexdigest()[:KEY_LENGTH]


def child_key(parent_key: str, ordinal: int) -> str:
    """A child's key: the same parent and ordinal always give the same key (so a resumed worker's
    re-inserts hit the (tree, key) unique index instead of duplicating a node)."""
    return hashlib.sha1(f"{parent_key}:{ordinal}".encode()).hexdigest()[:KEY_LENGTH]


@dataclass
class Node:
    """One fragment of a response. Field names are TreeNode's (parent_key stands for the parent id)."""

    key: str
    parent_key: str | None
    depth: int
    ordinal: int
    fragment: str = ""
    prior: float = 1.0  # exp(mean token logprob) of the fragment (see search.fragment_prior)
    visits: int = 0
    value_sum: float = 0.0
    is_terminal: bool = False
    terminal_reward: float | None = None  # the reward of the finished response; None unless terminal
    verdict: dict | None = None  # the scorer's verdict on the full response of the rollout that made the node
    token_count: int = 0
    # The fragment's token ids as sampled (the root's: []); None when unknown (a backend without them, or a
    # node under one without them). A path's ids, after the prompt's, are exactly what the policy sampled.
    token_ids: list[int] | None = None

    @property
    def value(self) -> float:
        """Mean reward of the rollouts through the node."""
        return self.value_sum / self.visits if self.visits else 0.0


def uct_score(child: Node, parent_visits: int, c_puct: float) -> float:
    """DESIGN.md's selection score. ln N_parent is taken as 0 for N_parent <= 1 (ln 1 = 0; ln 0 is
    undefined), so a parent visited at most once picks its child by value alone."""
    exploitation = child.value_sum / (child.visits + 1)
    if parent_visits <= 1:
        return exploitation
    return exploitation + c_puct * child.prior * math.sqrt(math.log(parent_visits) / (child.visits + 1))


class Tree:
    """The nodes of one query's search, the prompt they continue, and how many simulations are done."""

    def __init__(self, tree_id, prompt: str, nodes: list[Node], simulations_done: int = 0):
        self.tree_id = tree_id
        self.prompt = prompt  # the rendered chat prompt; the assistant turn starts right after it
        self.prompt_ids: list[int] | None = None  # its token ids, once the search has a backend to encode it
        self.simulations_done = simulations_done
        self.nodes: dict[str, Node] = {}
        self.children: dict[str, list[str]] = {}
        self.root: Node | None = None
        self.unreported: list[str] = []  # keys created since the last step report (see drain_new_nodes)
        # Subtrees found with nothing left to expand, by max_depth: they stay so (a node is only ever added
        # under an expandable one, and making a node terminal only closes more), so selection skips them.
        self._exhausted: dict[int, set[str]] = {}
        for node in sorted(nodes, key=lambda n: (n.depth, n.ordinal)):
            self._attach(node)
        if self.root is None:
            raise ValueError(f"tree {tree_id}: no root node")

    @classmethod
    def new(cls, tree_id, prompt: str) -> Tree:
        """A tree holding only its root, which the first step report will include."""
        tree = cls(tree_id, prompt, [Node(root_key(tree_id), None, depth=0, ordinal=0, token_ids=[])])
        tree.unreported.append(tree.root.key)
        return tree

    # --- structure --------------------------------------------------------------------------------

    def _attach(self, node: Node) -> None:
        if node.key in self.nodes:
            raise ValueError(f"tree {self.tree_id}: duplicate node key {node.key}")
        if node.parent_key is None:
            if self.root is not None:
                raise ValueError(f"tree {self.tree_id}: two roots ({self.root.key}, {node.key})")
            self.root = node
        elif node.parent_key not in self.nodes:
            raise ValueError(f"tree {self.tree_id}: node {node.key} has unknown parent {node.parent_key}")
        else:
            self.children[node.parent_key].append(node.key)
        self.nodes[node.key] = node
        self.children[node.key] = []

    def add_child(self, parent: Node, **node_fields) -> Node:
        """A new child of `parent`; its ordinal continues after the existing children's, so its key is new."""
        ordinal = max((child.ordinal for child in self.children_of(parent)), default=-1) + 1
        node = Node(child_key(parent.key, ordinal), parent.key, parent.depth + 1, ordinal, **node_fields)
        self._attach(node)
        self.unreported.append(node.key)
        return node

    def drain_new_nodes(self) -> list[Node]:
        """Nodes created since the last call, parents first; a tree loaded from rows starts with none."""
        new = [self.nodes[key] for key in self.unreported]
        self.unreported = []
        return new

    def children_of(self, node: Node) -> list[Node]:
        return [self.nodes[key] for key in self.children[node.key]]

    def path(self, node: Node) -> list[Node]:
        """Nodes from the root down to `node`, both included."""
        path = [node]
        while path[-1].parent_key is not None:
            path.append(self.nodes[path[-1].parent_key])
        return path[::-1]

    def path_text(self, node: Node) -> str:
        """The assistant prefix at `node`: its path's fragments joined."""
        return "".join(n.fragment for n in self.path(node))

    def path_ids(self, node: Node) -> list[int] | None:
        """The assistant prefix at `node` as sampled token ids; None if a node on the path has none."""
        ids: list[int] = []
        for n in self.path(node):
            if n.token_ids is None:
                return None
            ids += n.token_ids
        return ids

    def __len__(self) -> int:
        return len(self.nodes)

    # --- search -----------------------------------------------------------------------------------

    def is_expandable(self, node: Node, max_depth: int) -> bool:
        return not node.is_terminal and node.depth < max_depth and not self.children[node.key]

    def has_open_leaf(self, node: Node, max_depth: int) -> bool:
        """Whether the subtree under `node` still has a node to expand."""
        if self.is_expandable(node, max_depth):
            return True
        exhausted = self._exhausted.setdefault(max_depth, set())
        if node.key in exhausted:
            return False
        if any(self.has_open_leaf(child, max_depth) for child in self.children_of(node)):
            return True
        exhausted.add(node.key)
        return False

    def select_leaf(self, c_puct: float, max_depth: int) -> Node | None:
        """Walk from the root by the UCT score (ties: the lower ordinal) to a node to expand.

        Subtrees with nothing left to expand (terminal or depth-capped leaves only) are skipped, so a
        simulation always expands something; None when the whole tree is exhausted.
        """
        node = self.root
        while not self.is_expandable(node, max_depth):
            open_children = [c for c in self.children_of(node) if self.has_open_leaf(c, max_depth)]
            if not open_children:
                return None
            node = max(open_children, key=lambda c: (uct_score(c, node.visits, c_puct), -c.ordinal))
        return node

    def backup(self, path: list[Node], reward_sum: float, rollouts: int = 1) -> None:
        """Add `rollouts` visits and their summed reward to every node on `path`."""
        for node in path:
            node.visits += rollouts
            node.value_sum += reward_sum

    # --- rows -------------------------------------------------------------------------------------

    def to_rows(self) -> list[dict]:
        """Plain dicts with TreeNode's field names (parent_key for the parent), parents before children."""
        return [asdict(node) for node in sorted(self.nodes.values(), key=lambda n: (n.depth, n.key))]

    @classmethod
    def from_rows(cls, tree_id, prompt: str, rows: list[dict], simulations_done: int = 0) -> Tree:
        """Rebuild a tree stored as rows (in any order); extra keys in a row are ignored."""
        names = {f.name for f in fields(Node)}
        nodes = [Node(**{name: value for name, value in row.items() if name in names}) for row in rows]
        tree = cls(tree_id, prompt, nodes, simulations_done)
        if tree.root.key != root_key(tree_id):
            raise ValueError(f"tree {tree_id}: root key {tree.root.key} is not this tree's ({root_key(tree_id)})")
        return tree
