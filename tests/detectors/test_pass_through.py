"""Pass-through (走账): money in and straight out, or out and back from elsewhere, repeated."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime

import orjson
import pytest

from detectors.base import FALSIFIED_FLOW, Finding
from detectors.pass_through import PassThroughDetector, PassThroughThresholds
from detectors.state import BorrowerState, day_of
from tests.detectors.factories import at, transaction
from topics.records import Transaction

ACCOUNT = "acc-1"
#: What the slot may cost in the changelog's JSON at most: 8 days of pass-throughs and the open
#: ones, of each of the two matchers (the tight and the ring's).
MAX_SLOT_BYTES = 2_000


def _tx(event_id: str, cp: str, amount: float, ts: datetime, direction: str) -> Transaction:
    return transaction(event_id, "b-1", ACCOUNT, cp, round(amount, 2), ts, direction)


def _rent(days: Iterable[int]) -> list[Transaction]:
    """900 to the landlord at 03:00 on each of ``days``."""
    return [_tx(f"rent-{day}", "landlord", 900, at(days=day, hours=3), "out") for day in days]


#: Six weeks of rent before day 0: a borrower with a history, whose payees can be told
#: settled or new (a borrower new to the platform has none: ``_feed(..., history=False)``).
RENT = _rent(range(-42, 0, 7))


def _feed(
    events: list[Transaction],
    state: BorrowerState | None = None,
    thresholds: PassThroughThresholds | None = None,
    *,
    history: bool = True,
) -> list[Finding]:
    """What the engine does before the hook (own accounts, the inflow by day), then the hook,
    after ``RENT`` unless ``history`` is off."""
    detector = PassThroughDetector(thresholds or PassThroughThresholds())
    state = state or BorrowerState(borrower_id="b-1")
    findings: list[Finding] = []
    if history and not state.slots.get("pass_through"):
        events = RENT + events
    for event in sorted(events, key=lambda e: e.ts):
        state.note_own_account(event.account_id)
        own = event.counterparty_id in state.own_accounts
        if event.direction == "in" and not own:
            state.inflows.add(day_of(event.ts.timestamp()), float(event.amount))
        for output in detector.on_transaction(event, state, ()):
            assert isinstance(output, Finding)
            findings.append(output)
    return findings


def _forward(day: float, amount: float, *, kept: float = 0.01, legs: int = 1) -> list[Transaction]:
    """``amount`` in from a fresh account at 10:00, out to others in ``legs`` within the hour,
    ``kept`` of it kept back (a fee, a skim)."""
    tag = f"{day:g}"
    events = [_tx(f"in-{tag}", f"payer-{tag}", amount, at(days=day, hours=1), "in")]
    share = (1.0 - kept) / legs
    for leg in range(legs):
        ts = at(days=day, hours=1, minutes=10 + 15 * leg)
        events.append(_tx(f"out-{tag}-{leg}", f"payee-{tag}-{leg}", amount * share, ts, "out"))
    return events


def _round_trip(day: float, amount: float, *, back: float = 0.985) -> list[Transaction]:
    """``amount`` out to X, ``back`` of it in from Y 80 minutes later (X, Y off the platform)."""
    tag = f"{day:g}"
    return [
        _tx(f"out-{tag}", f"x-{tag}", amount, at(days=day, hours=2), "out"),
        _tx(f"in-{tag}", f"y-{tag}", amount * back, at(days=day, hours=2, minutes=80), "in"),
    ]


def _business(rng: random.Random, days: range, daily: float) -> list[Transaction]:
    """An ordinary business: customer payments over the day, an expense or two."""
    events = []
    for day in days:
        for i in range(rng.randint(5, 15)):
            ts = at(days=day, hours=rng.uniform(0, 12))
            amount = daily / 10 * rng.lognormvariate(0, 0.4)
            events.append(_tx(f"c-{day}-{i}", f"cust-{rng.randrange(10**6)}", amount, ts, "in"))
        ts = at(days=day, hours=rng.uniform(0, 12))
        events.append(_tx(f"e-{day}", f"util-{rng.randrange(50)}", daily * 0.05, ts, "out"))
    return events


# --- the cases ----------------------------------------------------------------------------------


def test_money_forwarded_within_the_hour_on_three_days_alerts_once() -> None:
    events = [e for day in (0, 2, 5) for e in _forward(day, 30_000)]

    assert _feed(events[:-2]) == []  # two days are a coincidence
    [finding] = _feed(events)

    assert finding.detector == "pass_through" and finding.category == FALSIFIED_FLOW
    assert [r.code for r in finding.reasons] == [
        "pass_through_days",
        "pass_through_share",
        "pass_through_rate",
    ]
    assert finding.reasons[0].observed == 3 and finding.reasons[1].observed == 1.0
    assert "came in and left again" in finding.reasons[0].message
    assert set(finding.evidence) == {e.event_id for e in events}
    assert finding.ts == events[-1].ts and 0.5 <= finding.score <= 1.0


def test_a_round_trip_through_two_outside_accounts_on_three_days_alerts() -> None:
    events = [e for day in (1, 3, 4) for e in _round_trip(day, 48_000)]

    [finding] = _feed(events)

    assert "went out and came back from another account" in finding.reasons[0].message


def test_hop_amounts_that_vary_and_split_into_legs_still_pass_through() -> None:
    events = [
        *_forward(0, 30_000, kept=0.045, legs=3),
        *_forward(2, 12_500, kept=-0.015, legs=2),  # a little more out than in
        *_forward(6, 41_000, kept=0.0, legs=1),
    ]

    assert len(_feed(events)) == 1


def test_small_sums_repeated_often_alert_in_a_small_account() -> None:
    rng = random.Random(3)
    business = _business(rng, range(14), daily=900)
    conduit = [e for day in (0, 1, 3, 4, 6, 8) for e in _forward(day, rng.uniform(600, 1_500))]

    assert _feed(business) == []
    assert len(_feed(business + conduit)) == 1


def _through(
    day: float,
    amount: float,
    payer: str,
    payees: list[str],
    *,
    kept: float = 0.02,
    first: int = 12,
    apart: int = 20,
) -> list[Transaction]:
    """``amount`` in from ``payer`` at 11:00, out to ``payees`` from ``first`` minutes later,
    ``apart`` minutes from one to the next (within the hour by default)."""
    tag = f"{day:g}"
    events = [_tx(f"in-{tag}", payer, amount, at(days=day, hours=2), "in")]
    for leg, payee in enumerate(payees):
        ts = at(days=day, hours=2, minutes=first + apart * leg)
        events.append(_tx(f"out-{tag}-{leg}", payee, amount * (1 - kept) / len(payees), ts, "out"))
    return events


#: A conduit's five days: the same three accounts off the platform, each paying in one day and
#: paid the next (a ring's few accounts, used again and again on either side).
RING = [
    ("m-1", ["m-2"]),
    ("m-2", ["m-3", "m-1"]),
    ("m-3", ["m-1"]),
    ("m-1", ["m-3"]),
    ("m-2", ["m-1"]),
]


def test_a_small_conduit_in_a_busy_shop_alerts_by_its_accounts_on_both_sides() -> None:
    """A fortnight's takings of 14 x 30,000; the conduit moves 8,000 on five days: 10 % of
    the inflow, under ``min_share``, through three accounts that take both sides."""
    rng = random.Random(21)
    shop = _business(rng, range(14), daily=30_000)
    conduit = [
        e
        for day, (payer, payees) in zip((0, 2, 5, 7, 10), RING, strict=True)
        for e in _through(day, rng.uniform(7_000, 9_000), payer, payees)
    ]

    [finding] = _feed(shop + conduit)

    assert [r.code for r in finding.reasons][1:3] == ["pass_through_share", "pass_through_network"]
    assert 0.1 <= finding.reasons[1].observed < 0.2
    assert finding.reasons[2].observed == 2  # m-1 and m-2 by the third day
    assert _feed(shop + conduit, thresholds=PassThroughThresholds(min_network=0)) == []


def test_a_wholesaler_who_resells_within_the_hour_on_a_thin_margin_is_a_business() -> None:
    """The same sums on the same days, bought from suppliers and sold to clients at a 2 %
    margin within the hour: clients pay and suppliers are paid, no account takes both sides,
    and 10 % of the inflow is short of ``min_share``."""
    rng = random.Random(21)
    shop = _business(rng, range(14), daily=30_000)
    trades = [
        e
        for day, client, supplier in zip((0, 2, 5, 7, 10), "abcab", "xyzzx", strict=True)
        for e in _through(day, rng.uniform(7_000, 9_000), f"client-{client}", [f"supp-{supplier}"])
    ]

    assert _feed(shop + trades) == []


def _slow_through(
    day: float, amount: float, payer: str, payees: list[str], ratio: float
) -> list[Transaction]:
    """``amount`` in from ``payer`` at 11:00, ``ratio`` of it out to ``payees`` an hour
    apart, the last part two and a half hours later: a ring run by hand."""
    first = 150 - 60 * (len(payees) - 1)
    return _through(day, amount, payer, payees, kept=1 - ratio, first=first, apart=60)


#: Hop amounts of a ring run by hand: 9 % short, 4 % over, 11 % short ...
HOPS = (0.91, 1.04, 0.89, 0.93, 1.03)


def test_a_ring_whose_hops_vary_and_wait_alerts_by_its_accounts_on_both_sides() -> None:
    """Sums past the tight ones (5 % short, 2 % over) and slower at the median (90 min),
    matched by the ring's looser ones because the same accounts pay in one day and are paid
    another. (In a shop whose takings come in sums like the ring's, its legs meet takings
    by chance as often as each other at these tolerances: the ring is not seen.)"""
    rng = random.Random(21)
    shop = _business(rng, range(14), daily=10_000)
    ring = [
        e
        for day, (payer, payees), hop in zip((0, 2, 5, 7, 10), RING, HOPS, strict=True)
        for e in _slow_through(day, rng.uniform(7_000, 9_000), payer, payees, hop)
    ]

    [finding] = _feed(shop + ring)

    assert "the second sum 12% under to 5% over the first" in finding.reasons[0].message
    assert [r.code for r in finding.reasons][2] == "pass_through_network"
    assert _feed(shop + ring, thresholds=PassThroughThresholds(min_network=0)) == []


def test_a_loose_match_through_other_accounts_after_a_ring_stopped_alerts_nothing() -> None:
    """The ring alerts, passes money on two days more and stops; a sale and a purchase that
    meet loosely two days later make a third day beside the ring's accounts, but through
    none of them: no second alert."""
    flows = [*RING[:3], ("m-1", ["m-2"]), ("m-2", ["m-1"]), ("client-z", ["supp-q"])]
    events = [
        e
        for day, (payer, payees), hop in zip((0, 2, 5, 8, 10, 12), flows, (*HOPS, 0.9), strict=True)
        for e in _slow_through(day, 8_000, payer, payees, hop)
    ]

    [alert] = _feed(events)

    assert alert.ts < at(days=6)


def test_a_wholesaler_whose_margins_vary_is_not_matched_loosely() -> None:
    """The same sums and hours, bought from suppliers and sold to clients: no account on both
    sides, so the loose sums count for nothing."""
    rng = random.Random(21)
    shop = _business(rng, range(14), daily=10_000)
    days = (0, 2, 5, 7, 10)
    trades = [
        e
        for day, client, supplier, hop in zip(days, "abcab", "xyzzx", HOPS, strict=True)
        for e in _slow_through(
            day, rng.uniform(7_000, 9_000), f"client-{client}", [f"supp-{supplier}"], hop
        )
    ]

    assert _feed(shop + trades) == []


def test_one_trading_partner_on_both_sides_is_not_a_ring() -> None:
    """A dealer that both buys from and sells to the borrower, the sums loose: one account
    on both sides is a trading partner; a ring needs ``min_network`` (two)."""
    rng = random.Random(21)
    shop = _business(rng, range(14), daily=10_000)
    flows = [("dealer", ["supp-x"]), ("client-a", ["dealer"]), ("dealer", ["supp-y"])]
    trades = [
        e
        for day, (payer, payees), hop in zip((0, 2, 5, 7, 10), flows * 2, HOPS, strict=False)
        for e in _slow_through(day, rng.uniform(7_000, 9_000), payer, payees, hop)
    ]

    assert _feed(shop + trades) == []


def test_a_further_week_alerts_again_on_days_of_its_own() -> None:
    events = [e for day in (0, 1, 2, 3, 7, 8, 9) for e in _forward(day, 20_000)]

    findings = _feed(events)

    assert [f.episode for f in findings] == ["pass:2024-W09", "pass:2024-W10"]
    assert findings[1].ts == at(days=8, hours=1, minutes=10)  # days 3, 7, 8 are its own


def test_days_that_alerted_do_not_alert_again_the_next_week() -> None:
    """A chance match the week after a case's pass-throughs is not a new case."""
    events = [e for day in (0, 1, 2, 8) for e in _forward(day, 20_000)]

    assert [f.episode for f in _feed(events)] == ["pass:2024-W09"]


