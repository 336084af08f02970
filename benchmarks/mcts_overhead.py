"""The search's bookkeeping ceiling: the batched search (`run_search`) with a backend that answers instantly
from fixed samples, so what is timed is what a GPU engine cannot speed up — selecting leaves and expanding
trees in memory, the checker scoring every rollout, and storing each step in the configured database.
Printed: nodes/s of the bookkeeping alone (the median of `REPEATS` searches) and the share of each part, for
three ways of storing steps: each tree's alone, all trees' at once, and all trees' at once on the writer
thread (`StepWriter`, the search stage's way: the search's thread only snapshots a step and goes on). The goal
is ≥ 20,000 nodes/s per worker on PostgreSQL, so that an engine producing a few thousand nodes/s loses < 20%
to bookkeeping.

Run it on both databases: `make bench` (SQLite by default) and
`DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python -m benchmarks mcts_overhead`."""

from __future__ import annotations

import random
import re
import tempfile
import time
import uuid
import zlib

from django.db import connection

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.models import Query
from apps.projects.models import Project
from apps.search.models import SearchTree, TreeNode
from apps.search.services import StepWriter, step_row, tree_step_save, trees_steps_save
from workers.llm.base import BaseBackend, Sample, SamplingParams
from workers.llm.isolated import IsolatedBackend
from workers.llm.tiny import TinyModelConfig, build_tiny_model, corpus_from_records
from workers.llm.tokens import decode_ids, encode_text, load_tokenizer
from workers.mcts import MCTSConfig, Tree, frozen_heap, leaf_scorer, run_search

TREES = 256
REPEATS = 5  # searches per way of storing; their median is printed
# samples/s of the simulated engine: vLLM with a small policy on one GPU makes a few thousand
ENGINES = (5_000, 10_000)
CONFIG = MCTSConfig()  # iTool's settings: 5 simulations × 3 samples, depth 3
CHARS_PER_TOKEN = 3  # the fixed samples' token count (for the priors): about a BPE token's characters


def _variant(answer: str, where: int, rng: random.Random) -> str:
    """`answer` with one character of one argument value changed: a wrong value, as a policy writes one."""
    starts = [m.end() for m in re.finditer(r"=\s*'?", answer)]
    if not starts:
        return answer + " "
    i = starts[where % len(starts)]
    if i >= len(answer):
        return answer
    old = answer[i]
    new = str((int(old) + 1) % 10) if old.isdigit() else rng.choice([c for c in "abcdefgh" if c != old.lower()])
    return answer[:i] + new + answer[i + 1 :]


class Tokens:
    """How the search's process converts token ids (the transformers and vLLM backends' way): with the model's
    tokenizer here (`here`), or by a round trip to the generation process for every decode (`child`, what
    `IsolatedBackend` did before it kept a tokenizer of its own). Decoding is the search's work: it is timed."""

    def __init__(self, tokenizer, child: IsolatedBackend | None = None):
        self.tokenizer, self.child = tokenizer, child
        self.seconds = 0.0
        self.calls = 0

    def decode(self, token_ids: list[int]) -> str:
        start = time.perf_counter()
        try:
            return self.child._call("decode", token_ids) if self.child else decode_ids(self.tokenizer, token_ids)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


