"""Offline replay: the engine over a JSONL file of records, in event-time order."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from aiokafka.partitioner import murmur2

from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from streams.lab.progress import Progress
from streams.privacy import Masker
from topics import ContractError, InputRecord, Source, TopicNames, check_key, parse_value
from topics.codec import encode_alert
from topics.records import Alert

__all__ = [
    "Decoded",
    "ReplayReport",
    "RunStats",
    "decode",
    "drive",
    "parse_record",
    "partition_for",
    "read_records",
    "replay",
    "replay_file",
    "run_engine",
    "sources_of",
]

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


def parse_record(
    raw: Any, topics: TopicNames, sources: Mapping[str, Source] | None = None
) -> tuple[Source, InputRecord]:
    """Validate one ``{"topic", "key", "value"}`` record; raise ContractError with the reason.

    ``sources`` (topic name to source, :func:`sources_of`) saves asking ``topics`` per record.
    """
    if not isinstance(raw, Mapping) or "topic" not in raw or "value" not in raw:
        raise ContractError("line must be an object with 'topic', 'key' and 'value'")
    topic = raw["topic"]
    if sources is None:
        sources = sources_of(topics)
    source = sources.get(topic) if isinstance(topic, str) else None
    if source is None:
        raise ContractError(f"unknown topic {topic!r}")
    record = parse_value(source, raw["value"])
    check_key(raw.get("key"), record.borrower_id)
    return source, record


def sources_of(topics: TopicNames) -> dict[str, Source]:
    """Input topic name to its source (as ``TopicNames.source_of``, in one look-up)."""
    sources: dict[str, Source] = {}
    for source in Source:
        sources.setdefault(topics.input_topic(source), source)
    return sources


@dataclass
class RunStats:
    """What one pass of the engine over a stream took."""

    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    #: Alerts of a candidate running in shadow (``Engine.set_thresholds(live, candidate)``).
    shadow_alerts: list[Alert] = field(default_factory=list)
    #: Seconds spent waiting for the next records (reading, simulating, validating).
    source_seconds: float = 0.0
    #: Seconds a baseline took: building each batch's Inputs and a no-op pass over them.
    baseline_seconds: float = 0.0
    #: Seconds inside ``Engine.process``.
    detector_seconds: float = 0.0


async def drive(
    records: Iterable[tuple[Source, InputRecord]],
    engine: Engine,
    *,
    partitions: int,
    expected: Mapping[int, Iterable[str]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RunStats:
    """Feed valid records, in event-time order, through ``engine`` in batches: replay's loop.

    Records are consumed lazily (a simulation can stream). Each borrower goes to the partition
    Kafka's default partitioner gives it. With ``expected`` (partition to stream names, known
    from a whole input) each partition's clock waits for those streams; without it, for the
    streams the partition has carried so far.
    """
    stats = RunStats()
    partition_of: dict[str, int] = {}
    carried: defaultdict[int, set[str]] = defaultdict(set)
    for partition, names in (expected or {}).items():
        engine.clock.expect(partition, names)
    latest = float("-inf")
    incoming = iter(records)
    while True:
        started = time.perf_counter()
        chunk = list(islice(incoming, BATCH_SIZE))
        pulled = time.perf_counter()
        stats.source_seconds += pulled - started
        if not chunk:
            return stats
        batch = []
        for source, record in chunk:
            known = partition_of.get(record.borrower_id)
            if known is None:
                known = partition_of[record.borrower_id] = partition_for(
                    record.borrower_id, partitions
                )
            batch.append(Input(known, source, record))
        _baseline(batch)
        built = time.perf_counter()
        stats.baseline_seconds += built - pulled
        for item in batch:
            epoch = item.record.ts.timestamp()
            if epoch < latest:
                raise ValueError(
                    f"record {item.record.event_id} at {item.record.ts.isoformat()} comes after "
                    "a later one: records must be in event-time order"
                )
            latest = epoch
            if expected is None and item.source.value not in carried[item.partition]:
                carried[item.partition].add(item.source.value)
                engine.clock.expect(item.partition, carried[item.partition])
        before = time.perf_counter()
        result = await engine.process(batch)
        stats.detector_seconds += time.perf_counter() - before
        stats.events += len(batch)
        stats.alerts += result.alerts
        stats.shadow_alerts += result.shadow_alerts
        if progress is not None:
            progress(stats.events)


def _baseline(batch: list[Input]) -> int:
    """The work every pipeline does per event before any detector: touch each input."""
    return sum(item.partition >= 0 for item in batch)


@dataclass
class Decoded:
    """An input validated and sorted once, so the engine can run over it as often as needed
    (backtest runs it once per set of thresholds)."""

    #: Valid records in event-time order (ties keep the file's order).
    records: list[tuple[Source, InputRecord]]
    #: Partition to the streams its records carry: each partition's clock waits for these.
    streams: dict[int, set[str]]
    #: (line number, reason) of each record that broke the contract.
    rejected: list[tuple[int, str]]
    partitions: int
    #: Each record's (event time, line number): the order key, for a run split over processes.
    keys: list[tuple[float, int]] = field(default_factory=list)


def decode(
    lines: Iterable[tuple[int, bytes]], *, partitions: int = 8, topics: TopicNames | None = None
) -> Decoded:
    """Validate ``lines`` and put them in event-time order; rejects are kept with the reason."""
    topics = topics or TopicNames()
    rejected: list[tuple[int, str]] = []
    decoded: list[tuple[float, int, Source, InputRecord]] = []
    streams: defaultdict[int, set[str]] = defaultdict(set)
    sources = sources_of(topics)
    partition_of: dict[str, int] = {}
    for number, line in lines:
        try:
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ContractError(f"line is not JSON: {exc}") from None
            source, record = parse_record(raw, topics, sources)
        except ContractError as exc:
            rejected.append((number, str(exc)))
            continue
        borrower = record.borrower_id
        partition = partition_of.get(borrower)
        if partition is None:
            partition = partition_of[borrower] = partition_for(borrower, partitions)
        streams[partition].add(source.value)
        decoded.append((record.ts.timestamp(), number, source, record))
    decoded.sort(key=lambda item: (item[0], item[1]))
    return Decoded(
        records=[(source, record) for _, _, source, record in decoded],
        streams=dict(streams),
        rejected=rejected,
        partitions=partitions,
        keys=[(epoch, number) for epoch, number, _, _ in decoded],
    )


async def run_engine(
    decoded: Decoded, thresholds: Thresholds, progress: Callable[[int], None] | None = None
) -> RunStats:
    """One pass of a fresh engine (in-memory state and index) over decoded records."""
    engine = Engine(thresholds, MemoryStateStore(), MemoryCrossIndex())
    return await drive(
        decoded.records,
        engine,
        partitions=decoded.partitions,
        expected=decoded.streams,
        progress=progress,
    )


def counted(
    lines: Iterable[tuple[int, bytes]], update: Callable[[int], None], every: int = 10_000
) -> Iterator[tuple[int, bytes]]:
    """``lines``, telling ``update`` how many have gone by, every ``every`` lines."""
    done = 0
    for done, line in enumerate(lines, start=1):
        if done % every == 0:
            update(done)
        yield line
    update(done)


async def replay(
    lines: Iterable[tuple[int, bytes]],
    *,
    thresholds: Thresholds | None = None,
    partitions: int = 8,
    topics: TopicNames | None = None,
    out: BinaryIO | None = None,
    masker: Masker | None = None,
    progress: bool = False,
) -> tuple[ReplayReport, list[Alert]]:
    """Run the detectors over ``lines`` in event-time order; write alerts to ``out`` if given,
    masked by ``masker`` as the worker masks them (the alerts returned stay raw). With
    ``progress``, a bar on stderr for each phase."""
    topics = topics or TopicNames()
    lines = list(lines)
    reading = Progress("decoding", len(lines), "lines", enabled=progress)
    decoded = decode(counted(lines, reading.update), partitions=partitions, topics=topics)
    reading.close()
    running = Progress("replaying", len(decoded.records), "events", enabled=progress)
    stats = await run_engine(decoded, thresholds or Thresholds(), running.update)
    running.close()
    report = ReplayReport(events=stats.events, alerts=len(stats.alerts), rejected=decoded.rejected)
    for alert in stats.alerts:
        report.alerts_by_topic[topics.alert_topic(alert.category)] += 1
        if out is not None:
            out.write(encode_alert(masker.alert(alert) if masker else alert) + b"\n")
    return report, stats.alerts


def replay_file(
    input_path: Path,
    output_path: Path,
    *,
    partitions: int = 8,
    topics: TopicNames | None = None,
    masker: Masker | None = None,
    thresholds: Thresholds | None = None,
    processes: int = 1,
    progress: bool = False,
) -> ReplayReport:
    """Replay ``input_path`` into ``output_path``; with ``processes`` > 1 the partitions run
    in that many processes (``streams.lab.parallel``), with the same output byte for byte."""
    if processes > 1:
        from streams.lab.parallel import Misrouted, replay_parallel

        try:
            return replay_parallel(
                input_path,
                output_path,
                processes=min(processes, partitions),
                partitions=partitions,
                topics=topics,
                masker=masker,
                thresholds=thresholds,
                progress=progress,
            )
        except Misrouted:
            pass  # a line with two keys: one process reads it as one engine does
    with output_path.open("wb") as out:
        report, _ = asyncio.run(
            replay(
                read_records(input_path),
                thresholds=thresholds,
                partitions=partitions,
                topics=topics,
                out=out,
                masker=masker,
                progress=progress,
            )
        )
    return report
