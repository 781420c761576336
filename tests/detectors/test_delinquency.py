"""Delinquency: checks before the due date, past due, the deadline, escalation, the classifier."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from detectors.base import DELINQUENCY_RISK, Finding
from detectors.clock import Timer
from detectors.delinquency import (
    DelinquencyDetector,
    DelinquencyThresholds,
    risk_view,
)
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.inflow_windows import rank_z, trimmed_mean
from detectors.state import (
    BorrowerState,
    Installment,
    day_of,
    installments_from_json,
    installments_to_json,
)
from detectors.thresholds import Thresholds
from tests.detectors.delinquency_cases import (
    CHECK3,
    CHECK5,
    CHECK10,
    DEADLINE,
    DEADLINE_TIMER,
    DUE,
    KEY,
    LUMPY_WEEK,
    MIDNIGHT,
    PAST_DUE,
    codes,
    collapse,
    flows,
    logins,
    schedule,
    steady,
    timer,
)
from tests.detectors.factories import login, payment, scheduled
from tests.detectors.test_engine import SCENARIO

# The deadline ---------------------------------------------------------------------------------


def test_missed_installment_is_critical_at_the_deadline() -> None:
    detector, state = schedule()
    steady(state)

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert isinstance(finding, Finding)
    assert finding.category == DELINQUENCY_RISK
    assert codes([finding]) == [["installment_missed"]]
    assert finding.score == pytest.approx(0.95)
    assert (finding.loan_id, finding.installment, finding.due_date) == ("loan-1", 1, DUE)
    assert finding.episode == f"{KEY}:critical"
    assert finding.evidence == ("s-1",)


def test_partial_payment_at_the_deadline() -> None:
    detector, state = schedule()
    detector.on_repayment(payment("p-1", MIDNIGHT, "1000"), state, ())

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert codes([finding])[0][0] == "partial_payment"
    assert finding.evidence == ("s-1", "p-1")  # type: ignore[union-attr]


@pytest.mark.parametrize("days_after_due", [-2, 0, 1, 2], ids=["early", "on-due", "1d", "2d"])
def test_paid_by_the_end_of_grace_is_not_flagged(days_after_due: int) -> None:
    detector, state = schedule()
    paid_at = MIDNIGHT + timedelta(days=days_after_due, hours=10)
    detector.on_repayment(payment("p-1", paid_at, "3000"), state, ())

    assert detector.on_timer(DEADLINE_TIMER, state) == []


def test_a_payment_after_the_deadline_does_not_count() -> None:
    detector, state = schedule()
    detector.on_repayment(payment("p-1", DEADLINE + timedelta(minutes=1), "3000"), state, ())

    assert codes(detector.on_timer(DEADLINE_TIMER, state)) == [["installment_missed"]]


# Inflow decline -------------------------------------------------------------------------------


def test_collapsing_inflows_warn_three_days_before_the_due_date() -> None:
    detector, state = schedule(amount_due="70000")
    collapse(state)

    [finding] = detector.on_timer(CHECK3, state)

    assert codes([finding]) == [["inflow_decline", "low_installment_coverage"]]
    decline = finding.reasons[0]  # type: ignore[union-attr]
    assert (decline.observed, decline.threshold) == (0.2, 0.65)
    assert "z = " in decline.message
    assert finding.episode == f"{KEY}:medium"  # type: ignore[union-attr]
    assert finding.ts.timestamp() == CHECK3.due  # type: ignore[union-attr]


def test_a_decline_ten_days_before_the_due_date_needs_company() -> None:
    """Ten days out there is time to recover: the same decline weighs less and stays quiet."""
    detector, state = schedule(amount_due="70000")
    collapse(state)

    assert detector.on_timer(CHECK10, state) == []
    _, reasons, rule = detector._assess(CHECK10.due, state.installments[KEY], state, False)
    assert "inflow_decline" in [r.code for r in reasons] and 0 < rule < 0.5


def test_one_quiet_week_of_a_lumpy_business_is_not_a_decline() -> None:
    """The week is far below the baseline's mean, but its days do not rank below its days."""
    detector, state = schedule(amount_due="70000")
    quiet = [8_000.0, 0.0, 6_000.0, 0.0, 5_000.0, 0.0, 4_000.0]
    flows(state, [0.0] * 3 + quiet + LUMPY_WEEK * 10)

    own = detector._inflow(state, day_of(CHECK3.due), 70_000.0).own
    assert own is not None and own.ratio < 0.3
    assert own.rank_z is not None and own.rank_z > -1.5
    assert detector.on_timer(CHECK3, state) == []


