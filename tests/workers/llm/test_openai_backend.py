"""The OpenAI-compatible client against a real local HTTP server that runs the transformers backend."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workers.llm.base import SamplingParams
from workers.llm.openai_backend import (
    OpenAIBackend,
    OpenAIBackendError,
    completion_request,
    completions_url,
    continuation_logprobs_from_echo,
)


class CompletionsServer(ThreadingHTTPServer):
    """`/v1/completions` served by a TransformersBackend; `failures` queues error statuses to answer first."""

    daemon_threads = True

    def __init__(self, backend):
        super().__init__(("127.0.0.1", 0), CompletionsHandler)
        self.backend = backend
        self.lock = threading.Lock()  # one model call at a time; requests still overlap while they wait
        self.failures: list[int] = []
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class CompletionsHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        server: CompletionsServer = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            failure = server.failures.pop(0) if server.failures else None
        try:
            if failure:
                self._answer(
                    failure,
                    {"error": {"message": f"injected {failure}", "type": "test"}},
                    {"Retry-After": "0"} if failure == 429 else None,
                )
                return
            if self.path != "/v1/completions":
                self._answer(404, {"error": {"message": f"no route {self.path}"}})
                return
            if not isinstance(body.get("prompt"), str) or not body["prompt"]:
                self._answer(400, {"error": {"message": "prompt must be a non-empty string"}})
                return
            time.sleep(0.02)  # let concurrent requests overlap
            with server.lock:
                answer = self._echo(body) if body.get("echo") else self._complete(body)
            self._answer(200, answer)
        finally:
            with server.lock:
                server.in_flight -= 1

    def _complete(self, body: dict) -> dict:
        backend = self.server.backend
        params = SamplingParams(
            n=body.get("n", 1),
            max_tokens=body["max_tokens"],
            temperature=body.get("temperature", 1.0),
            top_p=body.get("top_p", 1.0),
            stop=tuple(body.get("stop") or ()),
            seed=body.get("seed"),
        )
        samples = backend.generate([body["prompt"]], params)[0]
        choices = []
        for index, sample in enumerate(samples):
            tokens = [backend.decode([t]) for t in sample.token_ids]
            offsets = [len(backend.decode(sample.token_ids[:i])) for i in range(len(sample.token_ids))]
            choices.append(
                {
                    "index": index,
                    "text": sample.text,
                    "finish_reason": sample.finish_reason,
                    "logprobs": {
                        "tokens": tokens,
                        "token_logprobs": sample.token_logprobs,
                        "text_offset": offsets,
                        "top_logprobs": None,
                    },
                }
            )
        return {
            "object": "text_completion",
            "model": body["model"],
            "choices": choices[::-1],  # any order
            "usage": {
                "prompt_tokens": len(backend.encode(body["prompt"])),
                "completion_tokens": sum(len(s.token_ids) for s in samples),
            },
        }

    def _echo(self, body: dict) -> dict:
        """What vLLM answers to echo=True, logprobs=1, max_tokens=1: the prompt's logprobs, then one token."""
        backend = self.server.backend
        ids = backend.encode(body["prompt"])
        logprobs = [None] + backend.score_ids([ids[:1]], [ids[1:]])[0]
        generated = backend.generate([body["prompt"]], SamplingParams(max_tokens=1, temperature=0))[0][0]
        all_ids = ids + generated.token_ids
        offsets = [len(backend.decode(all_ids[:i])) for i in range(len(all_ids))]
        return {
            "choices": [
                {
                    "index": 0,
                    "text": backend.decode(all_ids),
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [backend.decode([t]) for t in all_ids],
                        "token_logprobs": logprobs + generated.token_logprobs,
                        "text_offset": offsets,
                    },
                }
            ],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": len(generated.token_ids)},
        }


