"""The engine: detectors over batches, state, timers, dedupe and failure isolation."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from detectors.base import Detector, Finding, Output, alert_id, severity_for
from detectors.clock import Timer
from detectors.delinquency import DelinquencyDetector
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import Found, MemoryCrossIndex, Read, Write
from detectors.registry import build_detectors
from detectors.state import BorrowerState, day_of
from detectors.takeover import AccountTakeoverDetector
from detectors.thresholds import Thresholds
from tests.detectors.factories import T0, at, login, payment, scheduled, transaction
from topics.names import Source, TopicNames
from topics.records import Alert, Login

LATE = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)  # after the installment's grace period
DUE = date(2024, 3, 10)
RING_EPISODE = f"cycle:a|b|c:day:{day_of(T0.timestamp())}"

RING_IDS = {b: alert_id("circular_flow", b, RING_EPISODE) for b in "ABC"}
TAKEOVER_ID = alert_id("account_takeover", "b-1", "device:dev-x")
MISSED_ID = alert_id("delinquency", "d-1", "loan-1#1:critical")
# Past due with collapsing inflows: the installment's first, medium rung.
PAST_DUE_ID = alert_id("delinquency", "d-1", "loan-1#1:medium")
VERSIONS = {d.name: d.version for d in build_detectors(Thresholds())}
ALL_IDS = {*RING_IDS.values(), TAKEOVER_ID, MISSED_ID}


def _tx(*args: Any, **kwargs: Any) -> Input:
    return Input(0, Source.TRANSACTIONS, transaction(*args, **kwargs))


def _login(*args: Any, **kwargs: Any) -> Input:
    return Input(0, Source.LOGINS, login(*args, **kwargs))


def _repayment(record: Any) -> Input:
    return Input(0, Source.REPAYMENTS, record)


SCENARIO: list[Input] = [
    _login("old-1", at(days=-10), device="phone-1", ip="10.0.0.1"),
    _repayment(scheduled("s-1", at(), DUE, "3000", borrower_id="d-1")),
    _tx("A-1", "A", "a", "b", "100000", at()),
    _tx("B-1", "B", "b", "c", "99000", at(hours=2)),
    *[
        _login(
            f"fail-{i}", at(hours=3, minutes=2 * i), device="dev-x", ip="203.0.113.9", success=False
        )
        for i in range(7)
    ],
    _login("win-1", at(hours=3, minutes=14), device="dev-x", ip="203.0.113.9"),
    _tx("C-1", "C", "c", "a", "98500", at(hours=5)),
    # Later events on every stream move event time past the installment's grace period.
    _tx("late-tx", "E", "e", "shop", "120", LATE, direction="in"),
    _login("late-login", LATE, device="phone-9", ip="10.0.0.9", borrower_id="b-2"),
    _repayment(payment("late-pay", LATE, "100", loan_id="loan-9", borrower_id="e-1")),
]


def _engine(edges: Any = None, **kwargs: Any) -> Engine:
    return Engine(
        Thresholds(), MemoryStateStore(), MemoryCrossIndex() if edges is None else edges, **kwargs
    )


async def _run(engine: Engine, batches: Sequence[Sequence[Input]]) -> list[Alert]:
    alerts: list[Alert] = []
    for batch in batches:
        result = await engine.process(batch)
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts
    return alerts


def _chunks(items: list[Input], size: int) -> list[list[Input]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _by_stream(items: list[Input]) -> list[Input]:
    """The same events, topic after topic: each stream keeps its own order."""
    order = [Source.REPAYMENTS, Source.TRANSACTIONS, Source.LOGINS]
    return sorted(items, key=lambda item: order.index(item.source))


async def test_each_category_comes_out_with_its_topic_severity_and_id() -> None:
    engine = _engine()

    result = await engine.process(SCENARIO)

    assert result.failed == [] and result.degraded == []
    by_id = {a.alert_id: a for a in result.alerts}
    assert len(by_id) == len(result.alerts) == 5
    assert set(by_id) == ALL_IDS
    topics = TopicNames()
    expected = {
        RING_IDS["A"]: ("circular_flow", "falsified_flow", "alerts.fraud", "A", "critical"),
        RING_IDS["B"]: ("circular_flow", "falsified_flow", "alerts.fraud", "B", "critical"),
        RING_IDS["C"]: ("circular_flow", "falsified_flow", "alerts.fraud", "C", "critical"),
        TAKEOVER_ID: ("account_takeover", "abnormal_behaviour", "alerts.security", "b-1", "high"),
        MISSED_ID: ("delinquency", "delinquency_risk", "alerts.collections", "d-1", "critical"),
    }
    for alert_id_, (detector, category, topic, borrower, severity) in expected.items():
        alert = by_id[alert_id_]
        assert (alert.detector, alert.category, alert.borrower_id) == (detector, category, borrower)
        assert topics.alert_topic(alert.category) == topic
        assert alert.severity == severity == severity_for(alert.score)
        assert 0.0 <= alert.score <= 1.0
        assert alert.thresholds_version == "v0"
        assert alert.detector_version == VERSIONS[alert.detector]
        assert alert.emitted_at == alert.ts  # replay: emitted_at is event time
    assert by_id[TAKEOVER_ID].score == 0.87
    assert by_id[RING_IDS["A"]].score == 0.9625
    missed = by_id[MISSED_ID]
    assert (missed.score, missed.loan_id, missed.installment, missed.due_date) == (
        0.95,
        "loan-1",
        1,
        DUE,
    )
    assert missed.ts == datetime(2024, 3, 13, 16, 0, tzinfo=UTC)
    assert missed.evidence == ["s-1"]
    assert by_id[TAKEOVER_ID].evidence == [f"fail-{i}" for i in range(7)] + ["win-1"]
    assert set(result.dirty) == {"A", "B", "C", "E", "b-1", "b-2", "d-1", "e-1"}


async def test_now_stamps_emitted_at() -> None:
    stamp = datetime(2030, 1, 1, tzinfo=UTC)
    engine = _engine(now=lambda: stamp)

    result = await engine.process(SCENARIO)

    assert {a.emitted_at for a in result.alerts} == {stamp}


@pytest.mark.parametrize(
    "batches",
    [
        [SCENARIO],
        [[item] for item in SCENARIO],
        _chunks(SCENARIO, 2),
        _chunks(SCENARIO, 3),
        _chunks(SCENARIO, 5),
        [[item] for item in _by_stream(SCENARIO)],
        _chunks(_by_stream(SCENARIO), 4),
    ],
    ids=["one-batch", "one-by-one", "pairs", "threes", "fives", "by-stream", "by-stream-fours"],
)
async def test_batch_split_does_not_change_the_alerts(batches: list[list[Input]]) -> None:
    alerts = await _run(_engine(), batches)

    assert sorted(a.alert_id for a in alerts) == sorted(ALL_IDS)


async def test_timer_waits_for_every_stream() -> None:
    engine = _engine()
    without_logins = [item for item in SCENARIO if item.source is not Source.LOGINS]

    first = await engine.process(without_logins)

    assert MISSED_ID not in {a.alert_id for a in first.alerts}
    assert {a.alert_id for a in first.alerts} == set(RING_IDS.values())
    # The login stream catches up past the deadline: now the timer fires.
    second = await engine.process([_login("l", LATE, device="p", ip="i", borrower_id="z")])
    assert [a.alert_id for a in second.alerts] == [MISSED_ID]


async def test_a_resent_batch_is_not_emitted_again() -> None:
    engine = _engine()
    first = await engine.process(SCENARIO)
    assert len(first.alerts) == 5

    again = await engine.process(SCENARIO)

    assert again.alerts == []
    assert again.failed == []


async def test_dedupe_holds_even_when_state_is_lost() -> None:
    engine = _engine()
    await engine.process(SCENARIO)
    engine.states = MemoryStateStore()  # the detectors will find everything again

    again = await engine.process(SCENARIO)

    assert again.alerts == []


def _round_trip(state: BorrowerState) -> BorrowerState:
    return BorrowerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))


async def test_state_round_trip_through_json_keeps_behaviour() -> None:
    # Everything before the takeover's success and the ring's last hop; no timer passed yet.
    cut = next(i for i, item in enumerate(SCENARIO) if item.record.event_id == "win-1")
    before, after = SCENARIO[:cut], SCENARIO[cut:]
    extra_inflows = [
        _tx(f"in-{d}", "d-1", "d", "client", "2500.50", at(days=-d), direction="in")
        for d in range(1, 20)
    ]

    reference = _engine()
    await _run(reference, [extra_inflows + before])
    expected = await _run(reference, [after])

    index = MemoryCrossIndex()  # the edge index lives outside the engine (Redis)
    store = MemoryStateStore()
    crashed = Engine(Thresholds(), store, index)
    await _run(crashed, [extra_inflows + before])
    restored_store = MemoryStateStore()
    for borrower_id, state in store.states.items():
        copy = _round_trip(state)
        assert orjson.dumps(copy.to_dict()) == orjson.dumps(state.to_dict())
        restored_store.put(borrower_id, copy)
    restarted = Engine(Thresholds(), restored_store, index)

    got = await _run(restarted, [after])

    assert [a.alert_id for a in got] == [a.alert_id for a in expected]
    assert got == expected
    assert {a.alert_id for a in got} == {*RING_IDS.values(), TAKEOVER_ID, PAST_DUE_ID, MISSED_ID}


def test_round_trip_state_gives_the_same_findings() -> None:
    state = BorrowerState(borrower_id="b-1", partition=3)
    state.note_own_account("acc-1")
    takeover = AccountTakeoverDetector(Thresholds().takeover)
    takeover.on_login(login("old", at(days=-5), device="phone-1", ip="10.0.0.1"), state, ())
    for i in range(6):
        takeover.on_login(
            login(f"f{i}", at(minutes=i), device="x", ip="203.0.113.9", success=False), state, ()
        )
    delinquency = DelinquencyDetector(Thresholds().delinquency)
    delinquency.on_repayment(scheduled("s-1", at(), DUE, "50000.25"), state, ())
    delinquency.on_repayment(payment("p-1", at(days=8), "100.10"), state, ())
    for offset in range(-45, 11):  # 10 000 a day, then 500 a day from 15 days before T0
        state.inflows.add(day_of(at(days=offset).timestamp()), 10_000.0 if offset < -15 else 500.0)

    copy = _round_trip(state)

    assert copy.partition == 3 and copy.own_accounts == ["acc-1"]
    success = login("win", at(minutes=10), device="x", ip="203.0.113.9")
    assert takeover.on_login(success, copy, ()) == takeover.on_login(success, state, ())
    timers = delinquency.pending_timers(state)
    assert delinquency.pending_timers(copy) == timers
    original = [delinquency.on_timer(t, state) for t in timers]
    restored = [delinquency.on_timer(t, copy) for t in timers]
    assert restored == original
    # Checks at 10, 7, 5, 3 days: a decline counts in full only from 3 days before the due
    # date, so it alerts at the 3-day check (medium); past due raises it to high; the partial
    # payment to critical.
    assert [[r.code for f in found for r in f.reasons] for found in original] == [
        [],
        [],
        [],
        ["inflow_decline", "low_installment_coverage"],
        ["inflow_decline", "past_due", "low_installment_coverage"],
        ["partial_payment", "inflow_decline", "low_installment_coverage"],
    ]
    assert orjson.dumps(copy.to_dict()) == orjson.dumps(state.to_dict())


class Exploding(Detector):
    """A detector with a bug that shows on one event only."""

    name = "exploding"
    category = "abnormal_behaviour"

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if event.event_id == "boom":
            raise RuntimeError("kaboom")
        return []


async def test_a_failing_detector_is_isolated_to_its_event() -> None:
    engine = _engine()
    engine.use([*engine.detectors, Exploding()])
    batch = list(SCENARIO)
    batch.insert(3, _login("boom", at(hours=1), device="p", ip="i", borrower_id="z-9"))

    result = await engine.process(batch)

    assert result.failed == [(3, "detector error: RuntimeError('kaboom')")]
    assert {a.alert_id for a in result.alerts} == ALL_IDS
    assert result.degraded == []


class DownIndex:
    """An edge index whose backing store (Redis) is unreachable."""

    def __init__(self) -> None:
        self.calls = 0

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        self.calls += 1
        raise ConnectionError("redis down")


async def test_index_down_degrades_only_the_cross_borrower_detectors() -> None:
    index = DownIndex()
    engine = _engine(edges=index)

    result = await engine.process(SCENARIO)

    assert index.calls == 1
    # The detectors that asked the index this batch say so; the others alert as usual.
    assert result.degraded == [
        f"{name}: cross-borrower index unavailable: ConnectionError('redis down')"
        for name in ("circular_flow", "credential_stuffing", "device_ring")
    ]
    assert result.failed == []
    assert {a.alert_id for a in result.alerts} == {TAKEOVER_ID, MISSED_ID}


async def test_own_account_transfers_are_not_inflow_nor_edges() -> None:
    engine = _engine()
    batch = [
        _tx("t1", "A", "a", "shop", "10000", at(), direction="out"),
        _tx("t2", "A", "a2", "a", "50000", at(hours=1), direction="in"),  # a → a2, own accounts
        _tx("t3", "A", "a2", "client", "700", at(hours=2), direction="in"),
    ]

    result = await engine.process(batch)

    state = result.dirty["A"]
    assert state.own_accounts == ["a", "a2"]
    last = state.inflows.last_day
    assert state.inflows.total(0, last + 1) == (700.0, 1)
    assert result.alerts == []


async def test_advance_fires_timers_of_a_quiet_partition_once_streams_are_idle() -> None:
    engine = _engine(idle_after=60.0)
    batch = [item for item in SCENARIO if item.record.event_id in {"s-1", "late-tx", "late-login"}]
    await engine.process(batch, wall=0.0)  # the repayment stream then goes quiet at 2024-03-01

    assert engine.advance(wall=30.0).alerts == []
    result = engine.advance(wall=61.0)

    assert [a.alert_id for a in result.alerts] == [MISSED_ID]
    assert "d-1" in result.dirty, (
        "the timer changed it; the day close marks the rest of its partition"
    )


async def test_a_revoked_partition_fires_no_timers_until_it_is_taken_back() -> None:
    store = MemoryStateStore()
    engine = Engine(Thresholds(), store, MemoryCrossIndex(), idle_after=60.0)
    await engine.process([item for item in SCENARIO if item.record.event_id == "s-1"], wall=0.0)

    engine.forget_partition(0)  # rebalanced away: another worker owns partition 0 now
    assert len(engine.timers) == 0
    assert engine.advance(wall=1_000.0).alerts == []

    # Taken back (restart or rebalance): the next batch of the partition re-arms the timers
    # from the stored state, and the missed installment is still found.
    late = [item for item in SCENARIO if item.record.event_id in {"late-tx", "late-login"}]
    taken_back = await engine.process(late, wall=2_000.0)
    after_idle = engine.advance(wall=2_061.0)
    fired = [a.alert_id for a in taken_back.alerts + after_idle.alerts]
    assert fired.count(MISSED_ID) == 1


async def test_learnt_memories_carry_over_a_threshold_change() -> None:
    engine = _engine()
    await engine.process(SCENARIO)
    closes = {"": [[19800.0, 12.0, 0.9, 1.0, 1.0]]}
    engine.restore("delinquency", 0, pickle.dumps((None, 0, 0, None, closes)))
    before = engine.snapshots()
    assert ("delinquency", 0) in before

    engine.set_thresholds(Thresholds(version="candidate-2"))

    assert engine.thresholds.version == "candidate-2"
    assert engine.snapshots() == before


def _with_offsets(items: Sequence[Input]) -> list[Input]:
    """The scenario as Kafka delivers it: each topic's records numbered in order."""
    counters: dict[Source, int] = {}
    numbered = []
    for item in items:
        offset = counters.get(item.source, 0)
        counters[item.source] = offset + 1
        numbered.append(Input(item.partition, item.source, item.record, offset))
    return numbered


