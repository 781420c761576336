"""Replay over several processes, each running the engine for some of the partitions: the
single process's output, byte for byte, in a fraction of its time.

The engine keeps everything per partition (state, event time, timers, models) but for two
things, and both stay exact here:

- The cross-borrower index (devices, IPs, payment edges) spans partitions. Every process
  keeps a whole copy of it: at a batch's exchange it applies the writes every process made in
  that batch and the earlier ones, then answers its own reads. One engine, too, applies all
  of a batch's writes before its reads, and a set trimmed to its highest scores ends the same
  whatever order its writes came in, so every read finds the same members.
- Alert ids are remembered over the whole run, so that a re-sent alert is dropped. Each
  process tags an alert with where one engine would have emitted it (the batch; the event's
  position in it, or the partition whose timers and day closes raised it); the parent puts
  the alerts in that order and drops repeats with the same memory
  (:class:`~detectors.engine.AlertMemory`).

Batches are cut as one process cuts them (every ``BATCH_SIZE`` valid records in event-time
order) and each process runs its part of every batch. The processes are forked once the file
is read and routed, so they share its lines without a copy.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka.partitioner import murmur2

from detectors.base import Finding, Output
from detectors.engine import AlertMemory, BatchResult, Engine, Input, MemoryStateStore
from detectors.index import Found, MemoryCrossIndex, Read, Write
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from streams.lab.progress import EVERY_SECONDS, Progress
from streams.lab.replay import (
    BATCH_SIZE,
    Decoded,
    ReplayReport,
    counted,
    decode,
    partition_for,
)
from streams.privacy import Masker
from topics import TopicNames
from topics.codec import encode_alert
from topics.records import Alert

__all__ = ["Misrouted", "replay_parallel"]

#: Progress of a process that has sent all its writes.
FINISHED = sys.maxsize
#: The usual start of a line: its topic, then its key with neither quote nor escape in it.
_PREFIX = re.compile(rb'\{"topic":"[^"\\]*","key":"([^"\\]*)"')

#: Where one engine would have emitted an alert: (batch, 0, position in the batch) for an
#: event's, (batch, 1, partition) for a timer's or a day close's.
Place = tuple[int, int, int]
#: An alert as a process hands it back: its place, id, topic (None: a shadow) and line.
Tagged = tuple[Place, str, str | None, bytes]


class Misrouted(RuntimeError):
    """A record reached a process that does not run its partition (its key was misleading)."""


@dataclass
class _Job:
    """What every process is forked with."""

    lines: list[bytes]
    owners: bytes  # the process that decodes each line
    processes: int
    partitions: int
    topics: TopicNames
    thresholds: Thresholds
    masker: Masker | None
    inboxes: list[Any]  # one multiprocessing queue per process: the others' index writes
    #: Per process, lines decoded (first ``processes`` slots), then events run: the progress.
    counts: Any
    pipes: list[Connection] = field(default_factory=list)  # each process's end, to the parent

    def lines_of(self, rank: int) -> Iterator[tuple[int, bytes]]:
        """(line number, line) of the lines ``rank`` decodes, as ``read_records`` gives them."""
        last = len(self.lines) - 1
        owners = self.owners
        for at, line in enumerate(self.lines):
            if owners[at] == rank and line.strip():
                yield at + 1, line if at == last else line + b"\n"


def _route(lines: Sequence[bytes], partitions: int, processes: int) -> bytes:
    """Per line, the process of its partition (partition modulo processes), from its key.

    A record's key must be its borrower id (``check_key``), so for every valid record this is
    its partition's process; a line without a readable key can only be rejected, anywhere.
    """
    owners = bytearray(len(lines))
    known: dict[bytes, int] = {}
    match = _PREFIX.match
    for at, line in enumerate(lines):
        found = match(line)
        key = found.group(1) if found is not None else _key_of(line)
        owner = known.get(key)
        if owner is None:
            owner = known[key] = (int(murmur2(key) & 0x7FFFFFFF) % partitions) % processes
        owners[at] = owner
    return bytes(owners)


def _key_of(line: bytes) -> bytes:
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        return b""
    key = raw.get("key") if isinstance(raw, dict) else None
    return key.encode() if isinstance(key, str) else b""


class _SharedIndex:
    """This process's whole copy of the index, kept in step with the other processes."""

    def __init__(self, rank: int, inboxes: list[Any]) -> None:
        self.local = MemoryCrossIndex()
        self.rank = rank
        self.inboxes = inboxes
        self.batch = -1  # the batch being processed
        self._told = -1  # the last batch the others know this process's writes of
        self._heard = {other: -1 for other in range(len(inboxes)) if other != rank}
        self._waiting: list[tuple[int, list[tuple[str, bytes, float]]]] = []

    def _tell(self, batch: int, writes: list[tuple[str, bytes, float]]) -> None:
        for other, inbox in enumerate(self.inboxes):
            if other != self.rank:
                inbox.put((self.rank, batch, writes))
        self._told = batch

    def _hear_until(self, batch: int) -> None:
        """Take the others' messages until each has told its writes up to ``batch``."""
        while self._heard and min(self._heard.values()) < batch:
            sender, told, writes = self.inboxes[self.rank].get()
            self._heard[sender] = told
            if writes:
                self._waiting.append((told, writes))

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        self._tell(self.batch, [(w.key, w.member, w.score) for w in writes])
        self._hear_until(self.batch)
        due = [Write(*w) for told, ws in self._waiting if told <= self.batch for w in ws]
        self._waiting = [(told, ws) for told, ws in self._waiting if told > self.batch]
        return await self.local.exchange([*due, *writes], reads, max_members)

    def passed(self, batch: int) -> None:
        """The batch is done: tell the others, if its exchange has not (no lookups in it)."""
        if self._told < batch:
            self._tell(batch, [])

    def close(self) -> None:
        """Tell the others this process is done, and take their last messages."""
        self._tell(FINISHED, [])
        self._hear_until(FINISHED)


