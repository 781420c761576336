"""CommitWatch against Faust's own acknowledgement bookkeeping (a consumer that is not started:
acks and commit offsets are computed in memory, no broker is involved)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

from streams.worker.compat import ack, release
from streams.worker.consumer_watch import GAP_RETRIES, CommitWatch, DeliveryGaps, broken

TOPIC = "lending.logins"
TP0 = TP(TOPIC, 0)
TP1 = TP(TOPIC, 1)


@pytest.fixture
def consumer() -> Iterator[object]:
    loop = asyncio.new_event_loop()
    app = faust.App("commit-watch-test", broker="kafka://127.0.0.1:1", loop=loop)
    app.topics._acking_topics.add(TOPIC)  # what subscribing an agent to the topic does
    consumer = app.consumer
    yield consumer
    consumer._thread.thread_loop.close()  # made with the consumer, never started
    loop.close()


def _messages(tp: TP, offsets: range) -> list[Message]:
    return [
        Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)
        for offset in offsets
    ]


def _ack(consumer: object, tp: TP, offsets: range) -> None:
    for message in _messages(tp, offsets):
        consumer.track_message(message)  # type: ignore[attr-defined]
        consumer.ack(message)  # type: ignore[attr-defined]


def _commit(consumer: object, tp: TP) -> None:
    """What Faust's periodic commit does to its bookkeeping (the broker call left out)."""
    offset = consumer._new_offset(tp)  # type: ignore[attr-defined]
    if offset is not None and consumer._should_commit(tp, offset):  # type: ignore[attr-defined]
        consumer._committed_offset[tp] = offset  # type: ignore[attr-defined]


def test_faust_never_commits_past_a_hole_at_the_head(consumer: object) -> None:
    """The first failure CommitWatch exists for, as Faust computes it."""
    consumer._committed_offset[TP0] = 11  # type: ignore[attr-defined]
    _ack(consumer, TP0, range(21, 45))  # 11..20 were handled, their acknowledgements lost
    for _ in range(3):
        _commit(consumer, TP0)
    assert consumer._committed_offset[TP0] == 11  # type: ignore[attr-defined]


def test_faust_commits_one_offset_at_a_time_past_duplicates(consumer: object) -> None:
    """The second: each record acknowledged twice (handled before and after recovery's seek)."""
    consumer._committed_offset[TP0] = 2381  # type: ignore[attr-defined]
    consumer._acked[TP0].extend(sorted([*range(2381, 4056), *range(2381, 4056)]))  # type: ignore[attr-defined]
    for _ in range(3):
        _commit(consumer, TP0)
    assert consumer._committed_offset[TP0] == 2384  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("committed", "acked", "gaps", "expected"),
    [
        (11, [11, 12, 13], False, False),  # healthy
        (11, [13, 14], True, False),  # a hole Faust knows as a gap (compaction, markers)
        (11, [21, 22], False, True),  # a hole at the head
        (521, [520, 521, 522], False, True),  # below the committed offset
        (11, [11, 11, 12, 12], False, True),  # twice
    ],
)
def test_broken(committed: int, acked: list[int], gaps: bool, expected: bool) -> None:
    assert broken(committed, acked, gaps) is expected


def test_a_broken_record_is_stuck_after_the_delay_even_while_commits_creep(
    consumer: object,
) -> None:
    watch = CommitWatch({TOPIC}, stuck_after=15.0)
    consumer._committed_offset[TP0] = 2381  # type: ignore[attr-defined]
    consumer._acked[TP0].extend(sorted([*range(2381, 2500), *range(2381, 2500)]))  # type: ignore[attr-defined]
    assert watch.stuck(consumer, {TP0}, now=100.0) == {}
    _commit(consumer, TP0)
    assert watch.stuck(consumer, {TP0}, now=114.0) == {}
    _commit(consumer, TP0)
    assert watch.stuck(consumer, {TP0}, now=115.0) == {TP0: 2383}


