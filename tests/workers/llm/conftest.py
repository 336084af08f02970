"""A nano tiny model built once per test session from a small generated environment, and a backend on it."""
import pytest

from apps.catalog.environment import EnvironmentConfig, generate_environment
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records, render_prompt


def query_dict(spec) -> dict:
    """A generated QuerySpec in the form corpus_from_records takes (tools in OpenAI form)."""
    tools = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                               "parameters": t.parameters}} for t in spec.tools]
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


@pytest.fixture(scope="session")
def backend(tiny_model_dir):
    from workers.llm.transformers_backend import TransformersBackend

    return TransformersBackend(str(tiny_model_dir), batch_size=16, num_threads=1)


@pytest.fixture(scope="session")
def prompts(backend, tiny_queries) -> list[str]:
    """Rendered prompts of different lengths (one to five tools, single- and multi-turn)."""
    chosen = sorted(tiny_queries[:12], key=lambda q: len(q["tools"]) + len(q["messages"]))
    return [render_prompt(backend.tokenizer, q["messages"], q["tools"]) for q in chosen[::3]]
