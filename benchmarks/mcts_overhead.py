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
import time
import uuid

from django.db import connection

from apps.catalog.environment import EnvironmentConfig, generate_environment
from apps.catalog.models import Query
from apps.projects.models import Project
from apps.search.models import SearchTree, TreeNode
from apps.search.services import StepWriter, step_row, tree_step_save, trees_steps_save
from workers.llm.base import BaseBackend, Sample, SamplingParams
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


class InstantBackend(BaseBackend):
    """Answers each prompt at once with continuations of its tree's fixed answers (the reference and two wrong
    variants) that extend the prompt's path; the time spent here is measured and left out."""

    name = "instant"

    def __init__(self, answers: dict[str, list[str]], samples_per_second: float | None = None):
        self.answers = answers  # root prompt → full answers
        self.roots = {root[: root.index("|>") + 2]: root for root in answers}  # "<|tree N|>" → root prompt
        self.seconds = 0.0  # time spent here making the samples
        self.rate = samples_per_second  # an engine's pace, waited out (releasing the GIL, as a GPU call does)
        self.engine = 0.0

    def generate(self, prompts, params: SamplingParams) -> list[list[Sample]]:
        start = time.perf_counter()
        out = []
        for p_index, prompt in enumerate(prompts):
            root = self.roots[prompt[: prompt.index("|>") + 2]]
            path = prompt[len(root) :]
            candidates = [a[len(path) :] for a in self.answers[root] if a.startswith(path)] or ["')]"]
            samples = []
            for i in range(params.n):
                text = candidates[(i + p_index) % len(candidates)]
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


def _search(picked, mode: str, rng: random.Random, samples_per_second: float | None = None) -> dict:
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
        backend = InstantBackend(answers, samples_per_second)
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
            run_search(trees, backend, scorers, CONFIG, on_step=on_step)
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
        "search": bookkeeping - checker_clock[0] - persist[0],
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


def main() -> None:
    env = generate_environment(EnvironmentConfig(seed=0, queries=600))
    picked = [q for q in env.queries if q.ground_truth and q.reference_output.startswith("[")][:TREES]
    print(
        f"database: {connection.vendor}; {len(picked)} trees, {CONFIG.simulations} simulations x {CONFIG.width} "
        f"samples, depth {CONFIG.max_depth}; an instant backend (its time left out); the median of {REPEATS} searches"
    )
    _search(picked, "batched", random.Random(0))  # warm-up: imports, the database's caches
    rates = {}
    for label, mode in WAYS:
        runs = [_search(picked, mode, random.Random(0)) for _ in range(REPEATS)]
        r = _median(runs)
        rates[mode] = r["nodes"] / r["bookkeeping"]
        spread = sorted(run["nodes"] / run["bookkeeping"] for run in runs)
        print(
            f"{label}: {rates[mode]:,.0f} nodes/s of bookkeeping (range {spread[0]:,.0f} … {spread[-1]:,.0f}; "
            f"{r['nodes']:,.0f} nodes, {r['bookkeeping']:.3f} s)"
        )
        for part, key in (
            ("selection + expansion (in memory)", "search"),
            ("checker", "checker"),
            ("step persistence, search's thread", "persistence"),
        ):
            print(f"  {part:<34} {r[key] / r['bookkeeping']:6.1%}  ({r['nodes'] / r[key]:,.0f} nodes/s alone)")
        if mode == "writer":
            print(
                f"  the writer thread stored the steps in {r['writer']:.3f} s, alongside the search "
                f"({r['nodes'] / r['writer']:,.0f} nodes/s)"
            )
    print(
        f"  checker: {r['checked']:,.0f} distinct responses checked for {r['rollouts']:,.0f} rollouts; "
        f"the rest answered from the query's memory"
    )
    print(
        f"the search stage's way: {rates['writer']:,.0f} nodes/s of bookkeeping per worker, "
        f"{rates['writer'] / rates['alone']:.1f}x per-tree saves (goal: 20,000 nodes/s on PostgreSQL)"
    )
    for engine in ENGINES:
        print(
            f"against an engine making {engine:,} samples/s (its time waited out, the GIL released): what the "
            "search adds to the engine's time"
        )
        modes = [mode for _label, mode in WAYS[1:]]
        runs = {mode: [] for mode in modes}
        for _ in range(REPEATS):  # the two ways in turn, so that both meet the same machine
            for mode in modes:
                run = _search(picked, mode, random.Random(0), engine)
                run["bookkeeping"] = run["wall"] - run["engine"]  # all the search's time past the engine's
                runs[mode].append(run)
        for mode in modes:
            r = _median(runs[mode])
            print(
                f"  {mode:<8} {r['wall']:.3f} s for {r['engine']:.3f} s of engine: the search adds "
                f"{r['bookkeeping']:.3f} s, {r['bookkeeping'] / r['wall']:.1%} of its time (goal < 20%); "
                f"{r['nodes'] / r['bookkeeping']:,.0f} nodes/s"
            )
