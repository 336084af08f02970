"""The batched search: one generate call per step, tree invariants, step reports, resuming after a crash."""

import math
import threading
import time
from dataclasses import asdict

import pytest

from workers.llm.base import BaseBackend, Sample
from workers.mcts.config import MCTSConfig
from workers.mcts.search import (
    CheckerScorer,
    JudgeScorer,
    call_seed,
    leaf_scorer,
    next_fragment,
    run_search,
    run_search_sequential,
)
from workers.mcts.tree import Tree

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city and day.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "date": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Local time in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
]

# Three queries: the prompt each tree continues, its ground truth, and the responses the scripted policy
# can give (a sample continues the tree's prefix with one of the responses that start with it).
QUERIES = {
    "<q1 weather in Paris>": (
        [{"get_weather": {"city": ["Paris"], "date": ["2025-01-02", ""]}}],
        [
            "[get_weather(city='Paris', date='2025-01-02')]",  # valid
            "[get_weather(city='Lyon', date='2025-01-02')]",  # wrong_value
            "[get_time(city='Paris')]",  # wrong_function
            "I cannot help with that.",
        ],  # no_call
    ),
    "<q2 time in Tokyo>": (
        [{"get_time": {"city": ["Tokyo"]}}],
        [
            "[get_time(city='Tokyo')]",
            "[get_time(city='Osaka')]",
            "[get_weather(city='Tokyo')]",
            "[get_time(city='Tokyo', date='now')]",
        ],
    ),
    "<q3 tell me a joke>": (
        [],  # no call is right
        ["I cannot tell jokes.", "[get_time(city='Paris')]"],
    ),
}