def test_chance_matches_after_a_conduit_stopped_do_not_borrow_its_figures() -> None:
    """A conduit alerts, stops; the busy business's chance matches of the next days, a tiny
    share of its inflow, are no new case, though the conduit's days are still in the lookback.
    A conduit that goes on is alerted again (the case above)."""
    rng = random.Random(4)
    business = _business(rng, range(16), daily=30_000)
    conduit = [e for day in (0, 1, 2) for e in _forward(day, 60_000)]
    chance = [e for day in (5, 8, 11) for e in _forward(day, 1_500)]

    [alert] = _feed(business + conduit + chance)

    assert alert.ts < at(days=3)
    lax = PassThroughThresholds(min_share=0.01)
    assert len(_feed(business + conduit + chance, thresholds=lax)) == 2  # the matches are there


def test_money_that_leaves_after_the_window_is_not_passed_through() -> None:
    events = []
    for day in (0, 2, 5):
        events += [
            _tx(f"in-{day}", f"p-{day}", 30_000, at(days=day, hours=0), "in"),
            _tx(f"out-{day}", f"q-{day}", 29_800, at(days=day, hours=7), "out"),
        ]

    assert _feed(events) == []
    slow = PassThroughThresholds(window_hours=8, max_median_minutes=480)
    assert len(_feed(events, thresholds=slow)) == 1


