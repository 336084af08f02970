"""The tree search over response fragments, batched across trees: one generate call per step serves every
active tree's selected leaf.

One simulation of a tree = select a leaf by UCT, sample `width` continuations of its prefix, make each
sample's first fragment a child (the rest of the sample is the rollout), score each full response, back
the rewards up. The rules, where iTool (mcts_vllm.py) differs or leaves a choice open:

- **Children.** A sample gives one child, its first `step_limit` pieces (MCTS-DPO's one step per
  expansion; iTool instead chains every fragment of a sample into a path of nodes at once). Siblings with
  the same fragment text and the same ending merge into one child, whose visits and value add up.
- **Terminal.** A child is terminal when its sample ended (finish_reason "stop") with nothing after the
  fragment, or when it sits at `max_depth`: a depth-capped child takes the whole rest of its sample as
  its fragment, so its path text is the full response that was scored (as iTool joins the remaining
  fragments into one node at its depth cap). A sample cut off by `max_tokens` with nothing after its
  fragment is not terminal: expanding it continues the response (an empty one is, as continuing it would
  repeat its parent's prompt). A terminal child's `terminal_reward` is its rollout's reward.
- **Backup.** Every sample is one rollout: the new child gets visits=1 and value_sum=reward (merged
  children add theirs), and every node from the root to the expanded leaf gets the sum of the step's
  rewards and as many visits as there were samples (iTool also adds rewards, not means, up the path:
  Node.backpropagate). So a node's value_sum/visits is the mean reward of all rollouts through it: those
  that created it plus those through its children (the root's are exactly its children's).
- **Token ids.** With a backend that tokenizes here (transformers, vLLM: `encode` gives ids), a tree's prompt
  is encoded once and every expansion prompts with token ids: the prompt's, then the ids of the path's
  nodes. A fragment's cut is moved to the end of the token it falls in (`fragments.snap_to_token`) and the
  node keeps its tokens, so a path's ids are exactly what the policy sampled, in one piece, and training can
  use them as they are (docs/token-ids.md). Without ids (an OpenAI-compatible server, or a tree stored
  before ids were kept) nodes have `token_ids=None` and expansions prompt with text, cut on characters.
- **Prior.** exp(mean logprob) of the fragment's tokens (iTool): exact when the node has its token ids.
  Without them the fragment is credited with the sample's leading tokens in proportion to its share of
  the sample's characters (at least one token): exact for a depth-capped child, an approximation otherwise.
- **Seeds and determinism.** Every call of the batched search passes `config.seed`. The backends derive
  each prompt's samples from (seed, prompt text, sample index) — transformers: `sample_seed`; vLLM and
  OpenAI-compatible servers: one seeded request per prompt — and a node's prompt (query + its path text)
  differs from every other node's, so a tree's samples depend only on `config.seed`, the policy and its
  own prefixes: not on which other trees share the batch, their order, or whether the run was resumed
  (the transformers backend adds: up to float rounding in batched matmuls). The sequential baseline's
  `width` calls per expansion pass `call_seed(config.seed, j)` for sample j, so that they differ.
- **Resuming.** The caller persists each step atomically from `on_step` (new nodes, updated counts,
  simulations done). A killed worker reloads the trees (`Tree.from_rows` + simulations_done) and simply
  redoes the step that was not committed: selection depends only on the stored state, and child keys on
  (parent key, ordinal) with ordinals continuing after existing children, so no key is reused for other
  content and no committed node is lost.
"""

from __future__ import annotations

import gc
import hashlib
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

from rewards.checker import GRADE_WEIGHTS, Checker
from workers.llm.base import BaseBackend, Prompt, Sample, SamplingParams

from .config import MCTSConfig
from .fragments import first_step, snap_to_token
from .tree import Node, Tree

# --- leaf scoring ---------------------------------------------------------------------------------


@dataclass
class LeafScore:
    """The score of one full response: its reward and the verdict kept on the node it created."""

    reward: float
    verdict: dict  # the checker's Verdict.as_dict(): progress reads "valid", pairs "deficiency" and "span"


class LeafScorer(Protocol):
    """Scores a full assistant response for one query (the response text starts the assistant turn)."""

    def __call__(self, response: str) -> LeafScore: ...


