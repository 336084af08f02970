"""Search trees: one per (round, query); nodes are fragments of sampled assistant responses."""

from django.db import models

from itool_web.jobs import Job

from .fields import TokenIdsField


class SearchTree(Job):
    """One query's Monte Carlo tree search in a round: the config it ran with, its counts, and its nodes."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="trees", db_index=False)
    round = models.ForeignKey(
        "training.TrainingRound", null=True, blank=True, on_delete=models.CASCADE, related_name="trees", db_index=False
    )
    query = models.ForeignKey("catalog.Query", on_delete=models.CASCADE, related_name="trees")
    policy = models.ForeignKey(
        "training.Checkpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="trees"
    )
    config = models.JSONField(default=dict, blank=True, help_text="The MCTS config the tree was searched with.")
    simulations_done = models.PositiveIntegerField(default=0)
    node_count = models.PositiveIntegerField(default=0)
    valid_leaves = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "query"], name="tree_unique_round_query")]
        indexes = [
            models.Index(fields=["round", "status"], name="tree_round_status"),
            models.Index(fields=["project", "status"], name="tree_project_status"),
        ]

    def __str__(self) -> str:
        return f"tree #{self.pk} · {self.query_id}"


class TreeNode(models.Model):
    """A fragment; its text is the path of fragments from the root. Sized for tens of millions of rows."""

    tree = models.ForeignKey(SearchTree, on_delete=models.CASCADE, related_name="nodes", db_index=False)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    # Deterministic id of the node's path (parent key + child ordinal): a resumed worker re-inserting
    # a node it already wrote hits the unique constraint instead of duplicating it.
    key = models.CharField(max_length=64)
    depth = models.PositiveSmallIntegerField(default=0)
    ordinal = models.PositiveSmallIntegerField(default=0, help_text="Index among its siblings.")
    fragment = models.TextField(blank=True)
    prior = models.FloatField(default=1.0, help_text="exp(mean token logprob) of the fragment.")
    visits = models.PositiveIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)
    is_terminal = models.BooleanField(default=False)
    terminal_reward = models.FloatField(null=True, blank=True)
    verdict = models.JSONField(null=True, blank=True, help_text="Checker verdict of a terminal node.")
    token_count = models.PositiveIntegerField(default=0)
    # The fragment's token ids as the policy sampled them (the root's: empty); null when the backend gave none.
    # The ids of a path, after the prompt's, are exactly what was sampled (docs/token-ids.md).
    token_ids = TokenIdsField()

    class Meta:
        # The unique index leads with tree_id, so it also serves "all nodes of a tree".
        constraints = [models.UniqueConstraint(fields=["tree", "key"], name="treenode_unique_key")]

    def __str__(self) -> str:
        return f"node {self.key[:8]} d{self.depth}"

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0
