"""Event time per partition (the slowest stream decides) and the timer queue."""

from __future__ import annotations

import orjson

from detectors.clock import EventTimeClock, Timer, TimerQueue
from topics.names import Source

STREAMS = ("transactions", "logins", "repayments")


def test_watermark_is_none_until_every_stream_is_seen() -> None:
    clock = EventTimeClock(STREAMS)
    assert clock.watermark(0) is None

    clock.observe(0, "transactions", 500.0)
    assert clock.watermark(0) is None
    clock.observe(0, "logins", 300.0)
    assert clock.watermark(0) is None
    clock.observe(0, "repayments", 400.0)

    assert clock.watermark(0) == 300.0


def test_watermark_is_the_minimum_of_each_streams_latest_time() -> None:
    clock = EventTimeClock(STREAMS)
    for stream, epoch in [("transactions", 500.0), ("logins", 300.0), ("repayments", 400.0)]:
        clock.observe(0, stream, epoch)

    clock.observe(0, "logins", 450.0)
    assert clock.watermark(0) == 400.0
    clock.observe(0, "logins", 100.0)  # a late event does not move a stream back
    assert clock.watermark(0) == 400.0
    clock.observe(0, "repayments", 900.0)
    clock.observe(0, "logins", 800.0)
    assert clock.watermark(0) == 500.0


def test_partitions_are_independent() -> None:
    clock = EventTimeClock(STREAMS)
    for stream in STREAMS:
        clock.observe(0, stream, 100.0)
    clock.observe(1, "transactions", 5_000.0)

    assert clock.watermark(0) == 100.0
    assert clock.watermark(1) is None
    assert clock.watermark(2) is None
    assert clock.partitions() == [0, 1]


def test_expect_narrows_the_streams_waited_for() -> None:
    clock = EventTimeClock(STREAMS)
    clock.expect(0, ["transactions", "logins"])
    clock.observe(0, "transactions", 500.0)
    assert clock.watermark(0) is None

    clock.observe(0, "logins", 700.0)
    assert clock.watermark(0) == 500.0

    # Other partitions still wait for all three.
    clock.observe(1, "transactions", 500.0)
    clock.observe(1, "logins", 700.0)
    assert clock.watermark(1) is None


def test_expect_a_single_stream_ignores_the_others() -> None:
    clock = EventTimeClock(STREAMS)
    clock.expect(3, ["repayments"])
    clock.observe(3, "transactions", 10.0)
    assert clock.watermark(3) is None
    clock.observe(3, "repayments", 900.0)

    assert clock.watermark(3) == 900.0


def test_idle_stream_stops_holding_time_back() -> None:
    clock = EventTimeClock(STREAMS, idle_after=60.0)
    clock.observe(0, "transactions", 1_000.0, wall=0.0)
    clock.observe(0, "logins", 200.0, wall=0.0)
    clock.observe(0, "repayments", 400.0, wall=0.0)
    assert clock.watermark(0, wall=30.0) == 200.0

    clock.observe(0, "transactions", 2_000.0, wall=50.0)
    clock.observe(0, "repayments", 2_500.0, wall=55.0)

    assert clock.watermark(0, wall=59.0) == 200.0  # logins silent for 59 s: still waited for
    assert clock.watermark(0, wall=60.0) == 2_000.0  # silent for 60 s: idle


def test_watermark_never_moves_back_when_an_idle_stream_resumes() -> None:
    clock = EventTimeClock(STREAMS, idle_after=60.0)
    for stream, ts in (("transactions", 1_000.0), ("logins", 200.0), ("repayments", 900.0)):
        clock.observe(0, stream, ts, wall=0.0)
    clock.observe(0, "transactions", 1_000.0, wall=60.0)
    clock.observe(0, "repayments", 900.0, wall=60.0)
    assert clock.watermark(0, wall=61.0) == 900.0  # only logins idle
    clock.observe(0, "logins", 300.0, wall=62.0)  # logins resume, far behind
    assert clock.watermark(0, wall=62.0) == 900.0  # timers already fired stay fired
    clock.observe(0, "logins", 950.0, wall=63.0)
    clock.observe(0, "repayments", 1_200.0, wall=63.0)
    assert clock.watermark(0, wall=63.0) == 950.0


def test_stream_never_seen_is_idle_after_the_partition_started() -> None:
    clock = EventTimeClock(STREAMS, idle_after=60.0)
    clock.observe(0, "transactions", 1_000.0, wall=10.0)
    clock.observe(0, "logins", 800.0, wall=10.0)
    assert clock.watermark(0, wall=69.0) is None

    clock.observe(0, "transactions", 1_100.0, wall=65.0)
    clock.observe(0, "logins", 900.0, wall=66.0)

    assert clock.watermark(0, wall=70.0) == 900.0


