"""Each arm's data, built from a round's real rows: whole-response pairs and the RFT set from its trees' complete
rollouts, its pairs as extracted before review, and the budget every arm is fitted to."""

import pytest

from apps.arms.budget import Budget, BudgetError, fitted, grpo_shape, round_budget
from apps.arms.data import (
    ArmDataError,
    Rollout,
    arm_data,
    arm_size,
    correct_rollouts,
    round_rollouts,
    unreviewed_items,
    whole_pair_items,
    whole_response_pair,
)
from apps.curation.models import PreferencePair
from apps.curation.services import pair_edit, pair_reject, pair_swap
from apps.training.models import Checkpoint, RoundQuery, TrainingRound
from apps.training.policy import policy_tokenizer
from tests.factories import UserFactory

from .conftest import REFUSAL


def test_whole_response_pairs_are_best_against_worst_rollout_per_query(arms_round):
    rollouts = round_rollouts(arms_round)
    by_query = {}
    for r in rollouts:
        by_query.setdefault(r.query_id, []).append(r)
    assert len(by_query) == 6 and all(len(rs) == 3 for rs in by_query.values())
    items = whole_pair_items(arms_round)
    # the last query's rollouts all score the same (three refusals): no pair for it
    assert len(items) == 5
    for item in items:
        scored = by_query[item.query_id]
        right = next(r for r in scored if r.valid)
        assert item.chosen == right.text and item.chosen.endswith(")]")  # the root-to-leaf text, whole
        assert item.rejected in {r.text for r in scored if r.reward == min(x.reward for x in scored)}
        assert item.prefix == "" and item.chosen_ends and item.rejected_ends


def test_whole_response_pair_rule():
    def r(key, text, reward):
        return Rollout(1, key, text, reward, reward == 1.0)

    assert whole_response_pair([r("a", "x", 0.2)]) is None
    assert whole_response_pair([r("a", "x", 0.2), r("b", "y", 0.2)]) is None  # all the same score
    best, worst = whole_response_pair(
        [r("c", "low2", -1.0), r("a", "mid", 0.2), r("b", "top", 1.0), r("d", "low1", -1.0)]
    )
    assert (best.text, worst.text) == ("top", "low2")  # ties: the lower key
    assert whole_response_pair([r("a", "same", 1.0), r("b", "same", -1.0)]) is None  # nothing to prefer


def test_rft_set_is_the_correct_rollouts_deduplicated(arms_round):
    rollouts = round_rollouts(arms_round)
    kept = correct_rollouts(rollouts)
    assert len(kept) == 5 and all(r.valid and r.reward == 1.0 for r in kept)
    # the same text twice for one query is kept once; for another query it is kept again
    twice = correct_rollouts([*rollouts, kept[0], Rollout(999, "k", kept[0].text, 1.0, True)])
    assert len(twice) == 6
    tokenizer = policy_tokenizer(arms_round.policy_in)
    examples = arm_data(arms_round, "rft", tokenizer)
    assert [e["completion"] for e in examples] == [r.text for r in kept]
    assert all(e["prompt"].endswith("assistant\n") or e["prompt"] for e in examples)


def test_unreviewed_arm_keeps_every_pair_as_extracted(arms_round):
    user = UserFactory(username="reviewer-x")
    pairs = list(PreferencePair.objects.filter(round=arms_round).order_by("query_id", "id"))
    extracted = [(p.chosen, p.rejected) for p in pairs]
    # review changes three of them: an edit, a swap, and a rejection
    edited = pair_edit(pair_id=pairs[0].pk, version=pairs[0].version, user=user, chosen="city='Nowhere')]")
    swapped = pair_swap(pair_id=pairs[1].pk, version=pairs[1].version, user=user)
    pair_reject(pair_id=pairs[2].pk, version=pairs[2].version, user=user)
    assert edited.chosen != extracted[0][0] and swapped.chosen == extracted[1][1]
    items = unreviewed_items(arms_round)
    assert [(i.chosen, i.rejected) for i in items] == extracted
    # a fragment ends the answer when its node is terminal, followed through the swap
    by_pair = dict(zip([p.pk for p in pairs], items))
    opening_pair = next(p for p in pairs if p.prefix == "")
    assert by_pair[opening_pair.pk].chosen_ends is False and by_pair[opening_pair.pk].rejected_ends is True
    assert by_pair[swapped.pk].chosen_ends is (pairs[1].chosen_node.is_terminal)
    rows = arm_data(arms_round, "unreviewed", policy_tokenizer(arms_round.policy_in))
    assert len(rows) == len(pairs) and rows[0]["prompt"].endswith(pairs[0].prefix)


