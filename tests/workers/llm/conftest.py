"""A backend on the session's nano tiny model (tests/conftest.py), and prompts for it."""

import pytest

from workers.llm.tiny import render_prompt


@pytest.fixture(scope="session")
def backend(tiny_model_dir):
    from workers.llm.transformers_backend import TransformersBackend

    return TransformersBackend(str(tiny_model_dir), batch_size=16, num_threads=1)


@pytest.fixture(scope="session")
def prompts(backend, tiny_queries) -> list[str]:
    """Rendered prompts of different lengths (one to five tools, single- and multi-turn)."""
    chosen = sorted(tiny_queries[:12], key=lambda q: len(q["tools"]) + len(q["messages"]))
    return [render_prompt(backend.tokenizer, q["messages"], q["tools"]) for q in chosen[::3]]
