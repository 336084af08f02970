"""The generation interface every backend implements: batched prompts in, n samples each out, with logprobs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


class BackendUnavailableError(RuntimeError):
    """A backend whose engine cannot run here (e.g. vLLM on a machine without it)."""


# A prompt is text, or token ids to continue exactly as they are (no tokenizing, so nothing merges across the
# end of the prompt): the tree search continues a node from the ids its path was sampled as (docs/token-ids.md).
Prompt = str | list[int]


@dataclass(frozen=True)
class SamplingParams:
    """Per-call sampling settings (engine settings such as the model path live on the backend)."""

    n: int = 1  # samples per prompt
    max_tokens: int = 64  # new tokens per sample
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # generation ends before any of these strings
    seed: int | None = None  # same seed, same prompts → same samples (per backend)

    def __post_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be a positive integer, got {self.n!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not 0 <= self.temperature <= 10:
            raise ValueError(f"temperature must be in [0, 10], got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))


@dataclass
class Sample:
    """One sampled continuation: its text and the logprob of each generated token."""

    text: str
    token_logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"  # "stop" (EOS or a stop string) or "length"
    token_ids: list[int] = field(default_factory=list)  # the tokens behind token_logprobs, when the backend knows them

    @property
    def mean_logprob(self) -> float:
        return sum(self.token_logprobs) / len(self.token_logprobs) if self.token_logprobs else 0.0

    @property
    def prior(self) -> float:
        """exp(mean token logprob): the MCTS prior of a fragment (iTool)."""
        return math.exp(self.mean_logprob)


class BaseBackend:
    """A policy model behind one interface. Subclasses implement `generate` and `score`."""

    name = ""
    # Whether `encode` and `decode` run in the caller's process, so that they never wait behind a `generate` call
    # made from another thread (the search overlaps the two): IsolatedBackend says when they do not.
    converts_here = True

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
        """For each prompt (text, or token ids), `params.n` samples continuing it (the prompt is not repeated)."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int] | None:
        """The policy's token ids of `text` (no special tokens added); None when the tokenizer is not here
        (a remote server), in which case callers prompt with text and samples may carry no token ids."""
        return None

    def decode(self, token_ids: list[int]) -> str:
        """The text of `token_ids`, special tokens kept (so that `encode` gives them back). Backends whose
        `encode` returns ids implement it."""
        raise NotImplementedError(f"{type(self).__name__} cannot decode token ids")

    def score(self, prompts: list[str], continuations: list[str]) -> list[list[float]]:
        """Logprob of each token of each continuation given its prompt (perplexity selection)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the model (GPU memory, server connections)."""
