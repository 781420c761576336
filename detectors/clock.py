"""Event time per partition, and timers that fire when every input stream has passed them."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EventTimeClock", "Timer", "TimerQueue"]


@dataclass(slots=True)
class _PartitionTime:
    max_ts: dict[str, float] = field(default_factory=dict)  # stream -> latest event time seen
    watermark: float | None = None  # never moves back, even when an idle stream resumes
    last_arrival: dict[str, float] = field(default_factory=dict)  # stream -> wall time
    first_arrival: float | None = None


class EventTimeClock:
    """The watermark of a partition is the event time that *every* input stream has reached.

    A timer (an installment's due date plus grace, say) may only fire once all streams have
    passed it: otherwise a payment still waiting in the repayments topic would be judged
    missing because the transactions topic ran ahead. Replay and the live worker share this
    rule, which is why they agree. In live operation a stream silent for ``idle_after``
    seconds of wall time stops holding time back, so one idle topic cannot stall every timer.
    """

    def __init__(self, streams: Iterable[str], idle_after: float | None = None) -> None:
        self._streams = frozenset(streams)
        self._expected: dict[int, frozenset[str]] = {}
        self._idle_after = idle_after
        self._partitions: dict[int, _PartitionTime] = {}

    def expect(self, partition: int, streams: Iterable[str]) -> None:
        """Wait only for these streams on ``partition`` (replay knows which ones its input has)."""
        self._expected[partition] = frozenset(streams)

    def observe(self, partition: int, stream: str, epoch: float, wall: float | None = None) -> None:
        part = self._partitions.setdefault(partition, _PartitionTime())
        if epoch > part.max_ts.get(stream, float("-inf")):
            part.max_ts[stream] = epoch
        if wall is not None:
            part.last_arrival[stream] = wall
            if part.first_arrival is None:
                part.first_arrival = wall

    def watermark(self, partition: int, wall: float | None = None) -> float | None:
        """Event time every (non-idle) stream of ``partition`` has reached, or None."""
        part = self._partitions.get(partition)
        if part is None or not part.max_ts:
            return None
        times = []
        for stream in self._expected.get(partition, self._streams):
            if self._idle(part, stream, wall):
                continue
            if stream not in part.max_ts:
                return part.watermark  # a stream we still wait for has not started
            times.append(part.max_ts[stream])
        current = min(times) if times else max(part.max_ts.values())
        if part.watermark is None or current > part.watermark:
            part.watermark = current
        return part.watermark

    def _idle(self, part: _PartitionTime, stream: str, wall: float | None) -> bool:
        if self._idle_after is None or wall is None:
            return False
        since = part.last_arrival.get(stream, part.first_arrival)
        return since is not None and wall - since >= self._idle_after

    def position(self, partition: int) -> dict[str, Any] | None:
        """How far each stream of ``partition`` has come, to checkpoint (None: not seen)."""
        part = self._partitions.get(partition)
        if part is None:
            return None
        return {
            "max_ts": {str(stream): epoch for stream, epoch in part.max_ts.items()},
            "watermark": part.watermark,
        }

    def resume(self, partition: int, position: dict[str, Any]) -> None:
        """Start ``partition`` where a checkpoint left it: after a restart, a stream that has
        no new events must still count with the time it had reached, or no timer would fire."""
        part = self._partitions.setdefault(partition, _PartitionTime())
        for stream, epoch in position.get("max_ts", {}).items():
            if epoch > part.max_ts.get(stream, float("-inf")):
                part.max_ts[stream] = epoch
        watermark = position.get("watermark")
        if watermark is not None and (part.watermark is None or watermark > part.watermark):
            part.watermark = watermark

    def partitions(self) -> list[int]:
        return sorted(self._partitions)

    def forget(self, partition: int) -> None:
        self._partitions.pop(partition, None)


@dataclass(frozen=True, slots=True, order=True)
class Timer:
    """Call back a detector for ``borrower_id`` at event time ``due``; ``key`` says what for."""

    due: float
    borrower_id: str
    detector: str
    key: str


class TimerQueue:
    """Timers of one process, by partition, each scheduled at most once."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[Timer]] = {}
        self._pending: set[tuple[int, Timer]] = set()

    def schedule(self, partition: int, timer: Timer) -> None:
        if (partition, timer) in self._pending:
            return
        self._pending.add((partition, timer))
        heapq.heappush(self._heaps.setdefault(partition, []), timer)

    def pop_due(self, partition: int, watermark: float) -> list[Timer]:
        heap = self._heaps.get(partition)
        due: list[Timer] = []
        while heap and heap[0].due <= watermark:
            timer = heapq.heappop(heap)
            self._pending.discard((partition, timer))
            due.append(timer)
        return due

    def next_due(self, partition: int) -> float | None:
        """When ``partition``'s earliest timer is due (None: no timer)."""
        heap = self._heaps.get(partition)
        return heap[0].due if heap else None

    def forget(self, partition: int) -> None:
        for timer in self._heaps.pop(partition, []):
            self._pending.discard((partition, timer))

    def __len__(self) -> int:
        return len(self._pending)
