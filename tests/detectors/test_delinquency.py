"""Delinquency: checks before the due date, past due, the deadline, escalation, the classifier."""

from __future__ import annotations

import pickle
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from detectors.base import DELINQUENCY_RISK, Finding
from detectors.clock import Timer
from detectors.delinquency import (
    FEATURES,
    DelinquencyDetector,
    DelinquencyThresholds,
    _rank_z,
    _trimmed_mean,
    risk_view,
)
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.factories import login, payment, scheduled
from tests.detectors.test_engine import SCENARIO

DUE = date(2024, 4, 10)
MIDNIGHT = datetime(2024, 4, 9, 16, 0, tzinfo=UTC)  # 2024-04-10 00:00+08:00
DEADLINE = MIDNIGHT + timedelta(days=4)  # the end of the 3-day grace period
KEY = "loan-1#1"
#: A business whose takings vary by weekday, as B2B flows do: lumpy, with quiet days.
LUMPY_WEEK = [30_000.0, 5_000.0, 25_000.0, 0.0, 15_000.0, 0.0, 20_000.0]


def _timer(stage: str, at: datetime, key: str = KEY, borrower: str = "b-1") -> Timer:
    return Timer(at.timestamp(), borrower, "delinquency", f"{stage}|{key}")


CHECK10 = _timer("check10", MIDNIGHT - timedelta(days=10))
CHECK5 = _timer("check5", MIDNIGHT - timedelta(days=5))
CHECK3 = _timer("check3", MIDNIGHT - timedelta(days=3))
PAST_DUE = _timer("past_due", MIDNIGHT + timedelta(days=1))
DEADLINE_TIMER = _timer("deadline", DEADLINE)


def _schedule(
    amount_due: str = "3000",
    detector: DelinquencyDetector | None = None,
    borrower: str = "b-1",
    partition: int = 0,
) -> tuple[DelinquencyDetector, BorrowerState]:
    detector = detector or DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id=borrower, partition=partition)
    timers = detector.on_repayment(
        scheduled("s-1", datetime(2024, 3, 1, tzinfo=UTC), DUE, amount_due, borrower_id=borrower),
        state,
        (),
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


def _flows(state: BorrowerState, days_before_due: list[float], *, after: float = 0.0) -> None:
    """Daily inflows, the day before the due date first, going back; ``after`` from then on."""
    due_day = day_of(MIDNIGHT.timestamp())
    for back, amount in enumerate(days_before_due):
        state.inflows.add(due_day - 1 - back, amount)
    for day in range(due_day, due_day + 10):
        state.inflows.add(day, after)


def _steady(state: BorrowerState, per_day: float = 10_000.0) -> None:
    _flows(state, [per_day] * 80, after=per_day)


def _collapse(state: BorrowerState, recent_per_day: float = 2_000.0) -> None:
    """10 000 a day, then ``recent_per_day`` over the last two weeks before the due date."""
    _flows(state, [recent_per_day] * 14 + [10_000.0] * 66, after=recent_per_day)


def _logins(
    detector: DelinquencyDetector, state: BorrowerState, days_before_due: range, **kw: str
) -> None:
    for back in days_before_due:
        at = MIDNIGHT - timedelta(days=back, hours=6)
        detector.on_login(login(f"l-{back}", at, device="d", ip="1", **kw), state, ())


def _codes(findings: list[object]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings if isinstance(f, Finding)]


# The deadline ---------------------------------------------------------------------------------


def test_missed_installment_is_critical_at_the_deadline() -> None:
    detector, state = _schedule()
    _steady(state)

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


# Inflow decline -------------------------------------------------------------------------------


def test_collapsing_inflows_warn_three_days_before_the_due_date() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state)

    [finding] = detector.on_timer(CHECK3, state)

    assert _codes([finding]) == [["inflow_decline", "low_installment_coverage"]]
    decline = finding.reasons[0]  # type: ignore[union-attr]
    assert (decline.observed, decline.threshold) == (0.2, 0.65)
    assert "z = " in decline.message
    assert finding.episode == f"{KEY}:medium"  # type: ignore[union-attr]
    assert finding.ts.timestamp() == CHECK3.due  # type: ignore[union-attr]


def test_a_decline_ten_days_before_the_due_date_needs_company() -> None:
    """Ten days out there is time to recover: the same decline weighs less and stays quiet."""
    detector, state = _schedule(amount_due="70000")
    _collapse(state)

    assert detector.on_timer(CHECK10, state) == []
    _, reasons, rule = detector._assess(CHECK10.due, state.installments[KEY], state, False)
    assert "inflow_decline" in [r.code for r in reasons] and 0 < rule < 0.5