class _Everything(AlertMemory):
    """No memory: the parent drops repeats across every process, in one engine's order."""

    def first(self, alert_id: str) -> bool:
        return True


class _TaggingEngine(Engine):
    """The engine, remembering where each alert came from (:data:`Place`)."""

    def __init__(self, job: _Job, index: _SharedIndex) -> None:
        super().__init__(job.thresholds, MemoryStateStore(), index)
        self._emitted = _Everything()
        self.job = job
        self.batch = -1
        self.places: list[int] = []  # each input's position in the whole batch
        self.tagged: list[Tagged] = []
        self._origin: dict[int, Place] = {}

    def _detect(
        self,
        item: Input,
        state: BorrowerState,
        own_transfer: bool,
        found: dict[tuple[int, str], Found],
        position: int,
    ) -> Output:
        outputs = super()._detect(item, state, own_transfer, found, position)
        place = (self.batch, 0, self.places[position])
        for output in outputs:
            if isinstance(output, Finding):
                self._origin[id(output)] = place
        return outputs

    def _fire(
        self, partitions: Iterable[int], wall: float | None, result: BatchResult
    ) -> list[Finding]:
        findings: list[Finding] = []
        for partition in sorted(partitions):
            fired = super()._fire([partition], wall, result)
            for finding in fired:
                self._origin[id(finding)] = (self.batch, 1, partition)
            findings += fired
        return findings

    def _alerts(self, findings: list[Finding]) -> tuple[list[Alert], list[Alert]]:
        masker, topics = self.job.masker, self.job.topics
        for finding in findings:
            place = self._origin.pop(id(finding))
            live, shadow = super()._alerts([finding])
            for alert in live:
                line = encode_alert(masker.alert(alert) if masker else alert)
                self.tagged.append(
                    (place, alert.alert_id, topics.alert_topic(alert.category), line)
                )
            for alert in shadow:
                self.tagged.append((place, alert.alert_id, None, b""))
        return [], []


async def _run(job: _Job, rank: int, decoded: Decoded, positions: array[int]) -> list[Tagged]:
    """This process's part of every batch, in step with the others over the index."""
    index = _SharedIndex(rank, job.inboxes)
    engine = _TaggingEngine(job, index)
    for partition, names in decoded.streams.items():
        engine.clock.expect(partition, names)
    partition_of: dict[str, int] = {}
    records, start = decoded.records, 0
    while start < len(records):
        batch = positions[start] // BATCH_SIZE
        end = start
        while end < len(records) and positions[end] // BATCH_SIZE == batch:
            end += 1
        inputs = []
        for source, record in records[start:end]:
            known = partition_of.get(record.borrower_id)
            if known is None:
                known = partition_of[record.borrower_id] = partition_for(
                    record.borrower_id, job.partitions
                )
            inputs.append(Input(known, source, record))
        engine.batch, index.batch = batch, batch
        engine.places = [at % BATCH_SIZE for at in positions[start:end]]
        await engine.process(inputs)
        index.passed(batch)
        job.counts[job.processes + rank] = start = end
    index.close()
    return engine.tagged