def test_sums_that_meet_slowly_are_a_trading_day_not_a_conduit() -> None:
    """The two sides meet within the window, but two hours apart at the median."""
    events = []
    for day in (0, 2, 4, 6):
        events += [
            _tx(f"in-{day}", f"p-{day}", 30_000, at(days=day, hours=0), "in"),
            _tx(f"out-{day}", f"q-{day}", 29_800, at(days=day, hours=2), "out"),
        ]

    assert _feed(events) == []
    assert len(_feed(events, thresholds=PassThroughThresholds(max_median_minutes=150))) == 1


# --- the benign twins ---------------------------------------------------------------------------


def test_a_supplier_refund_is_money_back_from_the_same_account() -> None:
    events = []
    for day in (0, 3, 6, 9):  # even a refund every few days
        events += [
            _tx(f"out-{day}", "supplier-1", 25_000, at(days=day, hours=1), "out"),
            _tx(f"back-{day}", "supplier-1", 24_900, at(days=day, hours=4), "in"),
        ]

    assert _feed(events) == []


def test_a_customer_refund_goes_back_to_the_payer() -> None:
    events = []
    for day in (0, 1, 2, 4):
        events += [
            _tx(f"in-{day}", f"cust-{day}", 8_000, at(days=day, hours=1), "in"),
            _tx(f"ref-{day}", f"cust-{day}", 8_000, at(days=day, hours=2), "out"),
        ]

    assert _feed(events) == []


