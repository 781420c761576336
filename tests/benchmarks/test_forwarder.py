"""The forwarder's figures: every record's latency summed up by nearest rank, as the worker's."""

from __future__ import annotations

from benchmarks.forwarder import Forwarding, summarize


def test_the_summary_takes_nearest_ranks() -> None:
    latencies = [i / 1000 for i in range(200, 0, -1)]  # 1 ms to 200 ms, in no order

    summary = summarize(latencies)

    assert summary == {"n": 200, "p50": 0.1, "p99": 0.198, "max": 0.2}


def test_no_record_is_no_figure() -> None:
    assert summarize([]) == {"n": 0, "p50": None, "p99": None, "max": None}


def test_the_results_keep_the_summary_and_what_never_arrived() -> None:
    run = Forwarding(500.0, 498.0, 5, [0.03, 0.01, 0.02], peak_rss=2**26, load=1.5)

    figures = run.figures()

    assert figures["n"] == 3 and figures["missing"] == 2
    assert figures["p50"] == 0.02 and figures["max"] == 0.03
    assert "latencies" not in figures
