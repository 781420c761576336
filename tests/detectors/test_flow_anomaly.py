"""Flow anomaly: sustained lifts beyond the borrower's own and its sector's baseline."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson

from detectors.base import Finding
from detectors.flow_anomaly import FlowAnomalyDetector, FlowAnomalyThresholds
from detectors.state import BorrowerState, day_of
from tests.detectors.factories import transaction
from topics.records import Transaction

START = datetime(2024, 1, 1, 2, 0, tzinfo=UTC)
DAYS = 60
PEERS = 12


def _tx(borrower: str, day: int, amount: float, sector: str) -> Transaction:
    record = transaction(
        f"{borrower}-d{day}",
        borrower,
        f"acc-{borrower}",
        f"cust-{day}",
        f"{amount:.2f}",
        START + timedelta(days=day),
        direction="in",
    )
    return Transaction(**{**record.asdict(), "sector": sector})


def _run(
    lift: dict[str, dict[int, float]],
    *,
    detector: FlowAnomalyDetector | None = None,
    sector_of: dict[str, str] | None = None,
) -> tuple[FlowAnomalyDetector, list[Finding]]:
    """PEERS borrowers with ~10 000 a day; ``lift`` multiplies a borrower's inflow on days."""
    detector = detector or FlowAnomalyDetector(FlowAnomalyThresholds())
    noise = random.Random(3)
    states = [BorrowerState(borrower_id=f"r-{i:02d}") for i in range(PEERS)]
    findings: list[Finding] = []
    for day in range(DAYS):
        for state in states:
            amount = (
                10_000.0 * noise.uniform(0.8, 1.2) * lift.get(state.borrower_id, {}).get(day, 1.0)
            )
            sector = (sector_of or {}).get(state.borrower_id, "retail")
            event = _tx(state.borrower_id, day, amount, sector)
            state.inflows.add(day_of(event.ts.timestamp()), amount)
            detector.on_transaction(event, state, ())
        findings += detector.on_day_close(
            0, day_of((START + timedelta(days=day)).timestamp()), states
        )
    return detector, findings


def test_weeks_of_inflated_inflow_alert_with_reasons_and_evidence() -> None:
    _, findings = _run({"r-03": {day: 6.0 for day in range(45, DAYS)}})

    assert {f.borrower_id for f in findings} == {"r-03"}
    first = findings[0]
    assert [r.code for r in first.reasons] == ["sustained_inflow_lift", "sector_move"]
    lift = first.reasons[0]
    assert isinstance(lift.observed, float) and lift.observed >= 4.0 and lift.threshold == 4.0
    assert len(first.evidence) >= 5
    assert all(e.startswith("r-03-d") for e in first.evidence)
    assert first.episode.startswith("flow:2024-W")
    assert 0.5 <= first.score <= 1.0


def test_a_sector_wide_surge_is_not_an_anomaly() -> None:
    everyone = {f"r-{i:02d}": {day: 3.0 for day in range(40, 52)} for i in range(PEERS)}

    _, findings = _run(everyone)

    assert findings == []


def test_the_surge_of_another_sector_does_not_hide_a_borrower() -> None:
    sectors = {f"r-{i:02d}": ("ecommerce" if i < 6 else "restaurant") for i in range(PEERS)}
    surge = {f"r-{i:02d}": {day: 3.0 for day in range(40, 52)} for i in range(6)}
    surge["r-08"] = {day: 6.0 for day in range(40, 52)}  # a restaurant whose inflows jump

    _, findings = _run(surge, sector_of=sectors)

    assert {f.borrower_id for f in findings} == {"r-08"}


def test_days_when_the_whole_sector_is_quiet_are_not_judged() -> None:
    # Everyone but r-03 nearly stops (a long holiday for a B2B sector): relative to the
    # sector r-03 looks twenty times lifted, but a near-zero move says nothing.
    quiet = {f"r-{i:02d}": {day: 0.05 for day in range(40, 52)} for i in range(PEERS) if i != 3}

    _, findings = _run(quiet)

    assert findings == []
    # Without the rule, the near-zero move would have made r-03 an anomaly.
    unguarded = FlowAnomalyDetector(FlowAnomalyThresholds(min_sector_move=0.0))
    _, findings = _run(quiet, detector=unguarded)
    assert {f.borrower_id for f in findings} == {"r-03"}


def test_one_big_contract_is_not_sustained() -> None:
    _, findings = _run({"r-05": {50: 12.0}})

    assert findings == []


def test_thresholds_are_data() -> None:
    strict = FlowAnomalyDetector(FlowAnomalyThresholds(min_lift=9.0))

    _, findings = _run({"r-03": {day: 6.0 for day in range(45, DAYS)}}, detector=strict)

    assert findings == []


def test_a_version_1_checkpoint_of_the_removed_trees_is_ignored() -> None:
    """Version 1 checkpointed a HalfSpaceTrees per partition; version 2 keeps no model."""
    detector, _ = _run({})
    assert detector.snapshot(0) is None
    detector.restore(0, b"a version 1 pickle")
    _, findings = _run({"r-03": {day: 6.0 for day in range(45, DAYS)}}, detector=detector)
    assert {f.borrower_id for f in findings} == {"r-03"}


def test_memory_is_small_and_json() -> None:
    detector = FlowAnomalyDetector(FlowAnomalyThresholds())
    state = BorrowerState(borrower_id="r-1")
    for day in range(400):
        detector.on_transaction(_tx("r-1", day, 1000.0, "retail"), state, ())

    encoded = orjson.dumps(state.slots)
    assert len(encoded) < 400
    assert orjson.loads(encoded) == state.slots