class ScriptedBackend(BaseBackend):
    """A deterministic policy: the k-th sample ever asked of a prompt is the k-th scripted response
    (cycling) that extends the prompt's assistant prefix. Samples depend on the prompt and on how many
    samples it was asked for, never on how the prompts were batched, so batched and sequential searches see
    the same samples. A fresh instance is a restarted worker."""

    name = "scripted"

    def __init__(self, queries=QUERIES, truncated=(), fail_on_call=None):
        self.queries = queries
        self.truncated = set(truncated)  # responses returned as cut off by max_tokens
        self.fail_on_call = fail_on_call  # raise on this call (0-based): a worker killed mid-step
        self.served: dict[str, int] = {}
        self.calls: list[tuple[list[str], object]] = []

    def generate(self, prompts, params):
        if self.fail_on_call == len(self.calls):
            raise KeyboardInterrupt("worker killed")
        self.calls.append((list(prompts), params))
        return [[self._sample(prompt) for _ in range(params.n)] for prompt in prompts]

    def _sample(self, prompt):
        query = next(q for q in self.queries if prompt.startswith(q))
        prefix = prompt[len(query) :]
        candidates = [r for r in self.queries[query][1] if r.startswith(prefix) and r != prefix]
        assert candidates, f"nothing continues {prefix!r}"
        k = self.served.get(prompt, 0)
        self.served[prompt] = k + 1
        response = candidates[k % len(candidates)]
        text = response[len(prefix) :]
        tokens = max(1, len(text) // 3)
        logprobs = [-0.05 * (1 + (len(response) + i) % 7) for i in range(tokens)]
        return Sample(text, logprobs, "length" if response in self.truncated else "stop")


def new_trees():
    return [Tree.new(f"tree-{i}", prompt) for i, prompt in enumerate(QUERIES)]


def scorers_for(trees, config=MCTSConfig()):
    return [leaf_scorer(config, QUERIES[t.prompt][0], TOOLS) for t in trees]


def rows_of(trees):
    return {t.tree_id: t.to_rows() for t in trees}


# --- batching ---------------------------------------------------------------------------------------


def test_one_generate_call_per_step_for_all_trees():
    config = MCTSConfig()
    backend, trees = ScriptedBackend(), new_trees()
    steps = []
    run_search(trees, backend, scorers_for(trees), config, on_step=lambda i, changes, stats: steps.append(changes))
    assert len(backend.calls) == len(steps) >= config.simulations
    for (prompts, params), changes in zip(backend.calls, steps):
        assert len(prompts) == len(changes) and params.n == config.width
        assert params.max_tokens == config.max_tokens and params.temperature == config.temperature
    assert len(backend.calls[0][0]) == 3  # step 0 serves every tree at once
    for tree in trees:
        assert tree.simulations_done == config.simulations or tree.select_leaf(config.c_puct, config.max_depth) is None
    assert trees[0].simulations_done == config.simulations  # q1 has enough responses to last 5 simulations


def test_sequential_baseline_calls_per_sample_and_builds_the_same_trees():
    config = MCTSConfig()
    batched_backend, batched = ScriptedBackend(), new_trees()
    run_search(batched, batched_backend, scorers_for(batched), config)
    sequential_backend, sequential = ScriptedBackend(), new_trees()
    run_search_sequential(sequential, sequential_backend, scorers_for(sequential), config)
    expansions = sum(t.simulations_done for t in sequential)
    assert len(sequential_backend.calls) == expansions * config.width
    assert all(len(prompts) == 1 and params.n == 1 for prompts, params in sequential_backend.calls)
    assert len(batched_backend.calls) < len(sequential_backend.calls) / config.width
    assert rows_of(sequential) == rows_of(batched)


# --- the tree a search builds -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched():
    config = MCTSConfig()
    trees = new_trees()
    reports = []
    run_search(
        trees,
        ScriptedBackend(),
        scorers_for(trees),
        config,
        on_step=lambda i, changes, stats: reports.append((i, changes, stats)),
    )
    return config, trees, reports


def test_tree_invariants(searched):
    config, trees, _ = searched
    for tree in trees:
        assert len(tree.nodes) == len({n.key for n in tree.nodes.values()})
        for node in tree.nodes.values():
            if node is tree.root:
                assert node.parent_key is None and node.depth == 0
                continue
            parent = tree.nodes[node.parent_key]  # every non-root node has its parent in the tree
            assert node.depth == parent.depth + 1 <= config.max_depth
            if node.is_terminal:
                assert node.terminal_reward == node.verdict["reward"]
            else:
                assert node.terminal_reward is None
            if node.depth == config.max_depth:
                assert node.is_terminal
            # A node's visits: the rollouts that created it (1 to width, merged) + those through its children.
            assert 1 <= node.visits - sum(c.visits for c in tree.children_of(node)) <= config.width
        root_children = tree.children_of(tree.root)
        assert tree.root.visits == sum(c.visits for c in root_children) == tree.simulations_done * config.width
        assert tree.root.value_sum == pytest.approx(sum(c.value_sum for c in root_children))
        for leaf in (n for n in tree.nodes.values() if n.is_terminal):
            assert leaf.verdict["valid"] == (leaf.terminal_reward == 1.0)


def test_terminal_paths_spell_scripted_responses(searched):
    _, trees, _ = searched
    for tree in trees:
        responses = QUERIES[tree.prompt][1]
        for node in tree.nodes.values():
            text = tree.path_text(node)
            assert any(r.startswith(text) for r in responses)
            if node.is_terminal:
                assert text in responses


def test_on_step_reports_every_node_once_with_final_counts(searched):
    _, trees, reports = searched
    reported = [n.key for _, changes, _ in reports for change in changes for n in change.new_nodes]
    assert len(reported) == len(set(reported))
    assert set(reported) == {key for t in trees for key in t.nodes}
    assert [i for i, _, _ in reports] == list(range(len(reports)))
    last = reports[-1][2]
    assert last.trees == last.trees_done == 3
    assert last.nodes == sum(len(t) for t in trees)
    assert last.valid_leaves == sum(1 for t in trees for n in t.nodes.values() if n.is_terminal and n.verdict["valid"])
    assert last.valid_leaves >= 3  # each query's right answer was found
    assert last.generate_calls == last.steps == len(reports)
    assert [s.nodes for _, _, s in reports] == sorted(s.nodes for _, _, s in reports)


# --- expansion rules --------------------------------------------------------------------------------


def test_duplicate_fragments_merge_and_rewards_back_up_as_sums():
    config = MCTSConfig(simulations=1)
    tree = Tree.new("q1", "<q1 weather in Paris>")
    run_search([tree], ScriptedBackend(), scorers_for([tree]), config)
    # Samples: Paris (1.0) and Lyon (0.2) share "[get_weather(city=", get_time (-0.6) is alone.
    weather, time = tree.children_of(tree.root)
    assert (weather.fragment, weather.visits, weather.value_sum) == ("[get_weather(city=", 2, pytest.approx(1.2))
    assert (time.fragment, time.visits, time.value_sum) == ("[get_time(city=", 1, pytest.approx(-0.6))
    assert weather.verdict["valid"] and time.verdict["deficiency"] == "wrong_function"  # first rollout's verdict
    assert (tree.root.visits, tree.root.value_sum) == (3, pytest.approx(0.6))
    assert not weather.is_terminal and weather.terminal_reward is None
    assert 0 < time.prior < 1 and time.token_count >= 1


def test_child_at_max_depth_takes_the_whole_rest_of_its_sample():
    config = MCTSConfig(simulations=1, max_depth=1)
    tree = Tree.new("q1", "<q1 weather in Paris>")
    run_search([tree], ScriptedBackend(), scorers_for([tree]), config)
    fragments = sorted(c.fragment for c in tree.children_of(tree.root))
    assert fragments == sorted(QUERIES["<q1 weather in Paris>"][1][:3])
    assert all(c.is_terminal and c.terminal_reward == c.value_sum for c in tree.children_of(tree.root))
    assert tree.select_leaf(config.c_puct, config.max_depth) is None


def test_terminal_only_when_the_sample_ended():
    config = MCTSConfig()
    ended = Sample("I cannot.", [-0.1], "stop")
    cut_off = Sample("I cannot.", [-0.1], "length")
    longer = Sample("I cannot. Sorry, no. Bye", [-0.1], "stop")
    assert next_fragment(ended, 1, config)[:2] == ("I cannot.", True)
    assert next_fragment(cut_off, 1, config)[:2] == ("I cannot.", False)  # expanding it continues the response
    assert next_fragment(longer, 1, config)[:2] == ("I cannot. Sorry, ", False)
    assert next_fragment(longer, config.max_depth, config)[:2] == ("I cannot. Sorry, no. Bye", True)
    assert next_fragment(Sample("", [], "length"), 1, config)[:2] == ("", True)  # continuing it would repeat the prompt
    # with token ids, an empty sample (EOS first) keeps its empty ids, so the path's ids stay whole
    assert next_fragment(Sample("", [], "stop", token_ids=[]), 1, config, decode=lambda ids: "")[2] == []


def test_a_cut_off_sample_leaves_an_expandable_child():
    config = MCTSConfig(simulations=1)
    queries = {"<q>": ([{"get_time": {"city": ["Paris"]}}], ["I cannot help", "I cannot help you today"])}
    tree = Tree.new("q", "<q>")
    run_search(
        [tree], ScriptedBackend(queries, truncated={"I cannot help"}), [CheckerScorer(queries["<q>"][0], TOOLS)], config
    )
    by_fragment = {c.fragment: c for c in tree.children_of(tree.root)}
    assert set(by_fragment) == {"I cannot help", "I cannot help you today"}
    assert not by_fragment["I cannot help"].is_terminal
    assert by_fragment["I cannot help you today"].is_terminal


def test_prior_is_exp_mean_logprob_of_the_fragment_tokens():
    queries = {"<q>": ([], ["ab, cdef, ghijkl"])}
    whole, first = Tree.new("whole", "<q>"), Tree.new("first", "<q>")
    run_search(
        [whole], ScriptedBackend(queries), [CheckerScorer([], TOOLS)], MCTSConfig(simulations=1, width=1, max_depth=1)
    )
    run_search(
        [first], ScriptedBackend(queries), [CheckerScorer([], TOOLS)], MCTSConfig(simulations=1, width=1, step_limit=1)
    )
    # 16 characters → 5 tokens, logprobs -0.05·(1 + (16 + i) % 7) = -0.15, -0.2, -0.25, -0.3, -0.35.
    (child,) = whole.children_of(whole.root)
    assert child.fragment == "ab, cdef, ghijkl" and child.token_count == 5
    assert child.prior == pytest.approx(math.exp(-0.25))
    # "ab, " is 4 of 16 characters: credited with round(5 · 4/16) = 1 token.
    (child,) = first.children_of(first.root)
    assert child.fragment == "ab, " and child.token_count == 1
    assert child.prior == pytest.approx(math.exp(-0.15))


# --- resuming ---------------------------------------------------------------------------------------


class Crash(Exception):
    pass


class Store:
    """What the Django task keeps: node rows per tree and simulations done, written once per step."""

    def __init__(self):
        self.rows: dict[object, dict[str, dict]] = {}
        self.simulations: dict[object, int] = {}

    def commit(self, changes):
        for change in changes:
            rows = self.rows.setdefault(change.tree_id, {})
            for node in change.new_nodes:
                assert node.key not in rows, "a committed node was created again"
                rows[node.key] = asdict(node)
            for counts in change.updated_nodes:
                rows[counts.key].update(visits=counts.visits, value_sum=counts.value_sum)
            self.simulations[change.tree_id] = change.simulations_done

    def load(self, tree_id, prompt):
        if tree_id not in self.rows:
            return Tree.new(tree_id, prompt)
        return Tree.from_rows(tree_id, prompt, list(self.rows[tree_id].values()), self.simulations[tree_id])


def search_with_store(store, trees, backend, crash_after=None):
    def on_step(index, changes, stats):
        store.commit(changes)
        if index == crash_after:
            raise Crash

    return run_search(trees, backend, scorers_for(trees), MCTSConfig(), on_step=on_step)


@pytest.fixture(scope="module")
def uninterrupted():
    store, trees = Store(), new_trees()
    backend = ScriptedBackend()
    search_with_store(store, trees, backend)
    return store, trees, backend


def _resume(store):
    trees = [store.load(f"tree-{i}", prompt) for i, prompt in enumerate(QUERIES)]
    backend = ScriptedBackend()  # a restarted worker
    search_with_store(store, trees, backend)
    return trees, backend


def test_store_holds_exactly_the_searched_trees(uninterrupted):
    store, trees, _ = uninterrupted
    for tree in trees:
        assert sorted(store.rows[tree.tree_id].values(), key=lambda r: (r["depth"], r["key"])) == tree.to_rows()


@pytest.mark.parametrize("crash_after", [0, 1, 2, 3])
def test_resume_after_a_committed_step_gives_the_uninterrupted_trees(uninterrupted, crash_after):
    _, expected, expected_backend = uninterrupted
    store = Store()
    with pytest.raises(Crash):
        search_with_store(store, new_trees(), ScriptedBackend(), crash_after=crash_after)
    resumed, backend = _resume(store)
    assert rows_of(resumed) == rows_of(expected)
    for tree in resumed:  # the store agrees with the engine: nothing lost, nothing twice
        assert sorted(store.rows[tree.tree_id].values(), key=lambda r: (r["depth"], r["key"])) == tree.to_rows()
    # The resumed run redid only the steps that were not committed, asking for the same prompts.
    expected_prompts = [prompts for prompts, _ in expected_backend.calls]
    assert [prompts for prompts, _ in backend.calls] == expected_prompts[crash_after + 1 :]


@pytest.mark.parametrize("killed_on_call", [0, 2, 4])
def test_resume_after_a_worker_killed_mid_step(uninterrupted, killed_on_call):
    _, expected, _ = uninterrupted
    store = Store()
    with pytest.raises(KeyboardInterrupt):
        search_with_store(store, new_trees(), ScriptedBackend(fail_on_call=killed_on_call))
    resumed, _ = _resume(store)
    assert rows_of(resumed) == rows_of(expected)


def test_a_finished_search_resumed_does_nothing(uninterrupted):
    store, expected, _ = uninterrupted
    resumed, backend = _resume(store)
    assert backend.calls == [] and rows_of(resumed) == rows_of(expected)


# --- seeds, scorers, config, bad backends ---------------------------------------------------------


def test_seeds_batched_and_sequential():
    config = MCTSConfig(seed=7)
    batched_backend, trees = ScriptedBackend(), new_trees()
    run_search(trees, batched_backend, scorers_for(trees), config)
    assert {params.seed for _, params in batched_backend.calls} == {7}
    sequential_backend, trees = ScriptedBackend(), new_trees()
    run_search_sequential(trees, sequential_backend, scorers_for(trees), config)
    seeds = [params.seed for _, params in sequential_backend.calls]
    assert seeds[:3] == [call_seed(7, 0), call_seed(7, 1), call_seed(7, 2)] == seeds[3:6]
    assert len(set(seeds[:3])) == 3 and call_seed(8, 0) != call_seed(7, 0)


def test_a_tree_searched_alone_or_in_a_batch_is_the_same():
    config = MCTSConfig()
    together = new_trees()
    run_search(together, ScriptedBackend(), scorers_for(together), config)
    for i, tree in enumerate(new_trees()):
        run_search([tree], ScriptedBackend(), scorers_for([tree]), config)
        assert tree.to_rows() == together[i].to_rows()


# --- overlapping generation and bookkeeping ---------------------------------------------------------

MANY = {f"<q{i} {name[4:]}": spec for i in range(40) for name, spec in [list(QUERIES.items())[i % 3]]}


def many_trees():
    return [Tree.new(f"tree-{i}", prompt) for i, prompt in enumerate(MANY)]


def many_scorers(trees, config=MCTSConfig()):
    return [leaf_scorer(config, MANY[t.prompt][0], TOOLS) for t in trees]


class SlowBackend(ScriptedBackend):
    """The scripted policy, taking `seconds` per call (the GIL released, as a GPU call's wait does) and noting
    when and on which thread each call ran; `fail_on_call` raises in that call, after its wait."""

    def __init__(self, seconds=0.02, **kwargs):
        super().__init__(queries=MANY, **kwargs)
        self.seconds, self.spans, self.running = seconds, [], 0

    def generate(self, prompts, params):
        start = time.perf_counter()
        self.running += 1
        try:
            time.sleep(self.seconds)
            return super().generate(prompts, params)
        finally:
            self.running -= 1
            self.spans.append((start, time.perf_counter(), threading.current_thread() is threading.main_thread()))


def test_an_overlapped_search_grows_the_same_trees_in_halves_that_take_turns():
    config = MCTSConfig()
    alone, one_batch = many_trees(), ScriptedBackend(queries=MANY)
    run_search(alone, one_batch, many_scorers(alone), config)
    trees, backend, steps = many_trees(), SlowBackend(seconds=0.0), []
    run_search(
        trees,
        backend,
        many_scorers(trees),
        config,
        on_step=lambda i, changes, s: steps.append(changes),
        overlap=True,
        overlap_min_samples=60,  # 40 trees x 3 samples: two halves of 60
    )
    assert rows_of(trees) == rows_of(alone)
    assert [len(p) for p, _ in backend.calls[:2]] == [20, 20] and max(len(p) for p, _ in backend.calls) == 20
    assert len(backend.calls) == len(steps) > len(one_batch.calls)
    for tree in trees:  # every expansion reported once, in order
        done = [c.simulations_done for changes in steps for c in changes if c.tree_id == tree.tree_id]
        assert done == list(range(1, tree.simulations_done + 1))
    assert not any(on_main for _, _, on_main in backend.spans)  # the engine's calls run on the search's thread


def test_one_half_is_expanded_while_the_engine_generates_the_other():
    config = MCTSConfig()
    for overlap in (False, True):
        trees, backend = many_trees(), SlowBackend(seconds=0.03)
        checked = []

        def timed(scorer):
            def score(response):
                checked.append(time.perf_counter())
                return scorer(response)

            return score

        scorers = [timed(s) for s in many_scorers(trees)]
        run_search(trees, backend, scorers, config, overlap=overlap, overlap_min_samples=8)
        during = sum(any(start < t < end for start, end, _ in backend.spans) for t in checked)
        if overlap:
            assert during > len(checked) / 2  # most of the scoring hid behind a generate call
        else:
            assert during == 0


def test_a_failing_call_of_an_overlapped_search_raises_and_starts_nothing_more():
    trees, backend = many_trees(), SlowBackend(seconds=0.02, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt, match="worker killed"):
        run_search(trees, backend, many_scorers(trees), MCTSConfig(), overlap=True, overlap_min_samples=8)
    failed = time.perf_counter()
    _wait_idle(backend)
    assert all(start < failed for start, _, _ in backend.spans)  # the queued call never started


def test_a_failing_step_stops_an_overlapped_search_without_waiting_for_the_call_under_way():
    """The caller's own error (a write that failed, a time limit) while the engine generates the other half:
    raised at once, the call under way left to end (or to die with the backend, which the caller closes)."""
    trees, backend = many_trees(), SlowBackend(seconds=0.5)

    def on_step(index, changes, stats):
        if index == 1:  # the second half's first step: the first half's second call is under way
            raise RuntimeError("the step could not be stored")

    with pytest.raises(RuntimeError, match="could not be stored"):
        run_search(
            trees, backend, many_scorers(trees), MCTSConfig(), on_step=on_step, overlap=True, overlap_min_samples=8
        )
    failed = time.perf_counter()
    assert backend.running == 1  # not waited for
    _wait_idle(backend)
    assert len(backend.spans) == 3 and all(start < failed for start, _, _ in backend.spans)


def _wait_idle(backend, seconds=10.0):
    deadline = time.monotonic() + seconds
    while backend.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.running == 0


def test_halves_too_small_to_fill_an_engine_are_searched_in_one_batch_even_when_overlap_is_asked():
    trees, backend = many_trees(), ScriptedBackend(queries=MANY)
    run_search(trees, backend, many_scorers(trees), MCTSConfig(), overlap=True)  # 40 x 3 samples < 2 x 256
    assert len(backend.calls[0][0]) == 40


def test_judge_scorer_maps_grades_through_itool_weights():
    ground_truth, _ = QUERIES["<q1 weather in Paris>"]
    judge = JudgeScorer(ground_truth, TOOLS)
    assert judge("[get_weather(city='Paris')]").reward == pytest.approx(1.0)  # excellent
    assert judge("[get_weather(city='Lyon')]").reward == pytest.approx(0.1)  # acceptable
    assert judge("[get_weather(date='2025-01-02')]").reward == pytest.approx(-1.0)  # fair (missing param)
    poor = judge("[get_time(city='Paris')]")
    assert poor.reward == pytest.approx(-2.0) and poor.verdict["deficiency"] == "wrong_function"
    llm_like = JudgeScorer(ground_truth, TOOLS, judge=lambda response: {"excellent": 0.5, "poor": 0.5})
    assert llm_like("anything").reward == pytest.approx(4 * (0.5 * 0.25 + 0.5 * -0.5))
    with pytest.raises(ValueError, match="unknown grade"):
        JudgeScorer(ground_truth, TOOLS, judge=lambda response: {"A": 1.0})("x")
    assert isinstance(leaf_scorer(MCTSConfig(scorer="judge"), ground_truth, TOOLS), JudgeScorer)
    assert isinstance(leaf_scorer(MCTSConfig(), ground_truth, TOOLS), CheckerScorer)


def test_search_with_the_judge_scorer():
    config = MCTSConfig(scorer="judge")
    trees = new_trees()
    run_search(trees, ScriptedBackend(), scorers_for(trees, config), config)
    leaves = [n for n in trees[0].nodes.values() if n.is_terminal]
    assert {n.terminal_reward for n in leaves} <= {1.0, 0.1, -1.0, -2.0}
    assert any(n.terminal_reward == 1.0 for n in leaves)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"simulations": 0}, "simulations must be a positive integer"),
        ({"width": 1.5}, "width must be int"),
        ({"step_limit": True}, "step_limit must be int"),
        ({"delimiters": ()}, "delimiters must be non-empty strings"),
        ({"delimiters": ("", ",")}, "delimiters must be non-empty strings"),
        ({"c_puct": -1}, "c_puct must be a number >= 0"),
        ({"temperature": 11}, "temperature must be in"),
        ({"top_p": 0}, "top_p must be in"),
        ({"scorer": "oracle"}, "scorer must be one of checker, judge"),
        ({"seed": "x"}, "seed must be int"),
    ],
)
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MCTSConfig(**kwargs)


