"""The latency floor: a bare aiokafka forwarder, timed over the records the worker's paced run
gets, at the same rate, beside the worker's event→alert latency.

The forwarder consumes the input topics with the worker's consumer settings (fetch wait, fetch
minimum, batch size, producer linger: it reads them from the same ``LW_*`` variables), decodes
each record and produces one small record per input, its event id, to an output topic. Nothing
else: what it takes is what any consumer→producer hop on this broker takes, so the worker's p99
over the forwarder's p99 is the worker's own share. Run as a child process::

    python -m benchmarks.forwarder --output TOPIC   # configured by the worker's LW_* variables

It forwards until SIGTERM. The parent (:func:`measure_forwarding`) times every record from the
moment it was handed to the producer to the moment its forwarded record arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from benchmarks.common import PYTHON, Children, Encoded, peak_rss, produce_encoded, tail
from benchmarks.worker import STARTUP_SECONDS, Latency, broker_env, collect_arrivals
from streams.settings import Settings
from topics import ContractError, Source, TopicNames, decode

__all__ = ["Forwarding", "measure_forwarding", "start_forwarder", "summarize"]

#: No forwarded record for this long once all were produced: the rest are not coming.
STALL_SECONDS = 15.0


async def forward(settings: Settings, output: str, stop: asyncio.Event) -> None:
    """Forward every input record as its event id to ``output`` until ``stop`` is set.

    Partitions are assigned, not subscribed: a group join would only add Tansu's join wait
    before the first record, which the paced run leaves out anyway. Offsets are committed after
    a flush every ``LW_STATE_FLUSH_MS``, as the worker commits after writing its states: an
    at-least-once hop. A record that does not decode is forwarded empty, as the worker
    dead-letters it: one output record per input either way.
    """
    names = settings.topics
    source_of = {names.input_topic(source): source for source in Source}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"bench-forwarder-{names.transactions}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        fetch_min_bytes=settings.fetch_min_bytes,
    )
    consumer.assign([TopicPartition(t, p) for t in source_of for p in range(settings.partitions)])
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        linger_ms=settings.producer_linger_ms,
        acks="all",
    )
    await consumer.start()
    await producer.start()
    try:
        committed = time.monotonic()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_size)
            for tp, messages in batches.items():
                source = source_of[tp.topic]
                for message in messages:
                    await producer.send(output, _event_id(source, message.key, message.value))
            if time.monotonic() - committed > settings.state_flush_ms / 1000.0:
                await producer.flush()
                await consumer.commit()
                committed = time.monotonic()
    finally:
        await producer.stop()
        await consumer.stop()


def _event_id(source: Source, key: bytes | None, value: bytes | None) -> bytes:
    """The decoded record's event id, or nothing for a record that breaks the contract."""
    try:
        return decode(source, key, value).event_id.encode()
    except ContractError:
        return b""


async def _forward_until_terminated(output: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await forward(Settings.from_env(), output, stop)


def start_forwarder(
    children: Children,
    name: str,
    *,
    bootstrap: str,
    topics: TopicNames,
    partitions: int,
    output: str,
    fetch_wait_ms: int | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the forwarder over ``topics``' input topics with the worker's broker settings."""
    env = broker_env(
        bootstrap=bootstrap, topics=topics, partitions=partitions, fetch_wait_ms=fetch_wait_ms
    )
    argv = [PYTHON, "-m", "benchmarks.forwarder", f"--output={output}"]
    return children.spawn(name, argv, env)


@dataclass
class Forwarding:
    """Input→output latencies of the forwarder in one paced run, in seconds."""

    rate: float
    achieved_rate: float
    #: Records produced paced (after the warm-up), each timed.
    events: int
    latencies: list[float]
    peak_rss: int | None = None
    #: The 1-minute load average at the end of the run: the machine is shared.
    load: float | None = None

    def figures(self) -> dict[str, Any]:
        """What the results keep: the summary, not every record's latency."""
        return {
            "rate": self.rate,
            "achieved_rate": self.achieved_rate,
            "events": self.events,
            **summarize(self.latencies),
            "missing": self.events - len(self.latencies),
            "peak_rss": self.peak_rss,
            "load": self.load,
        }


def summarize(latencies: Sequence[float]) -> dict[str, Any]:
    """n, p50, p99 and max (nearest rank, as the worker's figures); ``None`` with none."""
    return {
        "n": len(latencies),
        "p50": Latency.percentile(latencies, 0.5),
        "p99": Latency.percentile(latencies, 0.99),
        "max": max(latencies) if latencies else None,
    }


async def _wait_arrived(
    arrivals: list[Any], count: int, process: subprocess.Popen[bytes], log: Path, stall: float
) -> bool:
    """Until ``count`` records arrived: True; False after ``stall`` seconds with none new.
    Fails if the forwarder exits."""
    progress = (time.monotonic(), len(arrivals))
    while len(arrivals) < count:
        if process.poll() is not None:
            raise RuntimeError(f"the forwarder exited with {process.returncode}:\n{tail(log)}")
        if len(arrivals) > progress[1]:
            progress = (time.monotonic(), len(arrivals))
        elif time.monotonic() - progress[0] > stall:
            return False
        await asyncio.sleep(0.1)
    return True


async def measure_forwarding(
    process: subprocess.Popen[bytes],
    log: Path,
    records: Sequence[Encoded],
    *,
    bootstrap: str,
    output: str,
    partitions: int,
    rate: float,
    warmup: int = 300,
) -> Forwarding:
    """Produce ``records`` at ``rate`` to the running forwarder and time every one of them.

    As :func:`~benchmarks.worker.measure_latency` does for the worker: the first ``warmup``
    records go first, untimed, and pacing starts once they have come through; a record's
    latency runs from the moment it was handed to the producer to its forwarded record's
    arrival here.
    """
    arrivals: list[tuple[float, bytes]] = []
    stop = asyncio.Event()
    collector = asyncio.create_task(
        collect_arrivals(bootstrap, [output], partitions, stop, arrivals)
    )
    sent_at: dict[str, float] = {}
    try:
        await produce_encoded(bootstrap, records[:warmup])
        if not await _wait_arrived(arrivals, warmup, process, log, STARTUP_SECONDS):
            raise RuntimeError(f"the forwarder forwarded no warm-up record:\n{tail(log)}")
        seconds = await produce_encoded(bootstrap, records[warmup:], rate=rate, sent_at=sent_at)
        await _wait_arrived(arrivals, len(records), process, log, STALL_SECONDS)
    finally:
        stop.set()
        await collector
    latencies = [
        arrived - sent_at[event_id]
        for arrived, value in arrivals
        if (event_id := value.decode()) in sent_at
    ]
    return Forwarding(
        rate,
        len(sent_at) / seconds,
        len(records) - warmup,
        latencies,
        peak_rss(process.pid),
        os.getloadavg()[0],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, help="topic the forwarder writes to")
    args = parser.parse_args()
    asyncio.run(_forward_until_terminated(args.output))


if __name__ == "__main__":
    main()
