"""Delinquency: benign look-alikes (habitual late payers, dips that recover, declines still
amply covered, a week's closure) beside the decline that is a real risk."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from detectors.delinquency import DelinquencyDetector, DelinquencyThresholds
from detectors.state import BorrowerState, day_of
from tests.detectors.delinquency_cases import (
    CHECK3,
    DUE,
    KEY,
    MIDNIGHT,
    PAST_DUE,
    codes,
    flows,
    logins,
    run,
    schedule,
    steady,
)
from tests.detectors.factories import login, payment, scheduled, transaction
from topics.records import Login, Repayment, Transaction

#: Four weeks of a B2B business's takings, Monday first: a few invoices a week, of varying
#: size, nothing at weekends (about 10 000 a day on average).
INVOICES = [
    [18_000.0, 0.0, 25_000.0, 0.0, 12_000.0, 0.0, 0.0],
    [0.0, 30_000.0, 0.0, 9_000.0, 16_000.0, 0.0, 0.0],
    [22_000.0, 0.0, 0.0, 16_000.0, 20_000.0, 0.0, 0.0],
    [0.0, 14_000.0, 26_000.0, 0.0, 21_000.0, 0.0, 0.0],
]


def _local(day: date, hour: float) -> datetime:
    """A time of the platform's calendar day (UTC+8)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour - 8)


def _takings(
    first: date, last: date, changes: dict[date, float] | None = None
) -> list[Transaction]:
    """The B2B business's invoices from ``first`` to ``last``, some days' ``changes`` aside."""
    events = []
    day = first
    while day <= last:
        amount = (changes or {}).get(day, INVOICES[(day - first).days // 7 % 4][day.weekday()])
        if amount:
            at = _local(day, 11)
            events.append(transaction(f"t-{day}", "b-1", "acc", f"c-{day}", amount, at, "in"))
        day += timedelta(days=1)
    return events


#: Before the second installment's checks, a client settles the fortnight's invoices in one
#: payment: the same money on one day instead of six.
SETTLED_AT_ONCE = {
    **{date(2024, 1, 22) + timedelta(days=d): 0.0 for d in range(14)},
    date(2024, 2, 5): 18_000.0 + 25_000.0 + 12_000.0 + 30_000.0 + 9_000.0 + 16_000.0,
}


def test_four_installments_each_paid_a_day_or_two_late_never_alert() -> None:
    """A lumpy B2B business pays each monthly installment (a tenth of a month's takings) one
    or two days after its due date, within grace, and logs in twice a week and to pay.

    What fired for it in version 3 (``inflow_decline`` with ``low_installment_coverage`` at
    the second installment's check three days before its due date): a fortnight whose
    invoices a client settled in one payment has as much money but many more empty days;
    those rank low against the baseline days, and the trimmed week (its one large day
    dropped) is far below the baseline: a decline, deep enough to alert alone. Now a decline
    also needs the fortnight's money to lie well below what the business's own days vary
    by. Past due adds nothing: it weighs nothing once the borrower has paid late within
    grace before, and alone it never alerts.
    """
    detector = DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id="b-1")
    dues = [date(2024, month, 10) for month in (1, 2, 3, 4)]
    events: list[Transaction | Login | Repayment] = [
        *_takings(date(2023, 10, 2), date(2024, 4, 20), SETTLED_AT_ONCE)
    ]
    for number, (due, late) in enumerate(zip(dues, (1, 2, 2, 1), strict=True), start=1):
        scheduled_at = _local(date(2023, 12, 1), 10)
        events.append(scheduled(f"s-{number}", scheduled_at, due, "30000", installment=number))
        paid_at = _local(due + timedelta(days=late), 14)
        events.append(payment(f"p-{number}", paid_at, "30000", installment=number))
        events.append(login(f"lp-{number}", paid_at - timedelta(minutes=5), device="d", ip="1"))
    day = date(2023, 10, 2)
    while day <= date(2024, 4, 20):
        if day.weekday() in (1, 4):
            events.append(login(f"l-{day}", _local(day, 20), device="d", ip="1"))
        day += timedelta(days=1)

    assert run(detector, state, events, until=_local(date(2024, 4, 16), 0)) == []

    # At the last installment's past-due check: three earlier ones paid late within grace.
    past_due = _local(dues[-1] + timedelta(days=1), 0).timestamp()
    key = "loan-1#4"
    state.installments[key].payments.clear()  # as it stood at that check
    _, reasons, rule = detector._assess(past_due, state.installments[key], state, True)
    [late] = [r for r in reasons if r.code == "past_due"]
    assert "3 of 3 earlier installment(s) paid late within grace" in late.message
    assert rule < 0.1


def test_invoices_settled_at_once_are_no_decline() -> None:
    """The second installment's check: the fortnight's money came in one payment."""
    detector = DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id="b-1")
    check = _local(date(2024, 2, 7), 0)
    takings = _takings(date(2023, 10, 2), date(2024, 2, 6), SETTLED_AT_ONCE)
    run(detector, state, takings, until=check)

    own = detector._inflow(state, day_of(check.timestamp()), 30_000.0, 3.0).own

    assert own is not None and own.rank_z is not None and own.mean_z is not None
    assert own.ratio < 0.65 and own.rank_z <= -1.5  # what version 3 read as a decline
    assert own.mean_z > -0.5  # but its money is what it always was