def test_config_round_trips_through_json_form():
    config = MCTSConfig(width=4, delimiters=["; ", "("])
    assert config.delimiters == ("; ", "(")
    assert MCTSConfig.from_dict(config.as_dict()) == config
    with pytest.raises(ValueError, match=r"unknown MCTS setting\(s\): widht; known: simulations, width"):
        MCTSConfig.from_dict({"widht": 4})


def test_mismatched_inputs_and_bad_backend_output_are_refused():
    trees = new_trees()
    with pytest.raises(ValueError, match="one scorer per tree"):
        run_search(trees, ScriptedBackend(), scorers_for(trees)[:1], MCTSConfig())
    with pytest.raises(ValueError, match="listed twice"):
        run_search(trees + trees[:1], ScriptedBackend(), scorers_for(trees + trees[:1]), MCTSConfig())

    class ShortBackend(ScriptedBackend):
        def generate(self, prompts, params):
            return super().generate(prompts, params)[:-1]

    with pytest.raises(RuntimeError, match="returned"):
        run_search(trees, ShortBackend(), scorers_for(trees), MCTSConfig())


# --- with the real tiny model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """An untrained nano Qwen2 behind the transformers backend, and three generated queries to search."""
    from apps.catalog.environment import EnvironmentConfig, generate_environment
    from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records, render_prompt
    from workers.llm.transformers_backend import TransformersBackend

    specs = generate_environment(EnvironmentConfig(seed=0, queries=40)).queries
    queries = [
        {
            "messages": q.messages,
            "ground_truth": q.ground_truth,
            "reference_output": q.reference_output,
            "tools": [t.as_openai() for t in q.tools],
        }
        for q in specs
    ]
    path = build_tiny_model(
        corpus_from_records(queries), tmp_path_factory.mktemp("tiny"), TinyModelConfig(size="nano", seed=0)
    )
    backend = TransformersBackend(str(path), batch_size=16)
    searched = [dict(q, prompt=render_prompt(backend.tokenizer, q["messages"], q["tools"])) for q in queries[:3]]
    return backend, searched