def test_one_quiet_week_of_a_lumpy_business_is_not_a_decline() -> None:
    """The week is far below the baseline's mean, but its days do not rank below its days."""
    detector, state = _schedule(amount_due="70000")
    quiet = [8_000.0, 0.0, 6_000.0, 0.0, 5_000.0, 0.0, 4_000.0]
    _flows(state, [0.0] * 3 + quiet + LUMPY_WEEK * 10)

    inflow = detector._inflow(state.inflows, day_of(CHECK3.due), 70_000.0)
    assert inflow.ratio is not None and inflow.ratio < 0.3
    assert inflow.rank_z is not None and inflow.rank_z > -1.5
    assert detector.on_timer(CHECK3, state) == []


@pytest.mark.parametrize(
    ("recent", "amount_due"),
    [(6_000.0, "3000"), (6_000.0, "70000"), (10_000.0, "70000")],
    ids=["decline-well-covered", "sector-like-slump-poorly-covered", "steady"],
)
def test_no_warning_from_one_weak_signal(recent: float, amount_due: str) -> None:
    """A decline to 60 % counts as a signal but does not alert alone, even with low coverage."""
    detector, state = _schedule(amount_due=amount_due)
    _collapse(state, recent)

    assert detector.on_timer(CHECK3, state) == []


# Silence and a payout change ------------------------------------------------------------------


def test_a_daily_user_gone_silent_warns() -> None:
    detector, state = _schedule()
    _steady(state)
    _logins(detector, state, range(16, 70))  # every day, then nothing for twelve days

    [finding] = detector.on_timer(CHECK3, state)

    assert _codes([finding]) == [["login_silence"]]
    silence = finding.reasons[0]  # type: ignore[union-attr]
    assert silence.threshold == 8.0 and float(silence.observed) > 30  # type: ignore[arg-type]
    assert "no login for 12 days" in silence.message


def test_the_same_silence_is_routine_for_a_weekly_user() -> None:
    detector, state = _schedule()
    _steady(state)
    _logins(detector, state, range(16, 60, 7))

    assert detector.on_timer(CHECK3, state) == []
    silence = detector._silence(
        detector.slot(state, dict)["logins"], state.inflows, day_of(CHECK3.due)
    )
    assert silence.days == 12 and silence.surprise < 8.0


def test_logins_after_the_check_do_not_count() -> None:
    detector, state = _schedule()
    _steady(state)
    _logins(detector, state, range(16, 70))
    _logins(detector, state, range(0, 2))  # after the check at three days before due

    features, _, _ = detector._assess(CHECK3.due, state.installments[KEY], state, False)

    assert features["silence_log"] > 3.0


def test_a_payout_change_right_before_the_due_date_warns() -> None:
    detector, state = _schedule()
    _steady(state)
    _logins(detector, state, range(3, 40))
    _logins(detector, state, range(5, 6), action="payout_account_change")

    [finding] = detector.on_timer(CHECK3, state)

    assert _codes([finding]) == [["payout_account_changed"]]
    assert finding.reasons[0].observed == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("days_before_due", [12, 10], ids=["before-check10", "long-before-check3"])
def test_a_payout_change_earlier_is_no_warning_alone(days_before_due: int) -> None:
    detector, state = _schedule()
    _steady(state)
    _logins(detector, state, range(3, 40))
    _logins(
        detector, state, range(days_before_due, days_before_due + 1), action="payout_account_change"
    )

    timer = CHECK10 if days_before_due == 12 else CHECK3
    assert detector.on_timer(timer, state) == []


def test_silence_and_a_payout_change_early_warn_together() -> None:
    detector, state = _schedule()
    _steady(state)
    _logins(detector, state, range(22, 50))
    _logins(detector, state, range(12, 13), action="payout_account_change")

    [finding] = detector.on_timer(CHECK10, state)

    assert _codes([finding]) == [["login_silence", "payout_account_changed"]]


# Past due -------------------------------------------------------------------------------------


def test_past_due_alone_does_not_alert() -> None:
    detector, state = _schedule()
    _steady(state)

    assert detector.on_timer(PAST_DUE, state) == []


def test_part_paid_and_past_due_alerts() -> None:
    """Part of the installment paid, then nothing by the due date: a borrower who ran short."""
    detector, state = _schedule()
    _steady(state)
    detector.on_repayment(payment("p-1", MIDNIGHT - timedelta(hours=20), "1000"), state, ())

    [finding] = detector.on_timer(PAST_DUE, state)

    assert _codes([finding]) == [["past_due"]]
    assert finding.reasons[0].observed == "1000"  # type: ignore[union-attr]


