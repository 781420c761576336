"""Guards over Faust's consumer bookkeeping: every record handled, in order, and committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from faust.types import TP

from streams.worker import compat

__all__ = ["CommitWatch", "DeliveryGaps", "broken", "describe_stall", "refetch_paused"]

log = logging.getLogger("lendwatch")

#: Seconds a partition's acknowledgement record may stay broken before it is rebuilt. Faust
#: commits every 2.8 s; a broken record lasts until the worker stops.
STUCK_AFTER_SECONDS = 15.0
#: A gap fetched again this many times with the same record after it is taken as real:
#: offsets that hold no record (transaction markers, records compacted away).
GAP_RETRIES = 3
#: Seconds without a batch after which partitions Faust still holds back are fetched again.
REFETCH_AFTER_IDLE_SECONDS = 10.0


class CommitWatch:
    """Input partitions whose commit cannot catch up with their acknowledged records.

    Around a restart or a rebalance Faust can lose track of records (the faust-streaming
    #312/#378/#606 family). Seen in a worker restarted after a kill: recovery resumes fetching
    before it seeks the streams back to their committed offsets; a stream drops what was
    fetched in between, unacknowledged; the seek back races Faust's own fetch loop, which drops
    the redelivered records as already read. Records then go missing (:class:`DeliveryGaps`
    fetches them again), and Faust's acknowledgement record breaks (offsets twice, or never),
    so its commit creeps an offset or two at a time, or stops. This delivers such a partition
    again from its committed offset. That is safe because delivery is at least once anyway:
    the engine skips records a borrower already applied, and alerts already published are not
    sent again. Seeks go through :func:`streams.worker.compat.seek`, in aiokafka's own thread.
    """

    def __init__(self, topics: set[str], stuck_after: float = STUCK_AFTER_SECONDS) -> None:
        self.topics = topics
        self.stuck_after = stuck_after
        self._since: dict[TP, float] = {}  # first seen broken at

    def stuck(self, consumer: Any, assigned: set[TP], now: float) -> dict[TP, int]:
        """Partitions to deliver again, with the committed offset to deliver them from: those
        whose acknowledgement record has been broken (see :func:`broken`) for ``stuck_after``
        seconds."""
        found: dict[TP, int] = {}
        for tp in assigned:
            committed = compat.committed_offset(consumer, tp)
            acked = compat.acked_offsets(consumer, tp)
            if (
                tp.topic not in self.topics
                or committed is None
                or not acked
                or not broken(committed, acked, compat.has_known_gaps(consumer, tp))
            ):
                self._since.pop(tp, None)
                continue
            since = self._since.setdefault(tp, now)
            if now - since >= self.stuck_after:
                found[tp] = committed
        for tp in set(self._since) - assigned:
            del self._since[tp]
        return found

    def forget_acks(self, consumer: Any, tp: TP) -> None:
        """Drop the partition's acknowledgement record; the redelivered records rebuild it."""
        compat.forget_acks(consumer, tp)
        self._since.pop(tp, None)

    def fetched_but_lost(
        self,
        consumer: Any,
        positions: dict[TP, int | None],
        idle: float,
        starts: dict[TP, int] | None = None,
    ) -> dict[TP, int]:
        """Partitions of an idle worker fetched past their committed offset: records that
        never reached a stream (nothing is in flight when no batch has come for a while).

        A partition never committed counts from its first record (``starts``, the log start
        offsets): seen after a kill, a restarted worker whose first fetch of a partition was
        dropped before any of it was handled has nothing to commit, and would never fetch
        it again.
        """
        if idle < REFETCH_AFTER_IDLE_SECONDS:
            return {}
        found = {}
        for tp, position in positions.items():
            if tp.topic not in self.topics or position is None:
                continue
            committed = compat.committed_offset(consumer, tp)
            if committed is None:
                committed = (starts or {}).get(tp)
            if committed is not None and position > committed:
                found[tp] = committed
        return found

    async def repair(self, consumer: Any, now: float, idle: float) -> dict[TP, int]:
        """Deliver every stuck partition again from its committed offset; returns them."""
        assigned = consumer.assignment()
        found = self.stuck(consumer, assigned, now)
        positions = compat.fetch_positions(consumer, assigned)
        never = [
            tp
            for tp, position in positions.items()
            if tp.topic in self.topics
            and position
            and compat.committed_offset(consumer, tp) is None
            and idle >= REFETCH_AFTER_IDLE_SECONDS
        ]
        starts = await compat.log_starts(consumer, never) if never else {}
        found.update(self.fetched_but_lost(consumer, positions, idle, starts))
        for tp, committed in found.items():
            log.warning(
                "%s/%d: records after offset %d were lost or cannot be committed; "
                "delivering again from there (records already applied are skipped)",
                tp.topic,
                tp.partition,
                committed,
            )
            self.forget_acks(consumer, tp)
            await compat.seek(consumer, tp, committed)
        return found


class DeliveryGaps:
    """Records of a partition must reach the pipeline in offset order, none skipped.

    Around a restart or a rebalance Faust can skip records: fetched before the rebalance
    settled, a stream drops them unacknowledged (their generation has passed, or flow control
    was suspended), the fetch position has moved past them, and the seek that should bring
    them back races Faust's own fetch loop. The later records of the partition would then be
    applied first, event time would pass the skipped ones (an installment judged missed while
    its payment waits), and when the skipped ones came back they would look like redeliveries
    of records already applied. So the first record past a gap stops its partition: it and the
    rest of its partition's batch are not handled, and the partition is fetched again from the
    first missing offset.
    """

    def __init__(self, topics: set[str]) -> None:
        self.topics = topics
        self._next: dict[TP, int] = {}  # offset the next new record of the partition must have
        self._retries: dict[tuple[TP, int], tuple[int, int]] = {}  # first seen, times
        #: Gaps the last :meth:`admit` found for the first time (partition, first missing).
        self.opened: list[tuple[TP, int]] = []

    def admit(
        self, offsets: list[tuple[TP, int]], committed: dict[TP, int | None]
    ) -> tuple[list[bool], dict[TP, int]]:
        """Which records of a batch to handle, and where to fetch partitions with a gap again.

        ``committed`` gives the committed offset of a partition the first time it is seen:
        the first record must be that one.
        """
        admitted: list[bool] = []
        refetch: dict[TP, int] = {}
        self.opened = []
        for tp, offset in offsets:
            if tp in refetch or tp.topic not in self.topics:
                admitted.append(tp not in refetch)
                continue
            expected = self._next.get(tp)
            if expected is None:
                expected = committed.get(tp)
            if expected is None or offset <= expected:
                # The first record ever, the next one, or one delivered again (the engine
                # skips what a borrower already applied).
                if expected is None or offset == expected:
                    self._next[tp] = offset + 1
                    self._retries.pop((tp, offset), None)
                admitted.append(True)
                continue
            # A gap Kafka really has comes back with the same first record after it on every
            # fetch; one Faust made moves as the records fetched before the seek drain away.
            if (tp, expected) not in self._retries:
                self.opened.append((tp, expected))
            seen, retries = self._retries.get((tp, expected), (offset, 0))
            retries = retries + 1 if seen == offset else 1
            if retries > GAP_RETRIES:
                log.warning(
                    "%s/%d: offsets %d..%d never delivered after %d fetches; taken as empty",
                    tp.topic,
                    tp.partition,
                    expected,
                    offset - 1,
                    GAP_RETRIES,
                )
                del self._retries[(tp, expected)]
                self._next[tp] = offset + 1
                admitted.append(True)
                continue
            self._retries[(tp, expected)] = (offset, retries)
            refetch[tp] = expected
            admitted.append(False)
        return admitted, refetch

    def forget(self, tps: set[TP]) -> None:
        """Partitions revoked: whoever has them next starts from their committed offset."""
        for tp in tps:
            self._next.pop(tp, None)
        for key in [key for key in self._retries if key[0] in tps]:
            del self._retries[key]


def broken(committed: int, acked: Sequence[int], known_gaps: bool) -> bool:
    """Whether Faust's record of a partition's acknowledged offsets is one it cannot commit.

    Faust commits the first unbroken run of ``acked`` and only if it starts at the committed
    offset. An offset below the committed one or one acknowledged twice splits the run, so
    each commit advances by an offset or two; a hole at the head that no known gap (records
    compacted away, transaction markers) explains stops it. None of these happens while
    records are handled in order, one batch at a time, as the pipeline does.
    """
    lowest = min(acked)
    if lowest < committed or len(set(acked)) != len(acked):
        return True
    return lowest > committed and not known_gaps


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


def describe_stall(consumer: Any, topics: set[str], handled: dict[tuple[str, int], int]) -> str:
    """Why input partitions are not committed: empty when every one is (or is unknown).

    For each: the offset committed, the acknowledged offsets waiting (first, last, count), the
    last offset the pipeline handled, the fetch position and the high-water mark; then which
    partitions the consumer fetches, pauses or holds back.
    """
    assigned = consumer.assignment()
    positions = compat.fetch_positions(consumer, assigned)
    lagging = {}
    for tp in sorted(assigned):
        committed = compat.committed_offset(consumer, tp)
        highwater = consumer.highwater(tp)
        if tp.topic not in topics or committed is None or highwater is None:
            continue  # not ours, or mid-rebalance
        if committed >= highwater:
            continue
        acked = sorted(compat.acked_offsets(consumer, tp))
        lagging[f"{tp.topic}/{tp.partition}"] = {
            "committed": committed,
            "acked": (acked[0], acked[-1], len(acked)) if acked else None,
            "handled": handled.get((tp.topic, tp.partition)),
            "position": positions[tp],
            "highwater": highwater,
        }
    if not lagging:
        return ""
    return (
        f"input not committed: {lagging}; "
        f"unacked messages {compat.in_flight_count(consumer)}; "
        f"paused {sorted(compat.paused_partitions(consumer))}; "
        f"held back {sorted(compat.held_back_partitions(consumer))}; "
        f"flow active {consumer.flow_active}"
    )