class InstantBackend(BaseBackend):
    """Answers each prompt at once with continuations of its tree's fixed answers (the reference and two wrong
    variants) that extend the prompt's path; the time spent here is measured and left out. With `tokens`, prompts
    are token ids and samples carry theirs (the transformers and vLLM backends' way), and the search decodes
    them through `tokens` to cut fragments on token boundaries."""

    name = "instant"

    def __init__(
        self, answers: dict[str, list[str]], samples_per_second: float | None = None, tokens: Tokens | None = None
    ):
        self.answers = answers  # root prompt → full answers
        self.roots = {root[: root.index("|>") + 2]: root for root in answers}  # "<|tree N|>" → root prompt
        self.seconds = 0.0  # time spent here making the samples
        self.rate = samples_per_second  # an engine's pace, waited out (releasing the GIL, as a GPU call does)
        self.engine = 0.0
        self.tokens = tokens
        self._ids: dict[str, list[int]] = {}  # a continuation's token ids

    def encode(self, text: str) -> list[int] | None:
        return encode_text(self.tokens.tokenizer, text) if self.tokens else None

    def decode(self, token_ids: list[int]) -> str:
        return self.tokens.decode(token_ids)

    def generate(self, prompts, params: SamplingParams) -> list[list[Sample]]:
        start = time.perf_counter()
        out = []
        for prompt in prompts:
            if not isinstance(prompt, str):
                prompt = decode_ids(self.tokens.tokenizer, prompt)
            root = self.roots[prompt[: prompt.index("|>") + 2]]
            path = prompt[len(root) :]
            candidates = [a[len(path) :] for a in self.answers[root] if a.startswith(path)] or ["')]"]
            samples = []
            first = zlib.crc32(prompt.encode())  # the prompt's samples, whatever its place in the call
            for i in range(params.n):
                text = candidates[(i + first) % len(candidates)]
                if self.tokens:
                    ids = self._ids.get(text) or self._ids.setdefault(text, encode_text(self.tokens.tokenizer, text))
                    samples.append(
                        Sample(text=text, token_ids=list(ids), token_logprobs=[-0.4] * len(ids), finish_reason="stop")
                    )
                    continue
                samples.append(
                    Sample(
                        text=text, token_logprobs=[-0.4] * max(1, len(text) // CHARS_PER_TOKEN), finish_reason="stop"
                    )
                )
            out.append(samples)
        self.seconds += time.perf_counter() - start  # the engine's wait below is not: any delay past it (the
        if self.rate:  # GIL taken back from the writer thread) counts as bookkeeping
            wait = len(prompts) * params.n / self.rate
            time.sleep(wait)
            self.engine += wait
        return out


class TimedScorer:
    """A leaf scorer whose calls are timed (the checker's share)."""

    def __init__(self, scorer, clock: list[float]):
        self.scorer, self.clock = scorer, clock

    def __call__(self, text: str):
        start = time.perf_counter()
        try:
            return self.scorer(text)
        finally:
            self.clock[0] += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self.scorer, name)


