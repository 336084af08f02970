"""The `complete` export: sides that stop mid-answer completed by their best finished rollout; rows that cannot be
are left out and counted; the sampled token ids follow the text."""

import json

import pytest
from django.core.management import call_command

from apps.curation.services import pair_edit
from apps.datasets.completion import CompletionStats
from apps.datasets.services import snapshot_export, snapshot_freeze, snapshot_rows
from tests.factories import SearchTreeFactory, TreeNodeFactory, UserFactory


def tree_pair(make_pair, round_, project, *, rollouts=True, chosen_reward=1.0, rejected_reward=-0.5):
    """A tree: root `[get_weather(` with a mid-answer chosen `city='Paris', ` and a mid-answer rejected
    `city='Lyon', `; below the chosen, two finished rollouts (the better one `unit='c')]`), below the rejected one.
    Token ids: 10 per character position's class, enough to follow them (not a real tokenizer)."""
    tree = SearchTreeFactory(project=project)
    root = TreeNodeFactory(tree=tree, fragment="[get_weather(", token_ids=[1, 2])
    chosen = TreeNodeFactory(
        tree=tree, parent=root, fragment="city='Paris', ", token_ids=[3, 4], visits=3, value_sum=1.5
    )
    rejected = TreeNodeFactory(tree=tree, parent=root, fragment="city='Lyon', ", token_ids=[5, 6], ordinal=1)
    if rollouts:
        TreeNodeFactory(
            tree=tree,
            parent=chosen,
            fragment="unit='f')]",
            token_ids=[7],
            is_terminal=True,
            terminal_reward=0.2,
            visits=2,
        )
        TreeNodeFactory(
            tree=tree,
            parent=chosen,
            fragment="unit='c')]",
            token_ids=[8, 9],
            is_terminal=True,
            terminal_reward=chosen_reward,
            ordinal=1,
        )
        TreeNodeFactory(
            tree=tree,
            parent=rejected,
            fragment="unit='c')]",
            token_ids=[8, 9],
            is_terminal=True,
            terminal_reward=rejected_reward,
        )
    return make_pair(
        "approved",
        round=round_,
        tree=tree,
        node=root,
        chosen_node=chosen,
        rejected_node=rejected,
        prefix="[get_weather(",
        chosen="city='Paris', ",
        rejected="city='Lyon', ",
        prefix_ids=[1, 2],
        chosen_ids=[3, 4],
        rejected_ids=[5, 6],
    )


def test_a_mid_answer_side_is_completed_by_its_best_finished_rollout(project, make_pair, round_):
    tree_pair(make_pair, round_, project)
    snapshot = snapshot_freeze(project=project, round=round_)
    plain = next(snapshot_rows(snapshot, "trl"))
    assert (plain["chosen"], plain["metadata"]["chosen_ends"], plain["metadata"]["completed"]) == (
        "city='Paris', ",
        False,
        False,
    )

    stats = CompletionStats()
    row = next(snapshot_rows(snapshot, "trl", complete=True, stats=stats))
    assert row["chosen"] == "city='Paris', unit='c')]"  # the rollout rewarded 1.0, not the 0.2 one
    assert row["rejected"] == "city='Lyon', unit='c')]"
    assert row["chosen_ids"] == [3, 4, 8, 9] and row["rejected_ids"] == [5, 6, 8, 9]
    assert row["metadata"]["chosen_ends"] and row["metadata"]["rejected_ends"] and row["metadata"]["completed"]
    assert stats.completed == 1 and not stats.left_out

    for fmt in ("openai", "sharegpt"):  # the other formats get the whole answers too
        row = next(snapshot_rows(snapshot, fmt, complete=True))
        if fmt == "openai":
            assert row["preferred_output"][0]["content"] == "[get_weather(city='Paris', unit='c')]"
        else:
            assert row["chosen"] == {
                "from": "function_call",
                "value": json.dumps({"arguments": {"city": "Paris", "unit": "c"}, "name": "get_weather"}),
            }
    # the lines are the rows' canonical encoding, completed or not
    lines = [json.loads(line) for line in snapshot_export(snapshot, "trl", complete=True)]
    assert lines == list(snapshot_rows(snapshot, "trl", complete=True))


@pytest.mark.parametrize(
    "case, reason",
    [("no_rollout", "no_rollout"), ("edited", "edited"), ("no_preference", "no_preference"), ("no_pair", "no_pair")],
)
def test_rows_that_cannot_be_completed_are_left_out_and_counted(project, make_pair, round_, case, reason):
    pair = tree_pair(
        make_pair,
        round_,
        project,
        rollouts=case != "no_rollout",
        rejected_reward=1.0 if case == "no_preference" else -0.5,
    )
    whole = make_pair("approved", round=round_)  # whole answers: exported as they are
    if case == "edited":
        pair = pair_edit(pair_id=pair.pk, version=pair.version, user=UserFactory(), chosen="city='Rome', ")
    snapshot = snapshot_freeze(project=project, round=round_)
    if case == "no_pair":
        pair.delete()
    stats = CompletionStats()
    rows = list(snapshot_rows(snapshot, "trl", complete=True, stats=stats))
    assert [r["metadata"]["pair_id"] for r in rows] == [whole.pk]
    assert stats.completed == 0 and dict(stats.left_out) == {reason: 1}


def test_the_command_reports_what_it_completed_and_left_out(project, make_pair, round_, tmp_path, capsys):
    tree_pair(make_pair, round_, project)
    tree_pair(make_pair, round_, project, rollouts=False)
    snapshot = snapshot_freeze(project=project, round=round_)
    out = tmp_path / "complete.jsonl"
    call_command(
        "export_dataset",
        "--project",
        project.name,
        "--snapshot",
        str(snapshot.pk),
        "--format",
        "sharegpt",
        "--complete",
        "--output",
        str(out),
    )
    assert len(out.read_text().splitlines()) == 1
    err = capsys.readouterr().err
    assert "exported 1 rows" in err and " complete to " in err
    assert (
        "complete: 1 rows with a side completed by its best rollout; left out: 1 (no finished rollout is "
        "stored below a side that stops mid-answer)"
    ) in err
