"""The search tree page: one query's tree, collapsible, nodes coloured by value, a pair's branches marked."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render

from apps.curation.selectors import pairs_in_project
from apps.projects.permissions import MEMBERS, project_view
from itool_web.validation import parse_id

from .selectors import tree_outline, trees_in_project


@project_view(*MEMBERS)
def tree_detail(request, project, tree_id: int):
    tree = get_object_or_404(trees_in_project(project=project), pk=tree_id)
    pair, marks = None, {}
    if (pair_id := parse_id(request.GET.get("pair", ""))) is not None:
        pair = (
            pairs_in_project(project=project)
            .filter(tree=tree, pk=pair_id)
            .only("pk", "node", "chosen_node", "rejected_node")
            .first()
        )
    if pair is not None:
        marks = {
            node_id: mark
            for node_id, mark in (
                (pair.node_id, "parent"),
                (pair.chosen_node_id, "chosen"),
                (pair.rejected_node_id, "rejected"),
            )
            if node_id
        }
    rows, truncated = tree_outline(tree=tree, marks=marks)
    return render(
        request,
        "search/tree.html",
        {"project": project, "tree": tree, "pair": pair, "rows": rows, "truncated": truncated},
    )
