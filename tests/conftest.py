"""Shared fixtures."""

import pytest

from apps.catalog.environment import EnvironmentConfig, generate_environment
from tests.factories import ProjectFactory
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records


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
