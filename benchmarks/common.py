"""What every benchmark shares: child processes, peak RSS, the dataset and its production."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from sim import SimulationConfig, simulate_stream
from topics import Source, TopicNames

__all__ = [
    "EVENTS_PER_BORROWER_DAY",
    "PYTHON",
    "REPO",
    "SESSION_TIMEOUT_SECONDS",
    "Children",
    "Dataset",
    "Encoded",
    "encode_dataset",
    "latency_cases",
    "make_dataset",
    "peak_rss",
    "produce_encoded",
    "read_result",
    "suffixed_topics",
    "write_result",
]

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
#: Tansu answers a group join after half the session timeout: short, as the tests use it.
SESSION_TIMEOUT_SECONDS = 10.0
#: Simulated events per borrower and day (about 16.5 at the simulator's defaults), to size runs.
EVENTS_PER_BORROWER_DAY = 16.0


def peak_rss(pid: int | str = "self") -> int | None:
    """Peak resident set size (VmHWM) of a process in bytes, while it is alive."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def write_result(path: Path, data: Mapping[str, Any]) -> None:
    """Write a child's figures atomically: the parent polls for the file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(dict(data)))
    os.replace(temporary, path)


async def read_result(
    process: subprocess.Popen[bytes], path: Path, log: Path, timeout: float
) -> dict[str, Any]:
    """Wait for a child's result file; fail with its log tail if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            result: dict[str, Any] = orjson.loads(path.read_bytes())
            return result
        if process.poll() is not None:
            raise RuntimeError(
                f"{log.stem} exited with {process.returncode} without a result:\n{tail(log)}"
            )
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{log.stem} gave no result within {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, size: int = 3000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


class Children:
    """Every process the run starts, stopped (SIGTERM, then SIGKILL) when the run ends.

    Children get their own session, so a Ctrl-C in the terminal reaches the parent only; the
    parent's ``finally`` stops them in order, and a Faust worker gets to leave its group.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                list(argv),
                env={**os.environ, **(env or {})},
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(process)
        return process, log

    def stop(self, *processes: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        """SIGTERM every running one at once, then wait for each; SIGKILL the laggards."""
        running = [p for p in processes if p.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop(*self.processes)


def suffixed_topics(suffix: str) -> TopicNames:
    """Topic names of their own for one run, so runs never read each other's records."""
    defaults = TopicNames()
    return TopicNames(
        **{name: f"{getattr(defaults, name)}.{suffix}" for name in TopicNames.__dataclass_fields__}
    )


@dataclass(frozen=True)
class Dataset:
    """Simulated records in the simulator's event-time order, one JSON object a line."""

    path: Path
    events: int
    borrowers: int
    days: int
    by_source: dict[str, int]

    def lines(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            yield from handle


def make_dataset(
    path: Path,
    events: int,
    *,
    days: int,
    seed: int = 7,
    cases: Mapping[str, int] | None = None,
    borrowers: int | None = None,
) -> Dataset:
    """The first ``events`` records of a simulation big enough to hold them.

    ``cases`` (typology to count) raises the injected cases, for a run that needs many alerts;
    benign traffic is unchanged.
    """
    estimate = borrowers or max(30, math.ceil(1.1 * events / (EVENTS_PER_BORROWER_DAY * days)))
    while True:
        config = SimulationConfig(
            borrowers=estimate,
            days=days,
            seed=seed,
            cases=dict(cases) if cases is not None else None,
        )
        _, records = simulate_stream(config)
        counts = dict.fromkeys((s.value for s in Source), 0)
        names = TopicNames()
        written = 0
        with path.open("wb") as out:
            for record in islice(records, events):
                out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
                source = names.source_of(record["topic"])
                counts[source.value if source else record["topic"]] += 1
                written += 1
        if written >= events or borrowers is not None:
            return Dataset(path, written, estimate, days, counts)
        estimate = math.ceil(estimate * 1.3 * events / max(written, 1))


def latency_cases(borrowers: int, days: int) -> dict[str, int]:
    """Injected cases on about a third of the borrowers (the simulator's default cap is 35 %),
    for enough alerts to read a p99 from; the benign traffic is the simulator's own.

    Only typologies that an event raises (not a due date passing) and that fit in ``days``.
    """
    each = max(1, borrowers // 20)
    cases = {
        "circular_transfer": max(1, borrowers // 60),  # rings of 3
        "device_ring": max(1, borrowers // 80),  # 3 to 6 borrowers a device
        "account_takeover": each,
        "account_takeover_device_replay": each,
        "impossible_travel": each,
    }
    if days >= 21:
        cases["wash_trading"] = each
        cases["machine_generated"] = each
    return cases


@dataclass(frozen=True)
class Encoded:
    """One record ready to send: its topic, key and value bytes, event id and event time."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    ts: float


def encode_dataset(dataset: Dataset, topics: TopicNames) -> list[Encoded]:
    """Every record of ``dataset`` addressed to ``topics`` (the run's own topic names)."""
    defaults = TopicNames()
    encoded = []
    for line in dataset.lines():
        record = orjson.loads(line)
        source = defaults.source_of(record["topic"])
        if source is None:
            raise ValueError(f"unknown topic {record['topic']!r} in {dataset.path}")
        value = record["value"]
        encoded.append(
            Encoded(
                topics.input_topic(source),
                record["key"].encode(),
                # orjson's result keeps a 4 KiB allocation: copy it to its size (held by 100,000s)
                memoryview(orjson.dumps(value)).tobytes(),
                value["event_id"],
                datetime.fromisoformat(value["ts"]).timestamp(),
            )
        )
    return encoded


async def produce_encoded(
    bootstrap: str,
    records: Sequence[Encoded],
    *,
    rate: float | None = None,
    sent_at: dict[str, float] | None = None,
) -> float:
    """Send ``records`` in order, at ``rate`` per second if given; return the seconds it took.

    With ``sent_at``, the wall time (``time.time``, which the worker's ``emitted_at`` shares)
    each record was handed to the producer is kept by event id: the start of its latency.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    started = time.monotonic()
    try:
        for number, record in enumerate(records):
            if rate and number % 10 == 0:
                ahead = started + number / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await producer.send(record.topic, record.value, key=record.key)
            if sent_at is not None:
                sent_at[record.event_id] = time.time()
        await producer.flush()
    finally:
        await producer.stop()
    return time.monotonic() - started