class CountingBackend(BaseBackend):
    """Passes calls through to a real backend, counting them; can be killed on a given call."""

    def __init__(self, inner, fail_on_call=None):
        self.inner, self.fail_on_call, self.calls = inner, fail_on_call, []

    def generate(self, prompts, params):
        if self.fail_on_call == len(self.calls):
            raise KeyboardInterrupt("worker killed")
        self.calls.append((list(prompts), params))
        return self.inner.generate(prompts, params)


def test_search_with_the_tiny_transformers_model(tiny_policy):
    inner, queries = tiny_policy
    config = MCTSConfig(max_tokens=24, seed=3)
    scorers = [leaf_scorer(config, q["ground_truth"], q["tools"]) for q in queries]

    def search(store, backend, trees):
        return run_search(trees, backend, scorers, config, on_step=lambda i, changes, stats: store.commit(changes))

    store, backend = Store(), CountingBackend(inner)
    trees = search(store, backend, [Tree.new(i, q["prompt"]) for i, q in enumerate(queries)])
    assert len(backend.calls) == max(t.simulations_done for t in trees)  # one call per step for all trees
    assert len(backend.calls[0][0]) == len(queries)
    for tree, scorer in zip(trees, scorers):
        assert tree.root.visits == tree.simulations_done * config.width
        for node in tree.nodes.values():
            assert node is tree.root or node.parent_key in tree.nodes
            assert 0 < node.prior <= 1
            if node.is_terminal:  # its path text is exactly the response that was scored
                assert scorer(tree.path_text(node)).reward == node.terminal_reward
        assert sorted(store.rows[tree.tree_id].values(), key=lambda r: (r["depth"], r["key"])) == tree.to_rows()

    # Killed during step 2, resumed from the stored rows with a fresh backend wrapper: the same trees.
    store = Store()
    with pytest.raises(KeyboardInterrupt):
        search(store, CountingBackend(inner, fail_on_call=2), [Tree.new(i, q["prompt"]) for i, q in enumerate(queries)])
    resumed = search(store, CountingBackend(inner), [store.load(i, q["prompt"]) for i, q in enumerate(queries)])
    assert rows_of(resumed) == rows_of(trees)
