"""Tree writes: nodes per second stored through the search's step persistence, against row-by-row saves."""

from __future__ import annotations

import time
import uuid

from django.db import connection, transaction

from apps.catalog.models import Query
from apps.projects.models import Project
from apps.search.models import SearchTree, TreeNode
from apps.search.services import tree_step_save

TREES = 20
WIDTH, DEPTH = 6, 4  # 6 + 36 + 216 + 1296 = 1554 nodes below the root, per tree


def _nodes(tree_tag: str) -> list[dict]:
    rows = [{"key": f"{tree_tag}", "parent_key": None, "depth": 0, "ordinal": 0, "fragment": ""}]
    frontier = [rows[0]]
    for depth in range(1, DEPTH + 1):
        nxt = []
        for parent in frontier:
            for ordinal in range(WIDTH):
                row = {
                    "key": f"{parent['key']}.{ordinal}",
                    "parent_key": parent["key"],
                    "depth": depth,
                    "ordinal": ordinal,
                    "fragment": f"city='Paris{ordinal}', ",
                    "prior": 0.4,
                    "visits": 1,
                    "value_sum": 0.2,
                    "is_terminal": depth == DEPTH,
                    "verdict": {"valid": ordinal == 0},
                    "token_count": 4,
                    "token_ids": [101, 2045, 77, 9],
                }
                rows.append(row)
                nxt.append(row)
        frontier = nxt
    return rows


def main() -> None:
    tag = uuid.uuid4().hex[:8]
    project = Project.objects.create(name=f"bench-trees-{tag}")
    try:
        query = Query.objects.create(project=project, external_id="q", source="bench", messages=[], content_hash="c")
        trees = [SearchTree(project=project, query=query) for _ in range(TREES + 2)]
        # trees need distinct (round, query): without a round they are all NULL-round, which the unique
        # constraint allows
        SearchTree.objects.bulk_create(trees)
        trees = list(SearchTree.objects.filter(project=project).order_by("id"))
        per_tree = _nodes("t")
        n = len(per_tree) * TREES

        start = time.perf_counter()
        for tree in trees[:TREES]:
            tree_step_save(tree_id=tree.pk, new_nodes=per_tree, updated_nodes=[], simulations_done=1)
        bulk = time.perf_counter() - start

        # baseline: the same nodes saved one at a time (one tree, then scaled), in one transaction
        baseline_tree = trees[TREES]
        start = time.perf_counter()
        with transaction.atomic():
            ids = {}
            for row in per_tree:
                obj = TreeNode.objects.create(
                    tree=baseline_tree,
                    parent_id=ids.get(row["parent_key"]),
                    **{k: v for k, v in row.items() if k != "parent_key"},
                )
                ids[row["key"]] = obj.pk
        naive = (time.perf_counter() - start) * TREES
    finally:
        project.delete()
    print(f"database: {connection.vendor}; {TREES} trees x {len(per_tree)} nodes = {n:,} nodes")
    print(f"row by row:        {n / naive:,.0f} nodes/s")
    print(f"step persistence:  {n / bulk:,.0f} nodes/s  ({naive / bulk:.1f}x row by row)")
