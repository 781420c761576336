"""``lendwatch status``: a running worker's metrics, read from its /metrics page."""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Snapshot", "render", "scrape"]


@dataclass
class Snapshot:
    """The samples of one scrape, by metric sample name and label values."""

    at: float
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)

    def by(self, name: str, label: str) -> dict[str, float]:
        """Sum of a sample over every label but ``label``."""
        sums: defaultdict[str, float] = defaultdict(float)
        for labels, value in self.samples.get(name, {}).items():
            sums[dict(labels).get(label, "")] += value
        return dict(sums)

    def total(self, name: str) -> float:
        return sum(self.samples.get(name, {}).values())


def parse(text: str, at: float) -> Snapshot:
    snapshot = Snapshot(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            snapshot.samples.setdefault(sample.name, {})[labels] = sample.value
    return snapshot


def scrape(url: str) -> Snapshot:
    with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=5) as response:  # noqa: S310
        return parse(response.read().decode(), time.monotonic())


def quantile(snapshot: Snapshot, name: str, q: float) -> float | None:
    """The upper bound of the histogram bucket holding quantile ``q`` (None when empty)."""
    buckets: defaultdict[float, float] = defaultdict(float)
    for labels, value in snapshot.samples.get(f"{name}_bucket", {}).items():
        buckets[float(dict(labels)["le"])] += value
    if not buckets or buckets[float("inf")] == 0:
        return None
    wanted = q * buckets[float("inf")]
    return next(bound for bound in sorted(buckets) if buckets[bound] >= wanted)


def render(before: Snapshot, after: Snapshot) -> str:
    """Per-topic throughput and lag, alerts per detector, dead letters, degradations."""
    seconds = max(1e-9, after.at - before.at)
    consumed = after.by("lendwatch_events_total", "topic")
    earlier = before.by("lendwatch_events_total", "topic")
    lag = after.by("lendwatch_consumer_lag", "topic")
    dead = after.by("lendwatch_deadletters_total", "topic")
    lines = [f"{'input topic':<32} {'consumed':>10} {'events/s':>9} {'lag':>8} {'dead':>6}"]
    for topic in sorted(set(consumed) | set(lag)):
        rate = (consumed.get(topic, 0.0) - earlier.get(topic, 0.0)) / seconds
        lines.append(
            f"{topic:<32} {consumed.get(topic, 0):>10,.0f} {rate:>9,.0f} "
            f"{lag.get(topic, 0):>8,.0f} {dead.get(topic, 0):>6,.0f}"
        )
    lines.append("")
    alerts = after.by("lendwatch_alerts_total", "detector")
    suppressed = after.by("lendwatch_alerts_suppressed_total", "detector")
    lines.append(f"{'detector':<24} {'alerts':>8} {'suppressed':>11}")
    for detector in sorted(set(alerts) | set(suppressed)):
        lines.append(
            f"{detector:<24} {alerts.get(detector, 0):>8,.0f} {suppressed.get(detector, 0):>11,.0f}"
        )
    latency = "event→alert: no alert yet"
    p50 = quantile(after, "lendwatch_event_to_alert_seconds", 0.5)
    p99 = quantile(after, "lendwatch_event_to_alert_seconds", 0.99)
    if p50 is not None and p99 is not None:
        latency = f"event→alert: p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms"
    skipped = after.by("lendwatch_skipped_events_total", "why")
    degraded = after.by("lendwatch_degraded_batches_total", "detector")
    lines += [
        "",
        latency,
        "skipped: " + (", ".join(f"{k} {v:,.0f}" for k, v in sorted(skipped.items())) or "none"),
        "degraded batches: "
        + (", ".join(f"{k} {v:,.0f}" for k, v in sorted(degraded.items())) or "none"),
    ]
    return "\n".join(lines)
