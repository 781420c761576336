"""Revenue inflation: ramps the quiet week or the usual windows came too late or too short for,
beside their benign twins (a young business that grows, a client that keeps paying, a holiday)."""

from __future__ import annotations

from math import log10

import pytest

from detectors.base import Finding
from detectors.revenue_inflation import (
    MAX_DAYS_PER_COUNTERPARTY,
    RevenueInflationDetector,
    RevenueInflationThresholds,
)
from detectors.state import BorrowerState
from tests.detectors.factories import at
from tests.detectors.test_revenue_inflation import (
    APPLICATION,
    QUIET_END,
    TIMER,
    _apply,
    _business,
    _by_time,
    _codes,
    _feed,
    _fire,
    _in,
    _judge,
    _out,
    _sent_on,
    _suppliers,
)
from topics.records import Transaction

#: Days a fast payer paid on: every day or two over the two weeks before the application.
FAST_DAYS = (-14, -12, -11, -9, -8, -6, -5, -3, -2, -1)


def _fast(
    names: tuple[str, ...] = ("fast-1", "fast-2"), days: tuple[int, ...] = FAST_DAYS
) -> list[Transaction]:
    """New payers paying 30 000 every day or two up to the application."""
    return [_in(f"{n}-{d}", n, "30000", at(days=d, hours=4)) for n in names for d in days]


def _spends_half(first_day: int = -14, last_day: int = 9) -> list[Transaction]:
    """The business buys more from its old suppliers while it sells more: half of the ramp's
    money is spent (not the money left idle a forgery shows)."""
    return [
        _out(f"more-{day}", f"supplier-{day % 2}", "22000", at(days=day, hours=10))
        for day in range(first_day, last_day)
    ]


def _no_tell_ramp(extra: list[Transaction]) -> list[Transaction]:
    return [*_business(), *_suppliers(), *_spends_half(), *_fast(), *extra]


def test_payers_that_paid_every_day_or_two_and_stopped_alert_days_after_the_application() -> None:
    # Nothing sent on, nothing left idle, nobody stopped before: no tell at the application.
    # From its day, each payer's silence at its pace is a chance of 0.5 a day (of its 10 days
    # the latest 8 are kept: 7 repeats in 14 days with inflows); four days of both: 10^-2.4,
    # under one in a hundred.
    findings = _judge(_no_tell_ramp([]))

    assert [f.episode for f in findings] == ["inflation:app-1", "inflation:app-1:confirmed"]
    alert, confirmed = findings
    assert alert.ts == at(days=4).replace(hour=0) < QUIET_END == confirmed.ts
    assert _codes([alert]) == [
        ["inflow_growth", "new_counterparty_share", "new_counterparties", "silent_at_pace"]
    ]
    share, pace = alert.reasons[1], alert.reasons[3]
    assert "sent nothing in the 4 days from it" in share.message
    assert pace.threshold == 2.0 and float(str(pace.observed)) == round(8 * -log10(0.5), 3)
    assert "paid on 16 days" in pace.message and "nothing in the 8 days" in pace.message
    assert _in_time_order_codes(_no_tell_ramp([])) == _codes(findings)


def _in_time_order_codes(events: list[Transaction]) -> list[list[str]]:
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    ordered = _by_time(events)
    _feed(detector, state, [e for e in ordered if e.ts < APPLICATION.ts])
    assert detector.on_login(APPLICATION, state, ()) == [TIMER]
    later = [e for e in ordered if e.ts >= APPLICATION.ts]
    return _codes(_fire(detector, state, [TIMER], later))


def _weekly_clients() -> list[Transaction]:
    """Two new clients paying 60 000 a week, the last before the application on day -3;
    after it they pay again on day 4 and day 5."""
    days = (-24, -17, -10, -3, 4)
    return [
        _in(f"{n}-{d + i}", n, "60000", at(days=d + i, hours=4))
        for i, n in enumerate(("weekly-1", "weekly-2"))
        for d in days
    ]


def _bursts() -> list[Transaction]:
    """Four new clients each paying a first invoice and its follow-ups on two or three days in
    a row (a burst, not a pace), silent for days after the application, then paying again."""
    days = {
        "burst-1": (-22, -18, -11, -10),
        "burst-2": (-15, -8, -1),
        "burst-3": (-12, -5, -4, -3, -2),
        "burst-4": (-5, -4, -3),
    }
    return [
        _in(f"{n}-{d}", n, "30000", at(days=d, hours=4))
        for n, paid in days.items()
        for d in (*paid, 2, 5)
    ]


