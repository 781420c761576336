"""(a') The framework's ceiling: a Faust agent per input topic that only decodes each event.

Settings as the lendwatch worker's (linger, memory store, at-least-once, session timeout) and the
same :class:`~streams.worker.app.QuietWorker`, so the difference to (b) is what lendwatch does per
event.
Run by ``python -m benchmarks`` as a child process, configured through ``BENCH_*`` variables
(a Faust worker reads its own command line).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import faust

from benchmarks.common import SESSION_TIMEOUT_SECONDS, peak_rss, suffixed_topics, write_result
from streams.worker.app import QuietWorker
from topics import Source, decode

__all__ = ["create_app"]


class Meter:
    """Counts events over all agents; writes the result when the last expected one is done."""

    def __init__(self, expected: int, result: Path) -> None:
        self.expected = expected
        self.result = result
        self.seen = 0
        self.first = 0.0

    def tick(self) -> None:
        if not self.seen:
            self.first = time.perf_counter()
        self.seen += 1
        if self.seen == self.expected:
            seconds = time.perf_counter() - self.first
            write_result(
                self.result, {"events": self.seen, "seconds": seconds, "peak_rss": peak_rss()}
            )


def create_app(
    bootstrap: str, suffix: str, partitions: int, web_port: int, meter: Meter
) -> faust.App:
    topics = suffixed_topics(suffix)
    app = faust.App(
        f"bench-faust-{suffix}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=partitions,
        topic_replication_factor=1,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        web_port=web_port,
        web_host="127.0.0.1",
        processing_guarantee="at_least_once",
        broker_session_timeout=SESSION_TIMEOUT_SECONDS,
        broker_heartbeat_interval=3.0,
    )
    for source in Source:
        topic = app.topic(
            topics.input_topic(source),
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
        )
        app.agent(topic, name=f"bench.{source.value}")(_decoder(source, meter))
    return app


def _decoder(source: Source, meter: Meter) -> Any:
    async def decode_only(stream: faust.Stream[bytes]) -> None:
        async for key, value in stream.items():
            decode(source, key, value)
            meter.tick()

    decode_only.__name__ = f"decode_{source.value}"
    return decode_only


def main() -> None:
    env = os.environ
    meter = Meter(int(env["BENCH_EVENTS"]), Path(env["BENCH_RESULT"]))
    app = create_app(
        env["BENCH_BOOTSTRAP"],
        env["BENCH_SUFFIX"],
        int(env["BENCH_PARTITIONS"]),
        int(env["BENCH_WEB_PORT"]),
        meter,
    )
    worker = QuietWorker(app, loglevel="warning")
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
