"""Generation with vLLM's offline engine on a GPU (prefix caching on): the `requirements-gpu.txt` extra.

vLLM is imported inside the constructor only: its wheels are CUDA builds that pin their own torch, so it is
absent on CPU machines and CI. The translation of sampling parameters and of vLLM's outputs lives in small
pure functions below, tested without vLLM on objects shaped like its `RequestOutput`.

Differences from the transformers backend: logprobs are vLLM's (raw-logit logprobs by default, the same
quantity); the EOS token's logprob is dropped so that, as there, logprobs stop at the returned text, but after
a stop string vLLM keeps the logprobs of the tokens that formed it. `score()` passes token ids (prompt and
continuation tokenized apart, as the transformers backend does) and reads `prompt_logprobs`; vLLM computes
prompt logprobs without reading the prefix cache, so scoring does not profit from it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import BackendUnavailableError, BaseBackend, Prompt, Sample, SamplingParams
from .tokens import decode_ids, encode_text
from .vllm_shapes import vllm_shapes_check


def sampling_kwargs(params: SamplingParams) -> dict:
    """Keyword arguments of `vllm.SamplingParams` for our params (logprobs=0: the sampled token's only)."""
    return {
        "n": params.n,
        "temperature": params.temperature,  # vLLM treats 0 as greedy, as we do
        "top_p": params.top_p,
        "max_tokens": params.max_tokens,
        "stop": list(params.stop),
        "seed": params.seed,  # per request: a prompt's samples do not depend on the rest of the batch
        "logprobs": 0,
    }


def score_sampling_kwargs() -> dict:
    """Keyword arguments of `vllm.SamplingParams` for scoring: the prompt's own logprobs, one throwaway token."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 0}


def samples_from_request_output(output, eos_token_ids: Iterable[int] = ()) -> list[Sample]:
    """A vLLM `RequestOutput` → our Samples, in completion index order."""
    eos = frozenset(eos_token_ids)
    samples = []
    for completion in sorted(output.outputs, key=lambda c: c.index):
        token_ids = list(completion.token_ids)
        logprobs = [step[token].logprob for step, token in zip(completion.logprobs or [], token_ids)]
        finish = completion.finish_reason or "length"
        if finish == "stop" and completion.stop_reason is None and token_ids and token_ids[-1] in eos:
            token_ids, logprobs = token_ids[:-1], logprobs[:-1]  # the EOS token is not part of the text
        samples.append(Sample(text=completion.text, token_logprobs=logprobs, finish_reason=finish, token_ids=token_ids))
    return samples


def continuation_logprobs(output, continuation_length: int) -> list[float]:
    """The logprobs of the last `continuation_length` prompt tokens of a `RequestOutput` with prompt_logprobs."""
    if continuation_length == 0:
        return []
    token_ids = list(output.prompt_token_ids)
    steps = output.prompt_logprobs
    if steps is None or len(steps) != len(token_ids):
        raise ValueError("the output carries no prompt logprobs (was prompt_logprobs set?)")
    start = len(token_ids) - continuation_length
    if start < 1:
        raise ValueError("the prompt must have at least one token before the continuation")
    return [steps[i][token_ids[i]].logprob for i in range(start, len(token_ids))]


def check_devices(tensor_parallel_size: int) -> None:
    """Refuse to start a CUDA vLLM with fewer visible GPUs than the model is split over, saying what to change."""
    import torch

    try:
        from vllm.platforms import current_platform

        device_type = getattr(current_platform, "device_type", "cuda")
    except ImportError:
        device_type = "cuda"
    if device_type not in ("", "cuda"):  # a vLLM built for another device (CPU, TPU, XPU) checks its own
        return
    count = torch.cuda.device_count()
    if count >= tensor_parallel_size:
        return
    raise BackendUnavailableError(
        f"the vllm backend needs {tensor_parallel_size} CUDA device(s) (tensor_parallel_size) and torch sees {count}: "
        "run it on a GPU machine with the devices visible (CUDA_VISIBLE_DEVICES), lower VLLM_TENSOR_PARALLEL_SIZE, "
        "or generate with the transformers backend (GENERATION_BACKEND=transformers)"
    )


class VLLMBackend(BaseBackend):
    """vLLM's `LLM` behind the backend interface."""

    name = "vllm"

    def __init__(
        self,
        model_path: str,
        tensor_parallel_size: int = 1,  # GPUs per model (vLLM's default)
        gpu_memory_utilization: float = 0.85,  # vLLM's default is 0.9; leave room for a trainer's process
        max_model_len: int | None = None,  # None = the model's own limit
        enable_prefix_caching: bool = True,  # MCTS nodes share long prefixes (DESIGN.md, Search)
        seed: int = 0,  # engine seed (vLLM's default); per-call seeds come with SamplingParams
        dtype: str = "auto",
    ):
        try:
            from vllm import LLM
            from vllm import SamplingParams as VLLMSamplingParams
        except ImportError as exc:
            raise BackendUnavailableError(
                "the vllm backend needs vLLM, which is not installed here: install requirements-gpu.txt on a "
                "GPU machine (vLLM wheels are CUDA builds)"
            ) from exc
        check_devices(tensor_parallel_size)
        self._sampling_params = VLLMSamplingParams
        # A model vLLM's attention backends refuse fails here, naming the fix, not deep inside engine start-up.
        vllm_shapes_check(model_path, tensor_parallel_size=tensor_parallel_size, dtype=dtype)
        self.llm = LLM(
            model=model_path,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            dtype=dtype,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_token_ids = _eos_token_ids(model_path, self.tokenizer)

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
        requests = [p if isinstance(p, str) else {"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, self._sampling_params(**sampling_kwargs(params)), use_tqdm=False)
        return [samples_from_request_output(output, self.eos_token_ids) for output in outputs]

    def score(self, prompts: list[str], continuations: list[str]) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        pairs = [(self.encode(p), self.encode(c)) for p, c in zip(prompts, continuations)]
        requests = [{"prompt_token_ids": p + c} for p, c in pairs]
        outputs = self.llm.generate(requests, self._sampling_params(**score_sampling_kwargs()), use_tqdm=False)
        return [continuation_logprobs(output, len(c)) for output, (_, c) in zip(outputs, pairs)]

    def encode(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def decode(self, token_ids: list[int]) -> str:
        return decode_ids(self.tokenizer, token_ids)  # special tokens kept: the text re-encodes to the same ids

    def close(self) -> None:
        """Shut the engine down through vLLM's own API (its engine core processes, the distributed groups, the
        CUDA cache); `IsolatedBackend` then ends the process, which returns whatever this leaves."""
        llm, self.llm = self.llm, None
        if llm is not None:
            shutdown_engine(llm)


def shutdown_engine(llm) -> None:
    """Stop `llm`'s engine and free its GPU memory with what the installed vLLM offers: `LLM.shutdown()` where it
    exists, else its V1 engine's `shutdown()` or that engine's core client's (which ends the engine core
    processes); then `cleanup_dist_env_and_memory()` (model-parallel groups, torch.distributed, the CUDA cache)."""
    import gc

    import torch

    engine = getattr(llm, "llm_engine", None)
    for owner in (llm, engine, getattr(engine, "engine_core", None)):
        if callable(getattr(owner, "shutdown", None)):
            owner.shutdown()
            break
    try:
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory
    except ImportError:  # a vLLM without it (or none: the tests)
        cleanup_dist_env_and_memory = None
    if cleanup_dist_env_and_memory is not None:
        cleanup_dist_env_and_memory()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _eos_token_ids(model_path: str, tokenizer) -> frozenset[int]:
    """The ids that end a sample: the generation config's EOS ids and the tokenizer's."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json
        eos = None
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return frozenset(ids)
