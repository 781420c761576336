"""The latency section of the printed report: the worker's p99 against the bare forwarder's."""

from __future__ import annotations

from typing import Any

from benchmarks.forwarder import summarize
from benchmarks.report import Results, render


def _results(worker: list[float], forwarder: list[float]) -> Results:
    """A run with only the latency part: ``worker`` the alerts' latencies, ``forwarder`` the
    forwarded records'."""
    results = Results(partitions=8)
    results.latency = {
        "rate": 1000.0,
        "achieved_rate": 999.0,
        "events": 60_000,
        "peak_rss": 2**28,
        "event_alerts": worker,
        "event_emitted": worker,
        "timer_alerts": [],
        "lag": [3, 5],
        "unmatched": 0,
        "load": 1.2,
    }
    figures: dict[str, Any] = {"rate": 1000.0, "achieved_rate": 998.0, "events": 60_000}
    results.forwarder = {**figures, **summarize(forwarder), "peak_rss": 2**26, "load": 1.4}
    results.forwarder["missing"] = results.forwarder["events"] - len(forwarder)
    return results


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


def test_the_forwarder_is_printed_beside_the_worker() -> None:
    text = render(_results([0.12] * 100, [0.05] * 60_000))

    line = _line(text, "bare aiokafka forwarder")
    assert "n=60,000" in line and "p50 50 ms" in line and "p99 50 ms" in line
    assert "achieved 998" in line
    assert "never arrived" not in text


def test_within_twice_the_forwarder_and_250_ms_where_it_is_quick() -> None:
    line = _line(render(_results([0.12] * 100, [0.07] * 1000)), "(b)'s p99 / forwarder's")

    assert "1.71   ≤ 2 ✓" in line
    assert "forwarder p99 ≤ 125 ms, so (b) p99 ≤ 250 ms ✓" in line
    assert "load 1.2 after (b)'s run, 1.4 after this one" in line


def test_over_twice_the_forwarder_is_marked() -> None:
    line = _line(render(_results([0.3] * 100, [0.1] * 1000)), "(b)'s p99 / forwarder's")

    assert "3.00   ≤ 2 ✗" in line
    assert "so (b) p99 ≤ 250 ms ✗" in line


def test_the_250_ms_bound_holds_only_where_the_forwarder_is_quick() -> None:
    text = render(_results([0.3] * 100, [0.2] * 999))

    line = _line(text, "(b)'s p99 / forwarder's")
    assert "1.50   ≤ 2 ✓" in line
    assert "forwarder p99 > 125 ms: the 250 ms bound does not apply" in line
    assert "60,000" not in _line(text, "bare aiokafka forwarder")
    assert "59,001 forwarded records never arrived" in text


def test_no_alert_is_no_ratio() -> None:
    line = _line(render(_results([], [0.05] * 10)), "(b)'s p99 / forwarder's")

    assert "–   ≤ 2 –" in line
    assert "where the forwarder's ≤ 125 ms –" in line
