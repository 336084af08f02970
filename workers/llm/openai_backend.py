"""Generation through any OpenAI-compatible completions server (`vllm serve`, SGLang, TGI), standard library only.

One `POST {base_url}/completions` per prompt (`n` samples each), sent concurrently from a thread pool so
that many search workers can share a few inference servers. 429, 5xx, timeouts and refused connections are
retried with exponential backoff (honouring `Retry-After`); any other error status fails at once with the
server's message.

Limitations, all the server's:
- Logprobs are what the server reports. vLLM keeps the logprobs of the tokens that formed a stop string and
  of the EOS token, where the transformers backend stops at the last token of the returned text.
- `score()` asks for the prompt's own logprobs with `echo=True, logprobs=1, max_tokens=1` (vLLM rejects
  `max_tokens=0`, vllm-project/vllm#9336; the one generated token is ignored). The server tokenizes prompt and
  continuation as one text, so a token straddling the boundary counts as prompt. Servers without `echo`
  logprobs (OpenAI's own, llama.cpp) cannot score. On vLLM, prompt logprobs bypass the prefix cache.
- No token ids: the tokenizer is on the server, so `encode` gives None, samples carry no `token_ids`, and the
  tree search prompts with text and stores no node ids (pairs then train on text; docs/token-ids.md).
- The seed is sent as is: a prompt given twice in one call gets the same samples from a deterministic server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .base import BaseBackend, Prompt, Sample, SamplingParams

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # timeouts, rate limits, server trouble


class OpenAIBackendError(RuntimeError):
    """A request the server refused or that kept failing; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def completions_url(base_url: str) -> str:
    """`http://host:8000` or `http://host:8000/v1` → `http://host:8000/v1/completions`."""
    base = base_url.rstrip("/")
    if urllib.parse.urlparse(base).path in ("", "/"):
        base += "/v1"
    return base + "/completions"


def completion_request(prompt: Prompt, params: SamplingParams, model: str) -> dict:
    """The JSON body asking for `params.n` samples continuing `prompt` (text, or token ids: the completions API
    takes a list of ids as a prompt)."""
    body = {
        "model": model,
        "prompt": prompt,
        "n": params.n,
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "logprobs": 1,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    return body


def samples_from_response(response: dict, n: int) -> list[Sample]:
    """The `n` choices of a completions response as Samples, in index order."""
    choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != n:
        raise OpenAIBackendError(f"expected {n} choices, the server returned {len(choices)}")
    samples = []
    for choice in choices:
        logprobs = choice.get("logprobs") or {}
        values = [v for v in (logprobs.get("token_logprobs") or []) if v is not None]
        finish = choice.get("finish_reason") or "length"
        samples.append(Sample(text=choice.get("text") or "", token_logprobs=values, finish_reason=finish))
    return samples


def continuation_logprobs_from_echo(response: dict, continuation: str) -> list[float]:
    """From an `echo=True` response to prompt + continuation: the logprobs of the continuation's tokens.

    The echoed tokens are the first `usage.prompt_tokens` entries; the echo ends where the generated token
    starts, and the continuation is its last `len(continuation)` characters (so special tokens the server
    leaves out of the echoed prompt do not shift it).
    """
    choice = (response.get("choices") or [{}])[0]
    logprobs = choice.get("logprobs") or {}
    offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
    if not offsets or values is None or len(offsets) != len(values):
        raise OpenAIBackendError("the server returned no prompt logprobs (does it support echo=True with logprobs?)")
    usage = response.get("usage") or {}
    echoed = usage.get("prompt_tokens", len(values) - 1)
    echo_end = offsets[echoed] if echoed < len(offsets) else len(choice.get("text") or "")
    start = echo_end - len(continuation)
    return [float(v) for offset, v in zip(offsets[:echoed], values[:echoed]) if offset >= start and v is not None]


class OpenAIBackend(BaseBackend):
    """Client of an OpenAI-compatible `/v1/completions` endpoint."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        concurrency: int = 8,  # requests in flight; one request per prompt
        timeout: float = 300.0,  # seconds per request; a long rollout on a busy server takes minutes
        max_retries: int = 5,  # after the first attempt, for 429 / 5xx / timeouts / refused connections
        backoff: float = 0.5,  # first wait in seconds, doubled on each retry
        max_backoff: float = 30.0,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be positive, got {concurrency}")
        self.url = completions_url(base_url)
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai-backend")

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
        bodies = [completion_request(p, params, self.model) for p in prompts]
        return list(self._pool.map(lambda body: samples_from_response(self._post(body), params.n), bodies))

    def score(self, prompts: list[str], continuations: list[str]) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")

        def score_one(pair: tuple[str, str]) -> list[float]:
            prompt, continuation = pair
            if not continuation:
                return []
            body = {
                "model": self.model,
                "prompt": prompt + continuation,
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": 1,
                "skip_special_tokens": False,
            }
            return continuation_logprobs_from_echo(self._post(body), continuation)

        return list(self._pool.map(score_one, zip(prompts, continuations)))

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.max_backoff, self.backoff * 2**attempt)
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRY_STATUSES:
                    raise OpenAIBackendError(f"{self.url} answered {exc.code}: {message}", status=exc.code) from None
                last_error = f"{exc.code}: {message}"
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = min(self.max_backoff, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last_error = str(getattr(exc, "reason", exc))
            except json.JSONDecodeError as exc:
                raise OpenAIBackendError(f"{self.url} answered with invalid JSON: {exc}") from None
            if attempt < self.max_retries:
                time.sleep(wait)
        raise OpenAIBackendError(f"{self.url} failed after {self.max_retries + 1} attempts; last error: {last_error}")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's own message from an OpenAI-style error body, else the body or the reason phrase."""
    try:
        raw = exc.read().decode(errors="replace")
    except OSError:
        raw = ""
    try:
        error = json.loads(raw).get("error", raw)
        return error.get("message", json.dumps(error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        return raw[:500] or str(exc.reason)
