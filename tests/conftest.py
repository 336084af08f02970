"""Shared fixtures."""

import pytest

from apps.catalog.environment import EnvironmentConfig, generate_environment
from itool_web.celery import app as celery_app
from tests.factories import PairFactory, ProjectFactory
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records


@pytest.fixture(autouse=True)
def engine_in_process(settings):
    """Stages run their generation engine in the test's own process (GENERATION_ISOLATION=none): a child per stage
    costs ~4 s of CPU, hundreds of times over. The default, `process`, is what the real Celery workers of
    tests/workers (their settings are the defaults), tests/apps/training/test_policy_backend.py,
    tests/workers/llm/test_isolated.py and the demo run."""
    settings.GENERATION_ISOLATION = "none"


@pytest.fixture
def project(db):
    return ProjectFactory(name="test-project")


@pytest.fixture
def make_pair(project):
    """make_pair(status="pending", **fields): a `PairFactory` pair of `project` (unless `project` is given), with a
    query of its own offering get_weather (unless `query` is given)."""

    def make(status="pending", **fields):
        return PairFactory(**{"project": project, **fields}, status=status)

    return make


@pytest.fixture(autouse=True)
def checkpoint_dir(settings, tmp_path):
    """Rounds write their training jobs and checkpoints in the test's own folder: in a folder an earlier run of
    the suite left (the same project name and round number, under ITOOL_DATA_DIR), a job would find its previous
    run's output and take it for one to resume."""
    settings.CHECKPOINT_DIR = tmp_path / "checkpoints"
    return settings.CHECKPOINT_DIR


@pytest.fixture
def media(settings, tmp_path):
    """MEDIA_ROOT in the test's own folder: uploads and snapshot files written there."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def eager(media):
    """Celery tasks run in the calling process when sent (cookiecutter-django's eager tests), writing under
    `media`."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture(scope="session")
def bfcl_data():
    """BFCL v4's data as shipped in the bfcl-eval package (installed by `make setup`)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("bfcl_eval")
    assert spec is not None, "bfcl-eval is not installed: run `make setup`"
    return Path(spec.origin).parent / "data"


# --- the tiny model: a nano policy built once per test session from a small generated environment


def query_dict(spec) -> dict:
    """A generated QuerySpec in the form corpus_from_records takes (tools in OpenAI form)."""
    tools = [t.as_openai() for t in spec.tools]
    return {"messages": spec.messages, "tools": tools, "reference_output": spec.reference_output}


@pytest.fixture(scope="session")
def tiny_queries() -> list[dict]:
    return [query_dict(q) for q in generate_environment(EnvironmentConfig(seed=0, queries=60)).queries]


@pytest.fixture(scope="session")
def tiny_corpus(tiny_queries) -> list[str]:
    return list(corpus_from_records(tiny_queries))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_corpus):
    return build_tiny_model(tiny_corpus, tmp_path_factory.mktemp("tiny-nano"), TinyModelConfig(size="nano", seed=0))
