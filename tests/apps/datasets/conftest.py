"""Fixtures for the snapshot tests: a tiny checkpoint to render prompts, and the round it trains."""

import pytest

from tests.factories import CheckpointFactory, TrainingRoundFactory


@pytest.fixture
def checkpoint(project, tiny_model_dir):
    """A checkpoint whose path holds the tiny model (tokenizer with the ChatML + compact tools template)."""
    return CheckpointFactory(project=project, name="tiny", path=str(tiny_model_dir))


@pytest.fixture
def round_(project, checkpoint):
    return TrainingRoundFactory(project=project, number=1, policy_in=checkpoint)
