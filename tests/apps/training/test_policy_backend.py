"""A stage's backend runs in a child process (GENERATION_ISOLATION=process): gone when the stage ends, taking its
memory with it; a backend that cannot start fails the round resumably with its message; the search stage overlaps
its bookkeeping with generation where SEARCH_OVERLAP says so."""

import psutil
import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.services import records_write
from apps.search.models import SearchTree, TreeNode
from apps.training.lifecycle import round_resume
from apps.training.models import Checkpoint, RoundQuery, TrainingRound
from apps.training.policy import policy_backend, search_overlap
from apps.training.services import round_create, round_transition
from apps.training.stages.search import round_search_prepare, trees_search
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


def nano_policy(project, tiny_model_dir, queries: int) -> Checkpoint:
    """The nano model as the project's policy, over a generated environment of `queries` train queries."""
    records_write(
        project=project,
        records=generate_environment(EnvironmentConfig(seed=5, queries=queries)).queries,
        source="generated",
        split="train",
    )
    return Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")


@pytest.fixture
def policy(project, tiny_model_dir):
    return nano_policy(project, tiny_model_dir, queries=12)


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


@pytest.mark.parametrize(
    ("value", "backend", "device", "overlap"),
    [
        ("auto", "transformers", "cpu", False),  # the engine and the bookkeeping would share the same cores
        ("auto", "transformers", "cuda", True),
        ("auto", "vllm", "cpu", True),
        ("auto", "openai", "cpu", True),
        ("on", "transformers", "cpu", True),
        ("OFF", "vllm", "cuda", False),
    ],
)
def test_the_setting_chooses_whether_the_search_overlaps(settings, value, backend, device, overlap):
    settings.SEARCH_OVERLAP, settings.GENERATION_BACKEND, settings.GENERATION_DEVICE = value, backend, device
    assert search_overlap() is overlap


def test_a_bad_overlap_setting_names_the_choices(settings):
    settings.SEARCH_OVERLAP = "sometimes"
    with pytest.raises(ImproperlyConfigured, match="SEARCH_OVERLAP must be auto, on or off, got 'sometimes'"):
        search_overlap()


def test_an_overlapped_search_stage_stores_every_step_of_its_halves(settings, project, tiny_model_dir):
    """The search stage in halves that take turns (SEARCH_OVERLAP=on) with the engine in its child process:
    twice the steps of one batch, every tree finished and stored whole, and no process left."""
    settings.GENERATION_ISOLATION, settings.GENERATION_THREADS = "process", 1
    settings.SEARCH_OVERLAP_MIN_SAMPLES = 32  # 32 trees x 2 samples: two halves of 32
    policy = nano_policy(project, tiny_model_dir, queries=48)
    queries = list(project.queries.exclude(ground_truth=[]).exclude(ground_truth__isnull=True)[:32])
    assert len(queries) == 32
    steps = {}
    for overlap in ("off", "on"):
        settings.SEARCH_OVERLAP = overlap
        rnd = round_create(
            project=project, policy=policy, search_config={"simulations": 2, "width": 2, "max_tokens": 12}
        )
        round_transition(round_id=rnd.pk, to="selecting")
        RoundQuery.objects.bulk_create([RoundQuery(round=rnd, query=q, score=1.0, selected=True) for q in queries])
        reports = []
        trees_search(round_id=rnd.pk, tree_ids=round_search_prepare(round_id=rnd.pk), progress=reports.append)
        steps[overlap] = len(reports)
        trees = SearchTree.objects.filter(round=rnd)
        assert {t.status for t in trees} == {"done"} and len(trees) == 32
        for tree in trees:
            assert TreeNode.objects.filter(tree=tree).count() == tree.node_count > 1
        assert reports[-1]["trees_done"] == 32 and live_children() == []
    assert steps == {"off": 2, "on": 4}


def test_a_search_shard_size_that_is_not_a_count_of_trees_is_refused(settings, project):
    from apps.training.stages.search import round_search

    settings.SEARCH_SHARD_TREES = 0
    with pytest.raises(ImproperlyConfigured, match="SEARCH_SHARD_TREES must be a positive number of trees, got 0"):
        round_search(round_id=round_create(project=project).pk)
