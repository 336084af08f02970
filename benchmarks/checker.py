"""Checker throughput: ours against bfcl-eval's decoder + AST checker, on the same BFCL v4 outputs.

The checker runs on every search leaf, so it should be at least as fast as BFCL's (ratio >= 1.0).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

from rewards.checker import Checker, check
from tests.rewards.bfcl_oracle import bfcl_valid
from tests.rewards.test_bfcl_agreement import CATEGORIES, load, variants

ROUNDS = 3


def cases() -> list[tuple]:
    """(outputs, functions, possible answer, category) per BFCL query."""
    data = Path(importlib.util.find_spec("bfcl_eval").origin).parent / "data"
    out = []
    for category in CATEGORIES:
        for prompt, answer in load(data, category):
            outputs = [o for _, o in variants(prompt["function"], answer, category)]
            out.append((outputs, prompt["function"], answer, category))
    return out


def bfcl(outputs, functions, answer, category):
    for output in outputs:
        bfcl_valid(output, functions, answer, category)


def ours_cold(outputs, functions, answer, category):
    for output in outputs:
        check(output, answer, functions)


def ours_prepared(outputs, functions, answer, category):
    """As the search uses it: the query's tools and answer prepared once, then every leaf checked."""
    checker = Checker(answer, functions)
    for output in outputs:
        checker(output)


def _best_of(fn, items) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for item in items:
            fn(*item)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    items = cases()
    n = sum(len(outputs) for outputs, *_ in items)
    theirs = _best_of(bfcl, items)
    prepared = _best_of(ours_prepared, items)
    cold = _best_of(ours_cold, items)
    print(f"outputs: {n} over {len(items)} queries (BFCL v4 single-turn AST categories, right and perturbed)")
    print(f"bfcl-eval decode + ast_checker:       {n / theirs:,.0f} outputs/s")
    print(f"ours, prepared per query (as search): {n / prepared:,.0f} outputs/s  ({theirs / prepared:.2f}x bfcl-eval)")
    print(f"ours, tools normalised every call:    {n / cold:,.0f} outputs/s  ({theirs / cold:.2f}x bfcl-eval)")