def test_a_sweep_to_the_owners_savings_and_back_is_not_passed_through() -> None:
    """The savings account is not reported, so it is not known as the borrower's own; it is
    paid and pays back, so it is neither a payee of forwarded money nor a round trip."""
    events = [_tx("top-up", "savings", 20_000, at(days=0, hours=0), "in")]
    events.append(_tx("first-sweep", "savings", 10_000, at(days=0, hours=0.5), "out"))
    for day in range(1, 15):
        events += [
            _tx(f"sale-{day}", f"client-{day}", 30_000, at(days=day, hours=1), "in"),
            _tx(f"sweep-{day}", "savings", 30_000, at(days=day, hours=2), "out"),
        ]
        if day % 4 == 0:
            events.append(_tx(f"back-{day}", "savings", 20_000, at(days=day, hours=3), "in"))

    assert _feed(events) == []


def test_transfers_between_the_borrowers_own_accounts_are_not_turnover() -> None:
    events = []
    for day in range(10):
        events += [
            _tx(f"in-{day}", f"client-{day}", 30_000, at(days=day, hours=1), "in"),
            _tx(f"own-{day}", "acc-2", 30_000, at(days=day, hours=1.5), "out"),
            transaction(
                f"own-in-{day}", "b-1", "acc-2", ACCOUNT, "30000", at(days=day, hours=1.5), "in"
            ),
        ]

    assert _feed(events) == []


