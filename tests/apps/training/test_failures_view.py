"""The round page's before → after figures with intervals and its failures browser: the round's eval answers
filtered by kind and deficiency, paged by keyset, beside the other policy's answer, model text escaped."""

import pytest
from django.urls import reverse

from apps.training import views
from apps.training.models import Checkpoint, EvalResult, EvalRun, TrainingRound
from tests.factories import MembershipFactory, QueryFactory, UserFactory

EVAL = {
    "n": 6,
    "pass_rate": 0.5,
    "pass_rate_bfcl": 0.6667,
    "over_refusal": 0.25,
    "mean_reward": 0.1,
    "by_kind": {"single": {"n": 4, "pass_rate": 0.5}, "irrelevance": {"n": 2, "pass_rate": 0.5}},
    "deficiencies": {"wrong_value": 1, "no_call": 1, "malformed": 1},
}
BEFORE = {
    **EVAL,
    "pass_rate": 0.3,
    "pass_rate_bfcl": 0.3,
    "over_refusal": 0.0,
    "deficiencies": {"wrong_value": 3, "call_on_irrelevant": 1},
}
CHANGES = [
    {
        "key": "group:call_kinds",
        "label": "call kinds pass@1",
        "n": 4,
        "before": 0.25,
        "after": 0.5,
        "diff": 0.25,
        "low": 0.0,
        "high": 0.5,
        "confidence": 0.95,
        "resamples": 10000,
    },
    {
        "key": "over_refusal",
        "label": "over-refusal",
        "n": 4,
        "before": 0.0,
        "after": 0.25,
        "diff": 0.25,
        "low": 0.0,
        "high": 0.75,
        "confidence": 0.95,
        "resamples": 10000,
    },
]
# (kind, after: output, deficiency; before: output, deficiency)
ANSWERS = [
    ("single", "[get_weather(city='Paris')]", "", "[get_weather(city='Lyon')]", "wrong_value"),
    ("single", "[get_weather(city='Rome')]", "wrong_value", "[get_weather(city='Oslo')]", "wrong_value"),
    ("single", "<script>alert('pwned')</script>", "no_call", "[get_weather(city='Nice')]", "wrong_value"),
    ("single", "[get_weather(city='Paris')]", "", "[get_weather(city='Paris')]", ""),
    ("irrelevance", "[get_weather(city=", "malformed", "No tool fits.", ""),
    ("irrelevance", "No tool fits.", "", "[get_weather(city='Paris')]", "call_on_irrelevant"),
]


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def evaluated_round(project):
    policy_in = Checkpoint.objects.create(project=project, name="in", path="/m/in", kind="tiny")
    policy_out = Checkpoint.objects.create(project=project, name="out", path="/m/out", kind="preference")
    before = EvalRun.objects.create(project=project, checkpoint=policy_in, status="done", n_queries=6, metrics=BEFORE)
    after = EvalRun.objects.create(project=project, checkpoint=policy_out, status="done", n_queries=6, metrics=EVAL)
    for i, (kind, out_after, def_after, out_before, def_before) in enumerate(ANSWERS):
        query = QueryFactory(
            project=project,
            external_id=f"eval-{i}",
            kind=kind,
            split="eval",
            ground_truth=[] if kind == "irrelevance" else [{"get_weather": {"city": ["Paris"]}}],
        )
        for run, output, deficiency in ((after, out_after, def_after), (before, out_before, def_before)):
            EvalResult.objects.create(
                eval_run=run,
                query=query,
                kind=kind,
                output=output,
                valid=not deficiency,
                valid_bfcl=not deficiency or deficiency == "malformed",
                deficiency=deficiency,
                detail=f"detail {deficiency}",
                reward=1.0 if not deficiency else -1.0,
                expects_call=kind != "irrelevance",
            )
    rnd = TrainingRound.objects.create(
        project=project,
        number=1,
        state="done",
        policy_in=policy_in,
        policy_out=policy_out,
        metrics={
            "eval": EVAL,
            "before": BEFORE,
            "pass_rate_change": 0.2,
            "eval_run": after.pk,
            "before_run": before.pk,
            "changes": CHANGES,
        },
    )
    user = UserFactory(username="annotator")
    MembershipFactory(project=project, user=user, role="annotator")
    return rnd, user


def _page(client, rnd, **params):
    return client.get(reverse("training:round_detail", args=[rnd.project_id, rnd.number]), params)