def _work(job: _Job, rank: int) -> None:
    """One process: decode its lines, learn their places from the parent, run, hand back."""
    pipe = job.pipes[rank]
    try:
        counts = job.counts
        lines = counted(job.lines_of(rank), lambda done: counts.__setitem__(rank, done))
        decoded = decode(lines, partitions=job.partitions, topics=job.topics)
        if any(partition % job.processes != rank for partition in decoded.streams):
            raise Misrouted("a record's key led it to another partition's process")
        epochs = array("d", [epoch for epoch, _ in decoded.keys])
        numbers = array("q", [number for _, number in decoded.keys])
        pipe.send((decoded.rejected, epochs.tobytes(), numbers.tobytes()))
        positions = array("q")
        positions.frombytes(pipe.recv_bytes())
        pipe.send(asyncio.run(_run(job, rank, decoded, positions)))
    except BaseException as exc:  # the parent falls back to one process, or reports it
        for other, inbox in enumerate(job.inboxes):
            if other != rank:
                inbox.put((rank, FINISHED, []))  # no one waits for this process any more
        pipe.send(exc)
    finally:
        for inbox in job.inboxes:
            inbox.cancel_join_thread()


def _received(pipe: Connection) -> Any:
    message = pipe.recv()
    if isinstance(message, BaseException):
        raise message
    return message


def _gather(pipes: list[Connection], progress: Progress, counts: Callable[[], int]) -> list[Any]:
    """A message from every process, the progress bar redrawn while waiting for them."""
    got: dict[int, Any] = {}
    while len(got) < len(pipes):
        waiting = [pipe for rank, pipe in enumerate(pipes) if rank not in got]
        for pipe in wait(waiting, timeout=EVERY_SECONDS):
            got[pipes.index(pipe)] = _received(pipe)  # type: ignore[arg-type]
        progress.update(counts())
    progress.close()
    return [got[rank] for rank in range(len(pipes))]


def _places(parts: list[tuple[bytes, bytes]]) -> list[bytes]:
    """Each process's records' positions in the whole run, from their (event time, line)."""
    epochs = np.concatenate([np.frombuffer(e, dtype=np.float64) for e, _ in parts])
    numbers = np.concatenate([np.frombuffer(n, dtype=np.int64) for _, n in parts])
    order = np.lexsort((numbers, epochs))
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order), dtype=np.int64)
    sizes = np.cumsum([0] + [len(n) // 8 for _, n in parts])
    return [position[a:b].tobytes() for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def _merge(tagged: list[Tagged], out: Any, report: ReplayReport) -> None:
    """Alerts in one engine's order, repeats dropped as it drops them, written."""
    tagged.sort(key=lambda item: item[0])  # stable: each place's alerts come from one process
    memory = AlertMemory()
    for _, alert_id, topic, line in tagged:
        if memory.first(alert_id) and topic is not None:
            report.alerts += 1
            report.alerts_by_topic[topic] += 1
            out.write(line + b"\n")


def _start(job: _Job) -> tuple[list[Connection], list[Any]]:
    context = multiprocessing.get_context("fork")
    ends = [context.Pipe() for _ in range(job.processes)]
    job.pipes = [child for _, child in ends]
    workers = [
        context.Process(target=_work, args=(job, rank), daemon=True)
        for rank in range(job.processes)
    ]
    for worker in workers:
        worker.start()
    return [parent for parent, _ in ends], workers


def replay_parallel(
    input_path: Path,
    output_path: Path,
    *,
    processes: int,
    partitions: int = 8,
    topics: TopicNames | None = None,
    masker: Masker | None = None,
    thresholds: Thresholds | None = None,
    progress: bool = False,
) -> ReplayReport:
    """``replay_file``'s report and output, the partitions run in ``processes`` processes.

    Raises :class:`Misrouted` if a record's key led it to the wrong process (a key that is
    not the record's borrower id is rejected, so only a line with two keys can do that).
    """
    topics = topics or TopicNames()
    context = multiprocessing.get_context("fork")
    lines = input_path.read_bytes().split(b"\n")
    job = _Job(
        lines=lines,
        owners=_route(lines, partitions, processes),
        processes=processes,
        partitions=partitions,
        topics=topics,
        thresholds=thresholds or Thresholds(),
        masker=masker,
        inboxes=[context.Queue() for _ in range(processes)],
        counts=context.Array("q", 2 * processes, lock=False),
    )
    pipes, workers = _start(job)
    counts, split = job.counts, processes
    try:
        reading = Progress("decoding", len(lines) - (not lines[-1]), "lines", enabled=progress)
        firsts = _gather(pipes, reading, lambda: sum(counts[:split]))
        for pipe, place in zip(pipes, _places([(e, n) for _, e, n in firsts]), strict=True):
            pipe.send_bytes(place)
        report = ReplayReport(rejected=sorted(r for rejected, _, _ in firsts for r in rejected))
        report.events = sum(len(n) // 8 for _, _, n in firsts)
        running = Progress("replaying", report.events, "events", enabled=progress)
        tagged = [a for part in _gather(pipes, running, lambda: sum(counts[split:])) for a in part]
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    with output_path.open("wb") as out:
        _merge(tagged, out, report)
    return report
