"""Fixtures of the arms tests: a round whose search trees hold right and wrong complete answers (scored by the real
checker), whose pairs are extracted from those trees by the round's own pair stage, approved and frozen."""

import pytest

from apps.catalog.models import Query
from apps.catalog.services import records_write
from apps.search.models import SearchTree
from apps.search.services import node_row, tree_step_save, trees_create
from apps.training.lifecycle import round_auto_approve, round_launch
from apps.training.models import Checkpoint, RoundQuery, TrainingRound
from apps.training.policy import query_tools
from apps.training.services import round_create
from apps.training.stages.pair import round_pair
from rewards.checker import check
from workers.mcts import Tree

# Trained 2 steps of 2 pairs by SimPO with an SFT term, scored on 6 eval queries: seconds on the nano model.
TRAIN = {"max_steps": 2, "batch_size": 2, "sft_weight": 1.0, "logging_steps": 1}
REFUSAL = "I cannot help with that."


def build_tree(tree_row: SearchTree, answers: list[str]) -> None:
    """Store a searched tree for the row's query: the root's children are the first answer's opening (up to its
    first "(") — continued by the first two answers — and each further answer whole. Every leaf is terminal,
    scored by the checker; visits and values are backed up as the search does."""
    query = tree_row.query
    tools = query_tools(query)
    tree = Tree.new(tree_row.pk, "")

    def leaf(parent, fragment, text):
        verdict = check(text, query.ground_truth, tools)
        return tree.add_child(
            parent,
            fragment=fragment,
            is_terminal=True,
            terminal_reward=verdict.reward,
            verdict=verdict.as_dict(),
            visits=1,
            value_sum=verdict.reward,
        )

    first, second, *rest = answers
    cut = first.index("(") + 1
    opening = tree.add_child(tree.root, fragment=first[:cut])
    leaves = [leaf(opening, first[cut:], first), leaf(opening, second[cut:], second)]
    opening.visits, opening.value_sum = 2, sum(n.value_sum for n in leaves)
    leaves += [leaf(tree.root, text, text) for text in rest]
    tree.root.visits, tree.root.value_sum = len(leaves), sum(n.value_sum for n in leaves)
    tree_step_save(
        tree_id=tree_row.pk,
        new_nodes=[node_row(n) for n in tree.nodes.values()],
        updated_nodes=[],
        simulations_done=1,
        done=True,
    )


@pytest.fixture
def arms_round(project, tiny_model_dir) -> TrainingRound:
    """Round 1 of `project` (input: the nano policy), in training: 6 generated single-call train queries
    selected (of the train split's), 6 eval queries. Each selected query's tree holds its right answer and a
    malformed one after a shared opening, and a refusal; the last one's holds three refusals (all its rollouts
    score the same). Pairs come from the round's pair stage, all approved, frozen into the round's snapshot by its
    launch."""
    from apps.catalog.environment import EnvironmentConfig, generate_environment

    specs = generate_environment(EnvironmentConfig(seed=5, queries=60)).queries
    singles = [s for s in specs if s.kind == "single"]
    records_write(project=project, records=singles[:7], source="generated", split="train")
    records_write(project=project, records=specs[-6:], source="generated", split="eval")
    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    TrainingRound.objects.create(project=project, number=0, state="done", algorithm="sft", policy_out=policy)
    rnd = round_create(project=project, policy=policy, hyperparameters={"train": TRAIN, "eval_limit": 6})
    queries = list(Query.objects.filter(project=project, split="train").order_by("id"))
    RoundQuery.objects.bulk_create(
        [RoundQuery(round=rnd, query=q, score=1.0, selected=i < 6) for i, q in enumerate(queries)]
    )
    TrainingRound.objects.filter(pk=rnd.pk).update(state="searching")
    trees_create(round=rnd, query_ids=[q.pk for q in queries[:6]], config={})
    for tree_row in SearchTree.objects.filter(round=rnd).select_related("query").order_by("query_id"):
        answer = tree_row.query.reference_output
        if tree_row.query_id == queries[5].pk:
            build_tree(tree_row, [REFUSAL + " (", REFUSAL + " ((", REFUSAL])
        else:
            build_tree(tree_row, [answer, answer[:-2], REFUSAL])
    round_pair(round_id=rnd.pk)
    round_auto_approve(round_id=rnd.pk)
    round_launch(round_id=rnd.pk, dispatch=False)
    rnd.refresh_from_db()
    assert rnd.state == "training" and rnd.snapshot.pair_count > 0
    return rnd
