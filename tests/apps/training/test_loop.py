"""The round's stages on the real tiny model: select → search → pair, through services and run_round."""

import math

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.services import records_write
from apps.curation.models import PreferencePair
from apps.curation.services import pairs_create_from_tree
from apps.search.models import SearchTree, TreeNode
from apps.training.models import Checkpoint, RoundQuery, TrainingRound
from apps.training.services import round_create
from apps.training.stages.base import StageError
from apps.training.stages.pair import round_pair
from apps.training.stages.search import round_search_prepare, trees_search
from apps.training.stages.select import round_select
from workers.mcts import PairCandidate, Tree

SEARCH = {"simulations": 2, "width": 2, "max_tokens": 24}


@pytest.fixture
def policy_round(project, tiny_model_dir):
    from apps.catalog.environment import EnvironmentConfig, generate_environment

    records_write(
        project=project,
        records=generate_environment(EnvironmentConfig(seed=5, queries=24)).queries,
        source="generated",
        split="train",
    )
    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    return round_create(
        project=project, policy=policy, selection={"method": "perplexity", "ratio": 0.25}, search_config=SEARCH
    )


def test_select_search_pair(policy_round):
    seen = []
    out = round_select(round_id=policy_round.pk, progress=seen.append)
    scored = RoundQuery.objects.filter(round=policy_round)
    assert out["scored"] == scored.count() > 0 and seen[-1]["done"] == seen[-1]["total"] == out["scored"]
    assert all(list(p) == ["stage", "done", "total"] and p["stage"] == "select" for p in seen)
    assert out["selected"] == scored.filter(selected=True).count() == math.ceil(0.25 * out["scored"])
    # the selected are the highest-perplexity ones
    worst_kept = min(scored.filter(selected=True).values_list("score", flat=True))
    assert all(s <= worst_kept for s in scored.filter(selected=False).values_list("score", flat=True))

    tree_ids = round_search_prepare(round_id=policy_round.pk)
    assert len(tree_ids) == out["selected"]
    progress = []
    trees_search(round_id=policy_round.pk, tree_ids=tree_ids, progress=progress.append)
    assert progress[-1]["trees_done"] == len(tree_ids)
    for tree in SearchTree.objects.filter(round=policy_round):
        assert tree.status == "done" and tree.simulations_done == SEARCH["simulations"]
        nodes = TreeNode.objects.filter(tree=tree)
        assert tree.node_count == nodes.count() > 1
        root = nodes.get(parent=None)
        # each simulation backs `width` rollouts up to the root, and the root's are its children's
        assert root.visits == SEARCH["simulations"] * SEARCH["width"] == sum(c.visits for c in root.children.all())
        assert all(n.verdict is not None for n in nodes.exclude(pk=root.pk))

    result = round_pair(round_id=policy_round.pk)
    policy_round.refresh_from_db()
    assert policy_round.state == "reviewing"
    assert result["pairs"] == PreferencePair.objects.filter(round=policy_round).count()


def test_select_scores_only_the_candidates(policy_round):
    TrainingRound.objects.filter(pk=policy_round.pk).update(
        selection={"method": "perplexity", "ratio": 0.5, "candidates": 5, "seed": 1}
    )
    out = round_select(round_id=policy_round.pk)
    scored = RoundQuery.objects.filter(round=policy_round)
    assert out["scored"] == scored.count() == 5 and out["selected"] == 3
    again = RoundQuery.objects.filter(round=policy_round).values_list("query_id", flat=True)
    round_select(round_id=policy_round.pk)  # same seed: the same sample
    assert set(RoundQuery.objects.filter(round=policy_round).values_list("query_id", flat=True)) == set(again)


def test_stages_refuse_to_run_out_of_order(policy_round):
    with pytest.raises(StageError, match="no selected queries"):
        round_search_prepare(round_id=policy_round.pk)
    TrainingRound.objects.filter(pk=policy_round.pk).update(policy_in=None)
    with pytest.raises(StageError, match="no policy checkpoint"):
        round_select(round_id=policy_round.pk)


