"""(s) Start-up and hand-over: from a worker's start to its first applied batch.

Issue 13 asks for ≤ 10 s on the embedded broker, fresh and after a ``kill -9``. The worker
runs with the settings docs/operations.md gives for a fast hand-over: a short session and
static membership (``LW_GROUP_INSTANCE_ID``), the killed worker's replacement being the same
instance (the same pod of a StatefulSet), so it takes the partitions back at once instead of
waiting for the dead member's session to expire.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass

import aiohttp

from benchmarks.common import Children
from benchmarks.worker import FINE_POLL_SECONDS, STARTUP_SECONDS, WorkerProcess, start_worker
from topics import TopicNames

__all__ = ["HAND_OVER_SETTINGS", "Startup", "measure_startup"]

#: As tests/integration/test_startup.py runs them.
HAND_OVER_SETTINGS = {"LW_SESSION_TIMEOUT_SECONDS": "6", "LW_GROUP_INSTANCE_ID": "bench-0"}


@dataclass(frozen=True)
class Startup:
    """Seconds from a process's start to the first record its metrics count as applied."""

    fresh: float
    replacement: float


async def _seconds_to_first_batch(worker: WorkerProcess, started: float) -> float:
    """From ``started`` until the worker's metrics count an applied record."""
    deadline = started + STARTUP_SECONDS
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if await worker.processed(session) > 0:
                return time.monotonic() - started
            await asyncio.sleep(FINE_POLL_SECONDS)
    raise RuntimeError(f"{worker.log.stem}: no batch in {STARTUP_SECONDS:.0f} s")


async def measure_startup(
    children: Children,
    *,
    bootstrap: str,
    redis_url: str,
    topics: TopicNames,
    app_id: str,
    partitions: int,
    events: int,
    settle_seconds: float = 2.0,
) -> Startup:
    """A worker of a new group over the ``events`` pre-produced to ``topics``: its start;
    then, after ``settle_seconds`` of work and a ``kill -9``, its replacement's start.

    The replacement's figure needs records left to apply: a first worker that applied all
    of them before the kill is an error, not a replacement that never starts."""

    def start(name: str) -> tuple[WorkerProcess, float]:
        started = time.monotonic()
        worker = start_worker(
            children,
            name,
            bootstrap=bootstrap,
            redis_url=redis_url,
            topics=topics,
            app_id=app_id,
            partitions=partitions,
            extra_env=HAND_OVER_SETTINGS,
        )
        return worker, started

    first, started = start("startup-fresh")
    try:
        fresh = await _seconds_to_first_batch(first, started)
        await asyncio.sleep(settle_seconds)  # a few flushes: positions and states to take over
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            applied = await first.processed(session)
        if applied >= events:
            raise RuntimeError(
                f"the first worker applied all {events:,} records in {settle_seconds} s: "
                "none left for its replacement (give more --events)"
            )
    finally:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    replacement, started = start("startup-replacement")
    try:
        handed_over = await _seconds_to_first_batch(replacement, started)
    finally:
        children.stop(replacement.process, timeout=60.0)
    return Startup(fresh, handed_over)
