"""The vLLM backend's translation of parameters and outputs (vLLM itself needs a GPU; none is here)."""

import importlib.util
from types import SimpleNamespace

import pytest

from workers.llm.base import BackendUnavailableError, SamplingParams
from workers.llm.registry import get_backend
from workers.llm.vllm_backend import (
    check_devices,
    continuation_logprobs,
    samples_from_request_output,
    sampling_kwargs,
    score_sampling_kwargs,
    shutdown_engine,
)

EOS = 2


def logprob(value):
    return SimpleNamespace(logprob=value, rank=1, decoded_token=None)


def completion(index, text, token_ids, values, finish_reason, stop_reason=None, with_logprobs=True):
    """Shaped like vllm.outputs.CompletionOutput; logprobs as vLLM gives them: token id → Logprob per step."""
    steps = [{t: logprob(v), 99: logprob(-9.0)} for t, v in zip(token_ids, values)] if with_logprobs else None
    return SimpleNamespace(
        index=index,
        text=text,
        token_ids=token_ids,
        logprobs=steps,
        finish_reason=finish_reason,
        stop_reason=stop_reason,
        cumulative_logprob=sum(values),
    )


def test_sampling_params_translate_to_vllm_keywords():
    params = SamplingParams(n=4, max_tokens=32, temperature=0.7, top_p=0.9, stop=(". ", "]"), seed=3)
    assert sampling_kwargs(params) == {
        "n": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 32,
        "stop": [". ", "]"],
        "seed": 3,
        "logprobs": 0,
    }
    assert sampling_kwargs(SamplingParams(temperature=0))["temperature"] == 0
    assert score_sampling_kwargs()["prompt_logprobs"] == 0


def test_request_output_becomes_samples_in_index_order_without_the_eos_token():
    output = SimpleNamespace(
        outputs=[
            completion(1, "[f(a=1)]", [10, 11, EOS], [-0.5, -0.25, -0.1], "stop"),  # ended by EOS
            completion(0, "[g(", [12, 13, 14], [-1.0, -2.0, -3.0], "length"),
            completion(2, "[h", [15, 16], [-0.1, -0.2], "stop", stop_reason="]"),  # ended by a stop string
        ]
    )
    samples = samples_from_request_output(output, eos_token_ids={EOS})
    assert [s.text for s in samples] == ["[g(", "[f(a=1)]", "[h"]
    assert [s.finish_reason for s in samples] == ["length", "stop", "stop"]
    assert samples[0].token_logprobs == [-1.0, -2.0, -3.0]
    assert samples[1].token_logprobs == [-0.5, -0.25] and samples[1].token_ids == [10, 11]
    assert samples[2].token_logprobs == [-0.1, -0.2]  # vLLM keeps the stop string's tokens
    assert samples[1].prior == pytest.approx(2.718281828 ** (-0.375))


def test_output_without_logprobs_gives_empty_logprobs():
    output = SimpleNamespace(outputs=[completion(0, "x", [5], [-1.0], "length", with_logprobs=False)])
    assert samples_from_request_output(output)[0].token_logprobs == []


def test_continuation_logprobs_come_from_the_prompt_logprobs():
    prompt_ids = [1, 7, 8, 9, 10]
    steps = [None] + [{t: logprob(-float(i)), 3: logprob(-20.0)} for i, t in enumerate(prompt_ids[1:], 1)]
    output = SimpleNamespace(prompt_token_ids=prompt_ids, prompt_logprobs=steps)
    assert continuation_logprobs(output, 2) == [-3.0, -4.0]
    assert continuation_logprobs(output, 0) == []
    with pytest.raises(ValueError, match="at least one token before"):
        continuation_logprobs(output, 5)
    with pytest.raises(ValueError, match="no prompt logprobs"):
        continuation_logprobs(SimpleNamespace(prompt_token_ids=prompt_ids, prompt_logprobs=None), 1)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_get_backend_vllm_without_vllm_says_how_to_get_it():
    with pytest.raises(BackendUnavailableError, match="install requirements-gpu.txt on a GPU machine"):
        get_backend("vllm", model_path="/nonexistent")


def test_get_backend_knows_its_names(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown backend 'sglang'; expected one of transformers, vllm, openai"):
        get_backend("sglang")
    backend = get_backend("transformers", model_path=str(tiny_model_dir))
    assert backend.name == "transformers"
    client = get_backend("openai", base_url="http://127.0.0.1:1", model="m")
    assert client.name == "openai"
    client.close()


def test_shutdown_goes_through_the_most_direct_api_the_installed_vllm_has():
    calls = []
    engine = SimpleNamespace(engine_core=SimpleNamespace(shutdown=lambda: calls.append("engine core")))
    shutdown_engine(SimpleNamespace(llm_engine=engine))  # V1 engines: the engine core client ends its processes
    engine.shutdown = lambda: calls.append("engine")
    shutdown_engine(SimpleNamespace(llm_engine=engine))
    shutdown_engine(SimpleNamespace(llm_engine=engine, shutdown=lambda: calls.append("LLM")))
    assert calls == ["engine core", "engine", "LLM"]


def test_fewer_gpus_than_the_model_is_split_over_is_refused_with_the_fix():
    import torch

    with pytest.raises(BackendUnavailableError, match=f"torch sees {torch.cuda.device_count()}: .*VLLM_TENSOR"):
        check_devices(torch.cuda.device_count() + 1)
