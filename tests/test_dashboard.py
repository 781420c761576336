"""The Grafana dashboard in deploy/ queries only what the worker exports, and every panel the
operators need is there."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from streams.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lendwatch.json"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

# What Prometheus calls the samples of each kind of metric.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
_NAME = re.compile(r"\b(lendwatch_[a-z_]+)\b")
_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def exported() -> dict[str, set[str]]:
    """Every sample name a worker's /metrics can show, with the labels it carries."""
    names: dict[str, set[str]] = {}
    for collector in list(Metrics().registry._collector_to_names):  # noqa: SLF001
        labels = set(getattr(collector, "_labelnames", ()))
        for family in collector.describe():
            for suffix in _SUFFIXES[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                names[family.name + suffix] = labels | extra
    return names


def panels() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            found.append(item)
            walk(item.get("panels", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return found


def expressions() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def test_exported_names_follow_prometheus() -> None:
    names = exported()
    assert "lendwatch_events_total" in names and "lendwatch_consumer_lag" in names
    assert names["lendwatch_event_to_alert_seconds_bucket"] == {"topic", "le"}


def test_every_metric_a_panel_queries_is_one_the_worker_exports() -> None:
    names = exported()
    assert expressions()
    for title, expr in expressions():
        used = _NAME.findall(expr)
        assert used, f"{title}: {expr} queries no lendwatch metric"
        unknown = sorted(set(used) - set(names))
        assert not unknown, f"{title}: the worker exports no {unknown}"
        labels = set().union(*(names[n] for n in used))
        for group in _BY.findall(expr):
            grouped = {label.strip() for label in group.split(",") if label.strip()}
            assert grouped <= labels, f"{title}: groups by {grouped - labels}, not a label"


def test_the_operators_panels_are_there() -> None:
    queried = " ".join(expr for _, expr in expressions())
    for needed in (
        "lendwatch_events_total",  # throughput per topic
        "lendwatch_consumer_lag",  # lag per partition
        "lendwatch_event_to_alert_seconds_bucket",  # event to alert latency
        "lendwatch_deadletters_total",
        "lendwatch_degraded_batches_total",
        "lendwatch_alerts_total",  # alerts per detector
    ):
        assert needed in queried, needed
    assert "by (topic, partition)" in queried


def test_panels_use_the_provisioned_datasource() -> None:
    [source] = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels():
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