def test_sft_and_grpo_arms_use_the_selected_queries(arms_round):
    selected = RoundQuery.objects.filter(round=arms_round, selected=True).count()
    assert selected == 6 and RoundQuery.objects.filter(round=arms_round, selected=False).exists()
    tokenizer = policy_tokenizer(arms_round.policy_in)
    sft = arm_data(arms_round, "sft", tokenizer)
    assert len(sft) == 6 and all(e["completion"].startswith("[") for e in sft)
    assert len(arm_data(arms_round, "grpo", tokenizer)) == 6


def test_arms_without_data_say_so(arms_round):
    from apps.search.models import TreeNode

    TreeNode.objects.filter(tree__round=arms_round, verdict__valid=True).update(verdict={"valid": False})
    with pytest.raises(ArmDataError, match="arm 'rft' has no data: round 1 has no correct complete rollout"):
        arm_size(arms_round, "rft")
    PreferencePair.objects.filter(round=arms_round).delete()
    with pytest.raises(ArmDataError, match="arm 'unreviewed' has no data: round 1 has no pairs"):
        arm_size(arms_round, "unreviewed")
    TreeNode.objects.filter(tree__round=arms_round).update(terminal_reward=0.5)
    with pytest.raises(ArmDataError, match="no best-vs-worst pair"):
        arm_size(arms_round, "whole_pairs")


# --- budget -----------------------------------------------------------------------------------------------


def test_budget_from_the_snapshot_then_from_the_trained_checkpoint(arms_round):
    budget = round_budget(arms_round)  # the round's train settings: max_steps 2, batch 2
    assert (budget.steps, budget.batch, budget.sequences) == (2, 2, 4) and "snapshot" in budget.source
    TrainingRound.objects.filter(pk=arms_round.pk).update(hyperparameters={"train": {"batch_size": 4, "epochs": 2}})
    arms_round.refresh_from_db()
    pairs = arms_round.snapshot.pair_count
    assert round_budget(arms_round).steps == 2 * -(-pairs // 4)  # ⌈epochs × ⌈pairs / batch⌉⌉, as TRL counts
    out = Checkpoint.objects.create(
        project=arms_round.project,
        name="out",
        path="/x",
        kind="preference",
        config={"steps": 7, "world_size": 2, "config": {"batch_size": 3}},
    )
    TrainingRound.objects.filter(pk=arms_round.pk).update(policy_out=out)
    arms_round.refresh_from_db()
    assert (round_budget(arms_round).steps, round_budget(arms_round).batch) == (7, 6)  # 3 per process × 2


def test_a_budget_that_cannot_be_known_or_matched_is_refused(arms_round):
    TrainingRound.objects.filter(pk=arms_round.pk).update(snapshot=None)
    arms_round.refresh_from_db()
    with pytest.raises(BudgetError, match="not known yet"):
        round_budget(arms_round)
    TrainingRound.objects.filter(pk=arms_round.pk).update(algorithm="grpo")
    arms_round.refresh_from_db()
    with pytest.raises(BudgetError, match="trains grpo"):
        round_budget(arms_round)
    with pytest.raises(BudgetError, match="cannot match a batch of 1"):
        grpo_shape(Budget(5, 1, "test"))


def test_fitting_cycles_or_subsamples_to_exactly_steps_times_batch():
    few, record = fitted(list(range(3)), Budget(4, 2, "test"), seed=0)
    assert len(few) == 8 and set(few) == {0, 1, 2} and record["passes"] == pytest.approx(8 / 3, abs=1e-4)
    assert sorted(few[:3]) == [0, 1, 2] and sorted(few[3:6]) == [0, 1, 2]  # whole shuffled passes first
    assert "cycled" in record["fitted"] and record["sequences"] == 8
    many, record = fitted(list(range(100)), Budget(4, 2, "test"), seed=0)
    assert len(many) == len(set(many)) == 8 and "subsample" in record["fitted"]
    assert fitted(list(range(100)), Budget(4, 2, "test"), seed=0)[0] == many  # seeded
    assert fitted(list(range(100)), Budget(4, 2, "test"), seed=1)[0] != many


@pytest.mark.parametrize(
    "batch, prompts, generations", [(8, 1, 8), (16, 2, 8), (6, 1, 6), (10, 2, 5), (11, 1, 11), (2, 1, 2)]
)
def test_grpo_batch_is_prompts_times_completions(batch, prompts, generations):
    shape = grpo_shape(Budget(3, batch, "test"))
    assert (shape.prompts, shape.generations) == (prompts, generations)
    assert shape.prompts * shape.generations == batch


def test_refusal_text_is_no_call(arms_round):
    """The fixture's wrong answers are what the checker says they are (so the rules above see real verdicts)."""
    rollouts = round_rollouts(arms_round)
    refusals = [r for r in rollouts if r.text == REFUSAL]
    assert refusals and all(not r.valid and r.reward == -1.0 for r in refusals)
