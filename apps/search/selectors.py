"""Reads for the tree page: one search tree's nodes as a collapsible outline, a pair's branches marked."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet

from .models import SearchTree, TreeNode

MAX_TREE_NODES = 5000  # a page, not a dump: bigger trees are cut (the admin lists every node)


@dataclass
class OutlineRow:
    """One node in pre-order; the template opens a nested list for a node with children and closes
    `closes` levels after the row."""

    node_id: int
    depth: int
    fragment: str
    visits: int
    value: float
    is_terminal: bool
    verdict: dict | None
    mark: str = ""  # "parent", "chosen" or "rejected" for the marked pair
    has_children: bool = False
    open: bool = False
    closes: int = 0
    on_path: bool = False  # an ancestor of a marked node
    closers: range = field(default_factory=lambda: range(0))


def trees_in_project(*, project) -> QuerySet[SearchTree]:
    return SearchTree.objects.filter(project=project).select_related("query", "round")


def tree_outline(*, tree: SearchTree, marks: dict[int, str], open_depth: int = 2) -> tuple[list[OutlineRow], bool]:
    """(rows in pre-order, whether the tree was cut at MAX_TREE_NODES). One query. Nodes above `open_depth`
    and the paths to marked nodes start expanded."""
    nodes = list(
        TreeNode.objects.filter(tree=tree)
        .order_by("depth", "ordinal", "id")
        .values("id", "parent_id", "depth", "fragment", "visits", "value_sum", "is_terminal", "verdict")[
            : MAX_TREE_NODES + 1
        ]
    )
    truncated = len(nodes) > MAX_TREE_NODES
    nodes = nodes[:MAX_TREE_NODES]
    by_id = {n["id"]: n for n in nodes}
    children: dict[int | None, list[int]] = {}
    for n in nodes:
        parent = n["parent_id"] if n["parent_id"] in by_id else None
        children.setdefault(parent, []).append(n["id"])
    on_path: set[int] = set()
    for node_id in marks:
        parent = by_id.get(node_id, {}).get("parent_id")
        while parent in by_id and parent not in on_path:
            on_path.add(parent)
            parent = by_id[parent]["parent_id"]

    rows: list[OutlineRow] = []
    stack = [(node_id, False) for node_id in reversed(children.get(None, []))]
    while stack:  # iterative pre-order: (node, True) marks "after its last descendant"
        node_id, closing = stack.pop()
        if closing:
            rows[-1].closes += 1
            continue
        n, kids = by_id[node_id], children.get(node_id, [])
        value = n["value_sum"] / n["visits"] if n["visits"] else 0.0
        rows.append(
            OutlineRow(
                node_id,
                n["depth"],
                n["fragment"],
                n["visits"],
                value,
                n["is_terminal"],
                n["verdict"],
                marks.get(node_id, ""),
                bool(kids),
                open=n["depth"] < open_depth or node_id in on_path or node_id in marks,
                on_path=node_id in on_path,
            )
        )
        if kids:
            stack.append((node_id, True))
            stack.extend((kid, False) for kid in reversed(kids))
    for row in rows:
        row.closers = range(row.closes)
    return rows, truncated
