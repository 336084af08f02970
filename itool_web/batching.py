"""`batched`: an iterable in lists of `size` (itertools.batched is Python 3.12; this project runs on 3.11)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter), reading `items` once, lazily."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
