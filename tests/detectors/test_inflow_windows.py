"""Inflow windows: the ring read by day, trimmed means, the rank, mean and trend statistics."""

from __future__ import annotations

import math
import random

import pytest

from detectors.inflow_windows import days, mean_z, rank_z, slope, trimmed_mean, windows
from detectors.state import InflowHistory


def _by_day(inflows: InflowHistory, start: int, end: int) -> list[float]:
    """The days of ``[start, end)`` one by one, the latest first: what ``days`` must give."""
    if inflows.first_day < 0:
        return []
    sums, last = inflows.sums, inflows.last_day
    first = max(start, inflows.first_day, last - len(sums) + 1)
    return [sums[day % len(sums)] if day <= last else 0.0 for day in range(end - 1, first - 1, -1)]


def test_days_reads_the_ring_as_a_day_by_day_walk_does() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        inflows = InflowHistory()
        base = rng.randint(100, 300)
        for _ in range(rng.randint(0, 200)):
            inflows.add(base + rng.randint(0, 250), round(rng.random() * 100, 2))
        start = base + rng.randint(-50, 300)
        end = start + rng.randint(-5, 120)
        assert days(inflows, start, end) == _by_day(inflows, start, end)


def test_the_statistics() -> None:
    assert trimmed_mean([1.0, 2.0, 3.0, 100.0], 1) == 2.0
    assert rank_z([1.0] * 3, [5.0, 6.0, 7.0, 8.0]) == pytest.approx(-2.12, abs=0.01)
    assert mean_z([5.0] * 4, [10.0, 0.0, 10.0, 0.0]) == 0.0
    assert mean_z([1.0] * 4, [10.0, 0.0, 10.0, 0.0]) == pytest.approx(-1.39, abs=0.01)
    assert mean_z([1.0], [2.0, 2.0]) == -math.inf and mean_z([], [1.0, 2.0]) is None
    assert slope([3.0, 4.0, 5.0, 6.0]) == -1.0  # the latest first: one less each day
    assert slope([2.0] * 11 + [10.0] * 3) == 0.0  # one step down, then flat: no trend
    assert slope([1.0, 2.0]) is None


def test_windows_of_a_history() -> None:
    inflows = InflowHistory()
    for day in range(1000, 1070):
        inflows.add(day, 100.0 if day < 1056 else 40.0)

    seen = windows(
        inflows,
        1070,
        recent_days=7,
        gap_days=21,
        baseline_days=42,
        min_baseline_days=7,
        recovery_days=3,
    )

    assert seen is not None
    assert (seen.recent, seen.older, seen.latest, seen.baseline) == (40.0, 40.0, 40.0, 100.0)
    assert seen.ratio == 0.4 and seen.older_ratio == 0.4
    assert len(seen.fortnight) == 14 and len(seen.weeks) == 42
    assert windows(inflows, 1005, **_DEFAULTS) is None  # not a full recent week yet
    short = windows(inflows, 1025, **_DEFAULTS)
    assert short is not None and short.baseline is None  # too few baseline days


_DEFAULTS = {
    "recent_days": 7,
    "gap_days": 21,
    "baseline_days": 42,
    "min_baseline_days": 7,
    "recovery_days": 3,
}
