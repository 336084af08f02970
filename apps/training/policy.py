"""The policy a round samples from: a generation backend for a checkpoint, and the prompts it continues."""
from __future__ import annotations

from django.conf import settings

from apps.catalog.models import Query
from workers.llm.base import BaseBackend
from workers.llm.registry import get_backend
from workers.llm.tiny import render_prompt

from .models import Checkpoint


def policy_backend(checkpoint: Checkpoint) -> BaseBackend:
    """The configured backend (GENERATION_BACKEND) serving `checkpoint`."""
    name = settings.GENERATION_BACKEND
    if name == "transformers":
        return get_backend(name, model_path=checkpoint.path, device=settings.GENERATION_DEVICE,
                           num_threads=settings.GENERATION_THREADS or None)
    if name == "vllm":
        return get_backend(name, model_path=checkpoint.path, tensor_parallel_size=settings.VLLM_TENSOR_PARALLEL_SIZE)
    return get_backend(name, base_url=settings.OPENAI_BASE_URL, model=settings.OPENAI_MODEL or checkpoint.path,
                       api_key=settings.OPENAI_API_KEY or None)


def policy_tokenizer(checkpoint: Checkpoint):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint.path)


def query_tools(query: Query) -> list[dict]:
    """The query's tools in OpenAI form, in prompt order."""
    return [tool.as_openai() for tool in query.ordered_tools()]


def query_prompt(tokenizer, query: Query) -> str:
    """The policy's chat template over the query's messages and tools, ready for the assistant turn."""
    return render_prompt(tokenizer, query.messages, query_tools(query))
