"""A real search on the nano model keeps each node's sampled token ids: a path's ids are what was sampled."""

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
    assert snap_to_token(text, ids, len("get_weather("), decode) == 3  # "(" sits inside "(c": cut after it
    assert snap_to_token(text, ids, len("get_weather(city="), decode) == 5  # "='" kept whole
    assert snap_to_token(text, ids, len("get_weather"), decode) == 2  # on a boundary: unchanged
    assert snap_to_token(text, ids, 0, decode) == 0
