"""Offline replay: the engine over a JSONL file of records, in event-time order."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from aiokafka.partitioner import murmur2

from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from topics import ContractError, TopicNames, check_key, parse_value
from topics.codec import encode_alert
from topics.records import Alert

__all__ = ["ReplayReport", "partition_for", "read_records", "replay", "replay_file"]

BATCH_SIZE = 512


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Java's) picks for a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass
class ReplayReport:
    events: int = 0
    alerts: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    alerts_by_topic: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def read_records(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def _decode(line: bytes, topics: TopicNames) -> tuple[str, Any]:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"line is not JSON: {exc}") from None
    if not isinstance(raw, dict) or "topic" not in raw or "value" not in raw:
        raise ContractError("line must be an object with 'topic', 'key' and 'value'")
    source = topics.source_of(raw["topic"])
    if source is None:
        raise ContractError(f"unknown topic {raw['topic']!r}")
    record = parse_value(source, raw["value"])
    check_key(raw.get("key"), record.borrower_id)
    return raw["topic"], (source, record)


async def replay(
    lines: Iterable[tuple[int, bytes]],
    *,
    thresholds: Thresholds | None = None,
    partitions: int = 8,
    topics: TopicNames | None = None,
    out: BinaryIO | None = None,
) -> tuple[ReplayReport, list[Alert]]:
    """Run the detectors over ``lines``; write alerts as JSON lines to ``out`` if given."""
    topics = topics or TopicNames()
    report = ReplayReport()
    decoded: list[tuple[float, int, Input]] = []
    streams: defaultdict[int, set[str]] = defaultdict(set)
    for number, line in lines:
        try:
            _, (source, record) = _decode(line, topics)
        except ContractError as exc:
            report.rejected.append((number, str(exc)))
            continue
        partition = partition_for(record.borrower_id, partitions)
        streams[partition].add(source.value)
        decoded.append((record.ts.timestamp(), number, Input(partition, source, record)))
    decoded.sort(key=lambda item: (item[0], item[1]))
    engine = Engine(thresholds or Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    for partition, seen in streams.items():
        engine.clock.expect(partition, seen)
    alerts: list[Alert] = []
    for start in range(0, len(decoded), BATCH_SIZE):
        batch = [item for _, _, item in decoded[start : start + BATCH_SIZE]]
        result = await engine.process(batch)
        alerts += result.alerts
    report.events = len(decoded)
    report.alerts = len(alerts)
    for alert in alerts:
        report.alerts_by_topic[topics.alert_topic(alert.category)] += 1
        if out is not None:
            out.write(encode_alert(alert) + b"\n")
    return report, alerts


def replay_file(
    input_path: Path, output_path: Path, *, partitions: int = 8, topics: TopicNames | None = None
) -> ReplayReport:
    with output_path.open("wb") as out:
        report, _ = asyncio.run(
            replay(read_records(input_path), partitions=partitions, topics=topics, out=out)
        )
    return report
