"""The transformers backend on the nano tiny model: batching, seeding, stop strings, logprobs, KV prefix reuse."""

import pytest

from workers.llm.base import SamplingParams
from workers.llm.transformers_backend import TransformersBackend

SAMPLED = SamplingParams(n=3, max_tokens=12, temperature=1.0, seed=7)
GREEDY = SamplingParams(n=1, max_tokens=12, temperature=0)


def texts(results):
    return [[s.text for s in samples] for samples in results]


def assert_same_samples(a, b, tolerance=1e-4):
    assert texts(a) == texts(b)
    for samples_a, samples_b in zip(a, b):
        for x, y in zip(samples_a, samples_b):
            assert x.token_ids == y.token_ids
            assert x.finish_reason == y.finish_reason
            assert x.token_logprobs == pytest.approx(y.token_logprobs, abs=tolerance)


@pytest.fixture(scope="module")
def no_reuse(tiny_model_dir):
    return TransformersBackend(str(tiny_model_dir), batch_size=16, prefix_reuse=False, num_threads=1)


def test_n_samples_for_each_prompt_of_a_batch(backend, prompts):
    lengths = {len(backend.encode(p)) for p in prompts}
    assert len(lengths) == len(prompts) > 2  # different lengths: left padding is exercised
    results = backend.generate(prompts, SAMPLED)
    assert len(results) == len(prompts)
    for samples in results:
        assert len(samples) == SAMPLED.n
        for sample in samples:
            assert 0 < len(sample.token_ids) <= SAMPLED.max_tokens or sample.finish_reason == "stop"
            assert len(sample.token_logprobs) == len(sample.token_ids)
            assert all(lp <= 0 for lp in sample.token_logprobs)
            assert sample.finish_reason in ("stop", "length")
            assert 0 < sample.prior <= 1
    assert backend.last_stats["generated_tokens"] == sum(len(s.token_ids) for r in results for s in r)


def test_a_prompts_samples_do_not_depend_on_the_rest_of_the_batch(backend, prompts):
    batched = backend.generate(prompts, SAMPLED)
    for prompt, samples in zip(prompts, batched):
        assert_same_samples(backend.generate([prompt], SAMPLED), [samples])
    reordered = backend.generate(prompts[::-1], SAMPLED)
    assert_same_samples(reordered[::-1], batched)


def test_greedy_alone_equals_batched(backend, no_reuse, prompts):
    batched = backend.generate(prompts, GREEDY)
    for prompt, samples in zip(prompts, batched):
        assert_same_samples(backend.generate([prompt], GREEDY), [samples])
        assert_same_samples(no_reuse.generate([prompt], GREEDY), [samples])


def test_same_seed_same_samples_other_seed_other_samples(backend, prompts):
    first = backend.generate(prompts, SAMPLED)
    assert_same_samples(backend.generate(prompts, SAMPLED), first, tolerance=0)
    other = backend.generate(prompts, SamplingParams(n=3, max_tokens=12, temperature=1.0, seed=8))
    assert texts(other) != texts(first)
    # Within a call the n samples of a prompt differ too (a random model rarely repeats 12 tokens).
    assert all(len(set(t)) > 1 for t in texts(first))


def test_no_seed_gives_fresh_samples(backend, prompts):
    params = SamplingParams(n=2, max_tokens=12, temperature=1.0)
    assert texts(backend.generate(prompts[:2], params)) != texts(backend.generate(prompts[:2], params))


def test_a_repeated_prompt_gets_other_samples_and_its_first_copy_those_of_the_prompt_alone(backend, prompts):
    results = backend.generate([prompts[0], prompts[0]], SAMPLED)
    assert texts(results)[0] != texts(results)[1]
    assert_same_samples(results[:1], backend.generate([prompts[0]], SAMPLED))


def test_tiny_top_p_is_greedy(backend, prompts):
    nucleus = backend.generate(prompts, SamplingParams(n=2, max_tokens=12, temperature=1.0, top_p=1e-6, seed=3))
    greedy = backend.generate(prompts, GREEDY)
    for samples, (best,) in zip(nucleus, greedy):
        assert [s.text for s in samples] == [best.text, best.text]


