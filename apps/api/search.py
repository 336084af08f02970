"""Search trees and their nodes (fragments with visits and values), read-only."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers, viewsets

from apps.search.models import SearchTree, TreeNode

from .fields import JSONObjectField
from .filters import NodeFilter, TreeFilter
from .permissions import ProjectScopedMixin, visible


class TreeSerializer(serializers.ModelSerializer):
    config = JSONObjectField(read_only=True, help_text="The MCTS config the tree was searched with.")

    class Meta:
        model = SearchTree
        fields = [
            "id",
            "project",
            "round",
            "query",
            "policy",
            "config",
            "status",
            "simulations_done",
            "node_count",
            "valid_leaves",
            "error",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields


class NodeSerializer(serializers.ModelSerializer):
    value = serializers.FloatField(read_only=True, help_text="value_sum / visits (0 when unvisited).")
    verdict = JSONObjectField(read_only=True, allow_null=True, help_text="The checker's verdict on a terminal node.")

    class Meta:
        model = TreeNode
        fields = [
            "id",
            "tree",
            "parent",
            "key",
            "depth",
            "ordinal",
            "fragment",
            "prior",
            "visits",
            "value_sum",
            "value",
            "is_terminal",
            "terminal_reward",
            "verdict",
            "token_count",
        ]
        read_only_fields = fields


class TreeViewSet(ProjectScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Search trees of your projects (one per round and query)."""

    queryset = SearchTree.objects.all()
    serializer_class = TreeSerializer
    filterset_class = TreeFilter


class TreeNodeList(generics.ListAPIView):
    """The tree's nodes in the order they were created, a page at a time; filter by depth or parent."""

    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    queryset = TreeNode.objects.none()  # for the schema; the real one is the tree's

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TreeNode.objects.none()
        tree = get_object_or_404(visible(SearchTree.objects.all(), self.request.user), pk=self.kwargs["tree_id"])
        return TreeNode.objects.filter(tree=tree)
