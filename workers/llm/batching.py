"""The transformers backend's bookkeeping: prefix groups and sample rows of a decode batch, per-sample seeds, and a
KV cache that grows in place (workers/llm/transformers_backend.py describes how a generate call uses them)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch


@dataclass
class PrefixGroup:
    """Prompts prefilled together: a prefix run once, then each member's suffix, repeated to its rows."""

    prefix: list[int]  # token ids shared by every member (may be empty)
    suffixes: list[list[int]]  # the rest of each member prompt (never empty)
    rows: list[list[int]]  # for each member, the sample rows (indices into the call's rows) it feeds

    @property
    def row_count(self) -> int:
        return sum(len(r) for r in self.rows)


@dataclass
class Row:
    """One sample being generated."""

    prompt_index: int
    sample_index: int
    prompt_length: int
    seed: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str | None = None  # set when a stop string cut it; else decoded from token_ids at the end
    finish_reason: str = ""


def sample_seed(seed: int, prompt: str, occurrence: int, sample_index: int) -> int:
    """The generator seed of one sample: a hash of the call's seed, the prompt's text (a token-id prompt's
    decoded text, so that it samples as the same prompt given as text) and the sample's place."""
    key = f"{seed}\x00{occurrence}\x00{sample_index}\x00{prompt}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & (2**63 - 1)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def growing_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]):
    """A transformers Cache whose layers keep spare room along time and append in place. The default
    DynamicLayer concatenates (copies the whole cache) at every decode step: quadratic in the tokens
    generated, and the largest cost of a batched search on a small model."""
    from transformers.cache_utils import Cache, DynamicLayer

    class GrowingLayer(DynamicLayer):
        def __init__(self, keys: torch.Tensor, values: torch.Tensor):
            super().__init__()
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self._length = keys.shape[2]
            self._key_buffer = self._with_room(keys, self._length + 64)
            self._value_buffer = self._with_room(values, self._length + 64)
            self._views()

        @staticmethod
        def _with_room(tensor: torch.Tensor, capacity: int) -> torch.Tensor:
            buffer = tensor.new_empty((*tensor.shape[:2], capacity, tensor.shape[3]))
            buffer[:, :, : tensor.shape[2]] = tensor
            return buffer

        def _views(self) -> None:
            self.keys = self._key_buffer[:, :, : self._length]
            self.values = self._value_buffer[:, :, : self._length]

        def update(self, key_states, value_states, *args, **kwargs):
            new_length = self._length + key_states.shape[2]
            if new_length > self._key_buffer.shape[2]:  # out of room: double it
                self._key_buffer = self._with_room(self.keys, 2 * new_length)
                self._value_buffer = self._with_room(self.values, 2 * new_length)
            self._key_buffer[:, :, self._length : new_length] = key_states
            self._value_buffer[:, :, self._length : new_length] = value_states
            self._length = new_length
            self._views()
            return self.keys, self.values

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._key_buffer = self._key_buffer[indices]
            self._value_buffer = self._value_buffer[indices]
            self._views()

    return Cache(layers=[GrowingLayer(k, v) for k, v in layers])