def _dip(state: BorrowerState, back_for: int) -> None:
    """A lumpy business with nothing for ten days, which ended ``back_for`` days before the
    check three days before the due date (0: still under way)."""
    week = [20_000.0, 0.0, 0.0, 16_000.0, 20_000.0, 14_000.0, 0.0]
    dip = range(3 + back_for, 13 + back_for)  # days before the due date, less one
    flows(state, [0.0 if back in dip else week[back % 7] for back in range(80)], after=10_000.0)


def test_a_ten_day_dip_that_recovered_before_the_check_is_not_a_decline() -> None:
    """Back for three days at the check: the latest days are near the baseline again."""
    detector, state = schedule("30000")
    _dip(state, 3)
    paid = payment("p-1", MIDNIGHT - timedelta(hours=20), "30000")

    assert run(detector, state, [paid]) == []
    own = detector._inflow(state, day_of(CHECK3.due), 30_000.0, 3.0).own
    assert own is not None and own.rank_z is not None
    assert own.ratio < 0.65 and own.rank_z <= -1.5 and own.recovered


def test_the_same_dip_still_under_way_at_the_check_is_a_decline() -> None:
    detector, state = schedule("30000")
    _dip(state, 0)

    [finding] = detector.on_timer(CHECK3, state)

    assert codes([finding])[0][0] == "inflow_decline"


def _slide(state: BorrowerState, floor: float) -> None:
    """10 000 a day, then a steady slide over the three weeks before the due date to
    ``floor`` of it, with a weekday pattern."""
    pattern = [1.1, 0.9, 1.0, 1.05, 0.95, 1.2, 0.8]
    shares = [
        (1.0 - (1.0 - floor) * (21 - back) / 21 if back < 21 else 1.0) * pattern[back % 7]
        for back in range(80)
    ]
    flows(state, [10_000.0 * share for share in shares], after=10_000.0 * floor)


def test_a_steady_decline_the_recent_inflow_no_longer_covers_is_warned() -> None:
    """The case: a slide over three weeks to a quarter; a month at the recent rate no longer
    covers the installment. Three days before the due date, the recent week is at about
    half of the baseline and falling: at its trend, it reaches a quarter by the due date."""
    detector, state = schedule("100000")
    _slide(state, 0.25)

    [finding, *_] = run(detector, state, until=MIDNIGHT)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    assert codes([finding])[0] == ["inflow_decline", "low_installment_coverage"]
    decline = finding.reasons[0]
    assert float(decline.observed) < 0.35  # type: ignore[arg-type]
    assert "by the due date at its trend" in decline.message


def test_the_same_decline_still_covering_the_installment_many_times_weighs_less() -> None:
    """The installment is a fiftieth of a month's takings: even at a quarter of them the
    business pays it many times over. The decline counts, too weakly to alert alone."""
    detector, state = schedule("6000")
    _slide(state, 0.25)

    assert run(detector, state, until=MIDNIGHT) == []
    _, reasons, rule = detector._assess(CHECK3.due, state.installments[KEY], state, False)
    assert [r.code for r in reasons] == ["inflow_decline"] and rule < 0.5
    assert detector._judge.cover_weight(20.0) == pytest.approx(0.6)


def test_a_week_closed_before_the_check_weighs_half_a_sustained_decline() -> None:
    """A shop that took nothing in the week before the check (closed for a week): its older
    week was normal, so the decline is a week old. With the past week's takings nil, the
    installment's coverage is low too; together they stay under the bar."""
    detector, state = schedule("30000")
    flows(state, [10_000.0] * 3 + [0.0] * 7 + [10_000.0] * 70, after=10_000.0)

    assert detector.on_timer(CHECK3, state) == []
    _, reasons, rule = detector._assess(CHECK3.due, state.installments[KEY], state, False)
    assert [r.code for r in reasons] == ["inflow_decline", "low_installment_coverage"]
    assert rule < 0.5


def test_a_silence_shorter_than_a_week_is_no_sign() -> None:
    """A daily user away for six days (a trip) before the check: routine, however regular."""
    detector, state = schedule()
    steady(state)
    logins(detector, state, range(10, 60))

    assert detector.on_timer(CHECK3, state) == []
    silence = detector._silence(
        detector.slot(state, dict)["logins"], state.inflows, day_of(CHECK3.due)
    )
    assert silence.days == 6 and silence.surprise > 8.0  # improbable, but short


def test_past_due_weighs_the_borrowers_own_habit() -> None:
    """One of four earlier installments paid late within grace: past due still weighs three
    quarters; all of them late: nothing."""
    for late_ones, weight in ((1, 0.15), (4, 0.0)):
        detector, state = schedule()
        steady(state)
        for number in range(2, 6):
            due = DUE - timedelta(days=30 * (number - 1))
            when = MIDNIGHT - timedelta(days=30 * (number - 1)) + timedelta(hours=10)
            paid_at = (
                when + timedelta(days=1) if number - 2 < late_ones else when - timedelta(days=1)
            )
            detector.on_repayment(
                scheduled(
                    f"s-{number}", when - timedelta(days=40), due, "3000", installment=number
                ),
                state,
                (),
            )
            detector.on_repayment(
                payment(f"p-{number}", paid_at, "3000", installment=number), state, ()
            )

        _, reasons, rule = detector._assess(PAST_DUE.due, state.installments[KEY], state, True)
        seen = detector._observe(PAST_DUE.due, state.installments[KEY], state)

        assert reasons[0].code == "past_due"
        assert rule == pytest.approx(weight)
        assert seen.late == late_ones
