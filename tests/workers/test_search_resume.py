"""A search worker killed with SIGKILL mid-search: a retry on a new worker completes every tree with no
node stored twice and none of the stored ones lost."""

import time
from collections import Counter

import pytest

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.services import records_write
from apps.search.models import SearchTree, TreeNode
from apps.training.models import Checkpoint, RoundQuery
from apps.training.services import round_create, round_transition
from apps.training.stages.search import round_search_prepare
from tests.factories import ProjectFactory
from workers.tasks import search_trees_search

SEARCH = {"simulations": 8, "width": 3, "max_tokens": 40}


def stored_nodes(round_) -> dict[str, tuple]:
    return {
        key: (tree, parent, fragment, terminal)
        for key, tree, parent, fragment, terminal in TreeNode.objects.filter(tree__round=round_).values_list(
            "key", "tree_id", "parent__key", "fragment", "is_terminal"
        )
    }


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_killed_search_worker_resumes_without_duplicates_or_losses(workers, tiny_model_dir):
    project = ProjectFactory(name="resume")
    records_write(
        project=project,
        records=generate_environment(EnvironmentConfig(seed=7, queries=12)).queries,
        source="generated",
        split="train",
    )
    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    rnd = round_create(project=project, policy=policy, search_config=SEARCH)
    round_transition(round_id=rnd.pk, to="selecting")
    queries = list(project.queries.filter(ground_truth__isnull=False).exclude(ground_truth=[])[:6])
    RoundQuery.objects.bulk_create([RoundQuery(round=rnd, query=q, score=1.0, selected=True) for q in queries])
    tree_ids = round_search_prepare(round_id=rnd.pk)

    first = workers.start("gpu", name="first")
    search_trees_search.delay(rnd.pk, tree_ids)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill as soon as some steps are stored, well before the end
        done = list(SearchTree.objects.filter(round=rnd).values_list("simulations_done", flat=True))
        if sum(done) >= len(tree_ids):
            break
        time.sleep(0.02)
    workers.kill(first)
    before_retry = stored_nodes(rnd)
    progress = list(SearchTree.objects.filter(round=rnd).values_list("simulations_done", flat=True))
    assert before_retry and 0 < sum(progress) < SEARCH["simulations"] * len(tree_ids), progress

    second = workers.start("gpu", name="second")
    result = search_trees_search.delay(rnd.pk, tree_ids)  # the retry, as the round would send it
    assert result.get(timeout=300) == {"trees": len(tree_ids)}
    assert second.poll() is None

    after = stored_nodes(rnd)
    # nothing stored before the kill was lost or changed
    assert all(after.get(key) == value for key, value in before_retry.items())
    for tree in SearchTree.objects.filter(round=rnd):
        assert tree.status == "done"
        nodes = list(TreeNode.objects.filter(tree=tree).select_related("parent"))
        assert tree.node_count == len(nodes)
        # no sibling stored twice: one node per (parent, fragment, ending)
        siblings = Counter((n.parent_id, n.fragment, n.is_terminal) for n in nodes)
        assert max(siblings.values()) == 1
        root = next(n for n in nodes if n.parent is None)
        children = [n for n in nodes if n.parent_id == root.pk]
        # every stored step was backed up exactly once: width rollouts per simulation reach the root
        assert root.visits == sum(c.visits for c in children) == tree.simulations_done * SEARCH["width"]
        assert tree.simulations_done == SEARCH["simulations"] or not any(
            not n.is_terminal and n.depth < 3 and not any(m.parent_id == n.pk for m in nodes) for n in nodes
        )