@pytest.mark.parametrize(
    ("recent", "amount_due"),
    [(6_000.0, "3000"), (6_000.0, "70000"), (10_000.0, "70000")],
    ids=["decline-well-covered", "sector-like-slump-poorly-covered", "steady"],
)
def test_no_warning_from_one_weak_signal(recent: float, amount_due: str) -> None:
    """A decline to 60 % counts as a signal but does not alert alone, even with low coverage."""
    detector, state = schedule(amount_due=amount_due)
    collapse(state, recent)

    assert detector.on_timer(CHECK3, state) == []


# Silence and a payout change ------------------------------------------------------------------


def test_a_daily_user_gone_silent_warns() -> None:
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(16, 70))  # every day, then nothing for twelve days

    [finding] = detector.on_timer(CHECK3, state)

    assert codes([finding]) == [["login_silence"]]
    silence = finding.reasons[0]  # type: ignore[union-attr]
    assert silence.threshold == 8.0 and float(silence.observed) > 30  # type: ignore[arg-type]
    assert "no login for 12 days" in silence.message


def test_the_same_silence_is_routine_for_a_weekly_user() -> None:
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(16, 60, 7))

    assert detector.on_timer(CHECK3, state) == []
    silence = detector._silence(
        detector.slot(state, dict)["logins"], state.inflows, day_of(CHECK3.due)
    )
    assert silence.days == 12 and silence.surprise < 8.0


def test_logins_after_the_check_do_not_count() -> None:
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(16, 70))
    logins(detector, state, range(0, 2))  # after the check at three days before due

    silence = detector._observe(CHECK3.due, state.installments[KEY], state).silence

    assert silence.days == 12 and silence.surprise > 20.0


def test_a_payout_change_right_before_the_due_date_warns() -> None:
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(3, 40))
    logins(detector, state, range(5, 6), action="payout_account_change")

    [finding] = detector.on_timer(CHECK3, state)

    assert codes([finding]) == [["payout_account_changed"]]
    assert finding.reasons[0].observed == 2  # type: ignore[union-attr]


@pytest.mark.parametrize("days_before_due", [12, 10], ids=["before-check10", "long-before-check3"])
def test_a_payout_change_earlier_is_no_warning_alone(days_before_due: int) -> None:
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(3, 40))
    logins(
        detector, state, range(days_before_due, days_before_due + 1), action="payout_account_change"
    )

    timer = CHECK10 if days_before_due == 12 else CHECK3
    assert detector.on_timer(timer, state) == []


def test_silence_and_a_payout_change_early_warn_together() -> None:
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(22, 50))
    logins(detector, state, range(12, 13), action="payout_account_change")

    [finding] = detector.on_timer(CHECK10, state)

    assert codes([finding]) == [["login_silence", "payout_account_changed"]]


# Past due -------------------------------------------------------------------------------------


def test_past_due_alone_does_not_alert() -> None:
    detector, state = schedule()
    steady(state)

    assert detector.on_timer(PAST_DUE, state) == []


def test_part_paid_and_past_due_alerts() -> None:
    """Part of the installment paid, then nothing by the due date: a borrower who ran short."""
    detector, state = schedule()
    steady(state)
    detector.on_repayment(payment("p-1", MIDNIGHT - timedelta(hours=20), "1000"), state, ())

    [finding] = detector.on_timer(PAST_DUE, state)

    assert codes([finding]) == [["past_due"]]
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
    detector, state = schedule(amount_due="70000")
    _paid_late_before(detector, state)
    collapse(state, 6_000.0)  # a weak decline alongside

    _, reasons, rule = detector._assess(PAST_DUE.due, state.installments[KEY], state, True)

    assert "earlier installment(s) paid late" in reasons[-1].message
    assert detector.on_timer(PAST_DUE, state) == []
    assert rule < 0.5