def test_pairs_from_a_tree_are_stored_once(policy_round):
    round_select(round_id=policy_round.pk)
    tree_id = round_search_prepare(round_id=policy_round.pk)[0]
    tree = SearchTree.objects.get(pk=tree_id)
    built = Tree.new(tree_id, "prompt")
    root = built.root
    good = built.add_child(root, fragment="[get_weather(city='Paris')]", visits=2, value_sum=2.0, is_terminal=True)
    bad = built.add_child(root, fragment="[get_weather(city='Lyon')]", visits=2, value_sum=0.4, is_terminal=True)
    from apps.search.services import node_row, tree_step_save

    tree_step_save(
        tree_id=tree_id,
        new_nodes=[node_row(n) for n in built.nodes.values()],
        updated_nodes=[],
        simulations_done=1,
        done=True,
    )
    candidate = PairCandidate(
        node_key=root.key,
        chosen_key=good.key,
        rejected_key=bad.key,
        prefix="",
        chosen=good.fragment,
        rejected=bad.fragment,
        chosen_value=1.0,
        rejected_value=0.2,
        chosen_visits=2,
        rejected_visits=2,
        gap=0.8,
        deficiency="wrong_value",
        rejected_span=(18, 24),
        chosen_verdict=None,
        rejected_verdict={"valid": False},
        dedup_key="x",
    )
    assert pairs_create_from_tree(tree=tree, candidates=[candidate, candidate]) == 1
    assert pairs_create_from_tree(tree=tree, candidates=[candidate]) == 0
    pair = PreferencePair.objects.get()
    assert (pair.status, pair.deficiency, pair.gap) == ("pending", "wrong_value", 0.8)
    assert pair.chosen_node.key == good.key and pair.rejected_node.key == bad.key and pair.query == tree.query


def test_run_round_command(policy_round, capsys):
    call_command("run_round", project=policy_round.project.name, until="search")
    out = capsys.readouterr().out
    assert "select:" in out and "search:" in out and "round 0 is searching" in out
    call_command("run_round", project=policy_round.project.name, until="pair")
    assert "round 0 is reviewing" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no project named"):
        call_command("run_round", project="nope")


def test_search_is_sharded_over_tasks(policy_round, eager):
    from apps.training.stages.search import round_search_dispatch

    round_select(round_id=policy_round.pk)
    task_ids = round_search_dispatch(round_id=policy_round.pk, shard_size=1)
    policy_round.refresh_from_db()
    trees = SearchTree.objects.filter(round=policy_round)
    assert len(task_ids) == trees.count() == policy_round.progress["shards"]
    assert set(task_ids) < set(policy_round.task_ids)  # kept for cancel, with the pair task the last shard sent
    assert all(t.status == "done" for t in trees)
    # once every tree is done the round enters the pair stage, whose task is sent at commit
    assert policy_round.state == "pairing" and "pair_sent" not in policy_round.progress


def test_grpo_rewards_checker_grade_or_solve_f1_of_the_executed_calls(policy_round):
    from apps.catalog.models import Query
    from apps.training.stages.train import reward_spec
    from workers.train.job import reward_from_spec

    query = next(
        q
        for q in Query.objects.filter(project=policy_round.project, kind="single")
        if q.ordered_tools() and all(t.implementation for t in q.ordered_tools())
    )
    solve = reward_from_spec(reward_spec("solve_f1", query))
    assert solve(query.reference_output) == pytest.approx(1.0)  # one call, one sub-answer found: 2·1 / (1 + 1)
    assert solve("I would rather not.") == 0.0  # no call: FTRL's step reward is 0
    assert solve(query.reference_output[:-3]) == 0.0  # malformed
    checker = reward_from_spec(reward_spec("checker", query))
    assert checker(query.reference_output) == 1.0 and checker("I would rather not.") < 1.0


def test_grpo_solve_f1_reward_needs_executable_tools(policy_round):
    from apps.catalog.models import Query, Tool
    from apps.training.stages.train import reward_spec
    from workers.train.job import reward_from_spec

    query = Query.objects.filter(project=policy_round.project, kind="single").first()
    Tool.objects.filter(pk__in=[t.pk for t in query.ordered_tools()]).update(implementation="")
    query = Query.objects.get(pk=query.pk)
    with pytest.raises(StageError, match="solve_f1 reward needs executable tools"):
        reward_from_spec(reward_spec("solve_f1", query))
