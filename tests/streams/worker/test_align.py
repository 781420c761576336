"""A partition's input streams merged in event time before the engine, as replay has them."""

from __future__ import annotations

import math
from collections.abc import Callable

from faust.types import TP, Message

from detectors.engine import Input
from detectors.scenarios import at, login, transaction
from streams.worker.align import StreamAligner
from topics.names import Source

TX, LOGINS, REPAYMENTS = "lending.transactions", "lending.logins", "lending.repayments"
TOPICS = (TX, LOGINS, REPAYMENTS)


def _tx(offset: int, hours: float, partition: int = 0) -> tuple[Input, Message]:
    record = transaction(f"tx-{offset}", "b-1", "acct", "cp", "100", at(hours=hours))
    return _pair(TX, Source.TRANSACTIONS, record, offset, partition)


def _login(offset: int, hours: float, partition: int = 0) -> tuple[Input, Message]:
    record = login(f"lg-{offset}", at(hours=hours), device="phone", ip="10.0.0.1")
    return _pair(LOGINS, Source.LOGINS, record, offset, partition)


def _pair(
    topic: str, source: Source, record: object, offset: int, partition: int
) -> tuple[Input, Message]:
    message = Message(topic, partition, offset, 0.0, 0, None, b"b-1", b"{}", None)
    return Input(partition, source, record, offset), message  # type: ignore[arg-type]


def _ids(released: list[tuple[Input, Message]]) -> list[str]:
    return [item.record.event_id for item, _ in released]


def _lagging(*tps: TP, delivered_at: float = -math.inf) -> Callable[[TP], float | None]:
    """``tps`` have records still to come, the last of theirs arrived at ``delivered_at``."""
    return lambda tp: delivered_at if tp in tps else None


def test_a_stream_ahead_waits_for_a_stream_with_records_still_to_come() -> None:
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 1), _tx(1, 30), _tx(2, 50)], now=0.0)
    logins_behind = _lagging(TP(LOGINS, 0))
    assert aligner.release(logins_behind, now=0.1) == []  # logins may come before any
    assert aligner.held_from(TP(TX, 0)) == 0  # the stored offset must not pass them

    aligner.add([_login(0, 2), _login(1, 40)], now=0.2)
    released = aligner.release(logins_behind, now=0.3)
    # Merged in event time, up to where the logins stream has nothing here to compare.
    assert _ids(released) == ["tx-0", "lg-0", "tx-1", "lg-1"]
    assert aligner.held_from(TP(TX, 0)) == 2 and len(aligner) == 1

    # The logins caught up (nothing more to come): the rest goes on.
    assert _ids(aligner.release(_lagging(), now=0.4)) == ["tx-2"]
    assert aligner.held_from(TP(TX, 0)) is None and len(aligner) == 0


def test_streams_with_nothing_to_come_hold_nothing() -> None:
    """The live case once caught up: every record goes on as it comes, no latency added."""
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 5), _login(0, 1)], now=0.0)
    assert _ids(aligner.release(_lagging(), now=0.0)) == ["lg-0", "tx-0"]


def test_other_partitions_do_not_hold_each_other() -> None:
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 9, partition=0), _tx(0, 1, partition=1)], now=0.0)
    released = aligner.release(_lagging(TP(LOGINS, 0)), now=0.0)
    assert [(item.partition, item.record.event_id) for item, _ in released] == [(1, "tx-0")]


def test_a_record_waits_at_most_max_hold_for_a_stream_that_delivers_nothing() -> None:
    """Its lag not known yet, or its records dropped and fetched again: liveness first."""
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 1)], now=0.0)
    repayments_behind = _lagging(TP(REPAYMENTS, 0))
    assert aligner.release(repayments_behind, now=4.9) == []
    assert _ids(aligner.release(repayments_behind, now=5.0)) == ["tx-0"]


def test_a_stream_still_delivering_is_waited_for_past_max_hold() -> None:
    """A backlog's logins read at a slower, steady pace: the transaction waits for them as
    long as they keep coming (released on time, it would let a timer read a later one)."""
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 10)], now=0.0)
    for now in (4.0, 8.0, 12.0):
        logins_coming = _lagging(TP(LOGINS, 0), delivered_at=now - 1.0)
        aligner.add([_login(int(now), hours=now / 4)], now=now - 1.0)
        assert _ids(aligner.release(logins_coming, now=now)) == [f"lg-{int(now)}"]
    assert aligner.held_from(TP(TX, 0)) == 0, "still held at 12 s: the logins keep coming"
    silent_since_11 = _lagging(TP(LOGINS, 0), delivered_at=11.0)
    assert aligner.release(silent_since_11, now=15.9) == []
    assert _ids(aligner.release(silent_since_11, now=16.0)) == ["tx-0"]


def test_a_record_arrived_after_the_last_delivery_waits_from_its_own_arrival() -> None:
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 1)], now=20.0)
    logins_behind = _lagging(TP(LOGINS, 0), delivered_at=3.0)
    assert aligner.release(logins_behind, now=24.9) == []
    assert _ids(aligner.release(logins_behind, now=25.0)) == ["tx-0"]


def test_beyond_max_held_the_earliest_go_on() -> None:
    aligner = StreamAligner(TOPICS, max_hold=60.0, max_held=2)
    aligner.add([_tx(0, 1), _tx(1, 2), _tx(2, 3)], now=0.0)
    assert _ids(aligner.release(_lagging(TP(LOGINS, 0)), now=0.0)) == ["tx-0"]
    assert len(aligner) == 2


def test_a_partition_owned_elsewhere_is_forgotten_with_what_it_held() -> None:
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 1), _tx(1, 2)], now=0.0)
    aligner.forget(0)
    assert len(aligner) == 0 and aligner.held_from(TP(TX, 0)) is None


def test_a_topic_partition_keeps_its_offset_order() -> None:
    """Within one topic partition the broker's order stands, even when event time steps back."""
    aligner = StreamAligner(TOPICS, max_hold=5.0, max_held=100)
    aligner.add([_tx(0, 3), _tx(1, 0)], now=0.0)  # offset 1 stamped before offset 0
    assert _ids(aligner.release(_lagging(), now=0.0)) == ["tx-0", "tx-1"]
