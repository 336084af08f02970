"""A real search on the nano model keeps each node's sampled token ids: a path's ids are what was sampled."""

import random

from tests.workers.mcts.test_search import tiny_policy  # noqa: F401  (the fixture)
from workers.llm.base import BaseBackend
from workers.mcts import MCTSConfig, PairConfig, Tree, extract_pairs, leaf_scorer, run_search
from workers.mcts.fragments import snap_to_token


class Recording(BaseBackend):
    """Passes calls to a real backend and keeps every (prompt, samples)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def generate(self, prompts, params):
        out = self.inner.generate(prompts, params)
        self.calls += list(zip(prompts, out))
        return out

    def encode(self, text):
        return self.inner.encode(text)

    def decode(self, token_ids):
        return self.inner.decode(token_ids)


def test_node_ids_concatenate_to_the_sampled_ids(tiny_policy):  # noqa: F811
    inner, queries = tiny_policy
    config = MCTSConfig(max_tokens=24, seed=5, simulations=4)
    backend = Recording(inner)
    trees = run_search(
        [Tree.new(i, q["prompt"]) for i, q in enumerate(queries)],
        backend,
        [leaf_scorer(config, q["ground_truth"], q["tools"]) for q in queries],
        config,
    )
    sampled = {}  # prompt ids -> the samples' ids continuing them
    for prompt, samples in backend.calls:
        assert isinstance(prompt, list)  # every expansion continued token ids, never retokenised text
        sampled.setdefault(tuple(prompt), []).extend(tuple(s.token_ids) for s in samples)
    children = 0
    for tree in trees:
        assert tree.prompt_ids == inner.encode(tree.prompt)
        for node in tree.nodes.values():
            assert node.token_ids is not None and inner.decode(node.token_ids) == node.fragment
            if node is tree.root:
                continue
            children += 1
            parent = tree.nodes[node.parent_key]
            context = tuple(tree.prompt_ids + tree.path_ids(parent))
            # the node's ids start one of the samples drawn right after its parent's exact ids
            assert any(ids[: len(node.token_ids)] == tuple(node.token_ids) for ids in sampled[context])
        for leaf in (n for n in tree.nodes.values() if n.is_terminal):
            assert inner.decode(tree.path_ids(leaf)) == tree.path_text(leaf)
    assert children > 10
    pairs = [p for tree in trees for p in extract_pairs(tree, PairConfig(gap_min=0.0, chosen_value_min=-10))]
    for pair in pairs:
        assert inner.decode(pair.prefix_ids) == pair.prefix and inner.decode(pair.chosen_ids) == pair.chosen


def test_a_cut_inside_a_token_moves_to_its_end():
    pieces = ["get", "_weather", "(c", "ity", "='", "Paris", "')"]
    ids = list(range(len(pieces)))

    def decode(token_ids):
        return "".join(pieces[i] for i in token_ids)

    text = decode(ids)
    assert snap_to_token(text, ids, len("get_weather("), decode) == (3, "get_weather(c")  # "(" inside "(c"
    assert snap_to_token(text, ids, len("get_weather(city="), decode) == (5, "get_weather(city='")  # "='" whole
    assert snap_to_token(text, ids, len("get_weather"), decode) == (2, "get_weather")  # on a boundary: unchanged
    assert snap_to_token(text, ids, 0, decode) == (0, "")
    assert snap_to_token(text, ids, len(text), decode) == (len(ids), text)


def test_the_cut_found_is_the_bisections_with_few_decodes():
    """Wherever the cut and however uneven the tokens, the count is the smallest whose text covers the cut and
    ends on a boundary of the text (here: of a word), each prefix decoded at most once, and far fewer of them
    than a bisection of the whole sample needs when tokens are of even length."""
    rng = random.Random(7)
    for _ in range(300):
        pieces = [rng.choice(["a", "bc", "def", "ghij", " ", "é", "東京", "'),"]) for _ in range(rng.randint(1, 300))]
        text = "".join(pieces)
        ids = list(range(len(pieces)))
        asked = []

        def decode(token_ids, pieces=pieces, asked=asked):
            asked.append(len(token_ids))
            return "".join(pieces[i] for i in token_ids)

        cut = rng.randint(1, len(text))
        count, fragment = snap_to_token(text, ids, cut, decode)
        covering = [k for k in range(1, len(ids) + 1) if len(decode(ids[:k])) >= cut]
        assert count == covering[0] and fragment == text[: len(fragment)] == decode(ids[:count])
        asked.clear()
        snap_to_token(text, ids, cut, decode)
        assert len(asked) == len(set(asked))
    even = [f"t{i:03d}" for i in range(256)]  # tokens of four characters: the proportional start is close
    decodes = []
    for cut in range(1, 1024, 7):
        asked = []
        snap_to_token(
            "".join(even), list(range(256)), cut, lambda t, asked=asked: asked.append(1) or "".join(even[i] for i in t)
        )
        decodes.append(len(asked))
    assert max(decodes) <= 3  # a bisection of 256 tokens decodes 8 prefixes