@pytest.mark.parametrize("stop_length", [1, 2, 6])
def test_stop_strings_cut_the_text_and_its_logprobs(backend, prompts, stop_length):
    free = backend.generate(prompts, SAMPLED)
    # A stop string taken from the middle of one sample's text: that sample must end right before it.
    sample = max((s for r in free for s in r), key=lambda s: len(s.text))
    stop = sample.text[len(sample.text) // 3 :][:stop_length]
    assert len(stop) == stop_length
    params = SamplingParams(n=3, max_tokens=12, temperature=1.0, seed=7, stop=("\x00never", stop))
    stopped = backend.generate(prompts, params)
    assert any(s.finish_reason == "stop" and s.text != t.text for r, q in zip(stopped, free) for s, t in zip(r, q))
    for free_samples, stopped_samples in zip(free, stopped):
        for before, after in zip(free_samples, stopped_samples):
            cut = before.text.find(stop)
            if cut < 0:
                assert after.text == before.text
                continue
            assert after.text == before.text[:cut]
            assert after.finish_reason == "stop"
            kept = len(after.token_ids)
            assert after.token_ids == before.token_ids[:kept]
            assert after.token_logprobs == pytest.approx(before.token_logprobs[:kept], abs=1e-6)
            assert len(backend.decode(after.token_ids)) >= cut  # the kept tokens cover the text
            assert kept == 0 or len(backend.decode(after.token_ids[:-1])) < cut  # and no more


def test_generated_logprobs_equal_teacher_forced_scores(backend, prompts):
    results = backend.generate(prompts, SamplingParams(n=8, max_tokens=6, temperature=1.0, seed=0))
    pairs = [(p, s) for p, samples in zip(prompts, results) for s in samples]
    # Token for token: generate's incremental logprobs are score's teacher-forced ones.
    scored = backend.score_ids([backend.encode(p) for p, _ in pairs], [s.token_ids for _, s in pairs])
    for (_, sample), logprobs in zip(pairs, scored):
        assert logprobs == pytest.approx(sample.token_logprobs, abs=1e-4)
    # Text for text, where the text re-encodes to the sampled tokens (random models often sample
    # non-canonical token sequences, which score() cannot reproduce from text).
    canonical = [(p, s) for p, s in pairs if backend.encode(s.text) == s.token_ids]
    assert len(canonical) >= 3
    scored = backend.score([p for p, _ in canonical], [s.text for _, s in canonical])
    for (_, sample), logprobs in zip(canonical, scored):
        assert logprobs == pytest.approx(sample.token_logprobs, abs=1e-4)


def test_score_is_batch_independent_and_empty_continuations_score_nothing(backend, prompts):
    continuations = ["[get_weather(city='Paris')]", "", "Hello there."]
    together = backend.score(prompts[:3], continuations)
    assert together[1] == []
    for prompt, continuation, logprobs in zip(prompts, continuations, together):
        assert backend.score([prompt], [continuation])[0] == pytest.approx(logprobs, abs=1e-5)
        assert len(logprobs) == len(backend.encode(continuation))
        assert all(lp <= 0 for lp in logprobs)


def test_prefix_reuse_gives_the_same_greedy_output_with_fewer_prefill_tokens(backend, no_reuse, prompts):
    # MCTS-shaped: several nodes of each tree share the rendered query and earlier fragments.
    nodes = [p + fragment for p in prompts[:3] for fragment in ("", "[get_", "[get_weather(city=", "[calc")]
    params = SamplingParams(n=2, max_tokens=10, temperature=0)
    reused = backend.generate(nodes, params)
    plain = no_reuse.generate(nodes, params)
    assert_same_samples(reused, plain)
    assert backend.last_stats["prefill_tokens"] < no_reuse.last_stats["prefill_tokens"] / 4
    sampled = SamplingParams(n=3, max_tokens=10, temperature=1.0, seed=5)
    assert_same_samples(backend.generate(nodes, sampled), no_reuse.generate(nodes, sampled))


def test_plan_groups_shared_prefixes_and_respects_the_batch_size(backend, prompts):
    base = backend.encode(prompts[0])
    other = backend.encode(prompts[1])
    prompt_ids = [base + [5, 6], other, base + [7], base + [5, 6]]
    batches = backend.plan(prompt_ids, n=3)
    rows = sorted(r for batch in batches for group in batch for member in group.rows for r in member)
    assert rows == list(range(12))
    for batch in batches:
        assert sum(group.row_count for group in batch) <= backend.batch_size
    groups = [group for batch in batches for group in batch]
    shared = next(g for g in groups if len(g.suffixes) == 2)  # the two distinct prompts that extend base
    assert shared.prefix == base
    assert sorted(shared.suffixes) == [[5, 6], [7]]
    assert sorted(len(rs) for rs in shared.rows) == [3, 6]  # the repeated prompt feeds both copies' samples
    small = TransformersBackend.__new__(TransformersBackend)
    small.batch_size, small.prefix_reuse, small.min_shared_prefix = 4, True, 16
    batches = small.plan(prompt_ids, n=3)
    assert all(sum(g.row_count for g in batch) <= 4 for batch in batches)
    assert sorted(r for b in batches for g in b for m in g.rows for r in m) == list(range(12))


def test_long_and_empty_prompts_are_refused(backend):
    with pytest.raises(ValueError, match="empty"):
        backend.generate([""], GREEDY)
    with pytest.raises(ValueError, match="at most 512"):
        backend.generate(["word " * 600], GREEDY)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        backend.score(["a", "b"], ["c"])
