"""Delinquency: installments missed at the end of grace, and the early warning before due."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from detectors.base import DELINQUENCY_RISK, Finding, alert_id
from detectors.clock import Timer
from detectors.delinquency import DelinquencyDetector
from detectors.state import BorrowerState, day_of
from detectors.thresholds import DelinquencyThresholds
from tests.detectors.factories import payment, scheduled

DUE = date(2024, 4, 10)
# Midnight after due + 3 grace days, in UTC+8: 2024-04-14 00:00+08:00.
DEADLINE = datetime(2024, 4, 13, 16, 0, tzinfo=UTC)
# Five days before midnight of the due date, in UTC+8: 2024-04-05 00:00+08:00.
WARNING = datetime(2024, 4, 4, 16, 0, tzinfo=UTC)
TODAY = day_of(WARNING.timestamp())  # the UTC day the warning is evaluated on
KEY = "loan-1#1"
DEADLINE_TIMER = Timer(DEADLINE.timestamp(), "b-1", "delinquency", f"deadline|{KEY}")
WARNING_TIMER = Timer(WARNING.timestamp(), "b-1", "delinquency", f"warning|{KEY}")


def _schedule(amount_due: str = "3000") -> tuple[DelinquencyDetector, BorrowerState]:
    detector = DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id="b-1")
    event = scheduled("s-1", datetime(2024, 3, 1, tzinfo=UTC), DUE, amount_due)
    # A scheduled installment arms exactly its warning and deadline timers.
    assert detector.on_repayment(event, state, ()) == [WARNING_TIMER, DEADLINE_TIMER]
    return detector, state


def _inflows(state: BorrowerState, per_day: float, first: int, last: int) -> None:
    """The same inflow on every day from ``TODAY + first`` to ``TODAY + last`` inclusive."""
    for day in range(TODAY + first, TODAY + last + 1):
        state.inflows.add(day, per_day)


def _collapse(state: BorrowerState, recent_per_day: float) -> None:
    """10 000 a day for 40 days, then ``recent_per_day`` for the 14 days before the warning."""
    _inflows(state, 10_000.0, -54, -15)
    _inflows(state, recent_per_day, -14, -1)


def _codes(findings: list[Finding]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings]


def test_schedule_arms_a_warning_and_a_deadline_timer() -> None:
    detector, state = _schedule()

    assert detector.pending_timers(state) == [WARNING_TIMER, DEADLINE_TIMER]
    installment = state.installments[KEY]
    assert (installment.due_date, installment.amount_due) == (DUE, Decimal("3000"))
    assert installment.scheduled_event == "s-1"


def test_missed_installment_at_the_deadline() -> None:
    detector, state = _schedule()

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert finding.detector == "delinquency"
    assert finding.category == DELINQUENCY_RISK
    assert finding.episode == f"{KEY}:deadline"
    assert finding.alert_id == alert_id("delinquency", "b-1", "loan-1#1:deadline")
    assert finding.ts == DEADLINE
    assert finding.score == pytest.approx(0.9)
    [reason] = finding.reasons
    assert (reason.code, reason.observed, reason.threshold) == ("installment_missed", "0", "3000")
    assert reason.message == "0 of 3000 paid by the end of the 3-day grace period"
    assert finding.evidence == ("s-1",)
    assert (finding.loan_id, finding.installment, finding.due_date) == ("loan-1", 1, DUE)


def test_partial_payment_at_the_deadline() -> None:
    detector, state = _schedule()
    assert (
        detector.on_repayment(
            payment("p-1", datetime(2024, 4, 10, 2, tzinfo=UTC), "1000"), state, ()
        )
        == []
    )

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    [reason] = finding.reasons
    assert (reason.code, reason.observed, reason.threshold) == ("partial_payment", "1000", "3000")
    assert finding.score == pytest.approx(0.8)
    assert finding.evidence == ("s-1", "p-1")


@pytest.mark.parametrize(
    "paid",
    [
        [("p-1", datetime(2024, 4, 9, 3, tzinfo=UTC), "3000")],
        [
            ("p-1", datetime(2024, 4, 1, tzinfo=UTC), "1000"),
            ("p-2", datetime(2024, 4, 12, tzinfo=UTC), "2000"),
        ],
        [("p-1", datetime(2024, 4, 13, 15, 59, 59, tzinfo=UTC), "3000")],
        [("p-1", DEADLINE, "3000")],
        [("p-1", datetime(2024, 4, 9, tzinfo=UTC), "3500")],
    ],
    ids=["on-time", "in-two-parts", "late-within-grace", "at-the-deadline", "overpaid"],
)
def test_paid_in_time_is_not_flagged(paid: list[tuple[str, datetime, str]]) -> None:
    detector, state = _schedule()
    for event_id, ts, amount in paid:
        assert detector.on_repayment(payment(event_id, ts, amount), state, ()) == []

    assert detector.on_timer(WARNING_TIMER, state) == []
    assert detector.on_timer(DEADLINE_TIMER, state) == []
    assert detector.pending_timers(state) == []


@pytest.mark.parametrize(
    ("amount", "code"),
    [("3000", "installment_missed"), ("1000", "installment_missed")],
    ids=["full-payment-one-second-late", "partial-payment-late"],
)
def test_payment_after_the_deadline_does_not_count(amount: str, code: str) -> None:
    detector, state = _schedule()
    late = payment("p-late", datetime(2024, 4, 13, 16, 0, 1, tzinfo=UTC), amount)
    # The late payment is processed before the timer fires: event time decides, not arrival.
    assert detector.on_repayment(late, state, ()) == []

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert _codes([finding]) == [[code]]
    assert finding.reasons[0].observed == "0"
    assert finding.evidence == ("s-1",)


def test_payment_before_the_schedule_event_counts() -> None:
    detector = DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id="b-1")
    early = payment("p-1", datetime(2024, 4, 9, tzinfo=UTC), "3000")
    assert detector.on_repayment(early, state, ()) == []
    assert detector.pending_timers(state) == []  # no due date known yet

    sched = scheduled("s-1", datetime(2024, 4, 9, 1, tzinfo=UTC), DUE, "3000")
    assert detector.on_repayment(sched, state, ()) == [WARNING_TIMER, DEADLINE_TIMER]

    assert detector.pending_timers(state) == [WARNING_TIMER, DEADLINE_TIMER]
    assert detector.on_timer(DEADLINE_TIMER, state) == []


def test_reversal_is_flagged_immediately_and_the_installment_then_missed() -> None:
    detector, state = _schedule()
    assert (
        detector.on_repayment(payment("p-1", datetime(2024, 4, 9, tzinfo=UTC), "3000"), state, ())
        == []
    )
    reversal = payment("r-1", datetime(2024, 4, 11, tzinfo=UTC), "3000", kind="reversal")

    [reversed_] = detector.on_repayment(reversal, state, ())

    assert reversed_.episode == f"{KEY}:reversal:r-1"
    assert reversed_.ts == reversal.ts
    assert reversed_.score == pytest.approx(0.7)
    [reason] = reversed_.reasons
    assert (reason.code, reason.observed, reason.threshold) == ("payment_reversed", "3000", "0")
    assert reversed_.evidence == ("s-1", "p-1", "r-1")
    assert (reversed_.loan_id, reversed_.installment, reversed_.due_date) == ("loan-1", 1, DUE)

    [missed] = detector.on_timer(DEADLINE_TIMER, state)
    assert _codes([missed]) == [["installment_missed"]]
    assert missed.evidence == ("s-1", "p-1", "r-1")


def test_reversal_after_the_deadline_leaves_the_deadline_judgement() -> None:
    detector, state = _schedule()
    detector.on_repayment(payment("p-1", datetime(2024, 4, 9, tzinfo=UTC), "3000"), state, ())
    later = payment("r-1", datetime(2024, 4, 20, tzinfo=UTC), "3000", kind="reversal")

    assert _codes(detector.on_repayment(later, state, ())) == [["payment_reversed"]]
    assert detector.on_timer(DEADLINE_TIMER, state) == []


def test_warning_when_inflows_collapse_and_the_installment_is_unpaid() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)

    [finding] = detector.on_timer(WARNING_TIMER, state)

    assert finding.episode == f"{KEY}:warning"
    assert finding.ts == WARNING
    assert _codes([finding]) == [["inflow_decline", "low_installment_coverage"]]
    decline, coverage = finding.reasons
    assert (decline.observed, decline.threshold) == (0.2, 0.5)
    # The 30 days before: 16 days of 10 000 and 14 of 2 000 = 188 000 = 2.69 installments
    assert (coverage.observed, coverage.threshold) == (2.69, 4.0)
    expected = 0.5 + 0.25 * (1 - 0.2 / 0.5) + 0.2 * (1 - (188_000 / 70_000) / 4.0)
    assert finding.score == pytest.approx(expected)
    assert finding.evidence == ("s-1",)
    assert finding.due_date == DUE


def test_deadline_after_a_collapse_carries_the_decline() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)
    # Keep the collapse going up to the deadline.
    _inflows(state, 2_000.0, 0, day_of(DEADLINE.timestamp()) - TODAY)

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert _codes([finding]) == [
        ["installment_missed", "inflow_decline", "low_installment_coverage"]
    ]
    assert finding.score == pytest.approx(0.95)


def test_deadline_lists_only_the_conditions_that_hold() -> None:
    # Inflows collapsed, but a small installment is still well covered: the coverage reason
    # would be a false statement, so only the decline is given.
    detector, state = _schedule(amount_due="3000")
    _collapse(state, 2_000.0)
    _inflows(state, 2_000.0, 0, day_of(DEADLINE.timestamp()) - TODAY)

    [finding] = detector.on_timer(DEADLINE_TIMER, state)

    assert _codes([finding]) == [["installment_missed", "inflow_decline"]]
    decline = finding.reasons[1]
    assert isinstance(decline.observed, float) and isinstance(decline.threshold, float)
    assert decline.observed <= decline.threshold


def test_no_warning_for_a_sector_like_slump_of_forty_percent() -> None:
    # 6 000 a day against 10 000: a slump shared by a whole sector, not a collapse. The
    # installment is large enough that coverage (244 000 / 70 000 = 3.5) would not stop it.
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 6_000.0)

    assert detector.on_timer(WARNING_TIMER, state) == []


def test_no_warning_for_a_thirty_five_percent_slump() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 6_500.0)

    assert detector.on_timer(WARNING_TIMER, state) == []


def test_no_warning_when_inflows_cover_the_installment_well() -> None:
    detector, state = _schedule(amount_due="3000")  # 188 000 of inflow covers it 62 times
    _collapse(state, 2_000.0)

    assert detector.on_timer(WARNING_TIMER, state) == []


def test_no_warning_when_paid_before_the_warning() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)
    detector.on_repayment(payment("p-1", datetime(2024, 4, 2, tzinfo=UTC), "70000"), state, ())

    assert detector.on_timer(WARNING_TIMER, state) == []


def test_no_warning_without_enough_baseline() -> None:
    detector, state = _schedule(amount_due="70000")
    _inflows(state, 10_000.0, -20, -15)  # six baseline days, seven needed
    _inflows(state, 2_000.0, -14, -1)

    assert detector.on_timer(WARNING_TIMER, state) == []


def test_warning_when_inflows_stop_entirely() -> None:
    # The strongest collapse there is: 10 000 a day for 40 days, then nothing at all for the
    # 14 days before the warning. Coverage is 160 000 / 70 000 = 2.3.
    detector, state = _schedule(amount_due="70000")
    _inflows(state, 10_000.0, -54, -15)

    findings = detector.on_timer(WARNING_TIMER, state)

    assert _codes(findings) == [["inflow_decline", "low_installment_coverage"]]
    assert findings[0].reasons[0].observed == 0.0


def test_each_stage_fires_at_most_once() -> None:
    detector, state = _schedule(amount_due="70000")
    _collapse(state, 2_000.0)

    assert len(detector.on_timer(WARNING_TIMER, state)) == 1
    assert detector.pending_timers(state) == [DEADLINE_TIMER]
    assert detector.on_timer(WARNING_TIMER, state) == []
    assert len(detector.on_timer(DEADLINE_TIMER, state)) == 1
    assert detector.on_timer(DEADLINE_TIMER, state) == []
    assert detector.pending_timers(state) == []
    assert state.installments[KEY].stages_done == ["warning", "deadline"]


def test_stage_done_even_when_nothing_was_found() -> None:
    detector, state = _schedule()

    assert detector.on_timer(WARNING_TIMER, state) == []  # no inflow history: no verdict

    assert detector.pending_timers(state) == [DEADLINE_TIMER]


def test_timer_for_an_unknown_installment_finds_nothing() -> None:
    detector, state = _schedule()
    stray = Timer(DEADLINE.timestamp(), "b-1", "delinquency", "deadline|loan-9#4")

    assert detector.on_timer(stray, state) == []
    assert detector.pending_timers(state) == [WARNING_TIMER, DEADLINE_TIMER]


def test_installments_are_kept_apart() -> None:
    detector, state = _schedule()
    second_due = date(2024, 5, 10)
    detector.on_repayment(
        scheduled("s-2", datetime(2024, 3, 1, tzinfo=UTC), second_due, "3000", installment=2),
        state,
        (),
    )
    detector.on_repayment(payment("p-1", datetime(2024, 4, 9, tzinfo=UTC), "3000"), state, ())

    timers = detector.pending_timers(state)

    assert [t.key for t in timers] == [
        "warning|loan-1#1",
        "deadline|loan-1#1",
        "warning|loan-1#2",
        "deadline|loan-1#2",
    ]
    assert timers[3].due == datetime(2024, 5, 13, 16, tzinfo=UTC).timestamp()
    assert detector.on_timer(timers[1], state) == []
    [missed] = detector.on_timer(timers[3], state)
    assert (missed.installment, missed.episode) == (2, "loan-1#2:deadline")


def test_grace_and_time_zone_are_data() -> None:
    detector = DelinquencyDetector(
        DelinquencyThresholds(grace_days=0, warn_days_before_due=1, platform_utc_offset_hours=0)
    )
    state = BorrowerState(borrower_id="b-1")
    detector.on_repayment(
        scheduled("s-1", datetime(2024, 3, 1, tzinfo=UTC), DUE, "3000"), state, ()
    )

    assert [t.due for t in detector.pending_timers(state)] == [
        datetime(2024, 4, 9, tzinfo=UTC).timestamp(),
        datetime(2024, 4, 11, tzinfo=UTC).timestamp(),
    ]
