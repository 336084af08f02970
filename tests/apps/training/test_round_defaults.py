"""Defaults that produce pairs, or say why not: run_round starts a fresh project with the warm-up, later rounds get
the settings that work for their policy, a round without pairs explains itself (CLI, round page, REST), and
automatic approvals are attributed as such."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils.html import escape

from apps.curation.models import PairAssignment, PreferencePair, ReviewEvent
from apps.curation.selectors import project_reviewers
from apps.curation.services import AUTO_REVIEWER
from apps.search.models import SearchTree
from apps.training import services
from apps.training.lifecycle import LaunchRefused, round_auto_approve, round_gate, round_launch
from apps.training.models import Checkpoint, TrainingRound
from apps.training.services import round_create, round_defaults
from apps.training.stages.pair import (
    ALWAYS_RIGHT,
    FILTERED,
    NEVER_RIGHT,
    ONE_ANSWER,
    no_pairs_reason,
    round_pair,
    tree_without_pairs,
)
from tests.factories import PairFactory, SearchTreeFactory, TreeNodeFactory, UserFactory
from workers.mcts import PairConfig, Tree
from workers.mcts.tree import child_key, root_key

QUICK_WARMUP = {
    "max_steps": 4,
    "learning_rate": 1e-2,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 1,
    "adam_beta2": 0.95,
    "batch_size": 8,
}


@pytest.fixture
def fresh_project(project, tiny_model_dir, monkeypatch):
    """README's quick start on a 60-query project: a generated environment (48 train, 12 eval queries) and a tiny
    policy, no round yet. The warm-up is cut to a few steps (the nano test model; the defaults train 600)."""
    call_command("generate_environment", project=project.name, seed=0, queries=60)
    Checkpoint.objects.create(project=project, name="tiny", path=str(tiny_model_dir), kind="tiny")
    monkeypatch.setattr(services, "TINY_WARMUP", QUICK_WARMUP)
    # sampling costs on a shared 2-core machine: fewer samples, shorter, from half the train queries
    for key, value in {"max_tokens": 32, "k": 4, "candidates": 24}.items():
        monkeypatch.setitem(services.SELECTION, key, value)
    return project


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_quick_start_warms_up_first_then_yields_pairs_or_says_why(fresh_project, capsys):
    project = fresh_project
    try:
        call_command("run_round", project=project.name)
        failure = None
    except CommandError as exc:
        failure = str(exc)
    out = capsys.readouterr().out
    warmup = TrainingRound.objects.get(project=project, number=0)
    assert warmup.algorithm == "sft" and warmup.state == "done"  # round 0 is the warm-up, trained and evaluated
    assert warmup.hyperparameters["warmup"] == QUICK_WARMUP and warmup.policy_out is not None
    assert "round 0 (warm-up) is done" in out
    round1 = TrainingRound.objects.get(project=project, number=1)
    assert round1.policy_in == warmup.policy_out and round1.algorithm == "simpo"
    assert round1.selection["method"] == "pass_rate" and round1.hyperparameters["pairs"] == services.PAIRS
    pairs = PreferencePair.objects.filter(round=round1).count()
    if pairs:
        assert failure is None and f"pair: {pairs} pairs" in out
    else:  # a clear reason, from the stage that came up empty
        reason = failure or round1.progress.get("reason")
        assert reason and any(
            words in reason
            for words in ("pass rate in", "rollouts scored the same", "sampled the same fragments", "passed the filter")
        )
        assert reason in (failure or out)


def test_later_rounds_get_settings_that_work_for_their_policy(project):
    tiny = Checkpoint.objects.create(project=project, name="tiny", path="/x", kind="tiny")
    warmed = Checkpoint.objects.create(project=project, name="warm", path="/y", kind="sft", parent=tiny)
    base = Checkpoint.objects.create(project=project, name="base", path="/z", kind="base")
    assert round_defaults(policy=tiny, algorithm="sft") == {"hyperparameters": {"warmup": services.TINY_WARMUP}}
    assert round_defaults(policy=base, algorithm="sft") == {"hyperparameters": {"warmup": {}}}
    later = round_defaults(policy=warmed, algorithm="simpo")
    assert later["selection"]["method"] == "pass_rate" and later["selection"]["min_rate"] > 0
    assert later["hyperparameters"] == {"train": services.TINY_SIMPO, "pairs": services.PAIRS}
    assert round_defaults(policy=base, algorithm="dpo")["hyperparameters"]["train"] == {}  # a real model: TRL's
    from workers.select import SelectionConfig
    from workers.train.preference import config_for
    from workers.train.sft import WarmupConfig

    SelectionConfig(**later["selection"])  # every default is valid for its engine
    config_for("simpo", later["hyperparameters"]["train"])
    WarmupConfig(**services.TINY_WARMUP)


def test_a_fresh_project_starts_with_round_0_whatever_the_algorithm(project, tiny_model_dir, monkeypatch):
    Checkpoint.objects.create(project=project, name="tiny", path=str(tiny_model_dir), kind="tiny")
    monkeypatch.setattr(services, "TINY_WARMUP", QUICK_WARMUP)
    with pytest.raises(CommandError, match="no train query with a reference answer to warm up on"):
        call_command("run_round", project=project.name, algorithm="dpo")  # no data: the warm-up says so
    assert list(TrainingRound.objects.filter(project=project).values_list("number", "algorithm")) == [(0, "sft")]


# --- a round without pairs says why -------------------------------------------------------------------------


def _tree(values: list[list[float]]) -> Tree:
    """A root with one child per entry of `values`, each child's rollout rewards given (visits = their count)."""
    tree = Tree.new(1, "prompt")
    for i, rewards in enumerate(values):
        tree.add_child(
            tree.root, fragment=f"f{i}", prior=1.0, visits=len(rewards), value_sum=sum(rewards), is_terminal=True
        )
    tree.root.visits = sum(len(r) for r in values)
    tree.root.value_sum = sum(sum(r) for r in values)
    return tree


