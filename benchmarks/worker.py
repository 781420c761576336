"""(b) The real lendwatch worker as deployed: a ``lendwatch worker`` process, all detectors."""

from __future__ import annotations

import asyncio
import bisect
import math
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.common import (
    PYTHON,
    SESSION_TIMEOUT_SECONDS,
    Children,
    Encoded,
    peak_rss,
    produce_encoded,
    tail,
)
from streams.ops.embedded import free_port
from topics import TopicNames

__all__ = [
    "Counters",
    "Latency",
    "Throughput",
    "WorkerProcess",
    "alert_ids",
    "broker_env",
    "collect_arrivals",
    "end_offsets",
    "measure_latency",
    "measure_throughput",
]

POLL_SECONDS = 1.0
FINE_POLL_SECONDS = 0.1
LAG_POLL_SECONDS = 0.5
#: Time a worker has to start (group join, recovery) before its first event is overdue.
STARTUP_SECONDS = 120.0
_EVENTS = re.compile(r"^lendwatch_events_total\{.*\} (\S+)$", re.M)
_ALERTS = re.compile(r"^lendwatch_alerts_total\{.*\} (\S+)$", re.M)
_BATCHES = re.compile(r"^lendwatch_batch_seconds_count\{.*\} (\S+)$", re.M)


@dataclass(frozen=True)
class Counters:
    """What a worker's metrics page says it has done."""

    events: int = 0
    alerts: int = 0
    batches: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(
            self.events + other.events, self.alerts + other.alerts, self.batches + other.batches
        )


@dataclass
class WorkerProcess:
    """One ``lendwatch worker`` child and its metrics page."""

    process: subprocess.Popen[bytes]
    web_port: int
    log: Path

    async def processed(self, session: aiohttp.ClientSession) -> int:
        """Input records the worker has consumed (its ``lendwatch_events`` counter)."""
        return (await self.counters(session)).events

    async def counters(self, session: aiohttp.ClientSession) -> Counters:
        """Events consumed, alerts published and batches run so far."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.log.stem} exited with {self.process.returncode}:\n{tail(self.log)}"
            )
        try:
            async with session.get(f"http://127.0.0.1:{self.web_port}/metrics") as response:
                body = await response.text()
        except aiohttp.ClientError:
            return Counters()
        events, alerts, batches = (
            int(sum(float(value) for value in pattern.findall(body)))
            for pattern in (_EVENTS, _ALERTS, _BATCHES)
        )
        return Counters(events, alerts, batches)

    def peak_rss(self) -> int | None:
        return peak_rss(self.process.pid)


def broker_env(
    *, bootstrap: str, topics: TopicNames, partitions: int, fetch_wait_ms: int | None
) -> dict[str, str]:
    """The worker's broker, topics and consumer fetch wait as its environment variables.

    The bare forwarder (:mod:`benchmarks.forwarder`) is started with the same ones, so the two
    read their input with the same consumer settings.
    """
    env = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "LW_PARTITIONS": str(partitions),
        **{
            f"LW_TOPIC_{name.upper()}": getattr(topics, name)
            for name in TopicNames.__dataclass_fields__
        },
    }
    if fetch_wait_ms is not None:
        env["LW_FETCH_MAX_WAIT_MS"] = str(fetch_wait_ms)
    return env


def start_worker(
    children: Children,
    name: str,
    *,
    bootstrap: str,
    redis_url: str,
    topics: TopicNames,
    app_id: str,
    partitions: int,
    profile: Path | None = None,
    fetch_wait_ms: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start ``python -m streams.ops.cli worker`` as the integration tests do.

    ``fetch_wait_ms`` sets its consumer's fetch wait (``LW_FETCH_MAX_WAIT_MS``); ``extra_env``
    any other setting (``LW_INPUT_PATH=agent`` for the agent path).
    """
    web_port = free_port()
    env = {
        **broker_env(
            bootstrap=bootstrap, topics=topics, partitions=partitions, fetch_wait_ms=fetch_wait_ms
        ),
        "REDIS_URL": redis_url,
        "LW_APP_ID": app_id,
        "LW_REDIS_PREFIX": app_id,
        "LW_WEB_PORT": str(web_port),
        "LW_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT_SECONDS),
        **(extra_env or {}),
    }
    command = ["-m", "streams.ops.cli", "worker", "--log-level", "warning"]
    if profile is not None:
        command = ["-m", "benchmarks.profiled", str(profile), *command[1:]]
    process, log = children.spawn(name, [PYTHON, *command], env)
    return WorkerProcess(process, web_port, log)


