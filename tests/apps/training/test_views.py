"""Round pages: the comparison chart, the round page (gate, buttons by role, before/after figures), the
progress JSON the page polls, the new-round form's validation, and launch/cancel from the page."""

import re

import pytest
from django.urls import reverse

from apps.training.charts import line_chart
from apps.training.models import Checkpoint, TrainingRound
from tests.factories import MembershipFactory, PairFactory, TrainingRoundFactory, UserFactory

S = TrainingRound.State
EVAL = {
    "n": 10,
    "pass_rate": 0.6,
    "mean_reward": 0.4,
    "by_kind": {"single": {"n": 6, "pass_rate": 0.8}, "parallel": {"n": 4, "pass_rate": 0.3}},
    "deficiencies": {"wrong_value": 3, "missing_call": 1},
}
BEFORE = {
    "n": 10,
    "pass_rate": 0.5,
    "mean_reward": 0.3,
    "by_kind": {"single": {"n": 6, "pass_rate": 0.7}, "parallel": {"n": 4, "pass_rate": 0.2}},
    "deficiencies": {"wrong_value": 4, "missing_call": 1},
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(project):
    out = {}
    for role in ("annotator", "admin"):
        out[role] = UserFactory(username=role)
        MembershipFactory(project=project, user=out[role], role=role)
    return out


@pytest.fixture
def policy(project):
    return Checkpoint.objects.create(project=project, name="policy", path="/models/policy", kind="tiny")


def test_chart_draws_each_series_and_escapes_names():
    svg = line_chart(
        {"all": [(0, 0.2), (1, 0.5)], "<b>": [(1, 0.1)], "empty": []},
        title="t",
        x_label="round",
        y_label="pass",
        percent=True,
        y_range=(0, 1),
    )
    assert svg.count("<polyline") == 2 and "&lt;b&gt;" in svg and "<b>" not in svg
    assert "50%" in svg and 'data-name="empty"' not in svg
    assert "no data yet" in line_chart({}, title="t", x_label="x", y_label="y")


def test_round_list_compares_rounds_in_a_chart(client, project, people, policy):
    TrainingRoundFactory(
        project=project,
        number=1,
        state=S.DONE,
        policy_in=policy,
        metrics={"eval": EVAL, "before": BEFORE, "pass_rate_change": 0.1},
    )
    TrainingRoundFactory(project=project, number=2, state=S.REVIEWING, policy_in=policy)
    client.force_login(people["annotator"])
    html = client.get(reverse("training:round_list", args=[project.pk])).content.decode()
    assert 'id="pass-rate-chart"' in html and html.count("<polyline") == 3  # all, single, parallel
    compare = re.search(r'<table[^>]*id="round-compare".*?</table>', html, re.S).group(0)
    assert "+10.0 points" in compare
    assert "round 2" in html and "reviewing" in html
    assert 'id="new-round"' not in html  # annotators do not create rounds


def test_round_page_shows_gate_and_buttons_by_role(client, project, people, policy):
    rnd = TrainingRoundFactory(project=project, number=1, state=S.REVIEWING, policy_in=policy)
    PairFactory(project=project, round=rnd, status="pending")
    url = reverse("training:round_detail", args=[project.pk, 1])
    client.force_login(people["annotator"])
    html = client.get(url).content.decode()
    assert "does not hold" in html and 'id="launch"' not in html and 'id="cancel"' not in html
    client.force_login(people["admin"])
    html = client.get(url).content.decode()
    assert 'id="launch"' in html and 'id="cancel"' in html
    arms = reverse("arms:arms", args=[project.pk, 1])
    assert f'href="{arms}" id="arms-link"' in html and client.get(arms).status_code == 200


def test_refused_launch_says_why_on_the_page(client, project, people, policy):
    rnd = TrainingRoundFactory(project=project, number=1, state=S.REVIEWING, policy_in=policy)
    PairFactory(project=project, round=rnd, status="pending")
    client.force_login(people["admin"])
    response = client.post(reverse("training:round_launch", args=[project.pk, 1]), follow=True)
    assert "Launch refused: the review gate does not hold" in response.content.decode()
    assert TrainingRound.objects.get(pk=rnd.pk).state == S.REVIEWING
    response = client.post(reverse("training:round_launch", args=[project.pk, 1]), HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and "1 pending" in response.json()["error"]


def test_launch_and_cancel_from_the_page(client, project, people, policy, django_capture_on_commit_callbacks):
    rnd = TrainingRoundFactory(project=project, number=1, state=S.REVIEWING, policy_in=policy)
    PairFactory(project=project, round=rnd, status="approved")
    client.force_login(people["admin"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("training:round_launch", args=[project.pk, 1]), follow=True)
    assert "launched: it is training" in response.content.decode() and len(callbacks) == 1
    status = client.get(reverse("training:round_progress", args=[project.pk, 1])).json()
    assert status["state"] == "training" and status["snapshot"] and status["progress"]["snapshot_pairs"] == 1
    client.post(reverse("training:round_cancel", args=[project.pk, 1]))
    assert TrainingRound.objects.get(pk=rnd.pk).state == S.CANCELLED


def test_done_round_shows_before_and_after(client, project, people, policy):
    TrainingRoundFactory(
        project=project,
        number=1,
        state=S.DONE,
        policy_in=policy,
        progress={"stage": "evaluate", "losses": [[1, 0.9], [2, 0.7], [3, 0.6]]},
        metrics={"eval": EVAL, "before": BEFORE, "pass_rate_change": 0.1},
    )
    client.force_login(people["annotator"])
    html = client.get(reverse("training:round_detail", args=[project.pk, 1])).content.decode()
    assert "50.0% → <strong>60.0%</strong>" in html and "+10.0 points" in html
    assert 'id="loss-chart"' in html
    row = re.search(r"<td>parallel</td>(.*?)</tr>", html, re.S).group(1)
    assert "20%" in row and "30%" in row


@pytest.mark.parametrize(
    "data, message",
    [
        ({"train": "{not json"}, "not valid JSON"),
        ({"train": "[1]"}, "a JSON object is expected"),
        ({"train": '{"bogus": 1}'}, "bogus"),
        ({"selection": '{"method": "vibes"}'}, "method must be one of perplexity, pass_rate (got &#x27;vibes&#x27;)"),
        ({"pairs": '{"chosen_value": 0.5}'}, "unknown pair filter setting(s): chosen_value; known: gap_min"),
        ({"pairs": '{"gap_min": -1}'}, "gap_min must be a number &gt;= 0"),
        ({"gate": "fraction_reviewed", "gate_value": "3"}, "a fraction gate needs"),
    ],
)
def test_new_round_form_refuses_bad_settings(client, project, people, data, message):
    client.force_login(people["admin"])
    form = {"algorithm": "simpo", "gate": "all_reviewed", "gate_value": "1", **data}
    response = client.post(reverse("training:round_list", args=[project.pk]), form)
    assert response.status_code == 400 and message in response.content.decode()
    assert not TrainingRound.objects.filter(project=project).exists()


def test_new_round_is_a_draft_with_its_settings(client, project, people, policy):
    client.force_login(people["admin"])
    response = client.post(
        reverse("training:round_list", args=[project.pk]),
        {
            "algorithm": "dpo",
            "gate": "min_approved",
            "gate_value": "20",
            "train": '{"beta": 0.2}',
            "search": '{"simulations": 3}',
            "pairs": '{"chosen_value_min": 0.5}',
            "eval_limit": "50",
            "policy": policy.pk,
        },
    )
    rnd = TrainingRound.objects.get(project=project)
    assert response.status_code == 302 and rnd.state == S.DRAFT and rnd.algorithm == "dpo"
    assert (rnd.gate, rnd.gate_value, rnd.policy_in) == ("min_approved", 20, policy)
    assert rnd.hyperparameters == {"train": {"beta": 0.2}, "pairs": {"chosen_value_min": 0.5}, "eval_limit": 50}
    assert rnd.search_config == {"simulations": 3}


def test_solve_f1_is_shown_and_charted_when_the_eval_has_it(client, project, people, policy):
    with_f1 = lambda figures, f1, single: {
        **figures,
        "solve_f1": f1,
        "solve_n": 8,
        "by_kind": {  # noqa: E731
            "single": {**figures["by_kind"]["single"], "solve_f1": single},
            "parallel": figures["by_kind"]["parallel"],
        },
    }
    TrainingRoundFactory(
        project=project,
        number=1,
        state=S.DONE,
        policy_in=policy,
        metrics={"eval": with_f1(EVAL, 0.55, 0.625), "before": with_f1(BEFORE, 0.45, 0.5), "pass_rate_change": 0.1},
    )
    client.force_login(people["annotator"])
    page = client.get(reverse("training:round_detail", args=[project.pk, 1])).content.decode()
    assert "Solve-F1 0.450 → <strong>0.550</strong> on the 8 queries with executable tools" in page
    row = re.search(r"<td>single</td>(.*?)</tr>", page, re.S).group(1)
    assert "0.500" in row and "0.625" in row
    listing = client.get(reverse("training:round_list", args=[project.pk])).content.decode()
    chart = re.search(r'<svg[^>]*id="solve-f1-chart".*?</svg>', listing, re.S)
    assert chart and chart.group(0).count("<circle") == 2  # before round 1, after round 1


def test_no_solve_f1_chart_without_solve_f1(client, project, people, policy):
    TrainingRoundFactory(
        project=project,
        number=1,
        state=S.DONE,
        policy_in=policy,
        metrics={"eval": EVAL, "before": BEFORE, "pass_rate_change": 0.1},
    )
    client.force_login(people["annotator"])
    assert 'id="solve-f1-chart"' not in client.get(reverse("training:round_list", args=[project.pk])).content.decode()
    assert "Solve-F1" not in client.get(reverse("training:round_detail", args=[project.pk, 1])).content.decode()


def test_round_settings_are_shown_as_json(client, project, people, policy):
    TrainingRoundFactory(
        project=project,
        number=1,
        state=S.DRAFT,
        policy_in=policy,
        selection={"method": "pass_rate", "min_rate": 0.125},
        hyperparameters={"pairs": {"chosen_value_min": 0.5}, "train": {"sft_weight": 1.0}},
    )
    client.force_login(people["annotator"])
    html = client.get(reverse("training:round_detail", args=[project.pk, 1])).content.decode()
    assert "{&quot;method&quot;: &quot;pass_rate&quot;, &quot;min_rate&quot;: 0.125}" in html
    assert "<dt>Search</dt><dd><code>defaults</code></dd>" in html
    assert "&quot;pairs&quot;: {&quot;chosen_value_min&quot;: 0.5}, &quot;train&quot;" in html  # keys sorted