def test_a_first_late_payment_with_a_decline_alerts() -> None:
    detector, state = schedule(amount_due="70000")
    collapse(state, 6_000.0)

    [finding] = detector.on_timer(PAST_DUE, state)

    assert codes([finding])[0][:2] == ["inflow_decline", "past_due"]


# History and escalation -----------------------------------------------------------------------


#: Each installment of the tests of an earlier miss: three days of the borrowers' normal takings.
DUE_EACH = "30000"


def _a_second_installment(
    detector: DelinquencyDetector, state: BorrowerState, *, first: str
) -> Timer:
    """Installment 1 ``first``: "paid" on time, "owed" (missed at the end of its grace) or
    "made_good" (missed, then paid in full six days later); installment 2 due a month after
    it, each of ``DUE_EACH`` (three days of normal takings). Its first check, 10 days before."""
    if first == "paid":
        detector.on_repayment(payment("p-1", MIDNIGHT - timedelta(days=1), DUE_EACH), state, ())
    detector.on_timer(DEADLINE_TIMER, state)
    if first == "made_good":
        detector.on_repayment(payment("p-late", DEADLINE + timedelta(days=6), DUE_EACH), state, ())
    second_due = DUE + timedelta(days=30)
    detector.on_repayment(
        scheduled("s-2", datetime(2024, 3, 1, tzinfo=UTC), second_due, DUE_EACH, installment=2),
        state,
        (),
    )
    return timer("check10", MIDNIGHT + timedelta(days=20), key="loan-1#2")


def _inflows_until(state: BorrowerState, check: Timer, last_fortnight: float) -> None:
    """10 000 a day for 60 days, then ``last_fortnight`` a day over the two weeks before
    ``check``."""
    check_day = day_of(check.due)
    for day in range(check_day - 74, check_day):
        state.inflows.add(day, 10_000.0 if day < check_day - 14 else last_fortnight)


def test_an_earlier_missed_installment_still_owed_warns_at_the_first_check() -> None:
    detector, state = schedule(DUE_EACH)
    check = _a_second_installment(detector, state, first="owed")
    _inflows_until(state, check, 10_000.0)

    [finding] = detector.on_timer(check, state)

    assert codes([finding]) == [["earlier_installments_unpaid"]]
    assert finding.episode == "loan-1#2:medium"  # type: ignore[union-attr]


def test_a_miss_made_good_later_still_warns_at_the_next_installment() -> None:
    """An installment paid in full only days after its grace is still a miss: paying one
    installment a week late is one of the commonest ways to a default of the next. It alerts
    alone by default, named for what it is. (Weighing it 0.3 by default was measured on
    2026-12-08: 1-3 warned installments lost per profile for at most 0.02 of precision.)"""
    detector, state = schedule(DUE_EACH)
    check = _a_second_installment(detector, state, first="made_good")
    _inflows_until(state, check, 10_000.0)

    [finding] = detector.on_timer(check, state)

    assert codes([finding]) == [["earlier_installments_cured"]]
    assert "paid in full since" in finding.reasons[0].message  # type: ignore[union-attr]


#: A platform whose borrowers who came back after a miss mostly pay on: fitted down.
CURED_PAY_ON = DelinquencyThresholds(cured_installment_weight=0.3)


def test_where_cured_borrowers_pay_on_a_miss_made_good_does_not_alert_alone() -> None:
    """The benign twin, on a platform that fitted the weight down: a borrower who missed once,
    paid it in full a week later and trades as before is one to watch, not an alert at every
    check of every later installment."""
    detector, state = schedule(DUE_EACH, DelinquencyDetector(CURED_PAY_ON))
    check = _a_second_installment(detector, state, first="made_good")
    _inflows_until(state, check, 10_000.0)

    assert detector.on_timer(check, state) == []


@pytest.mark.parametrize(("first", "alerts"), [("made_good", True), ("paid", False)])
def test_where_cured_borrowers_pay_on_a_miss_made_good_counts_beside_a_decline(
    first: str, alerts: bool
) -> None:
    """An early check's decline needs company (it weighs 0.7 there): a miss made good gives it
    that, an installment paid on time does not."""
    detector, state = schedule(DUE_EACH, DelinquencyDetector(CURED_PAY_ON))
    check = _a_second_installment(detector, state, first=first)
    _inflows_until(state, check, 2_000.0)

    findings = detector.on_timer(check, state)

    expected = [["inflow_decline", "earlier_installments_cured", "low_installment_coverage"]]
    assert codes(findings) == (expected if alerts else [])


