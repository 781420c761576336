"""Delinquency: a reversed payment (a bounced debit) is evidence, and paying it again cures it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from detectors.delinquency import DelinquencyDetector, DelinquencyThresholds, _unrecovered
from tests.detectors.delinquency_cases import (
    DEADLINE,
    KEY,
    MIDNIGHT,
    codes,
    collapse,
    run,
    schedule,
    steady,
)
from tests.detectors.factories import payment


def _reversal(event_id: str, days: float, amount: str = "3000") -> object:
    return payment(event_id, MIDNIGHT + timedelta(days=days), amount, kind="reversal")


def _paid(event_id: str, days: float, amount: str = "3000") -> object:
    return payment(event_id, MIDNIGHT + timedelta(days=days), amount)


def test_a_reversal_paid_again_the_next_day_is_nothing() -> None:
    """The debit on the due date bounces; the borrower tops up and pays the next day, within
    grace: no alert at any stage, although the past-due check falls between the two."""
    detector, state = schedule()
    steady(state)

    found = run(
        detector,
        state,
        [_paid("p-1", 0.4), _reversal("r-1", 0.6), _paid("p-2", 1.5)],
        until=DEADLINE + timedelta(days=1),
    )

    assert found == []
    assert "cure0" in state.installments[KEY].stages_done


def test_a_reversed_early_payment_paid_again_before_the_due_date_is_nothing() -> None:
    """Paid twelve days early, bounced two days later, paid again four days after that (past
    the cure period): the reversal counted at the cure check, ten days out, too weakly to
    alert alone; paid again, it counts no more."""
    detector, state = schedule()
    steady(state)
    events = [_paid("p-1", -12), _reversal("r-1", -10), _paid("p-2", -6)]

    found = run(detector, state, events, until=DEADLINE + timedelta(days=1))

    assert found == []
    cure = MIDNIGHT.timestamp() - 8 * 86_400  # two days after the reversal
    _, reasons, rule = detector._assess(cure, state.installments[KEY], state, False)
    assert [r.code for r in reasons] == ["payment_reversed"] and 0 < rule < 0.5


def test_a_reversal_on_the_due_date_never_paid_again_is_judged_at_the_end_of_grace() -> None:
    """The case: paid the day before the due date, bounced on it, never paid again. The
    borrower may pay again until the grace period ends, so the reversal counts from then:
    missed, critical, with the reversal among its reasons."""
    detector, state = schedule()
    steady(state)

    [missed] = run(detector, state, [_paid("p-1", -0.6), _reversal("r-1", 0.3)])

    assert codes([missed])[0][:2] == ["installment_missed", "payment_reversed"]
    assert missed.ts == DEADLINE
    assert missed.reasons[1].observed == "3000"
    assert missed.episode == f"{KEY}:critical"


def test_a_reversal_on_the_due_date_paid_again_inside_grace_days_later_is_nothing() -> None:
    """The benign twin: a habitual late payer's debit bounces on the due date and is paid
    again two and a half days later, past ``reversal_cure_days`` but inside the grace."""
    detector, state = schedule()
    steady(state)

    found = run(
        detector,
        state,
        [_paid("p-1", -0.6), _reversal("r-1", 0.3), _paid("p-2", 2.8)],
        until=DEADLINE + timedelta(days=1),
    )

    assert found == []


def test_a_reversal_days_before_the_due_date_made_good_inside_grace_is_nothing() -> None:
    """The benign twin of a bounce close to the due date: paid three days early, bounced two
    and a half days before the end of the due date, paid again a day after it, inside the
    grace. Its cure period ended half a day before the due date did, yet the borrower still
    had the grace to make it good, as one whose debit bounced a day later has: no alert at
    past due (version 6 alerted there, the reversal alone weighing 0.6)."""
    detector, state = schedule()
    steady(state)
    events = [_paid("p-1", -3), _reversal("r-1", -1.5), _paid("p-2", 2)]

    found = run(detector, state, events, until=DEADLINE + timedelta(days=1))

    assert found == []
    assert {"cure0", "past_due"} <= set(state.installments[KEY].stages_done)


def test_a_reversal_days_before_the_due_date_never_made_good_is_judged_at_the_deadline() -> None:
    """The case: the same bounce, never paid again. The deadline decides, with the reversal
    among the miss's reasons; a platform whose history says such a bounce defaults sets
    ``past_due_reversal_weight`` and is told at the end of the due date instead."""
    detector, state = schedule()
    steady(state)
    events = [_paid("p-1", -3), _reversal("r-1", -1.5)]

    [missed] = run(detector, state, events)

    assert missed.ts == DEADLINE
    assert codes([missed])[0][:2] == ["installment_missed", "payment_reversed"]

    fitted = DelinquencyDetector(DelinquencyThresholds(past_due_reversal_weight=0.6))
    fitted, state = schedule(detector=fitted)
    steady(state)
    past_due, _ = run(fitted, state, events)
    assert past_due.ts == MIDNIGHT + timedelta(days=1)
    assert codes([past_due]) == [["payment_reversed", "past_due"]]


def test_a_reversal_not_paid_again_near_the_due_date_is_strong_but_needs_company() -> None:
    """Not paid again by the check three days before the due date: strong, not alone; with a
    weak decline beside it, it alerts at the end of its cure period, four days before."""
    detector, state = schedule(amount_due="70000")
    steady(state)
    quiet = run(
        detector,
        state,
        [_paid("p-1", -7, "70000"), _reversal("r-1", -6, "70000")],
        until=MIDNIGHT,
    )
    assert quiet == []
    _, reasons, rule = detector._assess(
        (MIDNIGHT - timedelta(days=3)).timestamp(), state.installments[KEY], state, False
    )
    assert reasons[0].code == "payment_reversed" and rule == pytest.approx(0.45)

    detector, state = schedule(amount_due="70000")
    collapse(state, 6_000.0)  # a decline to 60 %: weak alone
    [finding] = run(
        detector,
        state,
        [_paid("p-1", -7, "70000"), _reversal("r-1", -6, "70000")],
        until=MIDNIGHT,
    )
    assert finding.ts == MIDNIGHT - timedelta(days=4)
    assert codes([finding]) == [["payment_reversed", "inflow_decline", "low_installment_coverage"]]


def test_a_part_of_the_reversed_amount_paid_again_leaves_the_rest_owed() -> None:
    detector, state = schedule()
    steady(state)

    events = [_paid("p-1", -0.6), _reversal("r-1", 0.3), _paid("p-2", 1, "1000")]

    [missed] = run(detector, state, events)

    # part-paid by the end of grace, and the rest of the reversed payment still owed
    assert codes([missed])[0][:2] == ["partial_payment", "payment_reversed"]
    assert missed.reasons[1].observed == "2000"


def test_the_cure_period_is_data_and_the_cure_timer_survives_a_restart() -> None:
    detector = DelinquencyDetector(DelinquencyThresholds(reversal_cure_days=0.5))
    detector, state = schedule(detector=detector)
    steady(state)
    [cure] = detector.on_repayment(_reversal("r-1", 0.3), state, ())  # type: ignore[arg-type]

    assert cure.key == f"cure0|{KEY}"  # type: ignore[union-attr]
    assert cure.due == (MIDNIGHT + timedelta(days=0.8)).timestamp()  # type: ignore[union-attr]
    assert f"cure0|{KEY}" in [t.key for t in detector.pending_timers(state)]


def test_a_cure_period_that_ends_after_the_deadline_leaves_it_to_the_deadline() -> None:
    detector, state = schedule()
    steady(state)

    found = run(
        detector,
        state,
        [_paid("p-1", 2.5), _reversal("r-1", 3.5)],
        until=DEADLINE + timedelta(days=3),
    )

    assert [f.episode for f in found] == [f"{KEY}:critical"]


def test_unrecovered_money_is_what_the_reversals_took_and_later_payments_did_not_return() -> None:
    _, state = schedule()
    installment = state.installments[KEY]
    installment.payments += [(10.0, Decimal(1000), "p-1"), (11.0, Decimal(2000), "p-2")]
    installment.reversals.append((12.0, Decimal(2000), "r-1"))
    installment.payments.append((13.0, Decimal(500), "p-3"))

    assert _unrecovered(installment, 12.5) == (Decimal(2000), 12.0)
    assert _unrecovered(installment, 13.5) == (Decimal(1500), 12.0)
    assert _unrecovered(installment, 11.5) == (Decimal(0), 0.0)
    installment.payments.append((14.0, Decimal(2000), "p-4"))  # overpaid: nothing missing
    assert _unrecovered(installment, 14.5) == (Decimal(0), 0.0)
