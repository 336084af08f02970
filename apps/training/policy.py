"""The policy a round samples from: a generation backend for a checkpoint, and the prompts it continues."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.catalog.models import Query
from workers.llm.base import BaseBackend
from workers.llm.isolated import IsolatedBackend
from workers.llm.registry import get_backend
from workers.llm.tiny import render_prompt
from workers.llm.tokens import load_tokenizer

from .models import Checkpoint

ISOLATIONS = ("process", "none")


def policy_backend(checkpoint: Checkpoint) -> BaseBackend:
    """The configured backend (GENERATION_BACKEND) serving `checkpoint`; with GENERATION_ISOLATION=process (the
    default) a local engine runs in a child process that its close() ends, so a stage returns all its memory."""
    name = settings.GENERATION_BACKEND
    isolation = settings.GENERATION_ISOLATION
    if isolation not in ISOLATIONS:
        raise ImproperlyConfigured(f"GENERATION_ISOLATION must be one of {', '.join(ISOLATIONS)}, got {isolation!r}")
    if name == "transformers":
        kwargs = {
            "model_path": checkpoint.path,
            "device": settings.GENERATION_DEVICE,
            "num_threads": settings.GENERATION_THREADS or None,
        }
    elif name == "vllm":
        kwargs = {"model_path": checkpoint.path, "tensor_parallel_size": settings.VLLM_TENSOR_PARALLEL_SIZE}
    else:  # openai, or a name get_backend refuses; a remote server's client holds no model: never isolated
        return get_backend(
            name,
            base_url=settings.OPENAI_BASE_URL,
            model=settings.OPENAI_MODEL or checkpoint.path,
            api_key=settings.OPENAI_API_KEY or None,
        )
    return IsolatedBackend(name, **kwargs) if isolation == "process" else get_backend(name, **kwargs)


OVERLAPS = {"auto": None, "1": True, "on": True, "true": True, "0": False, "off": False, "false": False}


def search_overlap() -> bool:
    """Whether the search stage overlaps its bookkeeping with generation (settings.SEARCH_OVERLAP)."""
    value = str(settings.SEARCH_OVERLAP).strip().lower()
    if value not in OVERLAPS:
        raise ImproperlyConfigured(f"SEARCH_OVERLAP must be auto, on or off, got {settings.SEARCH_OVERLAP!r}")
    overlap = OVERLAPS[value]
    if overlap is None:  # auto: where generation waits on something else than this machine's CPU
        return settings.GENERATION_BACKEND != "transformers" or settings.GENERATION_DEVICE != "cpu"
    return overlap


def policy_tokenizer(checkpoint: Checkpoint):
    """The checkpoint's tokenizer (and chat template); safe to call from several threads of a fresh process."""
    return load_tokenizer(checkpoint.path)


def query_tools(query: Query) -> list[dict]:
    """The query's tools in OpenAI form, in prompt order."""
    return query.openai_tools()


def query_prompt(tokenizer, query: Query) -> str:
    """The policy's chat template over the query's messages and tools, ready for the assistant turn."""
    return render_prompt(tokenizer, query.messages, query_tools(query))
