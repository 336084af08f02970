"""Every list answers in a fixed number of SQL queries, whatever the number of rows (no query per row)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import ImportJob
from apps.datasets.models import DatasetSnapshot
from tests.factories import (
    CheckpointFactory,
    QueryFactory,
    SearchTreeFactory,
    ToolFactory,
    TrainingRoundFactory,
    TreeNodeFactory,
    UserFactory,
)

from .conftest import client_for

LISTS = [
    "/api/v1/projects/",
    "/api/v1/tools/",
    "/api/v1/queries/",
    "/api/v1/imports/",
    "/api/v1/trees/",
    "/api/v1/pairs/",
    "/api/v1/pairs/?mine=true&tool=get_weather&q=Paris",
    "/api/v1/checkpoints/",
    "/api/v1/rounds/",
    "/api/v1/snapshots/",
    "tree-nodes",
    "pair-events",
]


def add_rows(project, n: int, make_pair, admin, state: dict) -> None:
    """n more rows of every kind (the pair and tree the nested lists read are the first ones)."""
    for i in range(n):
        tool = ToolFactory(project=project, name=f"tool{state['i']}", schema_hash=f"h{state['i']}")
        query = QueryFactory(project=project, tools=[tool, ToolFactory(project=project)])
        pair = make_pair(query=query, assignee=admin, reviewed_by=admin)
        state.setdefault("pair", pair)
        tree = SearchTreeFactory(project=project, query=query)
        state.setdefault("tree", tree)
        TreeNodeFactory(tree=state["tree"], key=f"k{state['i']}")
        CheckpointFactory(project=project)
        TrainingRoundFactory(project=project, number=100 + state["i"])
        ImportJob.objects.create(project=project, format="openai", file="x.jsonl", created_by=admin)
        DatasetSnapshot.objects.create(
            project=project, name=f"s{state['i']}", content_hash=f"{state['i']:064d}", created_by=admin
        )
        state["i"] += 1
    client = client_for(admin)
    version = state["pair"].__class__.objects.get(pk=state["pair"].pk).version
    for _ in range(n):  # events on the first pair
        version = client.post(f"/api/v1/pairs/{state['pair'].pk}/swap/", {"version": version}, format="json").json()[
            "version"
        ]


def test_each_list_costs_the_same_queries_for_2_rows_or_12(people, project, make_pair):
    admin, state = people["admin"], {"i": 0}
    client = client_for(admin)

    def counts() -> dict[str, tuple[int, int]]:
        out = {}
        for url in LISTS:
            target = {
                "tree-nodes": f"/api/v1/trees/{state['tree'].pk}/nodes/",
                "pair-events": f"/api/v1/pairs/{state['pair'].pk}/events/",
            }.get(url, url)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(target)
            assert response.status_code == 200, (url, response.content)
            out[url] = (len(queries), len(response.json()["results"]))
        return out

    add_rows(project, 2, make_pair, admin, state)
    few = counts()
    add_rows(project, 10, make_pair, admin, state)
    many = counts()
    for url in LISTS:
        (queries_few, rows_few), (queries_many, rows_many) = few[url], many[url]
        assert rows_many > rows_few >= 1 or url == "/api/v1/projects/", url
        assert queries_many == queries_few <= 4, (url, queries_few, queries_many)


def test_a_superuser_sees_every_project_as_admin(project):
    boss = UserFactory(username="boss", is_superuser=True)
    rows = client_for(boss).get("/api/v1/projects/").json()["results"]
    assert [(p["name"], p["role"]) for p in rows] == [(project.name, "admin")]