def _paid_late_before(detector: DelinquencyDetector, state: BorrowerState) -> None:
    """The previous month's installment, paid two days late, within grace."""
    earlier = DUE - timedelta(days=30)
    detector.on_repayment(
        scheduled("s-0", datetime(2024, 2, 1, tzinfo=UTC), earlier, "3000", installment=0),
        state,
        (),
    )
    paid_at = MIDNIGHT - timedelta(days=28)
    detector.on_repayment(payment("p-0", paid_at, "3000", installment=0), state, ())


def test_a_habitual_late_payer_past_due_is_on_schedule() -> None:
    detector, state = _schedule(amount_due="70000")
    _paid_late_before(detector, state)
    _collapse(state, 6_000.0)  # a weak decline alongside

    _, reasons, rule = detector._assess(PAST_DUE.due, state.installments[KEY], state, True)

    assert "earlier installment(s) paid late" in reasons[-1].message
    assert detector.on_timer(PAST_DUE, state) == []
    assert rule < 0.5


def test_a_first_late_payment_with_a_decline_alerts() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 6_000.0)

    [finding] = detector.on_timer(PAST_DUE, state)

    assert _codes([finding])[0][:2] == ["inflow_decline", "past_due"]


# History and escalation -----------------------------------------------------------------------


def test_an_earlier_missed_installment_warns_at_the_first_check() -> None:
    detector, state = _schedule()
    _steady(state)
    detector.on_timer(DEADLINE_TIMER, state)  # installment 1 missed
    second_due = DUE + timedelta(days=30)
    detector.on_repayment(
        scheduled("s-2", datetime(2024, 3, 1, tzinfo=UTC), second_due, "3000", installment=2),
        state,
        (),
    )
    check = _timer("check10", MIDNIGHT + timedelta(days=20), key="loan-1#2")
    for day in range(day_of(MIDNIGHT.timestamp()) + 10, day_of(check.due)):
        state.inflows.add(day, 10_000.0)

    [finding] = detector.on_timer(check, state)

    assert _codes([finding]) == [["earlier_installments_unpaid"]]
    assert finding.episode == "loan-1#2:medium"  # type: ignore[union-attr]


def test_an_installment_escalates_only_when_severity_rises() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state)

    first = detector.on_timer(CHECK3, state)
    again = detector.on_timer(_timer("check2", MIDNIGHT - timedelta(days=2)), state)
    missed = detector.on_timer(DEADLINE_TIMER, state)

    assert [f.episode for f in first] == [f"{KEY}:medium"]  # type: ignore[union-attr]
    assert again == []  # same medium risk: no second alert
    assert [f.episode for f in missed] == [f"{KEY}:critical"]  # type: ignore[union-attr]
    assert state.installments[KEY].alerted == 4


def test_each_stage_runs_once() -> None:
    detector, state = _schedule()

    assert len(detector.on_timer(DEADLINE_TIMER, state)) == 1
    assert detector.on_timer(DEADLINE_TIMER, state) == []
    assert [t.key for t in detector.pending_timers(state)] == [
        f"{stage}|{KEY}" for stage in ("check10", "check7", "check5", "check3", "past_due")
    ]


# The classifier -------------------------------------------------------------------------------


def _train(detector: DelinquencyDetector, borrower: str, *, misses: bool) -> BorrowerState:
    """One installment through its checks and deadline: collapsing and unpaid, or paid."""
    _, state = _schedule("70000", detector, borrower, partition=2)
    if misses:
        _collapse(state)
    else:
        _steady(state)
        paid = payment("p", MIDNIGHT - timedelta(days=1), "70000", borrower_id=borrower)
        detector.on_repayment(paid, state, ())
    for days in (5, 3):
        detector.on_timer(
            _timer(f"check{days}", MIDNIGHT - timedelta(days=days), borrower=borrower), state
        )
    detector.on_timer(_timer("deadline", DEADLINE, borrower=borrower), state)
    assert state.installments[KEY].snapshots == []  # learnt, then forgotten
    return state


def test_the_classifier_waits_for_enough_outcomes() -> None:
    detector = DelinquencyDetector(DelinquencyThresholds(min_labels_for_model=100))
    for i in range(8):
        _train(detector, f"b-{i}", misses=i % 4 == 0)
    _, fresh = _schedule("70000", detector, "b-new", partition=2)
    _collapse(fresh)

    [finding] = detector.on_timer(
        _timer("check3", MIDNIGHT - timedelta(days=3), borrower="b-new"), fresh
    )

    assert "model_probability" not in _codes([finding])[0]


