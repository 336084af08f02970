"""A stage's backend runs in a child process (GENERATION_ISOLATION=process): gone when the stage ends, taking its
memory with it; a backend that cannot start fails the round resumably with its message."""

import psutil
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.services import records_write
from apps.training.lifecycle import round_resume
from apps.training.models import Checkpoint, TrainingRound
from apps.training.policy import policy_backend
from apps.training.services import round_create
from apps.training.stages.select import round_select
from tests.processes import Descendants
from workers.llm.isolated import IsolatedBackend
from workers.llm.transformers_backend import TransformersBackend
from workers.tasks import training_round_select

RSS_MARGIN = 16 * 2**20  # bytes a stage may leave behind in the worker (allocator noise; the model is elsewhere)


# Descendants that other tests of the session left running before this module (e.g. a browser driver and its
# browser) are not this module's.
DESCENDANTS = Descendants()


@pytest.fixture(autouse=True, scope="module")
def earlier_children():
    DESCENDANTS.snapshot()


def live_children() -> list[psutil.Process]:
    """This process's live descendants started by this module's tests."""
    return DESCENDANTS.live()


@pytest.fixture
def policy(project, tiny_model_dir):
    records_write(
        project=project,
        records=generate_environment(EnvironmentConfig(seed=5, queries=12)).queries,
        source="generated",
        split="train",
    )
    return Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")


def select_round(project, policy) -> TrainingRound:
    return round_create(project=project, policy=policy, selection={"method": "perplexity", "ratio": 0.25})


def test_the_select_stage_generates_in_a_child_that_is_gone_when_it_ends(settings, project, policy):
    settings.GENERATION_ISOLATION = "process"
    settings.GENERATION_THREADS = 1
    worker = psutil.Process()
    during = []

    def progress(p):  # called while the backend scores: the engine is a child of this process then
        during.append([c.pid for c in live_children()])

    round_select(round_id=select_round(project, policy).pk)  # warm-up: this process's own imports and caches
    before = worker.memory_info().rss
    for _ in range(2):
        round_select(round_id=select_round(project, policy).pk, progress=progress)
        assert live_children() == []
    assert during and all(len(pids) == 1 for pids in during)
    assert worker.memory_info().rss - before < RSS_MARGIN


def test_the_setting_chooses_where_the_backend_runs(settings, policy):
    settings.GENERATION_ISOLATION = "none"
    backend = policy_backend(policy)
    assert isinstance(backend, TransformersBackend) and live_children() == []
    backend.close()
    settings.GENERATION_ISOLATION = "process"
    backend = policy_backend(policy)
    try:
        assert isinstance(backend, IsolatedBackend) and [c.pid for c in live_children()] == [backend.pid]
    finally:
        backend.close()
    settings.GENERATION_ISOLATION = "thread"
    with pytest.raises(ImproperlyConfigured, match="GENERATION_ISOLATION must be one of process, none, got 'thread'"):
        policy_backend(policy)


def test_vllm_not_installed_fails_the_round_resumably_with_the_fix(settings, project, policy):
    settings.GENERATION_ISOLATION = "process"
    settings.GENERATION_BACKEND = "vllm"
    rnd = select_round(project, policy)
    TrainingRound.objects.filter(pk=rnd.pk).update(state=TrainingRound.State.SELECTING)
    with pytest.raises(Exception, match="install requirements-gpu.txt"):
        training_round_select.apply(args=(rnd.pk,))
    rnd.refresh_from_db()
    assert rnd.state == TrainingRound.State.FAILED and rnd.progress["failed_stage"] == "select"
    assert rnd.error.startswith("select failed: BackendUnavailableError: the vllm backend needs vLLM")
    assert live_children() == []
    settings.GENERATION_BACKEND = "transformers"
    assert round_resume(round_id=rnd.pk, dispatch=False).state == TrainingRound.State.SELECTING
