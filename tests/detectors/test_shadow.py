"""Shadow mode: a candidate's detectors run beside the live ones and never touch them."""

from __future__ import annotations

from detectors.base import alert_id
from detectors.engine import Engine, MemoryStateStore, shadow_name
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from tests.detectors.test_engine import ALL_IDS, MISSED_ID, SCENARIO, TAKEOVER_ID

LIVE = Thresholds()
SUCCESS_AFTER_FAILURES = next(
    i for i, item in enumerate(SCENARIO) if item.record.event_id == "win-1"
)


def _engine(candidate: dict[str, object] | None = None) -> Engine:
    engine = Engine(LIVE, MemoryStateStore(), MemoryCrossIndex())
    if candidate is not None:
        engine.set_thresholds(LIVE, LIVE.with_changes(candidate, "c1"))
    return engine


async def test_live_alerts_and_state_are_the_same_with_a_candidate_in_shadow() -> None:
    alone, beside = _engine(), _engine({"takeover.min_failures": 8, "delinquency.grace_days": 5})
    plain = await alone.process(SCENARIO)
    shadowed = await beside.process(SCENARIO)

    assert {a.alert_id for a in shadowed.alerts} == {a.alert_id for a in plain.alerts} == ALL_IDS
    assert [a.thresholds_version for a in shadowed.alerts] == ["v0"] * len(ALL_IDS)
    # Seven failures: the candidate's eight are not reached, so it stays quiet.
    assert [a.detector for a in shadowed.shadow_alerts] == []
    # What the live detectors read (login history, installments, their slots) is untouched.
    for borrower_id, state in alone.states.states.items():  # type: ignore[attr-defined]
        twin = beside.states.get(borrower_id).to_dict()  # type: ignore[union-attr]
        twin["slots"] = {k: v for k, v in twin["slots"].items() if "." not in k}
        assert twin == state.to_dict(), borrower_id


async def test_only_detectors_whose_thresholds_differ_run_in_shadow() -> None:
    engine = _engine({"takeover.min_failures": 3})

    shadows = [d.name for d in engine.detectors if "." in d.name]

    assert shadows == [shadow_name("c1", "account_takeover")]


async def test_a_looser_candidate_alerts_in_shadow_under_its_own_id_and_version() -> None:
    result = await _engine({"takeover.min_failures": 3}).process(SCENARIO)

    assert {a.alert_id for a in result.alerts} == ALL_IDS
    [shadow] = result.shadow_alerts
    assert shadow.detector == "account_takeover"
    assert shadow.thresholds_version == "c1"
    assert shadow.borrower_id == "b-1" and shadow.category == "abnormal_behaviour"
    assert shadow.alert_id == alert_id("c1.account_takeover", "b-1", "device:dev-x")
    assert shadow.alert_id != TAKEOVER_ID


async def test_a_shadow_timer_fires_from_memory_copied_from_its_live_twin() -> None:
    engine = _engine()
    first = await engine.process(SCENARIO[:3])  # the installment is scheduled, live only
    engine.set_thresholds(LIVE, LIVE.with_changes({"delinquency.min_alert_score": 0.6}, "c1"))

    rest = await engine.process(SCENARIO[3:])

    live = {a.alert_id for a in first.alerts + rest.alerts}
    assert MISSED_ID in live
    shadow = {a.alert_id: a for a in rest.shadow_alerts}
    missed = alert_id("c1.delinquency", "d-1", "loan-1#1:critical")
    assert missed in shadow, sorted(a.detector for a in rest.shadow_alerts)
    assert shadow[missed].score == 0.95 and shadow[missed].thresholds_version == "c1"


async def test_a_shadow_started_mid_episode_knows_the_failures_before_it() -> None:
    engine = _engine()
    await engine.process(SCENARIO[:SUCCESS_AFTER_FAILURES])
    engine.set_thresholds(LIVE, LIVE.with_changes({"takeover.min_failures": 6}, "c1"))

    rest = await engine.process(SCENARIO[SUCCESS_AFTER_FAILURES:])

    assert TAKEOVER_ID in {a.alert_id for a in rest.alerts}
    assert [a.detector for a in rest.shadow_alerts] == ["account_takeover"]


async def test_promoting_drops_the_shadow_and_its_memory() -> None:
    engine = _engine({"takeover.min_failures": 3})
    await engine.process(SCENARIO[:SUCCESS_AFTER_FAILURES])
    state = engine.states.get("b-1")
    assert state is not None and "c1.account_takeover" in state.slots

    engine.set_thresholds(LIVE.with_changes({"takeover.min_failures": 3}, "v1"))
    rest = await engine.process(SCENARIO[SUCCESS_AFTER_FAILURES:])

    assert rest.shadow_alerts == []
    assert "c1.account_takeover" not in state.slots
    # The promoted values now alert live, under the live detector's id and the new version.
    takeover = next(a for a in rest.alerts if a.detector == "account_takeover")
    assert (takeover.alert_id, takeover.thresholds_version) == (TAKEOVER_ID, "v1")


async def test_starting_a_shadow_reads_no_state() -> None:
    """Seeding is lazy: a worker with many borrowers decodes none of them to start one."""

    class Counting(MemoryStateStore):
        reads = 0

        def states_in_partition(self, partition: int) -> list[BorrowerState]:
            Counting.reads += 1
            return list(super().states_in_partition(partition))

    engine = Engine(LIVE, Counting(), MemoryCrossIndex())
    await engine.process(SCENARIO[:SUCCESS_AFTER_FAILURES])
    before = Counting.reads

    engine.set_thresholds(LIVE, LIVE.with_changes({"takeover.min_failures": 6}, "c1"))

    assert Counting.reads == before