def _holiday(resume: int = 6) -> list[Transaction]:
    """The same ramp, and then a week-long holiday: no inflow at all from the application's
    day until ``resume``, when customers, clients and the new payers pay again."""
    events = [
        *_business(last_day=0),
        *_business(first_day=resume, last_day=9),
        *_suppliers(),
        *_spends_half(),
        *_fast(),
    ]
    return events + [
        _in(f"{n}-back-{d}", n, "30000", at(days=d, hours=4))
        for n in ("fast-1", "fast-2")
        for d in range(resume, 9)
    ]


@pytest.mark.parametrize(
    "events",
    [
        _no_tell_ramp(
            [
                _in(f"{n}-again-{d}", n, "30000", at(days=d, hours=4))
                for n in ("fast-1", "fast-2")
                for d in (0, 2, 3, 5, 6, 8)
            ]
        ),
        [*_business(), *_suppliers(), *_spends_half(-24), *_weekly_clients()],
        _holiday(),
        [*_business(), *_suppliers(), *_spends_half(-22), *_bursts()],
    ],
    ids=[
        "the-new-payers-go-on-paying-at-their-pace",
        "weekly-clients-silent-for-days-then-paying-again",
        "a-holiday-stops-every-inflow-the-clock-with-them",
        "new-clients-paying-in-bursts-then-again",
    ],
)
def test_a_silence_that_is_usual_at_the_payers_pace_does_not_alert(
    events: list[Transaction],
) -> None:
    assert _judge(events) == []
    assert _in_time_order_codes(events) == []


def test_the_pace_verdict_is_data() -> None:
    detector, state = _apply(_no_tell_ramp([]), RevenueInflationThresholds(min_silence_surprise=9))

    findings = _fire(detector, state, [TIMER])

    # No early verdict: the quiet week's, a week after the application.
    assert [(f.episode, f.ts) for f in findings] == [("inflation:app-1", QUIET_END)]
    assert "silent_at_pace" not in _codes(findings)[0]


# --- a borrower new to the platform: its history split in two -----------------------------


def _young_business(days: int = 34) -> list[Transaction]:
    return [*_business(first_day=-days), *_suppliers(first_day=-days)]


def _young_ramp() -> list[Transaction]:
    """New payers in the later half of a 34-day history, their money sent on."""
    payers = [
        _in(f"{n}-{d}", n, "40000", at(days=d + i, hours=4))
        for i, n in enumerate(("yr-1", "yr-2", "yr-3"))
        for d in (-16, -12, -8, -5, -3)
    ]
    return [*payers, *_sent_on(payers)]


def test_a_young_borrowers_ramp_is_judged_over_the_later_half_of_its_history() -> None:
    # 34 days of history: the 28-day window would leave 6 days of baseline, under the 7 needed.
    detector, state = _apply([*_young_business(), *_young_ramp()])

    [alert, *_] = detector.on_timer(TIMER, state)

    assert isinstance(alert, Finding) and alert.ts == APPLICATION.ts
    growth = alert.reasons[0]
    assert "17 days before the application" in growth.message
    assert "forwarded" in _codes([alert])[0]


def _young_growth() -> list[Transaction]:
    """A young business's new clients in the later half of its history: they keep paying
    after the loan, and the business buys for them from its suppliers."""
    clients = [
        _in(f"{n}-{d}", n, "40000", at(days=d + i, hours=4))
        for i, n in enumerate(("yg-1", "yg-2", "yg-3"))
        for d in range(-16, 9, 3)
    ]
    return [*clients, *_spends_half(-16)]


@pytest.mark.parametrize(
    "events",
    [_young_business(), [*_young_business(), *_young_growth()]],
    ids=["a-new-business-first-weeks", "a-young-business-grows-and-its-clients-stay"],
)
def test_a_young_borrowers_benign_twins_do_not_alert(events: list[Transaction]) -> None:
    assert _judge(events) == []


# --- payers that pay on more days than the detector keeps per payer --------------------------


def _daily(name: str, first: int, last: int, amount: str = "40000") -> list[Transaction]:
    return [_in(f"{name}-{d}", name, amount, at(days=d, hours=5)) for d in range(first, last)]


