"""The stage table (apps/training/pipeline.py) is what Celery, run_round, the warm-up and the round page follow."""

import pytest
from django.core.management import call_command
from django.db.models.signals import post_save

from apps.training import pipeline
from apps.training.lifecycle import STAGE_STATE, round_launch
from apps.training.models import TrainingRound
from apps.training.pipeline import STAGES, next_stage, path, stage_now, stage_path
from apps.training.services import round_create
from itool_web.celery import app as celery_app
from tests.workers.test_round_lifecycle import make_project

S = TrainingRound.State


def test_every_stage_names_a_real_state_function_and_task():
    import workers.tasks as tasks

    registered = {task.name: task for task in tasks.STAGE_TASKS}
    for stage in STAGES.values():
        assert stage.state in S.values
        if stage.run is None:  # review: the round waits for people
            assert stage.name == "review" and stage.task is None
            continue
        assert callable(stage.runner())
        task = registered[stage.task]
        assert tasks.stage_task(stage.name) is task
        assert task.time_limit == stage.time_limit and task.soft_time_limit == stage.time_limit - 60
        assert celery_app.conf.task_routes[stage.task] == {"queue": stage.queue}
    assert celery_app.conf.task_routes["search.trees_search"] == {"queue": "gpu"}
    assert STAGE_STATE == {name: STAGES[name].state for name in ("select", "search", "pair", "train", "evaluate")}


@pytest.mark.parametrize(
    "algorithm, stages",
    [
        ("simpo", ["select", "search", "pair", "review", "train", "evaluate"]),
        ("dpo", ["select", "search", "pair", "review", "train", "evaluate"]),
        ("grpo", ["select", "train", "evaluate"]),
        ("sft", ["train", "evaluate"]),
    ],
)
def test_each_algorithm_has_its_path(algorithm, stages):
    assert list(path(algorithm)) == stages
    walked, stage = [], stage_now(algorithm, "draft")
    while stage:
        walked.append(stage)
        stage = next_stage(algorithm, stage)
    assert walked == stages
    assert pipeline.reviews(algorithm) == ("review" in stages)


def test_the_page_path_marks_done_current_and_failed_stages():
    marks = {s["name"]: s["mark"] for s in stage_path("simpo", "reviewing")}
    assert marks == {
        "select": "done",
        "search": "done",
        "pair": "done",
        "review": "current",
        "train": "to do",
        "evaluate": "to do",
    }
    failed = {s["name"]: s["mark"] for s in stage_path("grpo", "failed", "train")}
    assert failed == {"select": "done", "train": "failed", "evaluate": "to do"}
    assert all(s["mark"] == "done" for s in stage_path("sft", "done"))
    cancelled = {s["name"]: s["mark"] for s in stage_path("simpo", "cancelled", "search")}
    assert cancelled == {
        "select": "done",
        "search": "cancelled",
        "pair": "to do",
        "review": "to do",
        "train": "to do",
        "evaluate": "to do",
    }


def test_the_round_page_shows_the_rounds_own_path(client, django_user_model, project, tiny_model_dir):
    from apps.projects.models import Membership
    from apps.training.models import Checkpoint

    user = django_user_model.objects.create_user("admin-user", password="pw-12345678")
    Membership.objects.create(project=project, user=user, role="admin")
    client.force_login(user)
    policy = Checkpoint.objects.create(project=project, name="nano", path=str(tiny_model_dir), kind="tiny")
    rnd = round_create(project=project, policy=policy, algorithm="grpo")
    page = client.get(f"/projects/{project.pk}/rounds/{rnd.number}/").content.decode()
    assert 'data-stage="select"' in page and 'data-stage="train"' in page
    assert 'data-stage="search"' not in page and 'data-stage="review"' not in page


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_celery_and_run_round_walk_a_round_through_the_same_stages(tiny_model_dir, eager):
    """A GRPO round driven by Celery tasks (eager: each stage's task runs at once when the last one hands over)
    and one driven by `run_round` pass through the same states, those of the table's path."""
    seen: dict[int, list[str]] = {}

    def record(sender, instance, **kwargs):
        states = seen.setdefault(instance.pk, [])
        if not states or states[-1] != instance.state:
            states.append(instance.state)

    settings = {
        "algorithm": "grpo",
        "selection": {"method": "perplexity", "ratio": 0.2, "max_queries": 2},
        "hyperparameters": {
            "train": {"num_generations": 2, "batch_size": 2, "max_completion_length": 8, "max_steps": 1},
            "eval_limit": 2,
        },
    }
    post_save.connect(record, sender=TrainingRound)
    try:
        project, policy = make_project("walk-celery", tiny_model_dir)
        by_celery = round_create(project=project, policy=policy, **settings)
        round_launch(round_id=by_celery.pk)
        project, policy = make_project("walk-cli", tiny_model_dir)
        by_cli = round_create(project=project, policy=policy, **settings)
        call_command("run_round", project=project.name, until="evaluate")
    finally:
        post_save.disconnect(record, sender=TrainingRound)

    expected = ["draft", *(STAGES[stage].state for stage in path("grpo")), "done"]
    assert seen[by_celery.pk] == seen[by_cli.pk] == expected
    for rnd in (by_celery, by_cli):
        rnd.refresh_from_db()
        assert rnd.policy_out.config["world_size"] == 1 and rnd.metrics["eval"]["n"] == 2