async def test_a_duplicate_event_id_is_applied_once() -> None:
    engine = _engine()
    inflow = _tx("pay-1", "shop-1", "acct", "client", "500", at(), direction="in")

    first = await engine.process([inflow, inflow])
    again = await engine.process([inflow])

    state = engine.states.get("shop-1")
    assert state is not None
    day = day_of(at().timestamp())
    assert state.inflows.total(day, day + 1) == (500.0, 1)
    assert (first.duplicates, again.duplicates) == (1, 1)


async def test_event_ids_are_remembered_through_the_changelog() -> None:
    engine = _engine()
    inflow = _tx("pay-1", "shop-1", "acct", "client", "500", at(), direction="in")
    await engine.process([inflow])
    store = MemoryStateStore()
    for borrower_id, state in engine.states.states.items():  # type: ignore[attr-defined]
        store.put(borrower_id, _round_trip(state))
    restarted = _engine()
    restarted.states = store

    result = await restarted.process([inflow])

    assert result.duplicates == 1


async def test_records_redelivered_after_a_crash_are_not_applied_twice() -> None:
    scenario = _with_offsets(SCENARIO)
    uninterrupted = {a.alert_id for a in await _run(_engine(), [scenario])}
    crashed = _engine()
    cut = 1 + next(i for i, item in enumerate(scenario) if item.record.event_id == "win-1")
    before = await crashed.process(scenario[:cut])  # state written, offsets not committed
    # A new process: the same state (changelog) and index (Redis), nothing else.
    restarted = Engine(Thresholds(), crashed.states, crashed.index)

    result = await restarted.process(scenario)  # redelivered from the last commit

    assert (result.redelivered, result.duplicates) == (cut, 0)
    found_before = {a.alert_id for a in before.alerts}
    assert found_before
    assert {a.alert_id for a in result.alerts} == uninterrupted - found_before


