"""CommitWatch against Faust's own acknowledgement bookkeeping (a consumer that is not started:
acks and commit offsets are computed in memory, no broker is involved)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.types import TP
from faust.types.tuples import Message

from streams.consumer_watch import CommitWatch

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


def _ack(consumer: object, tp: TP, offsets: range) -> None:
    for offset in offsets:
        message = Message(tp.topic, tp.partition, offset, 0.0, 0, None, b"k", b"v", None, tp=tp)
        consumer.track_message(message)  # type: ignore[attr-defined]
        consumer.ack(message)  # type: ignore[attr-defined]


def test_faust_never_commits_past_a_lost_acknowledgement(consumer: object) -> None:
    """The failure CommitWatch exists for, as Faust computes it."""
    consumer._committed_offset[TP0] = 11  # type: ignore[attr-defined]
    _ack(consumer, TP0, range(21, 45))  # 11..20 were handled, their acks lost
    assert consumer._new_offset(TP0) is None  # type: ignore[attr-defined]
    assert consumer._new_offset(TP0) is None  # type: ignore[attr-defined]


def test_a_commit_standing_still_behind_acknowledged_records_is_stuck_after_the_delay(
    consumer: object,
) -> None:
    watch = CommitWatch({TOPIC}, stuck_after=30.0)
    consumer._committed_offset[TP0] = 11  # type: ignore[attr-defined]
    _ack(consumer, TP0, range(21, 45))
    assert watch.stuck(consumer, {TP0}, now=100.0) == {}
    assert watch.stuck(consumer, {TP0}, now=129.0) == {}
    assert watch.stuck(consumer, {TP0}, now=130.0) == {TP0: 11}


def test_a_moving_commit_an_empty_record_and_other_partitions_are_not_stuck(
    consumer: object,
) -> None:
    watch = CommitWatch({TOPIC}, stuck_after=30.0)
    consumer._committed_offset[TP0] = 11  # type: ignore[attr-defined]
    _ack(consumer, TP0, range(11, 20))
    consumer._committed_offset[TP1] = 5  # type: ignore[attr-defined]  # nothing acknowledged
    other = TP("lw-borrower-state-changelog", 0)
    consumer._committed_offset[other] = 3  # type: ignore[attr-defined]
    assert watch.stuck(consumer, {TP0, TP1, other}, now=0.0) == {}
    consumer._committed_offset[TP0] = 15  # type: ignore[attr-defined]  # a commit went through
    assert watch.stuck(consumer, {TP0, TP1, other}, now=40.0) == {}
    assert watch.stuck(consumer, {TP0, TP1, other}, now=69.0) == {}
    assert watch.stuck(consumer, {TP0, TP1, other}, now=70.0) == {TP0: 15}
    assert watch.stuck(consumer, {TP1, other}, now=80.0) == {}, "revoked: no longer ours"


def test_records_delivered_again_after_forget_acks_are_committed(consumer: object) -> None:
    """Also when the record holds an offset below the committed one and duplicates, as seen
    in a worker restarted after a kill."""
    watch = CommitWatch({TOPIC}, stuck_after=30.0)
    consumer._committed_offset[TP0] = 521  # type: ignore[attr-defined]
    consumer._acked[TP0].extend([520, 520, 522, 523, 523, 524])  # type: ignore[attr-defined]
    watch.forget_acks(consumer, TP0)
    _ack(consumer, TP0, range(521, 640))  # delivered again from the committed offset
    assert consumer._new_offset(TP0) == 640  # type: ignore[attr-defined]
