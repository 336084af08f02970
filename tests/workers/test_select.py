"""Selection: which queries a round searches."""

import math

import pytest

from rewards.checker import Checker
from tests.factories import AnsweringBackend
from workers.select import SelectionConfig, choose, pass_rates, perplexities


def test_perplexity_keeps_the_hardest_ratio():
    scores = [1.5, 9.0, 3.0, 7.0, 2.0, 8.0, 1.1, 4.0, 6.0, 5.0]
    chosen = choose(scores, SelectionConfig(ratio=0.3))
    assert [s for s, c in zip(scores, chosen) if c] == [9.0, 7.0, 8.0]


def test_pass_rate_keeps_the_ones_under_the_threshold_and_the_cap_keeps_the_weakest():
    rates = [1.0, 0.25, 0.0, 0.5, 0.75, 0.25]
    assert choose(rates, SelectionConfig(method="pass_rate", threshold=0.5)) == [False, True, True, False, False, True]
    capped = choose(rates, SelectionConfig(method="pass_rate", threshold=0.5, max_queries=2))
    assert capped == [False, True, True, False, False, False]  # 0.0 first, then the earlier 0.25
    assert sum(choose(list(range(100)), SelectionConfig(ratio=0.3, max_queries=5))) == 5


@pytest.mark.parametrize("bad", [{"method": "random"}, {"ratio": 0}, {"k": 0}, {"threshold": 2}, {"max_queries": 0}])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        SelectionConfig(**bad)


def test_perplexity_of_the_reference_answer(tiny_model_dir):
    from workers.llm.transformers_backend import TransformersBackend

    backend = TransformersBackend(str(tiny_model_dir), num_threads=1)
    prompts = ["<|im_start|>user\\nWeather in Paris?<|im_end|>\\n<|im_start|>assistant\\n"] * 2
    answers = ["[get_current_weather(city='Paris')]", "[get_current_weather(city='Paris')]"]
    seen = []
    ppl = perplexities(backend, prompts, answers, batch_size=1, progress=seen.append)
    assert seen == [{"done": 1, "total": 2}, {"done": 2, "total": 2}]  # cumulative, after each batch
    logprobs = backend.score(prompts[:1], answers[:1])[0]
    assert ppl[0] == ppl[1] == pytest.approx(math.exp(-sum(logprobs) / len(logprobs)))
    assert ppl[0] > 1.0


def test_pass_rate_floor_keeps_only_the_queries_solved_sometimes():
    rates = [1.0, 0.25, 0.0, 0.5, 0.75, 0.125, 0.0]
    config = SelectionConfig(method="pass_rate", k=8, threshold=1.0, min_rate=0.125)
    assert choose(rates, config) == [False, True, False, True, True, True, False]
    capped = choose(rates, SelectionConfig(method="pass_rate", k=8, threshold=1.0, min_rate=0.125, max_queries=2))
    assert capped == [False, True, False, False, False, True, False]  # the rarest solved first: 0.125, 0.25


@pytest.mark.parametrize(
    "bad", [{"min_rate": -0.1}, {"min_rate": 0.5, "threshold": 0.5}, {"min_rate": 0.6, "threshold": 0.5}]
)
def test_a_floor_at_or_over_the_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="min_rate"):
        SelectionConfig(method="pass_rate", **bad)


def test_candidates_are_a_seeded_sample_in_order():
    from workers.select import SelectionConfig, candidate_indices

    picked = candidate_indices(100, SelectionConfig(method="pass_rate", candidates=10, seed=3))
    assert len(picked) == 10 == len(set(picked)) and picked == sorted(picked) and max(picked) < 100
    assert picked == candidate_indices(100, SelectionConfig(method="pass_rate", candidates=10, seed=3))
    assert picked != candidate_indices(100, SelectionConfig(method="pass_rate", candidates=10, seed=4))
    assert candidate_indices(5, SelectionConfig(candidates=10)) == [0, 1, 2, 3, 4]
    assert candidate_indices(5, SelectionConfig()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="candidates must be at least 1"):
        SelectionConfig(candidates=0)


def test_pass_rates_report_cumulative_progress():
    tool = {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}}
    checkers = [Checker([{"ping": {}}], [tool])] * 5
    seen = []
    rates = pass_rates(
        AnsweringBackend(lambda p: "[ping()]" if p == "right" else "no"),
        ["right", "wrong", "right", "wrong", "right"],
        checkers,
        SelectionConfig(method="pass_rate", k=2, batch_size=2),
        progress=seen.append,
    )
    assert rates == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert seen == [{"done": 2, "total": 5}, {"done": 4, "total": 5}, {"done": 5, "total": 5}]