class CheckerScorer:
    """The verifiable reward (DESIGN.md default): the checker's graded reward in [-1, 1].

    The checker is a pure function of the response, and a tree's rollouts repeat each other often (merged
    siblings; every rollout through a depth-capped or finished path), so each distinct response of the query
    is checked once: `hits` counts the rollouts answered from memory. Each node gets its own verdict dict."""

    def __init__(self, ground_truth, tools):
        self.checker = Checker(ground_truth, tools, rule="strict")  # a broken call never pays
        self.known: dict[str, LeafScore] = {}
        self.hits = 0

    def __call__(self, response: str) -> LeafScore:
        known = self.known.get(response)
        if known is None:
            verdict = self.checker(response)
            known = self.known[response] = LeafScore(verdict.reward, verdict.as_dict())
        else:
            self.hits += 1
        return LeafScore(known.reward, dict(known.verdict))


# A judge answers, for one response, the probability of each of iTool's four grades
# (excellent / acceptable / fair / poor); an LLM judge reads them off its A/B/C/D token logprobs.
GradeJudge = Callable[[str], dict[str, float]]


class JudgeScorer:
    """iTool's judge reward: scale · Σ p(grade) · GRADE_WEIGHTS[grade] (mcts_vllm.py self_eval).

    Without a `judge`, the checker's own four-level grade is used with probability 1; a real LLM judge
    plugs in as `judge`. The checker's verdict is kept either way, for the pair's deficiency.
    """

    def __init__(self, ground_truth, tools, judge: GradeJudge | None = None, scale: float = 4.0):
        self.checker = Checker(ground_truth, tools, rule="strict")  # a broken call never pays
        self.judge = judge
        self.scale = scale

    def __call__(self, response: str) -> LeafScore:
        verdict = self.checker(response)
        grades = self.judge(response) if self.judge else {verdict.grade: 1.0}
        unknown = set(grades) - set(GRADE_WEIGHTS)
        if unknown:
            raise ValueError(f"judge returned unknown grade(s) {sorted(unknown)}; known: {sorted(GRADE_WEIGHTS)}")
        reward = self.scale * sum(p * GRADE_WEIGHTS[grade] for grade, p in grades.items())
        return LeafScore(reward, {**verdict.as_dict(), "judge_grades": dict(grades)})


def leaf_scorer(config: MCTSConfig, ground_truth, tools) -> LeafScorer:
    """The scorer `config.scorer` names, for one query."""
    if config.scorer == "judge":
        return JudgeScorer(ground_truth, tools, scale=config.judge_scale)
    return CheckerScorer(ground_truth, tools)


# --- what a step reports --------------------------------------------------------------------------


@dataclass
class NodeCounts:
    """A stored node whose counts changed in a step."""

    key: str
    visits: int
    value_sum: float


@dataclass
class TreeStep:
    """What one step did to one tree: everything the caller must write, in one transaction."""

    tree_id: object
    new_nodes: list[Node]  # parents first; each node appears in exactly one step report
    updated_nodes: list[NodeCounts]  # nodes stored earlier whose visits/value_sum changed
    simulations_done: int
    done: bool  # all simulations done, or nothing left to expand


@dataclass
class SearchStats:
    """Progress over all the trees of a run."""

    trees: int = 0
    trees_done: int = 0
    nodes: int = 0
    terminal_nodes: int = 0
    valid_leaves: int = 0  # terminal nodes whose verdict is valid
    simulations: int = 0
    steps: int = 0
    generate_calls: int = 0
    prompts: int = 0  # prompts sent to the backend (x width samples each)


StepCallback = Callable[[int, list[TreeStep], SearchStats], None]


def next_leaf(tree: Tree, config: MCTSConfig) -> Node | None:
    """The leaf the tree's next simulation expands; None when the tree is done (all simulations made, or
    nothing left to expand)."""
    if tree.simulations_done >= config.simulations:
        return None
    return tree.select_leaf(config.c_puct, config.max_depth)


def is_done(tree: Tree, config: MCTSConfig) -> bool:
    return next_leaf(tree, config) is None


def search_stats(trees: list[Tree], config: MCTSConfig) -> SearchStats:
    stats = SearchStats(trees=len(trees))
    for tree in trees:
        stats.trees_done += is_done(tree, config)
        stats.simulations += tree.simulations_done
        for node in tree.nodes.values():
            _count_node(stats, node)
    return stats


