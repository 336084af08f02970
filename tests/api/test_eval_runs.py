"""Evaluation runs and their per-query answers over REST: members read them, filtered by kind and deficiency,
a page at a time; other projects' runs are 404; bad filters are 400."""

from apps.training.models import EvalResult, EvalRun
from tests.factories import CheckpointFactory, ProjectFactory, QueryFactory

from .conftest import client_for
from .test_pairs import walk

ANSWERS = [
    ("single", "[get_weather(city='Paris')]", ""),
    ("single", "[get_weather(city='Rome')]", "wrong_value"),
    ("parallel", "Sorry, no tool fits.", "no_call"),
    ("irrelevance", "[get_weather(city=", "malformed"),
]


def _run(project):
    checkpoint = CheckpointFactory(project=project)
    run = EvalRun.objects.create(
        project=project,
        checkpoint=checkpoint,
        status="done",
        n_queries=len(ANSWERS),
        metrics={"n": 4, "pass_rate": 0.25, "pass_rate_bfcl": 0.5, "over_refusal": 1 / 3},
    )
    for i, (kind, output, deficiency) in enumerate(ANSWERS):
        query = QueryFactory(project=project, kind=kind, split="eval")
        EvalResult.objects.create(
            eval_run=run,
            query=query,
            kind=kind,
            output=output,
            valid=not deficiency,
            valid_bfcl=deficiency in ("", "malformed"),
            deficiency=deficiency,
            detail="d",
            reward=1.0 if not deficiency else -1.0,
            expects_call=kind != "irrelevance",
        )
    return run


def test_members_read_runs_and_answers_filtered(api, people, project):
    run = _run(project)
    client = api("annotator")
    body = client.get(f"/api/v1/eval-runs/{run.pk}/").json()
    assert body["metrics"]["pass_rate_bfcl"] == 0.5 and body["n_queries"] == 4
    assert [r["id"] for r in client.get("/api/v1/eval-runs/", {"project": project.pk}).json()["results"]] == [run.pk]
    rows = walk(client, f"/api/v1/eval-runs/{run.pk}/results/?page_size=3")
    assert [r["output"] for r in rows] == [a[1] for a in ANSWERS]
    assert rows[3]["valid"] is False and rows[3]["valid_bfcl"] is True and rows[3]["deficiency"] == "malformed"

    def deficiencies(**params):
        response = client.get(f"/api/v1/eval-runs/{run.pk}/results/", params)
        assert response.status_code == 200, response.content
        return [r["deficiency"] for r in response.json()["results"]]

    assert deficiencies(kind="single") == ["", "wrong_value"]
    assert deficiencies(deficiency="no_call") == ["no_call"]
    assert deficiencies(deficiency="none") == [""]
    assert deficiencies(kind="single", valid="false") == ["wrong_value"]
    for bad in ({"kind": "sideways"}, {"deficiency": "bogus"}, {"valid": "maybe"}, {"kind": ""}):
        assert client.get(f"/api/v1/eval-runs/{run.pk}/results/", bad).status_code == 400, bad


def test_other_projects_runs_are_404(api, people, project):
    elsewhere = _run(ProjectFactory(name="elsewhere"))
    client = api("admin")
    assert client.get(f"/api/v1/eval-runs/{elsewhere.pk}/").status_code == 404
    assert client.get(f"/api/v1/eval-runs/{elsewhere.pk}/results/").status_code == 404
    mine = _run(project)
    assert client_for(people["outsider"]).get(f"/api/v1/eval-runs/{mine.pk}/results/").status_code == 404
    assert client.get(f"/api/v1/eval-runs/{mine.pk}/results/").status_code == 200