def test_the_classifier_learns_outcomes_at_the_deadline_and_adds_its_lift() -> None:
    thresholds = DelinquencyThresholds(
        min_labels_for_model=4, min_model_misses=1, min_model_lift=1.5
    )
    detector = DelinquencyDetector(thresholds)
    for i in range(40):
        _train(detector, f"b-{i}", misses=i % 4 == 0)  # ten of forty miss
    assert (detector._labels[2], detector._positives[2]) == (80, 20)
    for i in range(5):  # the partition's ordinary open installments set the running mean
        _, calm = _schedule("70000", detector, f"c-{i}", partition=2)
        _steady(calm)
        assert (
            detector.on_timer(
                _timer("check5", MIDNIGHT - timedelta(days=5), borrower=f"c-{i}"), calm
            )
            == []
        )

    _, fresh = _schedule("70000", detector, "b-new", partition=2)
    _collapse(fresh)
    check = _timer("check3", MIDNIGHT - timedelta(days=3), borrower="b-new")
    features, _, rule = detector._assess(check.due, fresh.installments[KEY], fresh, False)
    [finding] = detector.on_timer(check, fresh)

    model_reason = finding.reasons[-1]  # type: ignore[union-attr]
    assert model_reason.code == "model_probability"
    assert float(model_reason.observed) >= 1.5  # type: ignore[arg-type]
    assert "raised most by" in model_reason.message
    assert any(name in model_reason.message for name in FEATURES)
    assert finding.score == pytest.approx(  # type: ignore[union-attr]
        1 - (1 - rule) * (1 - thresholds.max_model_strength)
    )

    # The partition's model survives a checkpoint: the restored copy predicts the same.
    blob = detector.snapshot(2)
    assert blob is not None and detector.snapshot(3) is None
    restored = DelinquencyDetector(thresholds)
    restored.restore(2, blob)
    x = dict(zip(FEATURES, [1.0, 3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0], strict=True))
    assert restored._models[2].predict_proba_one(x) == detector._models[2].predict_proba_one(x)
    assert pickle.loads(blob)[1:3] == (80, 20)
    assert restored._typical[2] == detector._typical[2]


def test_a_version_2_checkpoint_and_state_still_load() -> None:
    """Checkpoints without the running mean restore; old snapshots are dropped, not misread."""
    detector = DelinquencyDetector(DelinquencyThresholds())
    for i in range(4):
        _train(detector, f"b-{i}", misses=i == 0)
    model, labels, positives, _ = pickle.loads(detector.snapshot(2) or b"")
    restored = DelinquencyDetector(DelinquencyThresholds())
    restored.restore(2, pickle.dumps((model, labels, positives)))
    assert (restored._labels[2], 2 not in restored._typical) == (labels, True)

    _, state = _schedule("3000", restored, "b-old", partition=2)
    state.installments[KEY].snapshots.append([0.5, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    restored.on_timer(_timer("deadline", DEADLINE, borrower="b-old"), state)
    assert restored._labels[2] == labels


# Data and state -------------------------------------------------------------------------------


def test_state_survives_a_json_round_trip_mid_installment() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state)
    _logins(detector, state, range(20, 30))
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


def test_logins_out_of_order_are_remembered_once_and_sorted() -> None:
    detector, state = _schedule()
    for back in (3, 9, 5, 9, 1):
        detector.on_login(
            login(f"l-{back}", MIDNIGHT - timedelta(days=back), device="d", ip="1"), state, ()
        )

    days = detector.slot(state, dict)["logins"]
    assert days == sorted(set(days)) and len(days) == 4


def test_rank_z_and_trimmed_mean() -> None:
    assert _trimmed_mean([1.0, 2.0, 3.0, 100.0], 1) == 2.0
    assert _rank_z([1.0] * 3, [5.0, 6.0, 7.0, 8.0]) == pytest.approx(-2.12, abs=0.01)
    assert _rank_z([5.0] * 4, [5.0] * 4) == 0.0
    assert _rank_z([], [1.0]) is None


async def test_the_risk_view_shows_the_latest_assessment_and_what_is_still_open() -> None:
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    await engine.process(SCENARIO)  # d-1 pays nothing of its 3,000 due on 10 March
    state = engine.states.get("d-1")
    assert state is not None

    view = risk_view(state)

    assert view["score"] == 0.95  # the miss, assessed at the end of the grace period
    assert view["scored_installment"] == "loan-1#1"
    assert view["scored_at"] == "2024-03-13T16:00:00+00:00"
    assert view["open_installments"] == [
        {
            "loan_id": "loan-1",
            "installment": 1,
            "due_date": "2024-03-10",
            "amount_due": "3000",
            "paid": "0",
        }
    ]
    # Paid in full later: nothing open, the assessment stays what it was.
    state.installments["loan-1#1"].payments.append((2e9, Decimal("3000"), "p-late"))
    assert risk_view(state)["open_installments"] == []
