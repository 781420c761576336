"""Each input partition read in order from where it was sought: no record skipped or twice."""

from __future__ import annotations

from faust.types import TP

from streams.worker.offsets import InputOffsets

P0 = TP("lending.logins", 0)
P1 = TP("lending.logins", 1)


def test_records_from_the_sought_offset_on_are_applied_in_order() -> None:
    offsets = InputOffsets()
    offsets.start(P0, 5, now=0.0)
    admitted, refetch = offsets.admit([(P0, 5), (P0, 6), (P0, 7)], now=1.0)
    assert admitted == [True, True, True]
    assert refetch == set()
    assert offsets.expected(P0) == 8


def test_records_below_the_expected_offset_were_applied_already() -> None:
    offsets = InputOffsets()
    offsets.start(P0, 5, now=0.0)
    admitted, refetch = offsets.admit([(P0, 3), (P0, 4), (P0, 5)], now=1.0)
    assert admitted == [False, False, True]
    assert refetch == set()


def test_a_record_past_a_gap_fetches_the_partition_again_from_the_gap() -> None:
    offsets = InputOffsets()
    offsets.start(P0, 0, now=0.0)
    admitted, refetch = offsets.admit([(P0, 0), (P0, 3), (P0, 4), (P1, 9)], now=1.0)
    assert admitted == [True, False, False, False]  # P1 was never sought: not ours yet
    assert refetch == {P0}
    assert offsets.expected(P0) == 1


def test_records_fetched_before_the_seek_back_are_dropped_without_seeking_again() -> None:
    offsets = InputOffsets()
    offsets.start(P0, 0, now=0.0)
    offsets.admit([(P0, 0)], now=0.0)
    _, refetch = offsets.admit([(P0, 3)], now=1.0)
    assert refetch == {P0}
    admitted, refetch = offsets.admit([(P0, 4), (P0, 5)], now=1.5)
    assert admitted == [False, False]
    assert refetch == set(), "one seek back is on its way"
    admitted, refetch = offsets.admit([(P0, 1), (P0, 2), (P0, 3)], now=2.0)
    assert admitted == [True, True, True]
    _, refetch = offsets.admit([(P0, 7)], now=3.0)
    assert refetch == {P0}, "a new gap after the refetched records is one again"


def test_a_partition_fetched_past_its_expected_offset_and_quiet_is_fetched_again() -> None:
    offsets = InputOffsets(stalled_after=5.0)
    offsets.start(P0, 10, now=0.0)
    offsets.start(P1, 10, now=0.0)
    assert offsets.stalled({P0: 20, P1: 10}, now=4.0) == set(), "not quiet for long yet"
    assert offsets.stalled({P0: 20, P1: 10}, now=6.0) == {P0}, "P1 has nothing past 10"
    assert offsets.stalled({P0: 20}, now=7.0) == set(), "just sought again"
    assert offsets.stalled({P0: 20}, now=11.5) == {P0}


def test_a_partition_applying_records_is_not_stalled() -> None:
    offsets = InputOffsets(stalled_after=5.0)
    offsets.start(P0, 0, now=0.0)
    offsets.admit([(P0, 0)], now=4.0)
    assert offsets.stalled({P0: 50}, now=8.0) == set()


def test_revoked_partitions_are_not_ours_until_sought_again() -> None:
    offsets = InputOffsets()
    offsets.start(P0, 0, now=0.0)
    offsets.forget({P0})
    assert offsets.not_started({P0, P1}) == {P0, P1}
    admitted, refetch = offsets.admit([(P0, 0)], now=1.0)
    assert admitted == [False]
    assert refetch == set()