#: Three suppliers, and the days on which takings meet a bill to one of them.
SUPPLIERS = [f"supplier-{i}" for i in range(3)]
TAKING_DAYS = (36, 38, 41)


def _bills_and_takings_to(
    suppliers: list[str],
) -> tuple[list[Transaction], list[Transaction]]:
    """Five weeks of weekly bills to ``suppliers``, then takings of 20,000 that leave within
    the hour for one of them on each of ``TAKING_DAYS``."""
    bills = [
        _tx(f"bill-{day}-{i}", supplier, 4_000 + 500 * i, at(days=day, hours=5), "out")
        for day in range(0, 35, 7)
        for i, supplier in enumerate(suppliers)
    ]
    takings = [
        e
        for day, supplier in zip(TAKING_DAYS, suppliers, strict=True)
        for e in _through(day, 20_000, "c", [supplier])
    ]
    return bills, takings


def test_takings_that_meet_the_bills_of_settled_suppliers_are_a_business() -> None:
    """A client pays, and within the hour the borrower pays nearly as much to a supplier it
    has paid every week for a month: on three days, the takings meet the bills by chance or
    by habit, not money passed on. The same sums leaving for accounts never paid alert."""
    bills, settled = _bills_and_takings_to(SUPPLIERS)
    fresh = [e for day in TAKING_DAYS for e in _through(day, 20_000, "c", [f"new-{day}"])]

    assert _feed(bills + settled) == []
    assert len(_feed(bills + fresh)) == 1
    # The suppliers paid for the first time, by a borrower that paid its rent all along: not
    # settled yet.
    assert len(_feed(_rent(range(0, 35, 7)) + settled)) == 1


def test_a_young_history_asks_a_fourth_day_of_sums_that_met() -> None:
    """A borrower new to the platform has no payees old enough to tell settled from new: three
    days on which takings met bills within the hour are as likely its first weeks of trade as
    a conduit, so a fourth day is asked for. With a history, three days alert (the payees are
    new to it)."""
    events = [e for day in (0, 2, 5, 6) for e in _forward(day, 30_000)]

    assert _feed(events[:-2], history=False) == []
    [finding] = _feed(events, history=False)

    assert finding.reasons[0].observed == 4
    assert len(_feed(events[:-2])) == 1


def test_a_young_history_alerts_on_three_days_through_accounts_on_both_sides() -> None:
    """The twin: a young conduit whose few accounts pay in one day and are paid the next is
    no business's clients and suppliers, history or not."""
    conduit = [
        e
        for day, (payer, payees) in zip((0, 2, 5), RING, strict=False)
        for e in _through(day, 20_350, payer, payees)
    ]

    [finding] = _feed(conduit, history=False)

    assert finding.reasons[0].observed == 3
    assert "pass_through_network" in [r.code for r in finding.reasons]