def test_an_installment_escalates_only_when_severity_rises() -> None:
    detector, state = schedule(amount_due="70000")
    collapse(state)

    first = detector.on_timer(CHECK3, state)
    again = detector.on_timer(timer("check2", MIDNIGHT - timedelta(days=2)), state)
    missed = detector.on_timer(DEADLINE_TIMER, state)

    assert [f.episode for f in first] == [f"{KEY}:medium"]  # type: ignore[union-attr]
    assert again == []  # same medium risk: no second alert
    assert [f.episode for f in missed] == [f"{KEY}:critical"]  # type: ignore[union-attr]
    assert state.installments[KEY].alerted == 4


def test_each_stage_runs_once() -> None:
    detector, state = schedule()

    assert len(detector.on_timer(DEADLINE_TIMER, state)) == 1
    assert detector.on_timer(DEADLINE_TIMER, state) == []
    assert [t.key for t in detector.pending_timers(state)] == [
        f"{stage}|{KEY}" for stage in ("check10", "check7", "check5", "check3", "past_due")
    ]


# The classifier -------------------------------------------------------------------------------


def test_a_version_4_checkpoint_with_a_classifier_restores_its_peers_only() -> None:
    """Version 4 checkpointed a classifier before the peers' moves; version 5 has none (the
    ablation showed it changed no alert) and keeps the same layout, its model slots empty."""
    closes = {"": [[19800.0, 12.0, 0.9, 1.0, 1.0]]}
    restored = DelinquencyDetector(DelinquencyThresholds())
    restored.restore(2, pickle.dumps(("an old model", 80, 20, 0.02, closes)))
    assert restored._peers.closes[2] == closes
    assert pickle.loads(restored.snapshot(2) or b"") == (None, 0, 0, None, closes)
    assert restored.snapshot(3) is None
    # Version 2 and 3 checkpoints (no running mean, no peers) restore to nothing.
    DelinquencyDetector(DelinquencyThresholds()).restore(2, pickle.dumps((None, 4, 1)))


def test_an_installment_state_with_version_4_snapshots_still_loads() -> None:
    _, state = schedule("3000")
    raw = installments_to_json(state.installments)
    raw[0]["snapshots"] = [[0.5, 1.0, 2.0, 0.0]]
    assert installments_from_json(raw) == state.installments


# Data and state -------------------------------------------------------------------------------


def test_state_survives_a_json_round_trip_mid_installment() -> None:
    detector, state = schedule(amount_due="70000")
    collapse(state)
    logins(detector, state, range(20, 30))
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
    detector, state = schedule()
    for back in (3, 9, 5, 9, 1):
        detector.on_login(
            login(f"l-{back}", MIDNIGHT - timedelta(days=back), device="d", ip="1"), state, ()
        )

    days = detector.slot(state, dict)["logins"]
    assert days == sorted(set(days)) and len(days) == 4


def test_rank_z_andtrimmed_mean() -> None:
    assert trimmed_mean([1.0, 2.0, 3.0, 100.0], 1) == 2.0
    assert rank_z([1.0] * 3, [5.0, 6.0, 7.0, 8.0]) == pytest.approx(-2.12, abs=0.01)
    assert rank_z([5.0] * 4, [5.0] * 4) == 0.0
    assert rank_z([], [1.0]) is None


async def test_a_payment_before_its_schedule_does_not_break_the_risk_view() -> None:
    """An installment known only from a payment (its schedule not in yet) has no due date:
    the view leaves it out instead of failing to sort it (the worker crashed on it)."""
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    await engine.process(SCENARIO)
    state = engine.states.get("d-1")
    assert state is not None
    state.installments["loan-2#1"] = Installment(loan_id="loan-2", number=1)

    view = risk_view(state)

    assert [i["loan_id"] for i in view["open_installments"]] == ["loan-1"]


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