def test_changes_are_shown_with_their_intervals(client, evaluated_round):
    rnd, user = evaluated_round
    client.force_login(user)
    html = _page(client, rnd).content.decode()
    assert 'id="eval-changes"' in html and "call kinds pass@1" in html
    assert "25.0%" in html and "+25.0" in html and "+0.0 … +50.0" in html and "+0.0 … +75.0" in html
    assert (
        "BFCL-rule pass@1 30.0% → 66.7%" in html
        and "over-refusal (call queries answered without a call) 0.0% → 25.0%" in html
    )


def _rows(html):
    import re

    return re.findall(r'<tr data-deficiency="([^"]*)" data-kind="([^"]*)">', html)


def test_failures_browser_filters_by_kind_and_deficiency_and_escapes_output(client, evaluated_round):
    rnd, user = evaluated_round
    client.force_login(user)
    html = _page(client, rnd).content.decode()  # default: every failure after the round
    assert sorted(_rows(html)) == [("malformed", "irrelevance"), ("no_call", "single"), ("wrong_value", "single")]
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    assert "[get_weather(city=&#x27;Nice&#x27;)]" in html  # the same query's answer before the round, beside it
    assert "BFCL rule: right" in html  # the malformed attempt on an irrelevance query passes by BFCL's rule only
    assert _rows(_page(client, rnd, kind="single").content.decode()) == [
        ("wrong_value", "single"),
        ("no_call", "single"),
    ]
    assert _rows(_page(client, rnd, deficiency="malformed").content.decode()) == [("malformed", "irrelevance")]
    assert _rows(_page(client, rnd, kind="irrelevance", deficiency="none").content.decode()) == [
        ("none", "irrelevance")
    ]
    assert len(_rows(_page(client, rnd, deficiency="all").content.decode())) == 6
    before = _page(client, rnd, side="before", kind="single").content.decode()
    assert [d for d, _ in _rows(before)] == ["wrong_value"] * 3 and "1 answer" not in before
    assert "3 answers before the round match" in before


def test_failures_are_paged_by_keyset(client, evaluated_round, monkeypatch):
    rnd, user = evaluated_round
    client.force_login(user)
    monkeypatch.setattr(views, "FAILURES_PAGE", 2)
    first = _page(client, rnd, deficiency="all")
    assert len(_rows(first.content.decode())) == 2
    cursor = first.context["failures"]["next_cursor"]
    assert cursor and 'id="failures-next"' in first.content.decode()
    seen = [r["result"].pk for r in first.context["failures"]["rows"]]
    while cursor:
        page = _page(client, rnd, deficiency="all", cursor=cursor)
        seen += [r["result"].pk for r in page.context["failures"]["rows"]]
        cursor = page.context["failures"]["next_cursor"]
    assert seen == sorted(EvalResult.objects.filter(eval_run_id=rnd.metrics["eval_run"]).values_list("pk", flat=True))
    assert 'id="failures-first"' in page.content.decode()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"kind": "nope"}, "kind must be one of irrelevance, single"),
        ({"deficiency": "bogus"}, "deficiency must be one of"),
        ({"side": "sideways"}, "side must be after or before"),
        ({"cursor": "x"}, "cursor must be a whole number"),
    ],
)
def test_bad_filters_are_refused_with_a_message(client, evaluated_round, params, message):
    rnd, user = evaluated_round
    client.force_login(user)
    response = _page(client, rnd, **params)
    assert response.status_code == 400 and message in response.content.decode()


def test_rounds_without_stored_answers_have_no_browser_and_outsiders_none_at_all(client, evaluated_round, project):
    rnd, user = evaluated_round
    client.force_login(user)
    old = TrainingRound.objects.create(
        project=project, number=2, state="done", metrics={"eval": EVAL, "before": BEFORE, "pass_rate_change": 0.2}
    )
    html = _page(client, old).content.decode()
    assert 'id="failures"' not in html and 'id="eval-changes"' not in html and 'id="eval-by-kind"' in html
    client.force_login(UserFactory(username="stranger"))
    assert _page(client, rnd).status_code in (403, 404)


def test_a_warm_up_round_browses_its_answers_without_a_before(client, evaluated_round, project):
    rnd, user = evaluated_round
    client.force_login(user)
    warmup = TrainingRound.objects.create(
        project=project,
        number=0,
        state="done",
        algorithm="sft",
        metrics={"eval": EVAL, "eval_run": rnd.metrics["eval_run"]},
    )
    html = _page(client, warmup).content.decode()
    assert len(_rows(html)) == 3 and "not evaluated" in html and 'value="before"' not in html
    assert _page(client, warmup, side="before").status_code == 400
