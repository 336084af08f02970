"""Paired bootstrap: the interval of a before → after change measured on the same queries.

Both policies answered the same queries, so the change is resampled *by query*: each resample draws n queries
with replacement and takes the mean of their (after − before) differences; the interval is the percentile
interval of those means. Pairing removes the between-query variance that two independent samples would carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

_CHUNK = 1_000  # resamples drawn at once: 1,000 × 800 queries of int64 indices is ~6 MB


@dataclass(frozen=True)
class PairedInterval:
    """Mean of after − before over n paired queries, with its bootstrap percentile interval."""

    diff: float  # mean(after) − mean(before)
    low: float
    high: float
    n: int  # paired queries
    before: float  # mean of the before outcomes
    after: float  # mean of the after outcomes
    confidence: float
    resamples: int

    def as_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(
    before: Sequence[float], after: Sequence[float], *, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> PairedInterval:
    """The change from `before` to `after` (per-query outcomes — 0/1 pass, or any number — of the same
    queries in the same order) with its `confidence` percentile interval over `resamples` query resamples."""
    if len(before) != len(after):
        raise ValueError(
            f"paired bootstrap needs the same queries before and after: got {len(before)} before and {len(after)} after"
        )
    if not before:
        raise ValueError("paired bootstrap needs at least one query")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    if not (np.isfinite(b).all() and np.isfinite(a).all()):
        raise ValueError("paired bootstrap outcomes must be finite numbers")
    diffs = a - b  # (n,)
    n = len(diffs)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)  # (resamples,) mean difference of each resample
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n))  # (size, n) query indices, drawn with replacement
        means[start : start + size] = diffs[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    # inverted CDF: each bound is a value the resampled means actually took (exact on small, enumerable cases)
    low, high = np.quantile(means, [tail, 1 - tail], method="inverted_cdf")
    return PairedInterval(
        diff=_clean(diffs.mean()),
        low=_clean(low),
        high=_clean(high),
        n=n,
        before=_clean(b.mean()),
        after=_clean(a.mean()),
        confidence=confidence,
        resamples=resamples,
    )


def _clean(value) -> float:
    """A plain float rounded to 12 decimals: means of 0/1 outcomes compare as the fractions they are."""
    value = float(value)
    return round(value, 12) if math.isfinite(value) else value
