"""Generation with a transformers causal LM (CPU or GPU): batched sampling, shared-prefix KV reuse, scoring.

How a `generate` call runs:

1. **Plan.** Every prompt is tokenized once. Identical prompts are merged, the distinct ones sorted by token
   ids, and runs of neighbours that share at least `min_shared_prefix` tokens form a *prefix group* (MCTS
   nodes of one tree share the rendered query plus earlier fragments). Groups are packed into decode batches
   of at most `batch_size` rows, where a row is one sample (n rows per prompt).
2. **Prefill.** For each group the shared prefix runs once (batch 1); its KV cache is repeated to the group's
   distinct prompts, which then run only their own suffixes (padded between prefix and suffix; the attention
   mask hides the pads and position ids skip them); the result is repeated to each prompt's n sample rows.
   The groups' caches are then left-padded to one length and concatenated into the decode batch. With
   `prefix_reuse=False` every row runs its whole prompt in one left-padded batch (the baseline).
3. **Decode.** A plain loop: one token per live row per step, finished rows dropped from the cache.

Sampling: temperature, then top-p (over the distribution sorted by probability; skipped at top_p=1), then
inverse-CDF with one uniform number per row drawn from that row's own `torch.Generator`, seeded from (seed,
prompt text, occurrence of that prompt in the call, sample index). A prompt's samples therefore do not depend
on what else is in the batch, on its position in it, or on `batch_size` (up to float rounding in batched
matmuls).

Logprobs are those of the policy: log-softmax of the raw logits (before temperature and top-p), for each token
of the returned text, as `score()` computes them by teacher forcing and as vLLM reports by default. The EOS
token ends a sample and is neither in its text nor in its logprobs; a stop string cuts the text where it
starts and the logprobs after the last token needed for the kept text.
"""

from __future__ import annotations

import random
from collections import defaultdict
from contextlib import contextmanager

import torch

from .base import BackendUnavailableError, BaseBackend, Prompt, Sample, SamplingParams
from .batching import PrefixGroup, Row, common_prefix_length, growing_cache, sample_seed
from .tokens import decode_ids, encode_text, load_tokenizer


def check_device(device: torch.device) -> None:
    """Refuse a CUDA device that is not there before loading anything, saying what to change."""
    if device.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.backends.cuda.is_built() else 0
    if (device.index or 0) < count:
        return
    seen = "this torch is a CPU build" if not torch.backends.cuda.is_built() else f"torch sees {count} CUDA device(s)"
    raise BackendUnavailableError(
        f"device {str(device)!r} is not available here ({seen}): generate on the CPU (device 'cpu'; for the app's "
        "stages GENERATION_DEVICE=cpu), or on a GPU machine with a CUDA build of torch "
        "(requirements-gpu.txt) and the device visible (CUDA_VISIBLE_DEVICES)"
    )