def test_why_a_tree_gives_no_pair():
    config = PairConfig(chosen_value_min=0.5)
    assert tree_without_pairs(_tree([[-1.0], [-1.0, -1.0]]), config) == NEVER_RIGHT
    assert tree_without_pairs(_tree([[1.0], [1.0]]), config) == ALWAYS_RIGHT
    chain = _tree([[1.0, -1.0]])  # every sample began alike: one child, then one grandchild
    chain.add_child(chain.nodes[child_key(chain.root.key, 0)], fragment="x", prior=1.0, visits=1, value_sum=1.0)
    assert tree_without_pairs(chain, config) == ONE_ANSWER
    assert tree_without_pairs(_tree([[0.3], [-1.0]]), config) == FILTERED  # chosen value 0.3 < 0.5


def test_the_reason_names_the_counts_and_what_to_try():
    config = PairConfig()
    reason = no_pairs_reason({NEVER_RIGHT: 48}, 48, config, "perplexity")
    assert reason == (
        "all 48 trees' rollouts scored the same (48 never right): the policy never solves these "
        "queries — try selection pass_rate with min_rate > 0 (queries it solves sometimes)"
    )
    reason = no_pairs_reason({NEVER_RIGHT: 5, FILTERED: 10, ONE_ANSWER: 1}, 16, config, "pass_rate")
    assert reason.startswith(
        "of 16 trees, 5 scored every rollout the same (never right); 1 sampled the same "
        "fragments every time (no branch); 10 had branches of different values"
    )
    assert reason.endswith("loosen the pair filter (pairs: gap_min, chosen_value_min)")


@pytest.fixture
def empty_round(project):
    """A round whose search is done: two trees whose every rollout scored −1."""
    policy = Checkpoint.objects.create(project=project, name="p", path="/x", kind="tiny")
    rnd = round_create(project=project, policy=policy, selection={"method": "perplexity"})
    TrainingRound.objects.filter(pk=rnd.pk).update(state="searching")
    for _ in range(2):
        tree = SearchTreeFactory(project=project, round=rnd, status=SearchTree.Status.DONE)
        root = TreeNodeFactory(tree=tree, key=root_key(tree.pk), visits=2, value_sum=-2.0)
        TreeNodeFactory(tree=tree, parent=root, key=child_key(root.key, 0), fragment="[", visits=1, value_sum=-1.0)
        TreeNodeFactory(
            tree=tree, parent=root, key=child_key(root.key, 1), fragment="no", visits=1, value_sum=-1.0, ordinal=1
        )
    return rnd


def test_a_round_without_pairs_says_why_on_the_cli_the_page_and_rest(empty_round, client, capsys):
    out = round_pair(round_id=empty_round.pk)
    expected = (
        "all 2 trees' rollouts scored the same (2 never right): the policy never solves these queries — "
        "try selection pass_rate with min_rate > 0 (queries it solves sometimes)"
    )
    assert out["pairs"] == 0 and out["reason"] == expected
    empty_round.refresh_from_db()
    assert empty_round.state == "reviewing" and empty_round.progress["reason"] == expected
    gate = round_gate(empty_round)
    assert not gate.ok and gate.reason == f"the round has no pairs to review: {expected}"

    # the CLI: with --auto-approve there is nothing to train on, so it fails with the reason (never exit 0)
    with pytest.raises(CommandError) as failed:
        call_command("run_round", project=empty_round.project.name, auto_approve=True)
    assert expected in str(failed.value)

    admin = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    page = client.get(reverse("training:round_detail", args=[empty_round.project_id, empty_round.number]))
    assert page.status_code == 200 and escape(expected) in page.content.decode()
    status = client.get(f"/api/v1/rounds/{empty_round.pk}/status/")
    assert status.status_code == 200 and status.json()["reason"] == expected


# --- automatic approvals are attributed as such ---------------------------------------------------------------


def test_automatic_approvals_are_the_automatic_reviewers_not_a_deleted_users(project):
    rnd = TrainingRound.objects.create(project=project, number=3, state="reviewing")
    pairs = [PairFactory(project=project, round=rnd) for _ in range(2)]
    assert round_auto_approve(round_id=rnd.pk, reason="run_round --auto-approve") == 2
    events = ReviewEvent.objects.filter(pair__in=pairs, action="approve")
    assert [e.user.username for e in events] == [AUTO_REVIEWER] * 2
    assert {e.note for e in events} == {"automatic approval: run_round --auto-approve"}
    reviewer = events[0].user
    assert not reviewer.is_active and not reviewer.has_usable_password()  # nobody logs in as it
    assert not PairAssignment.objects.filter(pair__in=pairs).exists()  # not a person's decision: no agreement
    assert {p["user"]: p.get("approve") for p in project_reviewers(project=project)} == {AUTO_REVIEWER: 2}
    assert all(p.reviewed_by == reviewer for p in type(pairs[0]).objects.filter(pk__in=[p.pk for p in pairs]))
    # the launch that follows: the gate holds on the automatic approvals
    assert round_gate(TrainingRound.objects.get(pk=rnd.pk)).ok


def test_a_launch_refused_for_an_empty_round_carries_the_reason(empty_round):
    round_pair(round_id=empty_round.pk)
    with pytest.raises(LaunchRefused, match="rollouts scored the same"):
        round_launch(round_id=empty_round.pk, dispatch=False)
