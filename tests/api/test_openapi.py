"""The OpenAPI schema: served at /api/schema/, valid, every route in it; the docs page needs no CDN; and a
schemathesis run against the schema: generated requests (valid and invalid) never get a 5xx, and answers
match what the schema says."""

import re
from collections import Counter, defaultdict

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode

from apps.arms.models import ArmRun
from apps.catalog.models import ImportJob
from apps.curation.models import PreferencePair
from apps.datasets.services import snapshot_file_build, snapshot_file_request, snapshot_freeze
from apps.training.models import EvalResult, EvalRun
from tests.factories import (
    CheckpointFactory,
    MembershipFactory,
    PairFactory,
    ProjectFactory,
    QueryFactory,
    SearchTreeFactory,
    ToolFactory,
    TrainingRoundFactory,
    TreeNodeFactory,
    UserFactory,
)


def test_schema_is_served_and_describes_every_route(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "iTool Web API"
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    expected = {
        ("POST", "/api/v1/auth/token/"),
        ("GET", "/api/v1/projects/"),
        ("GET", "/api/v1/projects/{id}/"),
        ("POST", "/api/v1/projects/{project_id}/imports/"),
        ("GET", "/api/v1/imports/{id}/"),
        ("GET", "/api/v1/tools/"),
        ("GET", "/api/v1/queries/"),
        ("POST", "/api/v1/queries/"),
        ("GET", "/api/v1/trees/{id}/"),
        ("GET", "/api/v1/trees/{tree_id}/nodes/"),
        ("GET", "/api/v1/pairs/"),
        ("GET", "/api/v1/pairs/{id}/"),
        ("GET", "/api/v1/pairs/{pair_id}/events/"),
        *{
            ("POST", f"/api/v1/pairs/{{id}}/{a}/")
            for a in ("approve", "reject", "flag", "swap", "edit", "undo", "skip")
        },
        ("GET", "/api/v1/rounds/"),
        ("POST", "/api/v1/rounds/"),
        ("GET", "/api/v1/rounds/{id}/"),
        ("GET", "/api/v1/rounds/{id}/status/"),
        *{("POST", f"/api/v1/rounds/{{id}}/{a}/") for a in ("launch", "cancel", "resume")},
        ("GET", "/api/v1/snapshots/"),
        ("POST", "/api/v1/snapshots/"),
        ("GET", "/api/v1/snapshots/{id}/"),
        ("GET", "/api/v1/snapshots/{id}/export/"),
        ("GET", "/api/v1/checkpoints/"),
        ("GET", "/api/v1/snapshots/{id}/files/"),
        ("POST", "/api/v1/snapshots/{id}/files/"),
        ("GET", "/api/v1/snapshot-files/{id}/"),
        ("GET", "/api/v1/snapshot-files/{id}/download/"),
        ("GET", "/api/v1/eval-runs/"),
        ("GET", "/api/v1/eval-runs/{id}/"),
        ("GET", "/api/v1/eval-runs/{eval_run_id}/results/"),
    }
    assert expected <= operations, expected - operations
    approve = schema["paths"]["/api/v1/pairs/{id}/approve/"]["post"]
    assert set(approve["responses"]) >= {"200", "400", "403", "404", "409"}
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_schema_validates_without_warnings():
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache


def test_docs_page_uses_local_assets_only(client, db):
    page = client.get("/api/docs/").content.decode()
    assert '<script src="/api/docs/?script=">' in page  # its start-up script is a file (no inline script: CSP)
    assert "/api/schema/" in client.get("/api/docs/?script=").content.decode()
    external = [u for u in re.findall(r'(?:src|href)="([^"]+)"', page) if u.startswith(("http:", "https:", "//"))]
    assert not external, external
    assets = re.findall(r'(?:src|href)="(/static/drf_spectacular_sidecar/[^"]+)"', page)
    assert assets, page
    for asset in assets:  # each one is there to serve (the swagger-ui bundle, its CSS, the favicon)
        assert finders.find(asset.removeprefix("/static/")), asset


# --- schemathesis ----------------------------------------------------------------------------------------


@pytest.fixture
def api_world(db, settings, tmp_path, tiny_model_dir):
    """A project with one of everything, and its admin's token; ids by path parameter for the run below."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.API_THROTTLE_RATE = settings.API_AUTH_THROTTLE_RATE = None
    project = ProjectFactory(name="fuzzed")
    admin = UserFactory(username="fuzz-admin")
    MembershipFactory(project=project, user=admin, role="admin")
    policy = CheckpointFactory(project=project, name="tiny", path=str(tiny_model_dir))
    rnd = TrainingRoundFactory(project=project, number=1, state="reviewing", policy_in=policy)
    TrainingRoundFactory(project=project, number=2, state="draft", policy_in=policy)
    tool = ToolFactory(project=project)
    query = QueryFactory(project=project, tools=[tool])
    pairs = [
        PairFactory(project=project, round=rnd, query=query, status=s, chosen=f"city='Paris{i}')]")
        for i, s in enumerate(["approved", "pending", "edited", "rejected"])
    ]
    tree = SearchTreeFactory(project=project, round=rnd, query=query)
    root = TreeNodeFactory(tree=tree, key="root")
    TreeNodeFactory(tree=tree, parent=root, key="child")
    snapshot = snapshot_freeze(project=project, round=rnd)
    parquet = snapshot_file_build(file_id=snapshot_file_request(snapshot=snapshot, fmt="openai").pk)
    job = ImportJob.objects.create(project=project, format="openai", file="imports/x.jsonl", created_by=admin)
    arm_run = ArmRun.objects.create(round=rnd, arm="input")
    eval_run = EvalRun.objects.create(project=project, checkpoint=policy, status="done", n_queries=1)
    EvalResult.objects.create(
        eval_run=eval_run,
        query=query,
        kind="single",
        output="[get_weather(city='Paris')]",
        valid=True,
        valid_bfcl=True,
        reward=1.0,
    )
    ids = {
        "pairs": pairs[1].pk,
        "rounds": rnd.pk,
        "snapshots": snapshot.pk,
        "trees": tree.pk,
        "tools": tool.pk,
        "queries": query.pk,
        "imports": job.pk,
        "projects": project.pk,
        "checkpoints": policy.pk,
        "snapshot-files": parquet.pk,
        "arm-runs": arm_run.pk,
        "eval-runs": eval_run.pk,
        "eval_run_id": eval_run.pk,
        "project_id": project.pk,
        "tree_id": tree.pk,
        "pair_id": pairs[1].pk,
    }
    return {"token": Token.objects.create(user=admin).key, "ids": ids}


@pytest.fixture
def api_schema(api_world):
    """The schema as the app serves it, requests sent to the app in process. A WSGI request would close the
    test's database connection when it ends: unhook that while the run lasts, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {"deterministic": True},
            # A request the schema allows may still be refused for reasons a schema cannot say (a wrong password,
            # a version the pair does not have, an unknown training setting): 400 there is right, not a failure.
            "checks": {"positive_data_acceptance": {"enabled": False}},
            # A multipart file part is binary whatever its bytes: schemathesis reads a text file part as "not
            # binary" and expects a 400 that no server could give.
            "operations": [
                {
                    "include-operation-id": "projects_imports_create",
                    "checks": {"negative_data_rejection": {"enabled": False}},
                }
            ],
        }
    )
    yield schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler(), config=config)
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