def test_every_stream_idle_gives_the_latest_time() -> None:
    clock = EventTimeClock(STREAMS, idle_after=60.0)
    clock.observe(0, "transactions", 1_000.0, wall=0.0)
    clock.observe(0, "logins", 700.0, wall=0.0)

    assert clock.watermark(0, wall=100.0) == 1_000.0


def test_without_idle_after_wall_time_changes_nothing() -> None:
    clock = EventTimeClock(STREAMS)
    clock.observe(0, "transactions", 1_000.0, wall=0.0)
    clock.observe(0, "logins", 700.0, wall=0.0)

    assert clock.watermark(0, wall=1e9) is None


def test_forget_drops_a_partitions_time() -> None:
    clock = EventTimeClock(STREAMS)
    for partition in (0, 1):
        for stream in STREAMS:
            clock.observe(partition, stream, 100.0)

    clock.forget(0)
    clock.forget(7)  # unknown partitions are fine

    assert clock.watermark(0) is None
    assert clock.watermark(1) == 100.0
    assert clock.partitions() == [1]


def _timer(due: float, key: str = "k", borrower: str = "b-1") -> Timer:
    return Timer(due, borrower, "delinquency", key)


def test_timer_queue_pops_due_timers_in_order() -> None:
    queue = TimerQueue()
    for due, key in [(300.0, "c"), (100.0, "a"), (200.0, "b"), (400.0, "d")]:
        queue.schedule(0, _timer(due, key))
    assert len(queue) == 4

    assert queue.pop_due(0, 50.0) == []
    assert queue.pop_due(0, 300.0) == [_timer(100.0, "a"), _timer(200.0, "b"), _timer(300.0, "c")]
    assert len(queue) == 1
    assert queue.pop_due(0, 300.0) == []
    assert queue.pop_due(0, 1e12) == [_timer(400.0, "d")]
    assert len(queue) == 0


def test_timer_queue_dedupes() -> None:
    queue = TimerQueue()
    queue.schedule(0, _timer(100.0))
    queue.schedule(0, _timer(100.0))
    queue.schedule(0, _timer(100.0, borrower="b-2"))
    queue.schedule(1, _timer(100.0))

    assert len(queue) == 3
    assert queue.pop_due(0, 100.0) == [_timer(100.0), _timer(100.0, borrower="b-2")]
    # Once fired a timer may be scheduled again (a state restored from the changelog).
    queue.schedule(0, _timer(100.0))
    assert queue.pop_due(0, 100.0) == [_timer(100.0)]


def test_timer_queue_ties_break_by_borrower_then_detector_then_key() -> None:
    queue = TimerQueue()
    later = [_timer(100.0, "z", "b-2"), _timer(100.0, "y", "b-1"), _timer(100.0, "x", "b-1")]
    for timer in later:
        queue.schedule(0, timer)

    assert queue.pop_due(0, 100.0) == sorted(later)
    assert [(t.borrower_id, t.key) for t in sorted(later)] == [
        ("b-1", "x"),
        ("b-1", "y"),
        ("b-2", "z"),
    ]


def test_timer_queue_forget_drops_one_partition() -> None:
    queue = TimerQueue()
    queue.schedule(0, _timer(100.0, "a"))
    queue.schedule(0, _timer(200.0, "b"))
    queue.schedule(1, _timer(100.0, "a"))

    queue.forget(0)
    queue.forget(5)

    assert len(queue) == 1
    assert queue.pop_due(0, 1e12) == []
    assert queue.pop_due(1, 1e12) == [_timer(100.0, "a")]
    # A forgotten timer can be scheduled again when the partition comes back.
    queue.schedule(0, _timer(100.0, "a"))
    assert queue.pop_due(0, 1e12) == [_timer(100.0, "a")]


def test_a_resumed_clock_counts_streams_that_have_no_new_events() -> None:
    streams = [Source.TRANSACTIONS.value, Source.LOGINS.value]
    before = EventTimeClock(streams)
    before.observe(0, Source.TRANSACTIONS, 100.0)  # the engine observes with the enum
    before.observe(0, Source.LOGINS, 50.0)
    position = before.position(0)
    assert position is not None
    after = EventTimeClock(streams)  # a restarted process: only transactions have new events

    after.resume(0, orjson.loads(orjson.dumps(position)))
    after.observe(0, Source.TRANSACTIONS, 200.0)

    assert after.watermark(0) == 50.0
    assert EventTimeClock(streams).position(0) is None
