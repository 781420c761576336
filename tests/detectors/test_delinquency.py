"""Delinquency: checks before the due date, past due, the deadline, escalation, the classifier."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest

from detectors.base import DELINQUENCY_RISK, Finding
from detectors.clock import Timer
from detectors.delinquency import FEATURES, DelinquencyDetector
from detectors.state import BorrowerState, day_of
from detectors.thresholds import DelinquencyThresholds
from tests.detectors.factories import login, payment, scheduled

DUE = date(2024, 4, 10)
MIDNIGHT = datetime(2024, 4, 9, 16, 0, tzinfo=UTC)  # 2024-04-10 00:00+08:00
DEADLINE = MIDNIGHT + timedelta(days=4)  # the end of the 3-day grace period
KEY = "loan-1#1"


def _timer(stage: str, at: datetime, key: str = KEY) -> Timer:
    return Timer(at.timestamp(), "b-1", "delinquency", f"{stage}|{key}")


CHECK5 = _timer("check5", MIDNIGHT - timedelta(days=5))
CHECK3 = _timer("check3", MIDNIGHT - timedelta(days=3))
PAST_DUE = _timer("past_due", MIDNIGHT + timedelta(days=1))
DEADLINE_TIMER = _timer("deadline", DEADLINE)
TODAY = day_of(CHECK5.due)


def _schedule(
    amount_due: str = "3000", detector: DelinquencyDetector | None = None
) -> tuple[DelinquencyDetector, BorrowerState]:
    detector = detector or DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id="b-1")
    timers = detector.on_repayment(
        scheduled("s-1", datetime(2024, 3, 1, tzinfo=UTC), DUE, amount_due), state, ()
    )
    assert [t.key.split("|")[0] for t in timers] == [
        "check10",
        "check7",
        "check5",
        "check3",
        "past_due",
        "deadline",
    ]
    return detector, state


def _inflows(state: BorrowerState, per_day: float, first: int, last: int) -> None:
    """The same inflow on every day from ``TODAY + first`` to ``TODAY + last`` inclusive."""
    for day in range(TODAY + first, TODAY + last + 1):
        state.inflows.add(day, per_day)


def _collapse(state: BorrowerState, recent_per_day: float) -> None:
    """10 000 a day for 40 days, then ``recent_per_day`` up to the deadline."""
    _inflows(state, 10_000.0, -54, -15)
    _inflows(state, recent_per_day, -14, 10)


def _codes(findings: list[object]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings if isinstance(f, Finding)]


def test_missed_installment_is_critical_at_the_deadline() -> None:
    detector, state = _schedule()
    _inflows(state, 10_000.0, -54, 10)

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert isinstance(finding, Finding)
    assert finding.category == DELINQUENCY_RISK
    assert _codes([finding]) == [["installment_missed"]]
    assert finding.score == pytest.approx(0.95)
    assert (finding.loan_id, finding.installment, finding.due_date) == ("loan-1", 1, DUE)
    assert finding.episode == f"{KEY}:critical"
    assert finding.evidence == ("s-1",)


def test_partial_payment_at_the_deadline() -> None:
    detector, state = _schedule()
    detector.on_repayment(payment("p-1", MIDNIGHT, "1000"), state, ())

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert _codes([finding])[0][0] == "partial_payment"
    assert finding.evidence == ("s-1", "p-1")  # type: ignore[union-attr]


@pytest.mark.parametrize("days_after_due", [-2, 0, 1, 2], ids=["early", "on-due", "1d", "2d"])
def test_paid_by_the_end_of_grace_is_not_flagged(days_after_due: int) -> None:
    detector, state = _schedule()
    paid_at = MIDNIGHT + timedelta(days=days_after_due, hours=10)
    detector.on_repayment(payment("p-1", paid_at, "3000"), state, ())

    assert detector.on_timer(DEADLINE_TIMER, state) == []


def test_a_payment_after_the_deadline_does_not_count() -> None:
    detector, state = _schedule()
    detector.on_repayment(payment("p-1", DEADLINE + timedelta(minutes=1), "3000"), state, ())

    assert _codes(detector.on_timer(DEADLINE_TIMER, state)) == [["installment_missed"]]


def test_a_reversal_alerts_at_once() -> None:
    detector, state = _schedule()
    detector.on_repayment(payment("p-1", MIDNIGHT - timedelta(days=2), "3000"), state, ())
    reversal = payment("r-1", MIDNIGHT - timedelta(days=1), "3000", kind="reversal")

    [finding] = detector.on_repayment(reversal, state, ())

    assert _codes([finding]) == [["payment_reversed"]]
    assert finding.episode == f"{KEY}:medium"  # type: ignore[union-attr]
    # The money is gone again: the installment is then missed at the deadline.
    assert _codes(detector.on_timer(DEADLINE_TIMER, state))[0][0] == "installment_missed"


def test_collapsing_inflows_against_the_installment_warn_before_the_due_date() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)

    [finding] = detector.on_timer(CHECK5, state)

    assert _codes([finding]) == [["inflow_decline", "low_installment_coverage"]]
    decline = finding.reasons[0]  # type: ignore[union-attr]
    assert (decline.observed, decline.threshold) == (0.2, 0.5)
    assert finding.episode == f"{KEY}:medium"  # type: ignore[union-attr]
    assert finding.ts.timestamp() == CHECK5.due  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("recent", "amount_due"),
    [(2_000.0, "3000"), (6_000.0, "70000"), (10_000.0, "70000")],
    ids=["decline-but-well-covered", "sector-like-slump", "steady"],
)
def test_no_warning_from_one_weak_signal(recent: float, amount_due: str) -> None:
    detector, state = _schedule(amount_due=amount_due)
    _collapse(state, recent)

    assert detector.on_timer(CHECK5, state) == []


def test_silence_and_a_payout_change_warn_without_any_inflow_signal() -> None:
    detector, state = _schedule()
    _inflows(state, 10_000.0, -54, 10)
    detector.on_login(login("l-1", MIDNIGHT - timedelta(days=30), device="d", ip="1"), state, ())
    change = login(
        "l-2", MIDNIGHT - timedelta(days=8), device="d", ip="1", action="payout_account_change"
    )
    detector.on_login(change, state, ())

    [finding] = detector.on_timer(CHECK5, state)

    assert _codes([finding]) == [["login_silence", "payout_account_changed"]]
    silence = finding.reasons[0]  # type: ignore[union-attr]
    assert silence.observed == 25.0  # no successful login since 30 days before the due date


def test_logins_after_the_check_do_not_count() -> None:
    detector, state = _schedule()
    _inflows(state, 10_000.0, -54, 10)
    detector.on_login(login("l-1", MIDNIGHT - timedelta(days=30), device="d", ip="1"), state, ())
    detector.on_login(login("l-2", MIDNIGHT + timedelta(days=1), device="d", ip="1"), state, ())

    features, _, _ = detector._assess(CHECK5.due, state.installments[KEY], state)

    assert features["silence_days"] == 25.0


def test_past_due_alone_does_not_alert_but_with_another_signal_it_does() -> None:
    detector, state = _schedule()
    _inflows(state, 10_000.0, -54, 10)
    assert detector.on_timer(PAST_DUE, state) == []

    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)
    [finding] = detector.on_timer(PAST_DUE, state)
    assert _codes([finding])[0][0] == "past_due"


def test_an_installment_escalates_only_when_severity_rises() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)

    first = detector.on_timer(CHECK5, state)
    again = detector.on_timer(CHECK3, state)  # same medium risk: no second alert
    missed = detector.on_timer(DEADLINE_TIMER, state)

    assert [f.episode for f in first] == [f"{KEY}:medium"]  # type: ignore[union-attr]
    assert again == []
    assert [f.episode for f in missed] == [f"{KEY}:critical"]  # type: ignore[union-attr]
    assert state.installments[KEY].alerted == 4


def test_each_stage_runs_once() -> None:
    detector, state = _schedule()

    assert len(detector.on_timer(DEADLINE_TIMER, state)) == 1
    assert detector.on_timer(DEADLINE_TIMER, state) == []
    assert [t.key for t in detector.pending_timers(state)] == [
        f"{stage}|{KEY}" for stage in ("check10", "check7", "check5", "check3", "past_due")
    ]


def test_earlier_unpaid_installments_raise_the_risk_of_the_next() -> None:
    detector, state = _schedule()
    _inflows(state, 10_000.0, -54, 40)
    detector.on_timer(DEADLINE_TIMER, state)  # installment 1 missed
    second_due = DUE + timedelta(days=30)
    detector.on_repayment(
        scheduled("s-2", datetime(2024, 3, 1, tzinfo=UTC), second_due, "3000", installment=2),
        state,
        (),
    )
    check = _timer("check5", MIDNIGHT + timedelta(days=25), key="loan-1#2")

    features, reasons, rule = detector._assess(check.due, state.installments["loan-1#2"], state)

    assert features["prior_bad"] == 1.0
    assert [r.code for r in reasons] == ["earlier_installments_unpaid"]
    assert 0 < rule < 0.5  # one signal alone does not alert


def _train(detector: DelinquencyDetector, borrower: str, *, misses: bool) -> BorrowerState:
    """One installment through its checks and deadline: collapsing and unpaid, or paid."""
    state = BorrowerState(borrower_id=borrower, partition=2)
    detector.on_repayment(
        scheduled("s", datetime(2024, 3, 1, tzinfo=UTC), DUE, "70000", borrower_id=borrower),
        state,
        (),
    )
    if misses:
        _collapse(state, 2_000.0)
    else:
        _inflows(state, 10_000.0, -54, 10)
        paid = payment("p", MIDNIGHT - timedelta(days=1), "70000", borrower_id=borrower)
        detector.on_repayment(paid, state, ())
    for days in (5, 3):
        check = _timer(f"check{days}", MIDNIGHT - timedelta(days=days))
        detector.on_timer(Timer(check.due, borrower, "delinquency", check.key), state)
    detector.on_timer(
        Timer(DEADLINE.timestamp(), borrower, "delinquency", DEADLINE_TIMER.key), state
    )
    assert state.installments[KEY].snapshots == []  # learnt, then forgotten
    return state


def test_the_classifier_learns_outcomes_at_the_deadline_and_adds_its_lift() -> None:
    thresholds = DelinquencyThresholds(min_labels_for_model=4, min_model_lift=1.5)
    detector = DelinquencyDetector(thresholds)
    for i in range(12):
        _train(detector, f"b-{i}", misses=i % 4 == 0)  # three of twelve miss
    assert (detector._labels[2], detector._positives[2]) == (24, 6)

    fresh = BorrowerState(borrower_id="b-new", partition=2)
    detector.on_repayment(
        scheduled("s", datetime(2024, 3, 1, tzinfo=UTC), DUE, "70000", borrower_id="b-new"),
        fresh,
        (),
    )
    _collapse(fresh, 2_000.0)
    [finding] = detector.on_timer(Timer(CHECK5.due, "b-new", "delinquency", CHECK5.key), fresh)

    features, _, rule = detector._assess(CHECK5.due, fresh.installments[KEY], fresh)
    probability = detector._models[2].predict_proba_one(features)[True]
    lift = probability / (6 / 24)
    model_reason = finding.reasons[-1]  # type: ignore[union-attr]
    assert model_reason.code == "model_probability"
    assert model_reason.observed == round(lift, 2) and lift >= 1.5
    assert "raised most by" in model_reason.message
    strength = min(thresholds.max_model_strength, 0.15 * math.log2(lift))
    assert finding.score == pytest.approx(1 - (1 - rule) * (1 - strength))  # type: ignore[union-attr]

    # The partition's model survives a checkpoint: the restored copy predicts the same.
    blob = detector.snapshot(2)
    assert blob is not None and detector.snapshot(3) is None
    restored = DelinquencyDetector(thresholds)
    restored.restore(2, blob)
    x = dict(zip(FEATURES, [0.2, 1.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], strict=True))
    assert restored._models[2].predict_proba_one(x) == detector._models[2].predict_proba_one(x)
    assert pickle.loads(blob)[1:] == (24, 6)


def test_state_survives_a_json_round_trip_mid_installment() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)
    detector.on_login(login("l-1", MIDNIGHT - timedelta(days=20), device="d", ip="1"), state, ())
    detector.on_timer(CHECK5, state)
    copy = BorrowerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))

    assert detector.on_timer(DEADLINE_TIMER, copy) == detector.on_timer(DEADLINE_TIMER, state)
    assert copy.to_dict() == state.to_dict()


def test_grace_and_time_zone_are_data() -> None:
    detector = DelinquencyDetector(
        DelinquencyThresholds(grace_days=5, platform_utc_offset_hours=0, check_days_before_due=(2,))
    )
    state = BorrowerState(borrower_id="b-1")
    timers = detector.on_repayment(
        scheduled("s-1", datetime(2024, 3, 1, tzinfo=UTC), DUE, "3000"), state, ()
    )

    midnight = datetime(2024, 4, 10, tzinfo=UTC)
    assert [(t.key.split("|")[0], t.due) for t in timers] == [
        ("check2", (midnight - timedelta(days=2)).timestamp()),
        ("past_due", (midnight + timedelta(days=1)).timestamp()),
        ("deadline", (midnight + timedelta(days=6)).timestamp()),
    ]