def _count_node(stats: SearchStats, node: Node) -> None:
    stats.nodes += 1
    if node.is_terminal:
        stats.terminal_nodes += 1
        stats.valid_leaves += bool(node.verdict and node.verdict.get("valid"))


# --- one expansion --------------------------------------------------------------------------------


def fragment_logprobs(sample: Sample, fragment_chars: int) -> list[float]:
    """The logprobs of the sample's leading tokens credited to its first `fragment_chars` characters."""
    logprobs = sample.token_logprobs
    if fragment_chars >= len(sample.text) or not logprobs:
        return list(logprobs)
    count = max(1, round(len(logprobs) * fragment_chars / len(sample.text)))
    return list(logprobs[:count])


def fragment_prior(logprobs: list[float]) -> float:
    return math.exp(sum(logprobs) / len(logprobs)) if logprobs else 1.0


Decode = Callable[[list[int]], str]


def sample_ids(sample: Sample, decode: Decode | None) -> list[int] | None:
    """The sample's token ids if they are known and spell its text exactly (else the fragment is cut on
    characters and its node keeps no ids)."""
    if decode is None or decode(sample.token_ids) != sample.text:  # an empty sample keeps its empty ids
        return None
    return list(sample.token_ids)


def next_fragment(
    sample: Sample, depth: int, config: MCTSConfig, decode: Decode | None = None
) -> tuple[str, bool, list[int] | None]:
    """(fragment, is_terminal, fragment token ids or None) of the child a sample makes at `depth` (see the
    module docstring); with `decode`, the cut is moved to a token boundary."""
    ids = sample_ids(sample, decode)
    if depth >= config.max_depth:
        return sample.text, True, ids
    fragment, rest = first_step(sample.text, config.delimiters, config.step_limit)
    if ids is not None:
        count, fragment = snap_to_token(sample.text, ids, len(fragment), decode)
        ids = ids[:count]
        rest = sample.text[len(fragment) :]
    # An empty sample ends the response too: continuing it would ask the same prompt again.
    return fragment, not rest and (sample.finish_reason == "stop" or not fragment), ids


def expand(
    tree: Tree, leaf: Node, samples: list[Sample], scorer: LeafScorer, config: MCTSConfig, decode: Decode | None = None
) -> tuple[TreeStep, Node | None]:
    """Add the samples' children under `leaf`, back their rewards up, and report what changed, with the leaf
    the tree's next simulation expands (None: the tree is done). Nothing changes the tree between one step and
    the next, so that leaf is selected once, here: whether the tree is done is the same walk.

    `decode` is given when the samples continued the leaf's token ids (see `leaf_prompt`): the children
    then keep theirs."""
    prefix = tree.path_text(leaf)
    merged: dict[tuple[str, bool], Node] = {}
    cuts: dict[tuple, tuple[str, bool, list[int] | None]] = {}  # identical samples are cut once
    reward_sum = 0.0
    for sample in samples:
        same_sample = (sample.text, sample.finish_reason, tuple(sample.token_ids))
        if same_sample not in cuts:
            cuts[same_sample] = next_fragment(sample, leaf.depth + 1, config, decode)
        fragment, terminal, ids = cuts[same_sample]
        score = scorer(prefix + sample.text)
        reward_sum += score.reward
        same = merged.get((fragment, terminal))
        if same is not None:
            same.visits += 1
            same.value_sum += score.reward
            continue
        logprobs = (
            list(sample.token_logprobs[: len(ids)]) if ids is not None else fragment_logprobs(sample, len(fragment))
        )
        merged[(fragment, terminal)] = tree.add_child(
            leaf,
            fragment=fragment,
            prior=fragment_prior(logprobs),
            visits=1,
            value_sum=score.reward,
            is_terminal=terminal,
            terminal_reward=score.reward if terminal else None,
            verdict=score.verdict,
            token_count=len(logprobs),
            token_ids=ids,
        )
    path = tree.path(leaf)
    tree.backup(path, reward_sum, len(samples))
    tree.simulations_done += 1
    new_nodes = tree.drain_new_nodes()
    new_keys = {node.key for node in new_nodes}
    updated = [NodeCounts(n.key, n.visits, n.value_sum) for n in path if n.key not in new_keys]
    following = next_leaf(tree, config)
    return TreeStep(tree.tree_id, new_nodes, updated, tree.simulations_done, following is None), following