async def test_a_batch_that_fires_a_timer_marks_its_partition_as_learning() -> None:
    engine = _engine()
    quiet = await engine.process(SCENARIO[:3])
    assert quiet.learned == set()

    result = await engine.process(SCENARIO)

    assert MISSED_ID in {a.alert_id for a in result.alerts}
    assert result.learned == {0}


class _Recorder(Detector):
    """Notes when its timers fire and its days close, and arms a timer at noon of day 2."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def on_transaction(self, event: Any, state: BorrowerState, found: Found) -> Output:
        noon = (day_of(T0.timestamp()) + 2.5) * 86_400
        return [Timer(noon, state.borrower_id, self.name, "noon")] if not self.seen else []

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        self.seen.append(("timer", day_of(timer.due)))
        return []

    def on_day_close(
        self, partition: int, day: int, states: Sequence[BorrowerState]
    ) -> list[Finding]:
        self.seen.append(("close", day))
        return []


async def test_timers_and_day_closes_keep_event_time_order_when_time_jumps() -> None:
    """Event time jumps five days in one batch: each day's close comes after the timers of
    that day and before those of the next, as if time had moved smoothly."""
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    recorder = _Recorder()
    engine.use([recorder])
    engine.clock.expect(0, {Source.TRANSACTIONS.value})
    first = day_of(T0.timestamp())

    await engine.process([_tx("t-1", "b-1", "a", "x", "10", at())])
    await engine.process([_tx("t-2", "b-1", "a", "x", "10", at(days=5))])

    assert recorder.seen == [
        ("close", first),
        ("close", first + 1),
        ("timer", first + 2),
        ("close", first + 2),
        ("close", first + 3),
        ("close", first + 4),
    ]
