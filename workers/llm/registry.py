"""Backends by name: `get_backend("transformers" | "vllm" | "openai", **engine_arguments)`."""

from __future__ import annotations

import importlib

from .base import BaseBackend

# name → "module:class"; imported on demand so that choosing one backend never imports another's engine.
BACKENDS = {
    "transformers": "workers.llm.transformers_backend:TransformersBackend",
    "vllm": "workers.llm.vllm_backend:VLLMBackend",
    "openai": "workers.llm.openai_backend:OpenAIBackend",
}


def get_backend(name: str, **kwargs) -> BaseBackend:
    """A backend built with `kwargs` (model_path, device, base_url, ... as its constructor takes them).

    Raises ValueError for an unknown name and BackendUnavailableError when the engine is not installed.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(**kwargs)
