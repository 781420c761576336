"""``lendwatch run``: the whole pipeline on one machine, with alerts shown live in the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer

from sim import SimulationConfig, simulate
from streams.ops.broker import create_topics, produce_records
from streams.ops.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from streams.ops.tail import format_alert
from streams.settings import Settings

__all__ = ["DemoOptions", "run_demo"]

# Tansu answers a group join after half the session timeout: keep the demo's start quick.
EMBEDDED_SESSION_TIMEOUT = 10.0


@dataclass
class DemoOptions:
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    rate: float | None = 4000.0
    bad_every: int | None = 2000
    duration: float | None = None  # stop by itself after this many seconds (CI, scripts)
    out: TextIO = sys.stdout


@dataclass
class _Status:
    produced: int = 0
    total: int = 0
    processed: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    deadletters: int = 0


async def run_demo(
    settings: Settings, options: DemoOptions, *, embedded_kafka: bool, embedded_redis: bool
) -> _Status:
    """Start what was not given, the worker and the simulator; print alerts until stopped."""
    with contextlib.ExitStack() as stack:
        if embedded_kafka:
            kafka = stack.enter_context(EmbeddedKafka())
            settings = replace(settings, broker=kafka.bootstrap)
            _say(options, f"embedded Tansu broker at {kafka.bootstrap}")
        if embedded_redis:
            redis = stack.enter_context(EmbeddedRedis())
            settings = replace(settings, redis_url=redis.url)
            _say(options, f"embedded Valkey at {redis.url}")
        await create_topics(
            settings.bootstrap_servers,
            settings.topics.all(),
            settings.partitions,
            one_partition=[settings.topics.feedback],
        )
        web_port = free_port()
        worker = _start_worker(settings, web_port, embedded=embedded_kafka)
        stack.callback(_stop, worker)
        return await _watch(settings, options, worker, web_port)
    raise AssertionError("unreachable")  # pragma: no cover


def _start_worker(settings: Settings, web_port: int, *, embedded: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": settings.bootstrap_servers,
        "REDIS_URL": settings.redis_url,
        "LW_PARTITIONS": str(settings.partitions),
        "LW_WEB_PORT": str(web_port),
        # --no-mask reaches the worker, which masks what it publishes.
        "LW_MASK_PERSONAL_DATA": "1" if settings.mask_personal_data else "0",
    }
    if settings.privacy_key:
        env["LW_PRIVACY_KEY"] = settings.privacy_key
    if embedded:
        env.setdefault("LW_SESSION_TIMEOUT_SECONDS", str(EMBEDDED_SESSION_TIMEOUT))
    log = Path(os.environ.get("LW_WORKER_LOG", os.devnull))
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.ops.cli", "worker", "--log-level", "warning"],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def _watch(
    settings: Settings, options: DemoOptions, worker: subprocess.Popen[bytes], web_port: int
) -> _Status:
    status = _Status()
    simulation = simulate(options.simulation)
    status.total = len(simulation.records)
    _say(
        options,
        f"simulating {options.simulation.borrowers} borrowers × "
        f"{options.simulation.days} days: {status.total:,} events, "
        f"{len(simulation.labels)} injected cases; Ctrl-C stops",
    )
    if settings.mask_personal_data:
        _say(options, "alerts show hashed ids and truncated IPs; --no-mask shows them raw")

    def sent(count: int) -> None:
        status.produced = count

    producer = asyncio.create_task(
        produce_records(
            settings.bootstrap_servers,
            simulation.records,
            rate=options.rate,
            bad_every=options.bad_every,
            bad_topic=settings.topics.transactions,
            on_sent=sent,
        )
    )
    alerts = asyncio.create_task(_show_alerts(settings, options, status))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    started = time.monotonic()
    try:
        while not stopping.is_set():
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}")
            if producer.done() and producer.exception():
                raise producer.exception()  # type: ignore[misc]
            status.processed = await _processed(web_port, status.processed)
            _status_line(options, status)
            if options.duration and time.monotonic() - started > options.duration:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        producer.cancel()
        alerts.cancel()
        await asyncio.gather(producer, alerts, return_exceptions=True)
        options.out.write("\n")
        _say(options, "stopping: " + _summary(status))
    return status


async def _show_alerts(settings: Settings, options: DemoOptions, status: _Status) -> None:
    names = settings.topics
    consumer = AIOKafkaConsumer(
        *names.alert_topics(),
        names.deadletter,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        async for message in consumer:
            if message.value is None:
                continue
            if message.topic == names.deadletter:
                status.deadletters += 1
                continue
            alert = orjson.loads(message.value)
            status.alerts[message.topic] += 1
            options.out.write("\r\033[K" + format_alert(message.topic, alert) + "\n")
    finally:
        await consumer.stop()


_EVENTS = re.compile(rb"^lendwatch_events_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


async def _processed(web_port: int, previous: int) -> int:
    """Events the worker has processed, from its /metrics page (previous value if not up yet)."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{web_port}/metrics", timeout=aiohttp.ClientTimeout(total=1)
            ) as response,
        ):
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        return previous
    return int(sum(float(v) for v in _EVENTS.findall(body)))


def _summary(status: _Status) -> str:
    counts = ", ".join(f"{topic} {n}" for topic, n in sorted(status.alerts.items())) or "no alerts"
    return (
        f"events produced {status.produced:,}, processed {status.processed:,}, "
        f"lag {max(0, status.produced - status.processed):,} | alerts: {counts} | "
        f"dead-lettered {status.deadletters}"
    )


def _status_line(options: DemoOptions, status: _Status) -> None:
    options.out.write("\r\033[K" + _summary(status))
    options.out.flush()


def _say(options: DemoOptions, text: str) -> None:
    options.out.write(f"lendwatch: {text}\n")
    options.out.flush()
