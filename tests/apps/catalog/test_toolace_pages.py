"""ToolACE's tool names (spaces, apostrophes, `&`, parentheses) shown where people and trainers see them: the
review page and the tree page escape them and the checker's verdicts read them; every export format carries
them unchanged."""

import json

import pytest
from django.urls import reverse

from apps.catalog.models import Query
from apps.catalog.services import import_file
from apps.datasets.rows import FORMATS
from apps.datasets.services import snapshot_export, snapshot_freeze
from tests.factories import (
    CheckpointFactory,
    MembershipFactory,
    PairFactory,
    SearchTreeFactory,
    TrainingRoundFactory,
    TreeNodeFactory,
    UserFactory,
)

from .test_importers import write_jsonl
from .test_toolace import AGENT, COMPETITIONS, IMAGE, toolace

NAME = "Get Agent's Active Listings (Q&A)"
ESCAPED = "Get Agent&#x27;s Active Listings (Q&amp;A)"


@pytest.fixture
def query(project, tmp_path):
    record = toolace(
        [COMPETITIONS, IMAGE, AGENT],
        [
            ("user", "The listings of agent A-17, and a football manager image?"),
            ("assistant", f"[{NAME}(agent_id='A-17'), Get Manager Placeholder Image(sport=\"football\")]"),
        ],
    )
    import_file(project=project, path=write_jsonl(tmp_path / "t.jsonl", [record]), fmt="toolace")
    return Query.objects.get()


@pytest.fixture
def pair(project, query, tiny_model_dir):
    round_ = TrainingRoundFactory(
        project=project, number=1, policy_in=CheckpointFactory(project=project, path=str(tiny_model_dir))
    )
    tree = SearchTreeFactory(project=project, query=query, round=round_)
    root = TreeNodeFactory(tree=tree, fragment="")
    TreeNodeFactory(tree=tree, parent=root, fragment=f"[{NAME}(", visits=3, value_sum=2.0)
    return PairFactory(
        project=project,
        query=query,
        round=round_,
        tree=tree,
        status="approved",
        prefix=f"[{NAME}(agent_id='A-17'), ",
        chosen='Get Manager Placeholder Image(sport="football")]',
        rejected='Get Manager Placeholder Image(sport="tennis")]',
    )


def test_the_checker_reads_the_names_of_a_pair(pair):
    assert pair.chosen_verdict["valid"], pair.chosen_verdict
    assert pair.rejected_verdict["deficiency"] == "wrong_value"
    assert [c["name"] for c in pair.chosen_verdict["calls"]] == [NAME, "Get Manager Placeholder Image"]


def test_review_and_tree_pages_escape_the_names(client, project, pair):
    user = UserFactory(username="annotator")
    MembershipFactory(project=project, user=user, role="annotator")
    client.force_login(user)
    focus = client.get(reverse("curation:pair_focus", args=[project.pk, pair.pk]))
    assert focus.status_code == 200
    page = focus.content.decode()
    assert ESCAPED in page and NAME not in page and "Q&A)" not in page
    tree = client.get(reverse("search:tree", args=[project.pk, pair.tree_id]))
    assert tree.status_code == 200
    assert ESCAPED in tree.content.decode() and "Q&A)" not in tree.content.decode()


# OpenAI's preference rows need function names of [a-zA-Z0-9_-]: that export maps them (apps/datasets).
@pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "openai"])
def test_exports_carry_the_names_unchanged(project, pair, fmt):
    snapshot = snapshot_freeze(project=project, round=pair.round)
    (line,) = list(snapshot_export(snapshot, fmt))
    text = json.dumps(json.loads(line), ensure_ascii=False)
    assert NAME in text and "Get Manager Placeholder Image" in text and "Get_" not in text