class TransformersBackend(BaseBackend):
    """A local `AutoModelForCausalLM` behind the backend interface."""

    name = "transformers"

    def __init__(
        self,
        model_path: str,
        device: str = "cpu",
        dtype: str | torch.dtype = "float32",  # float32 on CPU; bfloat16 is the usual choice on a GPU
        batch_size: int = 64,  # rows (samples) decoded together; bounded by memory
        prefix_reuse: bool = True,  # run shared prompt prefixes once (see the module docstring)
        min_shared_prefix: int = 16,  # tokens neighbours must share to be prefilled as one group
        attn_implementation: str | None = None,  # None = transformers' default (sdpa)
        num_threads: int | None = None,  # torch intra-op threads during calls; None = torch's setting.
        # A tiny model's ops are too small to split: 1 thread is faster, and far faster on a loaded machine.
    ):
        from transformers import AutoModelForCausalLM

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.device = torch.device(device)
        check_device(self.device)
        self.batch_size = batch_size
        self.prefix_reuse = prefix_reuse
        self.min_shared_prefix = max(1, min_shared_prefix)
        self.num_threads = num_threads
        self.tokenizer = load_tokenizer(model_path)
        torch_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        kwargs = {"dtype": torch_dtype}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        self.model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.eos_token_ids = frozenset(eos)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else (min(eos) if eos else 0)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        # What the last generate() computed, for benchmarks: prompt tokens run through the model, tokens sampled.
        self.last_stats: dict[str, int] = {}

    # --- tokens ------------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return encode_text(self.tokenizer, text)

    def decode(self, token_ids: list[int]) -> str:
        return decode_ids(self.tokenizer, token_ids)  # special tokens kept: the text re-encodes to the same ids

    @contextmanager
    def _threads(self):
        if self.num_threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    # --- generate ----------------------------------------------------------------------------------------
    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
        with self._threads(), torch.inference_mode():
            return self._generate(prompts, params)

    def _generate(self, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
        prompt_ids = [self.encode(p) if isinstance(p, str) else list(p) for p in prompts]
        for i, ids in enumerate(prompt_ids):
            if not ids:
                raise ValueError(f"prompt {i} is empty")
            if len(ids) >= self.max_positions:
                raise ValueError(f"prompt {i} has {len(ids)} tokens; the model takes at most {self.max_positions}")
        base_seed = params.seed if params.seed is not None else random.SystemRandom().getrandbits(63)
        rows: list[Row] = []
        seen: dict[str, int] = defaultdict(int)
        for i, prompt in enumerate(prompts):
            key = prompt if isinstance(prompt, str) else self.decode(prompt)
            occurrence = seen[key]
            seen[key] += 1
            for j in range(params.n):
                rows.append(Row(i, j, len(prompt_ids[i]), sample_seed(base_seed, key, occurrence, j)))
        self.last_stats = {"prefill_tokens": 0, "generated_tokens": 0}
        for batch in self.plan(prompt_ids, params.n):
            self._run_batch(batch, rows, params)
        self.last_stats["generated_tokens"] = sum(len(r.token_ids) for r in rows)
        out: list[list[Sample]] = [[None] * params.n for _ in prompts]  # type: ignore[list-item]
        for row in rows:
            out[row.prompt_index][row.sample_index] = Sample(
                text=row.text,
                token_logprobs=row.logprobs,
                finish_reason=row.finish_reason,
                token_ids=row.token_ids,
            )
        return out

    def plan(self, prompt_ids: list[list[int]], n: int) -> list[list[PrefixGroup]]:
        """Decode batches of prefix groups; row k*n + j is sample j of prompt k."""
        rows_of = [list(range(k * n, (k + 1) * n)) for k in range(len(prompt_ids))]
        if not self.prefix_reuse:
            # Baseline: every row is its own sequence, the whole prompt prefilled (left padding only).
            flat = [(prompt_ids[k], [r]) for k in range(len(prompt_ids)) for r in rows_of[k]]
            return [
                [
                    PrefixGroup(
                        [],
                        [ids for ids, _ in flat[s : s + self.batch_size]],
                        [rs for _, rs in flat[s : s + self.batch_size]],
                    )
                ]
                for s in range(0, len(flat), self.batch_size)
            ]
        # Distinct prompts, with all the rows they feed, in token order so that shared prefixes are adjacent.
        members: dict[tuple[int, ...], list[int]] = {}
        for k, ids in enumerate(prompt_ids):
            members.setdefault(tuple(ids), []).extend(rows_of[k])
        distinct = sorted(members)
        # A prompt with more samples than a batch holds is split into batch-sized pieces.
        pieces = [
            (list(ids), rs[s : s + self.batch_size])
            for ids in distinct
            for rs in [members[ids]]
            for s in range(0, len(rs), self.batch_size)
        ]
        groups: list[list[tuple[list[int], list[int]]]] = []
        for ids, rs in pieces:
            current = groups[-1] if groups else None
            if (
                current
                and sum(len(r) for _, r in current) + len(rs) <= self.batch_size
                and common_prefix_length(current[0][0], ids) >= self.min_shared_prefix
            ):
                current.append((ids, rs))
            else:
                groups.append([(ids, rs)])
        batches: list[list[PrefixGroup]] = []
        batch_rows = 0
        for group in groups:
            # Sorted order: the first and last member bound the group's common prefix. Keep one token back
            # so that every member has a suffix whose last position gives the first logits.
            shared = common_prefix_length(group[0][0], group[-1][0])
            shared = min(shared, min(len(ids) for ids, _ in group) - 1)
            prefix_group = PrefixGroup(
                group[0][0][:shared], [ids[shared:] for ids, _ in group], [rs for _, rs in group]
            )
            if not batches or batch_rows + prefix_group.row_count > self.batch_size:
                batches.append([])
                batch_rows = 0
            batches[-1].append(prefix_group)
            batch_rows += prefix_group.row_count
        return batches

    def _prefill(self, group: PrefixGroup):
        """Run a group's prompts: returns (cache, attention mask, next positions, last logits), one row per sample."""
        from transformers import DynamicCache

        cache = DynamicCache()
        prefix_len = len(group.prefix)
        members = len(group.suffixes)
        if prefix_len:
            prefix = torch.tensor([group.prefix], device=self.device)
            self.model(
                input_ids=prefix,
                position_ids=torch.arange(prefix_len, device=self.device)[None],
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            cache.batch_repeat_interleave(members)
            self.last_stats["prefill_tokens"] += prefix_len
        width = max(len(s) for s in group.suffixes)
        input_ids = torch.full((members, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((members, prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for m, suffix in enumerate(group.suffixes):
            input_ids[m, width - len(suffix) :] = torch.tensor(suffix)
            mask[m, prefix_len + width - len(suffix) :] = 1
        self.last_stats["prefill_tokens"] += sum(len(s) for s in group.suffixes)
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions[:, prefix_len:],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        # Each member's state is repeated to its sample rows.
        repeat = torch.tensor([m for m, rs in enumerate(group.rows) for _ in rs], device=self.device)
        cache = out.past_key_values
        cache.batch_select_indices(repeat)
        return cache, mask[repeat], positions[repeat, -1] + 1, out.logits[repeat, -1, :]

    def _merge(self, states):
        """Left-pad the groups' caches and masks to one length and stack them into one decode cache with
        room to grow (`_growing_cache`), so decoding appends in place instead of copying every step."""
        length = max(mask.shape[1] for _, mask, _, _ in states)
        layers = []
        for layer in range(len(states[0][0].layers)):
            keys, values = [], []
            for cache, _mask, _, _ in states:
                k, v = cache.layers[layer].keys, cache.layers[layer].values  # (rows, kv_heads, time, head_dim)
                pad = length - k.shape[2]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            layers.append((torch.cat(keys), torch.cat(values)))
        masks = torch.cat([torch.nn.functional.pad(mask, (length - mask.shape[1], 0)) for _, mask, _, _ in states])
        positions = torch.cat([p for _, _, p, _ in states])
        logits = torch.cat([lg for _, _, _, lg in states])
        return growing_cache(layers), masks, positions, logits

    def _run_batch(self, batch: list[PrefixGroup], rows: list[Row], params: SamplingParams) -> None:
        cache, mask, positions, logits = self._merge([self._prefill(group) for group in batch])
        live = [rows[r] for group in batch for rs in group.rows for r in rs]  # order of the decode batch
        generators = [torch.Generator().manual_seed(row.seed) for row in live]
        stop_strings = tuple(s for s in params.stop if s)
        for _ in range(params.max_tokens):
            logprobs = torch.log_softmax(logits.float(), dim=-1)  # (rows, vocab): the policy's logprobs
            tokens = self._choose(logits.float(), params, generators)
            chosen_logprobs = logprobs.gather(1, tokens[:, None])[:, 0].tolist()
            keep = []
            for b, (row, token, logprob) in enumerate(zip(live, tokens.tolist(), chosen_logprobs)):
                if token in self.eos_token_ids:
                    row.finish_reason = "stop"
                    continue
                row.token_ids.append(token)
                row.logprobs.append(logprob)
                if stop_strings and self._cut_at_stop(row, stop_strings):
                    row.finish_reason = "stop"
                    continue
                generated = len(row.token_ids)
                if generated >= params.max_tokens or row.prompt_length + generated >= self.max_positions:
                    row.finish_reason = "length"
                    continue
                keep.append(b)
            if not keep:
                break
            if len(keep) < len(live):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, positions, tokens = mask[index], positions[index], tokens[index]
                live = [live[b] for b in keep]
                generators = [generators[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
            out = self.model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=positions[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            positions = positions + 1
        for row in (rows[r] for group in batch for rs in group.rows for r in rs):
            if row.text is None:
                row.text = self.decode(row.token_ids)

    def _choose(self, logits: torch.Tensor, params: SamplingParams, generators: list[torch.Generator]) -> torch.Tensor:
        """One token per row: argmax at temperature 0, else temperature + top-p + inverse-CDF sampling."""
        if params.temperature == 0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1:
            # Keep the smallest head of the distribution whose mass reaches top_p (always the first token).
            probs, token_order = probs.sort(dim=-1, descending=True, stable=True)
            before = probs.cumsum(dim=-1) - probs
            probs = probs * (before < params.top_p)
        else:
            token_order = None  # no truncation: sample over the vocabulary in id order, no sort needed
        cumulative = probs.cumsum(dim=-1)
        uniform = torch.tensor([torch.rand((), generator=g).item() for g in generators], device=logits.device)
        threshold = (uniform * cumulative[:, -1])[:, None]
        position = torch.searchsorted(cumulative, threshold, right=True).clamp(max=logits.shape[-1] - 1)
        return (position if token_order is None else token_order.gather(1, position))[:, 0]

    def _cut_at_stop(self, row: Row, stop_strings: tuple[str, ...]) -> bool:
        """If the row's text now holds a stop string: cut text and tokens there and return True."""
        # Stop strings are looked for after every token, so a new one ends in the newest token: a window of
        # the last tokens is enough (4 per character covers byte-level tokens splitting a UTF-8 character).
        window = 4 * max(len(s) for s in stop_strings) + 4
        tail = self.decode(row.token_ids[-window:])
        if not any(s in tail for s in stop_strings):
            return False
        text = self.decode(row.token_ids)
        cuts = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
        if not cuts:
            return False
        cut = min(cuts)
        # Keep the fewest tokens whose text covers text[:cut]; a token straddling the cut stays.
        keep = len(row.token_ids)
        while keep > 0 and len(self.decode(row.token_ids[: keep - 1])) >= cut:
            keep -= 1
        del row.token_ids[keep:], row.logprobs[keep:]
        row.text = text[:cut]
        return True

    # --- score -------------------------------------------------------------------------------------------
    def score(self, prompts: list[str], continuations: list[str]) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        return self.score_ids([self.encode(p) for p in prompts], [self.encode(c) for c in continuations])

    def score_ids(self, prompt_ids: list[list[int]], continuation_ids: list[list[int]]) -> list[list[float]]:
        """Logprob of each continuation token given the prompt and the tokens before it (teacher forcing)."""
        with self._threads(), torch.inference_mode():
            return self._score_ids(prompt_ids, continuation_ids)

    def _score_ids(self, prompt_ids: list[list[int]], continuation_ids: list[list[int]]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in prompt_ids]
        work = []
        for i, (p, c) in enumerate(zip(prompt_ids, continuation_ids)):
            if not p:
                raise ValueError(f"prompt {i} is empty: the first token has nothing to be predicted from")
            if len(p) + len(c) > self.max_positions:
                raise ValueError(
                    f"prompt {i} + continuation is {len(p) + len(c)} tokens; the model takes "
                    f"at most {self.max_positions}"
                )
            if c:
                work.append(i)
        for s in range(0, len(work), self.batch_size):
            chunk = work[s : s + self.batch_size]
            sequences = [prompt_ids[i] + continuation_ids[i] for i in chunk]
            width = max(len(seq) for seq in sequences)
            input_ids = torch.full((len(chunk), width), self.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for b, seq in enumerate(sequences):
                input_ids[b, width - len(seq) :] = torch.tensor(seq)
                mask[b, width - len(seq) :] = 1
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            longest = max(len(continuation_ids[i]) for i in chunk)
            # Logits at position t predict token t+1: keep the last `longest` + 1 positions only.
            logits = self.model(
                input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=longest + 1
            ).logits[:, :-1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            targets = input_ids[:, width - longest :]
            token_logprobs = logprobs.gather(2, targets[..., None])[..., 0]  # (batch, longest)
            for b, i in enumerate(chunk):
                results[i] = token_logprobs[b, longest - len(continuation_ids[i]) :].tolist()
        return results

    def close(self) -> None:
        self.model = None