def test_healthy_partitions_and_other_topics_are_never_stuck(consumer: object) -> None:
    watch = CommitWatch({TOPIC}, stuck_after=15.0)
    consumer._committed_offset[TP0] = 11  # type: ignore[attr-defined]
    _ack(consumer, TP0, range(11, 20))
    consumer._committed_offset[TP1] = 5  # type: ignore[attr-defined]  # nothing acknowledged
    other = TP("lw-borrower-state-changelog", 0)
    consumer._committed_offset[other] = 3  # type: ignore[attr-defined]
    consumer._acked[other].extend([9, 9])  # type: ignore[attr-defined]
    for now in (0.0, 20.0, 1000.0):
        assert watch.stuck(consumer, {TP0, TP1, other}, now=now) == {}


def test_a_revoked_partition_is_no_longer_reported(consumer: object) -> None:
    watch = CommitWatch({TOPIC}, stuck_after=15.0)
    consumer._committed_offset[TP0] = 11  # type: ignore[attr-defined]
    _ack(consumer, TP0, range(21, 45))
    assert watch.stuck(consumer, {TP0}, now=0.0) == {}
    assert watch.stuck(consumer, {TP1}, now=20.0) == {}
    assert watch.stuck(consumer, {TP0}, now=21.0) == {}, "seen anew when assigned again"


def test_records_delivered_again_after_forget_acks_are_committed_at_once(
    consumer: object,
) -> None:
    watch = CommitWatch({TOPIC}, stuck_after=15.0)
    consumer._committed_offset[TP0] = 521  # type: ignore[attr-defined]
    consumer._acked[TP0].extend([520, 520, 522, 523, 523, 524])  # type: ignore[attr-defined]
    watch.forget_acks(consumer, TP0)
    _ack(consumer, TP0, range(521, 640))  # delivered again from the committed offset
    _commit(consumer, TP0)
    assert consumer._committed_offset[TP0] == 640  # type: ignore[attr-defined]


def test_records_in_offset_order_are_all_handled() -> None:
    gaps = DeliveryGaps({TOPIC})
    admitted, refetch = gaps.admit([(TP0, 26), (TP0, 27), (TP1, 5), (TP0, 28)], {TP0: 26, TP1: 5})
    assert admitted == [True, True, True, True] and refetch == {}
    admitted, refetch = gaps.admit([(TP0, 29)], {})
    assert admitted == [True] and refetch == {}


def test_records_past_a_skipped_one_are_held_back_and_fetched_again() -> None:
    """As seen after a restart: committed 26, the stream delivered 34 first."""
    gaps = DeliveryGaps({TOPIC})
    admitted, refetch = gaps.admit([(TP1, 5), (TP0, 34), (TP0, 35), (TP1, 6)], {TP0: 26, TP1: 5})
    assert admitted == [True, False, False, True]
    assert refetch == {TP0: 26} and gaps.opened == [(TP0, 26)]
    admitted, refetch = gaps.admit([(TP0, 26), (TP0, 27), (TP0, 34)], {TP0: 26})
    assert admitted == [True, True, False], "still missing 28..33"
    assert refetch == {TP0: 28}
    admitted, refetch = gaps.admit([(TP0, o) for o in range(28, 36)], {TP0: 26})
    assert all(admitted) and refetch == {}


def test_records_delivered_again_pass_and_the_engine_skips_them() -> None:
    gaps = DeliveryGaps({TOPIC})
    gaps.admit([(TP0, o) for o in range(10, 20)], {TP0: 10})
    admitted, refetch = gaps.admit([(TP0, 12), (TP0, 13), (TP0, 20)], {TP0: 10})
    assert all(admitted) and refetch == {}


