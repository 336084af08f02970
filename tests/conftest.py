"""Shared fixtures."""
import pytest

from tests.factories import ProjectFactory


@pytest.fixture
def project(db):
    return ProjectFactory(name="test-project")


@pytest.fixture(scope="session")
def bfcl_data():
    """BFCL v4's data as shipped in the bfcl-eval package (installed by `make setup`)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("bfcl_eval")
    assert spec is not None, "bfcl-eval is not installed: run `make setup`"
    return Path(spec.origin).parent / "data"