# --- seeds and sampling ---------------------------------------------------------------------------


def call_seed(base_seed: int, sample_index: int) -> int:
    """The sequential baseline's seed for the j-th single-sample call of an expansion (31 bits)."""
    digest = hashlib.sha256(f"{base_seed}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def sampling_params(config: MCTSConfig, n: int, seed: int) -> SamplingParams:
    return SamplingParams(
        n=n, max_tokens=config.max_tokens, temperature=config.temperature, top_p=config.top_p, seed=seed
    )


def _generate(backend: BaseBackend, prompts: list[Prompt], params: SamplingParams) -> list[list[Sample]]:
    outputs = backend.generate(prompts, params)
    if len(outputs) != len(prompts) or any(len(samples) != params.n for samples in outputs):
        shape = [len(samples) for samples in outputs]
        raise RuntimeError(
            f"{type(backend).__name__}.generate returned {shape} samples for {len(prompts)} prompts x n={params.n}"
        )
    return outputs


# --- the searches ---------------------------------------------------------------------------------


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Run a long search with what the process already holds (Django, the tokenizer, the loaded trees) left
    out of the cyclic garbage collector's full passes (`gc.freeze`): otherwise each pass walks that whole heap
    again, a pause of tens of milliseconds landing on whichever step it falls in. Collected once before, and
    given back after."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def leaf_prompt(tree: Tree, leaf: Node) -> Prompt:
    """What an expansion of `leaf` continues: the prompt's token ids then the path's, when all are known;
    else the prompt text then the path's text."""
    path_ids = tree.path_ids(leaf) if tree.prompt_ids is not None else None
    if path_ids is None:
        return tree.prompt + tree.path_text(leaf)
    return tree.prompt_ids + path_ids


@dataclass
class _Selection:
    tree: Tree
    scorer: LeafScorer
    leaf: Node
    prompt: Prompt = field(init=False)

    def __post_init__(self):
        self.prompt = leaf_prompt(self.tree, self.leaf)

    def expand(
        self, samples: list[Sample], config: MCTSConfig, backend: BaseBackend
    ) -> tuple[TreeStep, _Selection | None]:
        """The step, and the tree's next selection (None: the tree is done)."""
        decode = backend.decode if not isinstance(self.prompt, str) else None
        step, following = expand(self.tree, self.leaf, samples, self.scorer, config, decode)
        return step, (_Selection(self.tree, self.scorer, following) if following is not None else None)


def _select(tree: Tree, scorer: LeafScorer, config: MCTSConfig) -> _Selection | None:
    leaf = next_leaf(tree, config)
    return _Selection(tree, scorer, leaf) if leaf is not None else None


def _encode_prompts(trees: list[Tree], backend: BaseBackend) -> None:
    """Each tree's prompt ids, when the backend tokenizes here (the rendered prompt ends the chat template's
    assistant header, so its ids are the same alone as in front of any continuation)."""
    for tree in trees:
        if tree.prompt_ids is None:
            tree.prompt_ids = backend.encode(tree.prompt)


def _check_inputs(trees: list[Tree], scorers: list[LeafScorer]) -> None:
    if len(trees) != len(scorers):
        raise ValueError(f"one scorer per tree: got {len(trees)} trees and {len(scorers)} scorers")
    root_keys = [tree.root.key for tree in trees]
    if len(set(root_keys)) != len(root_keys):
        raise ValueError("a tree is listed twice (two trees share a root key)")


# Fewest samples in each half's generate call for an overlapped search (`run_search(overlap=True)`): an engine's
# full batch (vLLM runs up to max_num_seqs = 256 sequences at once by default). Below it, a half-size call takes
# about as long as a full one on a GPU, and two of them would cost more than the bookkeeping they hide.
OVERLAP_MIN_SAMPLES = 256


def run_search(
    trees: list[Tree],
    backend: BaseBackend,
    scorers: list[LeafScorer],
    config: MCTSConfig,
    on_step: StepCallback | None = None,
    overlap: bool = False,
    overlap_min_samples: int = OVERLAP_MIN_SAMPLES,
) -> list[Tree]:
    """Search every tree to `config.simulations` simulations (or until nothing is left to expand).

    Each step, every active tree selects one leaf and all the leaves' prefixes go to the backend in one
    `generate` call (n = width, seed = config.seed). `on_step(step_index, changes, stats)` follows each step, with one
    TreeStep per tree expanded in it; step_index counts from 0 in each call (a resumed run restarts it).

    With `overlap`, when each half of the first step's call would hold at least `overlap_min_samples` samples,
    the trees are searched in two halves whose steps take turns: while the engine generates one half's samples
    (on a thread of this function's, the GIL released as it waits for a GPU or a child process), this thread
    expands, scores and reports the other half's, and selects its next leaves. The engine is kept busy and the
    bookkeeping hides behind it, in generate calls half the size: no slower for an engine that a half already
    fills. A tree's samples do not depend on which trees share its call (see the module docstring; the
    transformers backend: unless two trees share a prompt), so the trees are the ones a single batch grows; each
    step reports one half. An error stops the search at once: no call starts after it, and a call under way
    ends on its own (or when the caller closes the backend).
    """
    _check_inputs(trees, scorers)
    _encode_prompts(trees, backend)
    stats = search_stats(trees, config)  # then kept up to date from each step's reports
    params = sampling_params(config, config.width, config.seed)
    batch = [s for s in (_select(t, scorer, config) for t, scorer in zip(trees, scorers)) if s is not None]
    if not overlap or len(batch) * config.width < 2 * overlap_min_samples:
        while batch:
            batch = _step(batch, _generate(backend, [s.prompt for s in batch], params), config, backend, stats, on_step)
        return trees
    halves = [batch[0::2], batch[1::2]]
    engine = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-generate")
    try:
        calls = [engine.submit(_generate, backend, [s.prompt for s in half], params) for half in halves]
        while any(halves):
            for i, half in enumerate(halves):
                if not half:
                    continue
                halves[i] = _step(half, calls[i].result(), config, backend, stats, on_step)
                if halves[i]:  # queued behind the other half's call, which the engine is making now
                    calls[i] = engine.submit(_generate, backend, [s.prompt for s in halves[i]], params)
    except BaseException:
        engine.shutdown(wait=False, cancel_futures=True)  # nothing more starts; a call under way is not waited for
        raise
    engine.shutdown()
    return trees


def _step(
    batch: list[_Selection],
    outputs: list[list[Sample]],
    config: MCTSConfig,
    backend: BaseBackend,
    stats: SearchStats,
    on_step: StepCallback | None,
) -> list[_Selection]:
    """Expand the batch's leaves with their samples and report the step; the trees' next selections."""
    expanded = [s.expand(samples, config, backend) for s, samples in zip(batch, outputs)]
    changes = [step for step, _ in expanded]
    _count(stats, changes, prompts=len(changes))
    if on_step is not None:
        on_step(stats.steps - 1, changes, replace(stats))
    return [following for _, following in expanded if following is not None]


def run_search_sequential(
    trees: list[Tree],
    backend: BaseBackend,
    scorers: list[LeafScorer],
    config: MCTSConfig,
    on_step: StepCallback | None = None,
) -> list[Tree]:
    """The one-node-at-a-time baseline (how MCTS-DPO calls its generator): tree after tree, one
    `generate` call per sample (n=1, `width` calls per expansion). Given the same samples it builds the
    same trees as `run_search`; `benchmarks/mcts.py` compares their speed."""
    _check_inputs(trees, scorers)
    _encode_prompts(trees, backend)
    stats = search_stats(trees, config)
    for tree, scorer in zip(trees, scorers):
        selection = _select(tree, scorer, config)
        while selection is not None:
            samples = []
            for index in range(config.width):
                params = sampling_params(config, 1, call_seed(config.seed, index))
                samples += _generate(backend, [selection.prompt], params)[0]
            change, selection = selection.expand(samples, config, backend)
            _count(stats, [change], prompts=config.width, calls=config.width)
            if on_step is not None:
                on_step(stats.steps - 1, [change], replace(stats))
    return trees


def _count(stats: SearchStats, changes: list[TreeStep], prompts: int, calls: int = 1) -> None:
    """Add one step's reports to the run's stats (a new tree's root, reported in its first step, was
    counted when the run started)."""
    stats.steps += 1
    stats.generate_calls += calls
    stats.prompts += prompts
    for change in changes:
        stats.simulations += 1
        stats.trees_done += change.done
        for node in change.new_nodes:
            if node.parent_key is not None:
                _count_node(stats, node)