def test_a_gap_that_comes_back_the_same_way_is_taken_as_empty() -> None:
    """Offsets with no record (a transaction marker): the same record follows the gap on
    every fetch. A moving first record (Faust still draining what it fetched before the
    seek) does not count."""
    gaps = DeliveryGaps({TOPIC})
    gaps.admit([(TP0, 10)], {TP0: 10})
    for first in (13, 14, 15):  # draining: a different first record each time
        admitted, refetch = gaps.admit([(TP0, first)], {})
        assert admitted == [False] and refetch == {TP0: 11}
        assert gaps.opened == ([(TP0, 11)] if first == 13 else []), "logged once"
    for _ in range(GAP_RETRIES - 1):
        admitted, refetch = gaps.admit([(TP0, 15)], {})
        assert admitted == [False] and refetch == {TP0: 11}
    admitted, refetch = gaps.admit([(TP0, 15), (TP0, 16)], {})
    assert admitted == [True, True] and refetch == {}
    admitted, refetch = gaps.admit([(TP0, 17)], {})
    assert admitted == [True] and refetch == {}


def test_other_topics_are_not_watched_and_revoked_partitions_start_over() -> None:
    gaps = DeliveryGaps({TOPIC})
    other = TP("lw-borrower-state-changelog", 0)
    admitted, refetch = gaps.admit([(other, 3), (other, 9)], {})
    assert all(admitted) and refetch == {}
    gaps.admit([(TP0, 40)], {TP0: 40})
    gaps.forget({TP0})
    admitted, refetch = gaps.admit([(TP0, 12)], {TP0: 12})
    assert admitted == [True] and refetch == {}


def test_an_idle_worker_fetched_past_its_commit_has_lost_records(consumer: object) -> None:
    """As seen after a restart: committed 19, fetched to 45, nothing acknowledged, no batch."""
    watch = CommitWatch({TOPIC})
    consumer._committed_offset[TP0] = 19  # type: ignore[attr-defined]
    consumer._committed_offset[TP1] = 45  # type: ignore[attr-defined]
    other = TP("lw-borrower-state-changelog", 0)
    consumer._committed_offset[other] = 3  # type: ignore[attr-defined]
    positions: dict[TP, int | None] = {TP0: 45, TP1: 45, other: 9}
    assert watch.fetched_but_lost(consumer, positions, idle=5.0) == {}, "may still be handled"
    assert watch.fetched_but_lost(consumer, positions, idle=10.0) == {TP0: 19}
    consumer._committed_offset[TP0] = 45  # type: ignore[attr-defined]
    assert watch.fetched_but_lost(consumer, positions, idle=60.0) == {}


def test_records_held_back_are_not_committed_until_they_come_again(consumer: object) -> None:
    consumer._committed_offset[TP0] = 10  # type: ignore[attr-defined]
    batch = _messages(TP0, range(10, 16))
    for message in batch:
        consumer.track_message(message)  # type: ignore[attr-defined]
    ack(consumer, batch[:2])
    release(consumer, batch[2:])  # held back behind a gap, not handled
    assert not consumer._unacked_messages, "nothing left in flight for a rebalance to wait on"  # type: ignore[attr-defined]
    _commit(consumer, TP0)
    assert consumer._committed_offset[TP0] == 12  # type: ignore[attr-defined]
    ack(consumer, _messages(TP0, range(12, 16)))  # delivered again and handled
    _commit(consumer, TP0)
    assert consumer._committed_offset[TP0] == 16  # type: ignore[attr-defined]


def test_a_partition_never_committed_counts_from_its_first_record(consumer: object) -> None:
    """As seen after a kill: a restarted worker fetched a whole partition that the killed
    one had never committed, and dropped it before handling any: nothing to commit, so
    only its log start says records were lost."""
    watch = CommitWatch({TOPIC})
    positions: dict[TP, int | None] = {TP0: 81, TP1: 0}
    assert watch.fetched_but_lost(consumer, positions, idle=60.0) == {}, "start unknown"
    starts = {TP0: 0, TP1: 0}
    assert watch.fetched_but_lost(consumer, positions, idle=60.0, starts=starts) == {TP0: 0}
    assert watch.fetched_but_lost(consumer, positions, idle=5.0, starts=starts) == {}
    assert watch.fetched_but_lost(consumer, {TP0: 81}, idle=60.0, starts={TP0: 81}) == {}