@dataclass
class Throughput:
    events: int
    seconds: float
    peak_rss: list[int | None]
    counters: Counters

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else math.nan


async def measure_throughput(
    workers: Sequence[WorkerProcess], total: int, timeout: float, stall: float = 60.0
) -> Throughput:
    """Events/s of ``workers`` together, from the first to the last event they processed.

    Read from their metrics pages: the first reading above zero starts the clock (the events
    counted by then are left out), the reading that reaches ``total`` stops it. Readings are
    every ``FINE_POLL_SECONDS`` around the start and the end and every ``POLL_SECONDS`` in
    between: rendering the page costs the worker a few milliseconds each time. Workers that
    process nothing for ``stall`` seconds (an agent crashed: Faust keeps the process up) fail.
    """
    deadline = time.monotonic() + timeout
    first: tuple[float, int] | None = None
    progress = (time.monotonic() + STARTUP_SECONDS - stall, 0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            counts = await asyncio.gather(*(w.counters(session) for w in workers))
            now, count = time.monotonic(), sum(c.events for c in counts)
            if first is None and count > 0:
                first = (now, count)
            if count >= total and first is not None:
                break
            if count > progress[1]:
                progress = (now, count)
            if now > deadline or now - progress[0] > stall:
                logs = "\n".join(tail(w.log, 1500) for w in workers)
                raise RuntimeError(
                    f"processed {count} of {total} events, the last of them "
                    f"{now - progress[0]:.0f} s ago:\n{logs}"
                )
            pause = FINE_POLL_SECONDS
            if first is not None and now > first[0]:
                rate = (count - first[1]) / (now - first[0])
                if rate > 0 and (total - count) / rate > 2 * POLL_SECONDS:
                    pause = POLL_SECONDS
            await asyncio.sleep(pause)
        await asyncio.sleep(1.0)  # the last batch's alerts: counted after its events
        counts = await asyncio.gather(*(w.counters(session) for w in workers))
    started, counted = first
    return Throughput(
        total - counted, now - started, [w.peak_rss() for w in workers], sum(counts, Counters())
    )


async def alert_ids(bootstrap: str, topics: TopicNames, partitions: int) -> dict[str, str]:
    """Every alert on ``topics``' alert topics, read to their end: id -> a one-line summary,
    which says how many times the alert was published when that was more than once."""
    names = topics.alert_topics()
    parts = [TopicPartition(t, p) for t in names for p in range(partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    consumer.assign(parts)
    alerts: dict[str, str] = {}
    times: dict[str, int] = {}
    await consumer.start()
    try:
        ends = await consumer.end_offsets(parts)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                for message in messages:
                    alert = orjson.loads(message.value)
                    alert_id = alert["alert_id"]
                    times[alert_id] = times.get(alert_id, 0) + 1
                    alerts[alert_id] = summary(alert)
    finally:
        await consumer.stop()
    for alert_id, count in times.items():
        if count > 1:
            alerts[alert_id] += f" (published {count} times)"
    return alerts


def summary(alert: dict[str, Any]) -> str:
    """An alert on one line, to tell which ones two runs disagree on."""
    reasons = ",".join(r["code"] for r in alert.get("reasons", []))
    return f"{alert['detector']} {alert['borrower_id']} {alert['ts']} {alert['severity']} {reasons}"


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    """Records ever written to ``topic``: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return sum(ends.values())


async def wait_processed(
    worker: WorkerProcess, count: int, timeout: float, stall: float = 60.0
) -> None:
    """Until ``worker`` has processed ``count`` events; fail if it stops making progress."""
    deadline = time.monotonic() + timeout
    progress = (time.monotonic() + STARTUP_SECONDS - stall, 0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while (done := await worker.processed(session)) < count:
            now = time.monotonic()
            if done > progress[1]:
                progress = (now, done)
            if now > deadline or now - progress[0] > stall:
                raise RuntimeError(
                    f"worker processed {done} of {count} events, the last of them "
                    f"{now - progress[0]:.0f} s ago:\n{tail(worker.log)}"
                )
            await asyncio.sleep(FINE_POLL_SECONDS)


@dataclass
class Latency:
    """Event-to-alert latencies of one paced run, in seconds."""

    rate: float
    achieved_rate: float
    events: int
    #: Alerts an event raised: received minus the produce time of the newest evidence event.
    event_alerts: list[float] = field(default_factory=list)
    #: The part of it until the worker stamped the alert (``emitted_at``): broker, queue, batch.
    event_emitted: list[float] = field(default_factory=list)
    #: Alerts a timer raised (a due date passed): received minus the produce time of the first
    #: event at or after the alert's time, when event time passed it.
    timer_alerts: list[float] = field(default_factory=list)
    unmatched: int = 0
    peak_rss: int | None = None
    #: Events produced but not yet processed, sampled while producing.
    lag: list[int] = field(default_factory=list)

    @staticmethod
    def percentile(values: Sequence[float], share: float) -> float | None:
        """Nearest-rank percentile; ``None`` with no values."""
        if not values:
            return None
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


async def _sample_lag(worker: WorkerProcess, produced: Callable[[], int], lag: list[int]) -> None:
    """Every ``LAG_POLL_SECONDS``, events produced minus events the worker has processed."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            sent = produced()
            lag.append(max(0, sent - await worker.processed(session)))
            await asyncio.sleep(LAG_POLL_SECONDS)


async def collect_arrivals(
    bootstrap: str, topics: Sequence[str], partitions: int, stop: asyncio.Event, into: list[Any]
) -> None:
    """Every record of ``topics`` as (wall time it arrived, raw value) into ``into``, until
    ``stop``: the receipt timed for the worker's alerts and for the bare forwarder's records
    alike, so both figures include the same last hop to this process."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,  # a fetch waiting for data must not delay the receipt we time
    )
    consumer.assign([TopicPartition(t, p) for t in topics for p in range(partitions)])
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for messages in batches.values():
                into += [(now, m.value) for m in messages]
    finally:
        await consumer.stop()


async def _collect_alerts(
    bootstrap: str, topics: TopicNames, partitions: int, stop: asyncio.Event
) -> list[tuple[float, dict[str, Any]]]:
    """Every alert on the run's alert topics, with the wall time it arrived."""
    received: list[tuple[float, bytes]] = []
    await collect_arrivals(bootstrap, topics.alert_topics(), partitions, stop, received)
    return [(arrived, orjson.loads(value)) for arrived, value in received]


async def measure_latency(
    worker: WorkerProcess,
    records: Sequence[Encoded],
    *,
    bootstrap: str,
    topics: TopicNames,
    partitions: int,
    rate: float,
    warmup: int = 300,
    timeout: float = 600.0,
) -> Latency:
    """Produce ``records`` at ``rate`` to a running worker and time each alert it publishes.

    Detectors work in event time, so records keep their simulated timestamps; what is timed is
    wall time from the moment the newest evidence event was handed to the producer to the
    moment the alert arrived here. The first ``warmup`` records go first, untimed, and pacing
    starts once the worker has processed them: its start (group join, recovery) is not timed.
    """
    stop = asyncio.Event()
    collector = asyncio.create_task(_collect_alerts(bootstrap, topics, partitions, stop))
    sent_at: dict[str, float] = {}
    lag: list[int] = []
    try:
        await produce_encoded(bootstrap, records[:warmup])
        await wait_processed(worker, warmup, timeout)
        sampler = asyncio.create_task(_sample_lag(worker, lambda: warmup + len(sent_at), lag))
        try:
            seconds = await produce_encoded(bootstrap, records[warmup:], rate=rate, sent_at=sent_at)
        finally:
            sampler.cancel()
        await wait_processed(worker, len(records), timeout)
        await asyncio.sleep(2.0)  # alerts of the last batch are still on their way
    finally:
        stop.set()
        received = await collector
    result = Latency(rate, (len(records) - warmup) / seconds, len(records) - warmup, lag=lag)
    result.peak_rss = worker.peak_rss()
    event_ts = {r.event_id: r.ts for r in records}
    timed = [r for r in records if r.event_id in sent_at]
    times = [r.ts for r in timed]  # produced in event-time order
    for arrived, alert in received:
        evidence = [e for e in alert.get("evidence", []) if e in sent_at]
        if not evidence:
            result.unmatched += 1
            continue
        newest = max(evidence, key=sent_at.__getitem__)
        alert_ts = datetime.fromisoformat(alert["ts"]).timestamp()
        if alert_ts <= max(event_ts[e] for e in evidence):
            emitted = datetime.fromisoformat(alert["emitted_at"]).timestamp()
            result.event_alerts.append(arrived - sent_at[newest])
            result.event_emitted.append(emitted - sent_at[newest])
            continue
        passed = bisect.bisect_left(times, alert_ts)
        if passed < len(timed):
            result.timer_alerts.append(arrived - sent_at[timed[passed].event_id])
        else:
            result.unmatched += 1
    return result