def _search(
    picked,
    mode: str,
    rng: random.Random,
    samples_per_second: float | None = None,
    tokens: Tokens | None = None,
    overlap: bool = False,
) -> dict:
    """One search of the picked queries' trees; seconds of each part."""
    if connection.vendor == "postgresql":  # the last search's deleted rows cleared first: each starts alike
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {TreeNode._meta.db_table}, {SearchTree._meta.db_table}")
    tag = uuid.uuid4().hex[:8]
    project = Project.objects.create(name=f"bench-mcts-overhead-{tag}")
    try:
        Query.objects.bulk_create(
            [
                Query(
                    project=project, external_id=f"q{i}", source="bench", messages=q.messages, content_hash=f"{tag}-{i}"
                )
                for i, q in enumerate(picked)
            ]
        )
        queries = list(Query.objects.filter(project=project).order_by("id"))
        SearchTree.objects.bulk_create([SearchTree(project=project, query=q) for q in queries])
        tree_rows = list(SearchTree.objects.filter(project=project).order_by("id"))
        trees, scorers, answers = [], [], {}
        checker_clock = [0.0]
        for row, q in zip(tree_rows, picked):
            tools = [t.as_openai() for t in q.tools]
            # a distinct root prompt per tree (the instant backend finds a prompt's tree by its root)
            prompt = f"<|tree {row.pk}|>{q.messages[-1]['content']}\n<|assistant|>"
            answers[prompt] = [
                q.reference_output,
                _variant(q.reference_output, 0, rng),
                _variant(q.reference_output, 1, rng),
            ]
            trees.append(Tree.new(row.pk, prompt))
            scorers.append(TimedScorer(leaf_scorer(CONFIG, q.ground_truth, tools), checker_clock))
        backend = InstantBackend(answers, samples_per_second, tokens)
        if tokens:
            tokens.seconds, tokens.calls = 0.0, 0
        persist = [0.0]
        writer = StepWriter() if mode == "writer" else None

        def on_step(step_index, steps, stats) -> None:  # what apps.training.stages.search.trees_search stores each step
            start = time.perf_counter()
            rows = [step_row(step) for step in steps]
            if mode == "writer":
                writer.put(rows)
            elif mode == "batched":
                trees_steps_save(steps=rows)
            else:
                for row in rows:
                    tree_step_save(**row)
            persist[0] += time.perf_counter() - start

        with frozen_heap():  # as the search stage runs it (outside the time: one collection per shard)
            start = time.perf_counter()
            run_search(trees, backend, scorers, CONFIG, on_step=on_step, overlap=overlap)
        if writer is not None:
            close = time.perf_counter()
            writer.close()
            persist[0] += time.perf_counter() - close
        total = time.perf_counter() - start
        stored = TreeNode.objects.filter(tree__project=project).count()
    finally:
        project.delete()
    nodes = sum(len(t) - 1 for t in trees)
    assert stored == nodes + len(trees), f"stored {stored} rows for {nodes} nodes + {len(trees)} roots"
    bookkeeping = total - backend.seconds - backend.engine
    return {
        "nodes": nodes,
        "wall": total,
        "engine": backend.engine,
        "bookkeeping": bookkeeping,
        "backend": backend.seconds,
        "checker": checker_clock[0],
        "persistence": persist[0],
        "search": bookkeeping - checker_clock[0] - persist[0] - (tokens.seconds if tokens else 0.0),
        "decode": tokens.seconds if tokens else 0.0,
        "decodes": tokens.calls if tokens else 0,
        "writer": writer.busy if writer is not None else persist[0],
        "rollouts": sum(len(s.scorer.known) + s.scorer.hits for s in scorers),
        "checked": sum(len(s.scorer.known) for s in scorers),
    }


