"""``lendwatch status`` reads the worker's own Prometheus output."""

from __future__ import annotations

from prometheus_client import generate_latest

from streams.ops.status import parse, quantile, render
from streams.worker.metrics import Metrics


def test_status_shows_rates_lag_alerts_and_latency() -> None:
    metrics = Metrics()
    metrics.events.labels("lending.transactions").inc(1000)
    before = parse(generate_latest(metrics.registry).decode(), at=10.0)
    metrics.events.labels("lending.transactions").inc(2500)
    metrics.lag.labels("lending.transactions", "0").set(40)
    metrics.lag.labels("lending.transactions", "1").set(2)
    metrics.deadletters.labels("lending.transactions").inc(3)
    metrics.alerts.labels("alerts.fraud", "circular_flow").inc(7)
    metrics.resends.labels("circular_flow").inc(2)
    for seconds in [0.02] * 98 + [0.4, 0.4]:
        metrics.latency.labels("lending.transactions").observe(seconds)
    metrics.degraded.labels("device_ring").inc()
    after = parse(generate_latest(metrics.registry).decode(), at=12.0)

    text = render(before, after)

    row = next(line for line in text.splitlines() if line.startswith("lending.transactions"))
    assert row.split() == ["lending.transactions", "3,500", "1,250", "42", "3"]
    assert next(line for line in text.splitlines() if line.startswith("circular_flow")).split() == [
        "circular_flow",
        "7",
        "2",
    ]
    assert "p50 ≤ 25 ms, p99 ≤ 500 ms" in text
    assert "degraded batches: device_ring 1" in text
    assert quantile(after, "lendwatch_batch_seconds", 0.5) is None
