"""Where each input partition is read from: the offsets stored with the state they produced.

The pattern of Kafka Streams and Flink. The offset of the next record to apply is written, per
input partition, into the changelogged record that holds the partition's event-time position
(:meth:`~streams.worker.tables.ModelCheckpoints.send_positions`), after the states and alerts
that the records before it produced are acknowledged; the consumer group's committed offsets
follow and serve lag tooling only. Whoever owns a partition next seeks it to that offset (or
to its log start when there is none) after table recovery, and from there reads it in order.
Nothing Faust keeps about acknowledged or committed records decides what is applied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from faust.types import TP

from streams.worker import compat

__all__ = ["STALLED_AFTER_SECONDS", "InputOffsets", "describe_stall", "refetch_paused"]

log = logging.getLogger("lendwatch")

#: Seconds a partition may stay fetched past the next record to apply without delivering it
#: before it is fetched again from that record (records a stream dropped, with none after).
STALLED_AFTER_SECONDS = 5.0
#: Seconds without a batch after which partitions Faust still holds back are fetched again.
REFETCH_AFTER_IDLE_SECONDS = 10.0


class InputOffsets:
    """Per input partition, the offset the next record to apply must have.

    A partition starts where it was sought on assignment (:meth:`start`). A record below the
    expected offset was applied already and is dropped; the expected one is applied; one above
    it means records were lost on the way (Faust drops records fetched around a rebalance):
    the partition is fetched again from the expected offset, and until that record comes the
    partition's later records are dropped (they were fetched before the seek). A partition not
    started is not ours yet (its seek is on the way): its records are dropped.
    """

    def __init__(self, stalled_after: float = STALLED_AFTER_SECONDS) -> None:
        self.stalled_after = stalled_after
        self._next: dict[TP, int] = {}
        self._seeking: set[TP] = set()  # fetched again, waiting for the expected record
        self._progress_at: dict[TP, float] = {}  # last applied record or seek

    def start(self, tp: TP, offset: int, now: float) -> None:
        """``tp`` was sought to ``offset``: the next record to apply."""
        self._next[tp] = offset
        self._seeking.add(tp)
        self._progress_at[tp] = now

    def expected(self, tp: TP) -> int | None:
        return self._next.get(tp)

    def admit(self, offsets: Iterable[tuple[TP, int]], now: float) -> tuple[list[bool], set[TP]]:
        """Which records of a batch to apply, and the partitions to fetch again from their
        expected offset (:meth:`expected`)."""
        admitted: list[bool] = []
        refetch: set[TP] = set()
        expected_of = self._next
        for tp, offset in offsets:
            expected = expected_of.get(tp)
            if expected is None or offset < expected:
                admitted.append(False)
            elif offset == expected:
                expected_of[tp] = offset + 1
                self._seeking.discard(tp)
                self._progress_at[tp] = now
                admitted.append(True)
            else:
                if tp not in self._seeking:
                    refetch.add(tp)
                    self._seeking.add(tp)
                    self._progress_at[tp] = now
                admitted.append(False)
        return admitted, refetch

    def stalled(self, positions: Mapping[TP, int | None], now: float) -> set[TP]:
        """Partitions fetched past their expected offset that delivered nothing for
        ``stalled_after`` seconds: the records in between were dropped and nothing after them
        would show it. They are to be fetched again from the expected offset."""
        found = set()
        for tp, position in positions.items():
            expected = self._next.get(tp)
            if expected is None or position is None or position <= expected:
                continue
            if now - self._progress_at.get(tp, now) >= self.stalled_after:
                found.add(tp)
                self._seeking.add(tp)
                self._progress_at[tp] = now
        return found

    def not_started(self, assigned: Iterable[TP]) -> set[TP]:
        return {tp for tp in assigned if tp not in self._next}

    def moved_to(self, tp: TP, offset: int) -> None:
        """The expected offset is gone from the log (retention, compaction): start at
        ``offset``, the log start."""
        self._next[tp] = offset

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked: their next owner seeks them to the stored offsets."""
        for tp in tps:
            self._next.pop(tp, None)
            self._seeking.discard(tp)
            self._progress_at.pop(tp, None)


def refetch_paused(consumer: Any, idle: float) -> None:
    """Work around a Faust flow-control gap seen after rebalances.

    When a stream's buffer is under pressure, Faust stops fetching its partition until the
    buffer drains (``Consumer.on_buffer_full`` / ``on_buffer_drop``). If a rebalance empties
    the buffer meanwhile, the drain is never signalled and the partition is never fetched
    again: the worker sits idle with lag. No batch for a while means no buffer is under
    pressure, so whatever is still held back is released.
    """
    held = compat.held_back_partitions(consumer)
    if idle < REFETCH_AFTER_IDLE_SECONDS or not held:
        return
    log.warning("fetching again %d partitions left paused by flow control: %s", len(held), held)
    for tp in held:
        consumer.on_buffer_drop(tp)


def describe_stall(consumer: Any, topics: set[str], offsets: InputOffsets) -> str:
    """Why input partitions are behind their high-water mark: empty when none is.

    For each: the next offset to apply, the fetch position and the high-water mark; then which
    partitions the consumer pauses or holds back.
    """
    assigned = {tp for tp in consumer.assignment() if tp.topic in topics}
    positions = compat.fetch_positions(consumer, assigned)
    lagging = {}
    for tp in sorted(assigned):
        expected = offsets.expected(tp)
        highwater = consumer.highwater(tp)
        if highwater is None or expected is None or expected >= highwater:
            continue  # not known, mid-rebalance, or caught up
        lagging[f"{tp.topic}/{tp.partition}"] = {
            "next": expected,
            "position": positions[tp],
            "highwater": highwater,
        }
    if not lagging:
        return ""
    return (
        f"input behind: {lagging}; "
        f"paused {sorted(compat.paused_partitions(consumer))}; "
        f"held back {sorted(compat.held_back_partitions(consumer))}; "
        f"flow active {consumer.flow_active}"
    )
