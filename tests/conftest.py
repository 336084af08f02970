"""Shared fixtures."""
import pytest

from tests.factories import ProjectFactory


@pytest.fixture
def project(db):
    return ProjectFactory(name="test-project")
