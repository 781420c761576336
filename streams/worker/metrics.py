"""The worker's Prometheus metrics, and the log of batches run without a dependency."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.worker.delivery import Breaker

__all__ = ["DegradedBatches", "Metrics"]

log = logging.getLogger("lendwatch")


class Metrics:
    """What Prometheus scrapes at ``/metrics`` and ``lendwatch status`` prints."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._count_input(self.registry)
        self._count_alerts(self.registry)
        self._count_progress(self.registry)  # registered in the order /metrics lists them

    def _count_input(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "lendwatch_events", "Input records consumed", ["topic"], registry=registry
        )
        self.deadletters = Counter(
            "lendwatch_deadletters", "Input records dead-lettered", ["topic"], registry=registry
        )
        self.skipped = Counter(
            "lendwatch_skipped_events",
            "Valid records not applied: a duplicate event id, or redelivered after a crash",
            ["topic", "why"],
            registry=registry,
        )

    def _count_alerts(self, registry: CollectorRegistry) -> None:
        self.alerts = Counter(
            "lendwatch_alerts", "Alerts published", ["topic", "detector"], registry=registry
        )
        self.resends = Counter(
            "lendwatch_alerts_suppressed",
            "Alerts not sent again: already published (a redelivery or a rebalance)",
            ["detector"],
            registry=registry,
        )
        self.scores = Histogram(
            "lendwatch_alert_score",
            "Scores of the alerts published",
            ["detector"],
            buckets=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
            registry=registry,
        )
        self.latency = Histogram(
            "lendwatch_event_to_alert_seconds",
            "From the broker timestamp of the borrower's latest event in the batch behind an "
            "alert to the alert's acknowledgement",
            ["topic"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )

    def _count_progress(self, registry: CollectorRegistry) -> None:
        self.batch_seconds = Histogram(
            "lendwatch_batch_seconds", "Time to process one batch", ["topic"], registry=registry
        )
        self.lag = Gauge(
            "lendwatch_consumer_lag",
            "Records in the partition not yet processed by this worker",
            ["topic", "partition"],
            registry=registry,
        )
        self.refetched_partitions = Counter(
            "lendwatch_offset_gaps",
            "Partitions fetched again from their next record to apply, which Faust dropped",
            ["topic"],
            registry=registry,
        )
        self.lost_records = Counter(
            "lendwatch_records_lost",
            "Input records deleted from the log (retention, compaction) before they were applied",
            ["topic"],
            registry=registry,
        )
        self.thresholds = Gauge(
            "lendwatch_thresholds",
            "The thresholds in force: 1 for the live version and candidate in shadow applied",
            ["live", "shadow"],
            registry=registry,
        )
        self.degraded = Counter(
            "lendwatch_degraded_batches",
            "Batches run without a dependency",
            ["detector"],
            registry=registry,
        )


class DegradedBatches:
    """Counts degraded batches by what they ran without, and logs why.

    Redis going and coming back is logged once each way (the breaker says which); any other
    degradation, a failed timer, is logged every time.
    """

    def __init__(self, metrics: Metrics, breaker: Breaker) -> None:
        self.metrics = metrics
        self.breaker = breaker
        self._redis_down = False

    def report(self, degraded: list[str]) -> None:
        redis_down = self.breaker.is_open
        for reason in degraded:
            self.metrics.degraded.labels(reason.split(":", 1)[0]).inc()
            if not redis_down or not self._redis_down:
                log.warning("degraded: %s", reason)
        if self._redis_down and not redis_down:
            log.warning("recovered: Redis answers again; every detector runs in full")
        self._redis_down = redis_down