SEED = 20240601
EXAMPLES = 10  # per operation and kind of run below


def test_generated_requests_get_no_server_error(api_schema, api_world):
    """For every operation: valid requests and invalid ones (wrong types, missing fields, out-of-range values)
    aimed at real rows, so that they reach the code; and valid ones with made-up ids. Sent with an admin's
    token. No answer may be a 5xx, and each must match the schema (status code, content type, body)."""
    auth = {"Authorization": f"Token {api_world['token']}"}
    ids = api_world["ids"]
    failures: list[str] = []
    statuses: dict[str, Counter] = defaultdict(Counter)
    for result in api_schema.get_all_operations():
        operation = result.ok()
        names = re.findall(r"{(\w+)}", operation.path)
        resource = operation.path.split("/")[3]
        fixed = {name: ids[resource if name == "id" else name] for name in names}
        runs = [(GenerationMode.POSITIVE, fixed), (GenerationMode.NEGATIVE, fixed)]
        if names:
            runs.append((GenerationMode.POSITIVE, None))
        for mode, path_parameters in runs:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

            @given(strategy)
            @hypothesis_settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.generate, Phase.shrink],
            )
            def run(case):
                if mode.is_positive and isinstance(case.body, dict) and isinstance(case.body.get("version"), int):
                    # a review at the pair's version writes, so the fuzzed notes and fragments reach the database
                    case.body["version"] = PreferencePair.objects.get(pk=ids["pairs"]).version
                response = case.call(headers=auth)
                statuses[operation.label][response.status_code] += 1
                case.validate_response(response, headers=auth)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid: every parameter is fixed above
                assert mode == GenerationMode.NEGATIVE and not operation.body and not operation.query, operation.label
            except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - reported together below
                failures.append(f"{operation.label} ({mode.value}): {error}")
    print(
        f"schemathesis: {len(statuses)} operations, {sum(map(sum, [c.values() for c in statuses.values()]))} "
        f"requests, {len(failures)} failures"
    )
    for label, codes in sorted(statuses.items()):
        print(f"  {label}: {dict(sorted(codes.items()))}")
    assert not failures, "\n\n".join(failures)
    assert len(statuses) == len(list(api_schema.get_all_operations()))
    # the fixed ids worked: every operation got past the lookup of its rows at least once
    assert all(set(codes) - {404} for codes in statuses.values()), dict(statuses)