def test_payees_too_many_to_tell_apart_settle_nothing() -> None:
    """A borrower paying a hundred accounts a fortnight fills its payee filter past a third:
    a supplier read as settled there could be any new account, so the sums are judged as
    before the payees were remembered."""
    bills, settled = _bills_and_takings_to(SUPPLIERS)
    many = [
        _tx(f"pay-{day}-{i}", f"payee-{day}-{i}", 300, at(days=day, hours=6), "out")
        for day in range(0, 28, 2)
        for i in range(14)
    ]

    assert _feed(bills + settled) == []
    assert len(_feed(bills + many + settled)) == 1


@pytest.mark.parametrize("seed", range(12))
def test_a_wholesaler_pays_its_suppliers_the_day_it_is_paid(seed: int) -> None:
    """High velocity, many counterparties, invoices that do not match the receipts."""
    rng = random.Random(seed)
    events = []
    for day in range(28):
        for i in range(rng.randint(2, 6)):
            ts = at(days=day, hours=rng.uniform(0, 8))
            amount = rng.lognormvariate(10, 0.6)
            events.append(_tx(f"r-{day}-{i}", f"client-{rng.randrange(40)}", amount, ts, "in"))
        for i in range(rng.randint(2, 6)):
            ts = at(days=day, hours=rng.uniform(0, 9))
            amount = rng.lognormvariate(10, 0.6) * 0.9
            events.append(_tx(f"s-{day}-{i}", f"supplier-{rng.randrange(30)}", amount, ts, "out"))

    assert _feed(events) == []


def test_payroll_day_pays_out_what_came_in_once_a_month() -> None:
    rng = random.Random(5)
    events = _business(rng, range(60), daily=4_000)
    for day in (10, 40):
        events += [
            _tx(f"order-{day}", f"corp-{day}", 52_000, at(days=day, hours=1), "in"),
            _tx(f"payroll-{day}", "payroll-agent", 50_000, at(days=day, hours=2), "out"),
        ]

    assert _feed(events) == []


def test_card_settlement_net_of_the_acquirers_fees_is_not_passed_through() -> None:
    """The acquirer pays the day's receipts gross and takes its fees and chargebacks back."""
    events = []
    for day in range(21):
        gross = 20_000 + 500 * (day % 7)
        events += [
            _tx(f"settle-{day}", "acquirer", gross, at(days=day, hours=0.5), "in"),
            _tx(f"fees-{day}", "acquirer", gross * 0.006, at(days=day, hours=1), "out"),
            _tx(f"cb-{day}", "acquirer", gross * 0.97, at(days=day, hours=2), "out"),
        ]

    assert _feed(events) == []


def test_a_few_chance_matches_in_a_busy_account_weigh_too_little() -> None:
    rng = random.Random(11)
    busy = _business(rng, range(14), daily=200_000)
    chance = [e for day in (0, 4, 8) for e in _forward(day, 9_000)]

    assert _feed(busy + chance) == []
    lax = PassThroughThresholds(min_share=0.01, min_hit_rate=0.01)
    [first, *_] = _feed(busy + chance, thresholds=lax)
    assert set(first.evidence) == {e.event_id for e in chance}


# --- memory -------------------------------------------------------------------------------------


def test_days_of_pass_throughs_past_the_lookback_are_forgotten_at_a_new_fortnight() -> None:
    """A conduit's days are kept for its lookback, not for ever: a borrower at rest after it
    carries its payees, not its old pass-throughs."""
    state = BorrowerState(borrower_id="b-1")
    conduit = [e for day in (0, 2, 5) for e in _forward(day, 30_000)]

    assert len(_feed(conduit, state)) == 1 and state.slots["pass_through"]["h"]
    _feed(_rent((20, 34)), state)

    assert state.slots["pass_through"]["h"] == []


def test_the_slot_stays_small_whatever_the_traffic() -> None:
    rng = random.Random(2)
    state = BorrowerState(borrower_id="b-1")
    events = _business(rng, range(60), daily=50_000)
    events += [
        e for day in range(0, 60, 2) for e in _forward(day, rng.uniform(5_000, 90_000), legs=3)
    ]
    events += [e for day in range(1, 60, 3) for e in _round_trip(day, rng.uniform(5_000, 90_000))]

    _feed(events, state)

    assert len(orjson.dumps(state.slots["pass_through"])) <= MAX_SLOT_BYTES