def _median(runs: list[dict]) -> dict:
    """The run whose bookkeeping time is the median (its parts add up, as medians of each part would not)."""
    return sorted(runs, key=lambda run: run["bookkeeping"])[len(runs) // 2]


WAYS = (
    ("each tree's step saved alone", "alone"),
    ("one step of all trees saved at once", "batched"),
    ("all trees' step stored on the writer thread (the search stage's way)", "writer"),
)
PARTS = (
    ("selection + expansion (in memory)", "search"),
    ("checker", "checker"),
    ("decoding token ids", "decode"),
    ("step persistence, search's thread", "persistence"),
)


def _bookkeeping(label: str, runs: list[dict]) -> float:
    """Print the median run's nodes/s of bookkeeping and its parts; return the nodes/s."""
    r = _median(runs)
    rate = r["nodes"] / r["bookkeeping"]
    spread = sorted(run["nodes"] / run["bookkeeping"] for run in runs)
    print(
        f"{label}: {rate:,.0f} nodes/s of bookkeeping (range {spread[0]:,.0f} … {spread[-1]:,.0f}; "
        f"{r['nodes']:,.0f} nodes, {r['bookkeeping']:.3f} s)"
    )
    for part, key in PARTS:
        if r[key]:
            print(f"  {part:<34} {r[key] / r['bookkeeping']:6.1%}  ({r['nodes'] / r[key]:,.0f} nodes/s alone)")
    if r["decodes"]:
        print(f"  {r['decodes']:,} decodes, {r['decode'] / r['decodes'] * 1e6:.1f} µs each")
    if r["writer"] != r["persistence"]:
        print(
            f"  the writer thread stored the steps in {r['writer']:.3f} s, alongside the search "
            f"({r['nodes'] / r['writer']:,.0f} nodes/s)"
        )
    return rate


def main() -> None:
    env = generate_environment(EnvironmentConfig(seed=0, queries=600))
    picked = [q for q in env.queries if q.ground_truth and q.reference_output.startswith("[")][:TREES]
    records = [
        {"messages": q.messages, "reference_output": q.reference_output, "tools": [t.as_openai() for t in q.tools]}
        for q in env.queries
    ]
    with tempfile.TemporaryDirectory() as folder:  # a nano model: its tokenizer, and a child process to ask
        build_tiny_model(corpus_from_records(records), folder, TinyModelConfig(size="nano", seed=0))
        child = IsolatedBackend("transformers", model_path=folder, num_threads=1)
        try:
            tokenizer = load_tokenizer(folder)
            _run(picked, Tokens(tokenizer), Tokens(tokenizer, child))
        finally:
            child.close()


def _run(picked, here: Tokens, child: Tokens) -> None:
    print(
        f"database: {connection.vendor}; {len(picked)} trees, {CONFIG.simulations} simulations x {CONFIG.width} "
        f"samples, depth {CONFIG.max_depth}; an instant backend (its time left out); the median of {REPEATS} searches"
    )
    _search(picked, "batched", random.Random(0))  # warm-up: imports, the database's caches
    print("text prompts (an OpenAI-compatible server's way: fragments cut on characters)")
    rates = {}
    for label, mode in WAYS:
        rates[mode] = _bookkeeping(label, [_search(picked, mode, random.Random(0)) for _ in range(REPEATS)])
    r = _search(picked, "writer", random.Random(0))
    print(
        f"  checker: {r['checked']:,.0f} distinct responses checked for {r['rollouts']:,.0f} rollouts; "
        f"the rest answered from the query's memory"
    )
    print("token ids (the transformers and vLLM backends' way: fragments cut on token boundaries), writer thread")
    for label, tokens in (
        ("decoded in the search's process (IsolatedBackend's own tokenizer)", here),
        ("decoded by a round trip to the generation process", child),
    ):
        runs = [_search(picked, "writer", random.Random(0), tokens=tokens) for _ in range(REPEATS)]
        rates[tokens] = _bookkeeping(label, runs)
    print(
        f"the search stage's way: {rates['writer']:,.0f} nodes/s of bookkeeping per worker with text prompts, "
        f"{rates[here]:,.0f} with token ids ({rates['writer'] / rates['alone']:.1f}x per-tree saves; round trips "
        f"to decode: {rates[child]:,.0f}); goal: 20,000 nodes/s on PostgreSQL"
    )
    ways = (
        ("text, inline", "batched", None, False),
        ("text, writer", "writer", None, False),
        ("text, writer, overlapped", "writer", None, True),
        ("token ids, writer", "writer", here, False),
        ("token ids, writer, overlapped", "writer", here, True),
    )
    for engine in ENGINES:
        print(
            f"against an engine making {engine:,} samples/s (its time waited out, the GIL released): what the "
            "search adds to the engine's time; overlapped = two halves of the trees in turns (SEARCH_OVERLAP)"
        )
        runs = {label: [] for label, *_ in ways}
        for _ in range(REPEATS):  # the ways in turn, so that all meet the same machine
            for label, mode, tokens, overlap in ways:
                run = _search(picked, mode, random.Random(0), engine, tokens, overlap)
                run["bookkeeping"] = run["wall"] - run["engine"] - run["backend"]  # the search's time past the engine's
                runs[label].append(run)
        for label, *_ in ways:
            r = _median(runs[label])
            print(
                f"  {label:<29} {r['wall']:.3f} s for {r['engine']:.3f} s of engine: the search adds "
                f"{r['bookkeeping']:.3f} s, {r['bookkeeping'] / r['wall']:.1%} of its time (goal < 20%); "
                f"{r['nodes'] / r['bookkeeping']:,.0f} nodes/s"
            )
