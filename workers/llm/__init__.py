"""Generation backends: transformers (default), vLLM (GPU extra), any OpenAI-compatible server."""
