"""Fixtures for the snapshot tests: a tiny checkpoint to render prompts, and reviewed pairs."""

import pytest

from tests.factories import CheckpointFactory, PairFactory, QueryFactory, ToolFactory, TrainingRoundFactory


@pytest.fixture
def checkpoint(project, tiny_model_dir):
    """A checkpoint whose path holds the tiny model (tokenizer with the ChatML + compact tools template)."""
    return CheckpointFactory(project=project, name="tiny", path=str(tiny_model_dir))


@pytest.fixture
def round_(project, checkpoint):
    return TrainingRoundFactory(project=project, number=1, policy_in=checkpoint)


@pytest.fixture
def make_pair(project):
    """make_pair(status, **fields): a pair of the project (its own query unless `query` is given)."""

    def make(status="approved", **fields):
        fields.setdefault("query", QueryFactory(project=project, tools=[ToolFactory(project=project)]))
        return PairFactory(project=project, status=status, **fields)

    return make
