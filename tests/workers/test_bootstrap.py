"""The paired bootstrap against cases whose bootstrap distribution can be enumerated by hand, its deterministic
properties, and its refusals."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from workers.bootstrap import paired_bootstrap


def test_two_queries_one_fixed_the_exact_distribution_is_0_half_1():
    # differences (0, 1): a resample of 2 queries has mean 0 (p 1/4), 1/2 (p 1/2) or 1 (p 1/4)
    result = paired_bootstrap([0, 0], [0, 1])
    assert (result.diff, result.before, result.after, result.n) == (0.5, 0.0, 0.5, 2)
    assert (result.low, result.high) == (0.0, 1.0)  # 2.5% and 97.5% fall in the end masses
    narrow = paired_bootstrap([0, 0], [0, 1], confidence=0.4)  # 30% and 70% both fall in the middle mass
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def exact_quantile(diffs, q):
    """The inverse CDF at q of the mean of n draws with replacement from diffs, by enumerating all n^n draws."""
    n = len(diffs)
    counts = {}
    for draw in itertools.product(diffs, repeat=n):
        mean = Fraction(sum(draw), n)
        counts[mean] = counts.get(mean, 0) + 1
    total, seen = n**n, 0
    for mean in sorted(counts):
        seen += counts[mean]
        if Fraction(seen, total) >= q:
            return float(mean)


def test_three_queries_match_the_enumerated_bootstrap():
    # one query fixed, one broken, one unchanged: differences (1, -1, 0); the mean of 3 draws is k/3 for
    # k in -3..3 with P = 1, 3, 6, 7, 6, 3, 1 (/27): 2.5% → -1 (1/27 = .037 ≥ .025), 97.5% → 1 (26/27 < .975)
    before, after = [0, 1, 1], [1, 0, 1]
    result = paired_bootstrap(before, after)
    assert result.diff == 0.0
    assert (result.low, result.high) == (-1.0, 1.0)
    diffs = [a - b for a, b in zip(after, before)]
    assert result.low == pytest.approx(exact_quantile(diffs, 0.025))
    assert result.high == pytest.approx(exact_quantile(diffs, 0.975))
    # 80%: 10% → -2/3 (1/27 < .1 ≤ 4/27), 90% → 2/3 (23/27 = .852 < .9 ≤ 26/27)
    wide = paired_bootstrap(before, after, confidence=0.8)
    assert (wide.low, wide.high) == (
        pytest.approx(exact_quantile(diffs, 0.1)),
        pytest.approx(exact_quantile(diffs, 0.9)),
    )
    assert (wide.low, wide.high) == (pytest.approx(-2 / 3), pytest.approx(2 / 3))


def test_no_change_and_total_change_have_no_spread():
    same = paired_bootstrap([1, 0, 1, 0], [1, 0, 1, 0])
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    flip = paired_bootstrap([0] * 5, [1] * 5)
    assert (flip.diff, flip.low, flip.high) == (1.0, 1.0, 1.0)


def test_reproducible_by_seed_and_centred_on_the_change():
    rng = np.random.default_rng(1)
    before = (rng.random(800) < 0.3).astype(int).tolist()
    after = [b if rng.random() < 0.9 else 1 - b for b in before]
    first = paired_bootstrap(before, after, seed=3)
    assert first == paired_bootstrap(before, after, seed=3)
    assert first.diff == pytest.approx(np.mean(after) - np.mean(before))
    assert first.low < first.diff < first.high
    other = paired_bootstrap(before, after, seed=4)
    assert other.diff == first.diff and (other.low, other.high) != (first.low, first.high)
    # float outcomes work the same way
    floats = paired_bootstrap([0.5, 0.25], [0.75, 0.25], resamples=200)
    assert floats.diff == 0.125 and floats.as_dict()["n"] == 2


@pytest.mark.parametrize(
    "before, after, kwargs, message",
    [
        ([], [], {}, "at least one query"),
        ([1, 0], [1], {}, "2 before and 1 after"),
        ([1], [1], {"resamples": 0}, "resamples must be at least 1"),
        ([1], [1], {"confidence": 1.0}, "confidence must be in"),
        ([1], [float("nan")], {}, "finite"),
    ],
)
def test_refuses_what_it_cannot_pair(before, after, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(before, after, **kwargs)