@pytest.fixture
def server(backend):
    server = CompletionsServer(backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(server):
    client = OpenAIBackend(
        server.base_url, model="tiny", api_key="secret", concurrency=4, timeout=10, max_retries=2, backoff=0.01
    )
    yield client
    client.close()


def test_generate_matches_the_backend_it_serves(client, server, backend, prompts):
    params = SamplingParams(n=3, max_tokens=8, temperature=1.0, seed=11, stop=("]",))
    remote = client.generate(prompts, params)
    local = backend.generate(prompts, params)
    assert [[s.text for s in r] for r in remote] == [[s.text for s in r] for r in local]
    for remote_samples, local_samples in zip(remote, local):
        for r, s in zip(remote_samples, local_samples):
            assert r.finish_reason == s.finish_reason
            assert r.token_logprobs == pytest.approx(s.token_logprobs, abs=1e-6)
    body = server.requests[0]["body"]
    assert server.requests[0]["path"] == "/v1/completions"
    assert server.requests[0]["auth"] == "Bearer secret"
    assert {k: body[k] for k in ("model", "n", "max_tokens", "temperature", "top_p", "stop", "seed", "logprobs")} == {
        "model": "tiny",
        "n": 3,
        "max_tokens": 8,
        "temperature": 1.0,
        "top_p": 1.0,
        "stop": ["]"],
        "seed": 11,
        "logprobs": 1,
    }


def test_requests_run_concurrently(client, server, prompts):
    client.generate(prompts * 2, SamplingParams(max_tokens=2, temperature=0))
    assert len(server.requests) == len(prompts) * 2
    assert server.max_in_flight >= 2


def test_score_matches_the_backend_it_serves(client, backend, prompts):
    continuations = ["[get_weather(city='Paris')]", "Hello there.", ""]
    remote = client.score(prompts[:3], continuations)
    assert remote[2] == []
    local = backend.score(prompts[:3], continuations)
    for remote_logprobs, local_logprobs in zip(remote, local):
        assert len(remote_logprobs) == len(local_logprobs)
        assert remote_logprobs == pytest.approx(local_logprobs, abs=1e-4)


def test_server_errors_and_rate_limits_are_retried(client, server, prompts):
    server.failures = [500, 429]
    result = client.generate(prompts[:1], SamplingParams(max_tokens=2, temperature=0))
    assert len(result[0]) == 1
    assert len(server.requests) == 3


def test_a_bad_request_fails_at_once_with_the_servers_message(client, server):
    with pytest.raises(OpenAIBackendError, match="answered 400: prompt must be a non-empty string") as info:
        client.generate([""], SamplingParams(max_tokens=2))
    assert info.value.status == 400
    assert len(server.requests) == 1


def test_persistent_failures_give_up_after_the_retries(client, server):
    server.failures = [503, 503, 503, 503]
    with pytest.raises(OpenAIBackendError, match="failed after 3 attempts; last error: 503: injected 503"):
        client.generate(["hello"], SamplingParams(max_tokens=2))
    assert len(server.requests) == 3


def test_an_unreachable_server_is_a_clear_error():
    import socket

    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OpenAIBackend(f"http://127.0.0.1:{port}", model="tiny", max_retries=1, backoff=0.01)
    with pytest.raises(OpenAIBackendError, match="failed after 2 attempts; last error: .*refused"):
        client.generate(["hello"], SamplingParams(max_tokens=2))
    client.close()


def test_request_and_url_shapes():
    assert completions_url("http://gpu-1:8000") == "http://gpu-1:8000/v1/completions"
    assert completions_url("http://gpu-1:8000/v1/") == "http://gpu-1:8000/v1/completions"
    body = completion_request("p", SamplingParams(n=2, max_tokens=5), model="m")
    assert "stop" not in body and "seed" not in body
    assert body["logprobs"] == 1


def test_echo_parsing_skips_special_tokens_left_out_of_the_echo():
    # The server dropped "<|im_start|>" from the echoed prompt: offsets are relative to the echoed text.
    response = {
        "choices": [
            {
                "text": "user\nhi[f()]X",
                "logprobs": {
                    "tokens": ["user", "\n", "hi", "[f", "()]", "X"],
                    "token_logprobs": [None, -0.1, -0.2, -0.3, -0.4, -0.5],
                    "text_offset": [0, 4, 5, 7, 9, 12],
                },
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
    assert continuation_logprobs_from_echo(response, "[f()]") == [-0.3, -0.4]
    with pytest.raises(OpenAIBackendError, match="no prompt logprobs"):
        continuation_logprobs_from_echo({"choices": [{"text": "x", "logprobs": None}]}, "x")