def test_a_payer_paying_on_many_days_keeps_its_whole_sum() -> None:
    # Two payers paying every day for three weeks, more days than are kept per payer, then
    # silent in the week before the application: the days dropped are added to the first, so
    # the window still holds all they sent.
    payers = [*_daily("daily-1", -28, -6), *_daily("daily-2", -27, -6)]
    assert len(payers) > 2 * MAX_DAYS_PER_COUNTERPARTY
    detector, state = _apply([*_business(), *_suppliers(), *_spends_half(-28), *payers])

    [alert, *_] = detector.on_timer(TIMER, state)

    assert isinstance(alert, Finding)
    share = alert.reasons[1]
    # The 42-day window: 43 x 40 000 of 42 x 5 000 + 12 x 15 000 + 1 720 000.
    assert share.observed == round(1_720_000 / (210_000 + 180_000 + 1_720_000), 3)
    assert "stopped_before" in _codes([alert])[0]


def test_a_new_client_paying_every_day_and_going_on_is_no_ramp_alert() -> None:
    # The benign twin: the same payers go on paying after the application, and the business
    # buys for them instead of sending the money on.
    payers = [*_daily("daily-1", -28, 9), *_daily("daily-2", -27, 9)]
    spend = [
        _out(f"buy-{d}", f"supplier-{d % 2}", "60000", at(days=d, hours=10)) for d in range(-28, 9)
    ]

    assert _judge([*_business(), *_suppliers(), *payers, *spend]) == []


# --- the ramp's own days, and what is not new or not a ramp -------------------------------


def _weekday_clients() -> list[Transaction]:
    """Three new corporate clients paying 20 000 on every working day of the two weeks before
    the application (a Friday), skipping it, and from the Monday after on: they never pay at
    weekends, while the shop takes money every day."""
    days = [d for d in (*range(-14, 0), *range(3, 9)) if at(days=d).weekday() < 5]
    names = ("wd-1", "wd-2", "wd-3")
    return [_in(f"{n}-{d}", n, "20000", at(days=d, hours=4)) for n in names for d in days]


def test_a_weekend_is_no_silence_for_payers_that_never_paid_at_one() -> None:
    # Counted as days with inflows, the Friday and the weekend after the application would be
    # three silent days for each at a pace of one in two: 10^-2.7, an alert before Monday.
    events = [*_business(), *_suppliers(), *_spends_half(), *_weekday_clients()]

    assert _judge(events) == []
    assert _in_time_order_codes(events) == []


def _two_deals() -> list[Transaction]:
    """A small business (2 000 a day) gets two new clients' first orders on one day and a
    second order from one of them a week later, just before it applies; then nothing from
    them for a week."""
    return [
        *_business(daily=2000),
        _in("deal-1", "deal-a", "15000", at(days=-8, hours=4)),
        _in("deal-2", "deal-b", "15500", at(days=-8, hours=5)),
        _in("deal-3", "deal-b", "15000", at(days=-1, hours=4)),
    ]


def test_two_days_of_new_orders_are_no_ramp_of_their_own() -> None:
    # Over their own eight days the two clients would carry half the turnover, 1.8 times the
    # usual; over four weeks they are a fifth of it, too little for a ramp.
    assert _judge(_two_deals()) == []


def test_payers_first_seen_in_a_borrowers_first_two_weeks_are_not_new() -> None:
    # A history of 30 days: the shells first paid 10 days into it, when every regular client
    # is still showing up for the first time.
    events = [*_business(first_day=-30), *_shells_from(-20)]

    assert _judge(events) == []
    assert _codes(_judge(events, RevenueInflationThresholds(new_after_days=7))) == [
        ["inflow_growth", "new_counterparty_share", "new_counterparties", "short_history"]
    ]


def _shells_from(first: int) -> list[Transaction]:
    """Four new payers paying 45 000 on three days from ``first`` on."""
    return [
        _in(f"sh{i}-{day}", f"sh-{i}", "45000", at(days=day + i, hours=4))
        for i in range(4)
        for day in (first, first + 8, first + 15)
    ]


def _two_weeks_of_new_orders() -> list[Transaction]:
    """Two new clients order 20 000 each on four days over the two weeks before the application
    and go on ordering after it; the business spends as always (its rent and payroll, monthly,
    may fall outside any two weeks)."""
    days = (-16, -12, -8, -5, 1, 4, 7)
    return [
        _in(f"{n}-{d}", n, "20000", at(days=d, hours=4)) for n in ("two-1", "two-2") for d in days
    ]


def test_two_weeks_are_too_short_to_read_money_left_idle() -> None:
    # Over their own days, -16 to -5, the two carry 57 % of a turnover 2.5 times the usual,
    # unspent by two whole weeks of outflows; over four weeks they are too little for a ramp.
    assert _judge([*_business(), *_suppliers(), *_two_weeks_of_new_orders()]) == []
