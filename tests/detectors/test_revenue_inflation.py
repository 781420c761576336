"""Revenue inflation: growth before an application, carried by new payers who then vanish."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from detectors.base import FALSIFIED_FLOW, Finding, alert_id, severity_for
from detectors.clock import Timer
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.revenue_inflation import (
    MAX_FRESH,
    MAX_YOUNG,
    RevenueInflationDetector,
    RevenueInflationThresholds,
)
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, login, payment, transaction
from topics.names import Source
from topics.records import Login, Transaction

ACCOUNT = "acc-1"
APPLICATION = login("app-1", at(), device="phone-1", ip="10.0.0.1", action="loan_application")
TIMER = Timer(at().timestamp(), "b-1", "revenue_inflation", "app-1")
#: The quiet week ends at the start of the seventh UTC day after the application's day.
QUIET_END = datetime(2024, 3, 8, tzinfo=UTC)
QUIET_TIMER = Timer(QUIET_END.timestamp(), "b-1", "revenue_inflation", "quiet:app-1")
#: Stated cap of one borrower's memory: 64 hashes, 16 young payers with 8 days each, 16
#: payees, the trading partners' days, and pending applications.
MAX_SLOT_BYTES = 6_000


def _in(event_id: str, counterparty: str, amount: float | str, ts: datetime) -> Transaction:
    return transaction(event_id, "b-1", ACCOUNT, counterparty, amount, ts, "in")


def _out(event_id: str, counterparty: str, amount: float | str, ts: datetime) -> Transaction:
    return transaction(event_id, "b-1", ACCOUNT, counterparty, amount, ts, "out")


def _feed(
    detector: RevenueInflationDetector, state: BorrowerState, events: list[Transaction]
) -> None:
    """What the engine does before the hook (own accounts, daily inflows), then the hook."""
    for event in events:
        state.note_own_account(event.account_id)
        if event.direction == "in" and event.counterparty_id not in state.own_accounts:
            state.inflows.add(day_of(event.ts.timestamp()), float(event.amount))
        assert detector.on_transaction(event, state, ()) == []


def _business(first_day: int = -84, last_day: int = 9, daily: int = 5000) -> list[Transaction]:
    """``daily`` a day from small customers, and two old clients paying 15 000 a week; the
    business goes on after the application."""
    events = []
    for day in range(first_day, last_day):
        small = daily * 2 // 5
        events.append(_in(f"s-{day}-a", f"cust-{day % 40}", small, at(days=day, hours=1)))
        events.append(_in(f"s-{day}-b", f"cust-{(day + 7) % 40}", daily - small, at(days=day)))
        if day % 7 == 0:
            events.append(_in(f"a-{day}", "client-a", "15000", at(days=day, hours=2)))
            events.append(_in(f"b-{day}", "client-b", "15000", at(days=day, hours=3)))
    return events


def _shells(
    names: tuple[str, ...] = ("shell-1", "shell-2", "shell-3", "shell-4"),
    days: tuple[int, ...] = (-20, -12, -5),
) -> list[Transaction]:
    """Payers never seen before, each paying 45 000 on three days of the last three weeks."""
    return [
        _in(f"{name}-{day + i}", name, "45000", at(days=day + i, hours=4 + i))
        for i, name in enumerate(names)
        for day in days
    ]


def _by_time(events: list[Transaction]) -> list[Transaction]:
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def _apply(
    events: list[Transaction], thresholds: RevenueInflationThresholds | None = None
) -> tuple[RevenueInflationDetector, BorrowerState]:
    """Every transaction first (the transactions topic ran ahead), then the application."""
    detector = RevenueInflationDetector(thresholds or RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    _feed(detector, state, _by_time(events))
    assert detector.on_login(APPLICATION, state, ()) == [TIMER]
    return detector, state


def _fire(
    detector: RevenueInflationDetector,
    state: BorrowerState,
    timers: list[Timer],
    events: list[Transaction] = (),  # type: ignore[assignment]
) -> list[Finding]:
    """Fire ``timers`` and the timers they arm in due order, each once the ``events`` before
    it are fed (as a live worker does); then the rest of the events."""
    findings: list[Finding] = []
    pending = sorted(timers, key=lambda t: (t.due, t.key))
    rest = list(events)
    while pending:
        timer = pending.pop(0)
        _feed(detector, state, [e for e in rest if e.ts.timestamp() < timer.due])
        rest = [e for e in rest if e.ts.timestamp() >= timer.due]
        for out in detector.on_timer(timer, state):
            if isinstance(out, Timer):
                assert out.key in (f"quiet:{timer.key}", f"pace:{timer.key.split(':')[-1]}")
                pending = sorted([*pending, out], key=lambda t: (t.due, t.key))
            else:
                findings.append(out)
    _feed(detector, state, rest)
    assert all(isinstance(f, Finding) for f in findings)
    return findings


def _judge(
    events: list[Transaction], thresholds: RevenueInflationThresholds | None = None
) -> list[Finding]:
    """Every timer in turn: the ramp at the application, the pace's, then the quiet week."""
    detector, state = _apply(events, thresholds)
    return _fire(detector, state, [TIMER])


def _in_time_order(events: list[Transaction]) -> list[Finding]:
    """As a live worker sees it: each timer fires once every stream has passed it."""
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    ordered = _by_time(events)
    _feed(detector, state, [e for e in ordered if e.ts < APPLICATION.ts])
    assert detector.on_login(APPLICATION, state, ()) == [TIMER]
    return _fire(detector, state, [TIMER], [e for e in ordered if e.ts >= APPLICATION.ts])


def _codes(findings: list[Finding]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings]


def test_inflation_alerts_a_week_after_the_application_with_every_reason() -> None:
    [finding] = _judge([*_business(), *_shells()])

    assert finding.detector == "revenue_inflation"
    assert finding.category == FALSIFIED_FLOW
    assert finding.episode == "inflation:app-1"
    assert finding.alert_id == alert_id("revenue_inflation", "b-1", "inflation:app-1")
    assert finding.ts == QUIET_END
    assert _codes([finding]) == [["inflow_growth", "new_counterparty_share", "new_counterparties"]]
    growth, share, parties = finding.reasons
    # The ramp's own days, -20 to -2: 19 x 5 000 + 4 x 15 000 + 12 x 45 000 = 695 000,
    # 36 579 a day. Baseline: 56 days of 5 000 and 16 client payments of 15 000 = 520 000,
    # 9 286 a day.
    assert (growth.observed, growth.threshold) == (round(695_000 / 19 / (520_000 / 56), 3), 1.4)
    assert "19 days to 2 days before the application" in growth.message
    assert "56 days before" in growth.message
    assert (share.observed, share.threshold) == (round(540_000 / 695_000, 3), 0.45)
    assert "sent nothing in the 7 days from it" in share.message
    assert (parties.observed, parties.threshold) == (4, 2)
    assert "shell-1, shell-2, shell-3, shell-4" in parties.message
    assert finding.evidence == ("app-1", "shell-1--20", "shell-2--19", "shell-3--18", "shell-4--17")
    expected = 0.6 + 0.15 * 1.0 + 0.15 * ((540 / 695 - 0.45) / 0.55) + 0.1 * 2 / 3
    assert finding.score == pytest.approx(expected, abs=1e-3)


def test_the_timers_are_armed_in_turn_and_fire_once() -> None:
    detector, state = _apply([*_business(), *_shells()])

    assert detector.pending_timers(state) == [TIMER]
    assert detector.on_timer(TIMER, state) == [QUIET_TIMER]
    assert detector.pending_timers(state) == [QUIET_TIMER]
    assert detector.on_timer(TIMER, state) == []
    assert len(detector.on_timer(QUIET_TIMER, state)) == 1
    assert detector.pending_timers(state) == []
    assert detector.on_timer(QUIET_TIMER, state) == []
    assert detector.on_login(APPLICATION, state, ()) == []  # a redelivered application


def test_no_ramp_arms_no_second_timer() -> None:
    detector, state = _apply(_business())

    assert detector.on_timer(TIMER, state) == []
    assert detector.pending_timers(state) == []


@pytest.mark.parametrize(
    "event",
    [
        login("app-x", at(), device="p", ip="10.0.0.1", action="loan_application", success=False),
        login("lg-x", at(), device="p", ip="10.0.0.1"),
        login("dd-x", at(), device="p", ip="10.0.0.1", action="drawdown"),
    ],
    ids=["failed-application", "login", "drawdown"],
)
def test_only_a_successful_application_arms_a_timer(event: Login) -> None:
    detector = RevenueInflationDetector(RevenueInflationThresholds())

    assert detector.on_login(event, BorrowerState(borrower_id="b-1"), ()) == []


def test_inflows_after_the_quiet_week_do_not_change_the_verdict() -> None:
    # The transactions topic ran ahead: the shells and a new payer pay again after the week.
    after = [
        *[_in(f"late-{d}", "shell-1", "900000", at(days=d, hours=2)) for d in range(7, 10)],
        *[_in(f"new-{d}", "shell-9", "300000", at(days=d, hours=3)) for d in range(0, 10)],
    ]
    [on_time] = _in_time_order([*_business(), *_shells(), *after])

    assert _judge([*_business(), *_shells(), *after]) == [on_time]
    assert _judge([*_business(), *_shells()]) == [on_time]


@pytest.mark.parametrize(
    ("amount", "alerts"),
    [("45000", False), ("6000", False), ("4000", True)],
    ids=["large", "at-least-the-followup-floor", "below-the-followup-floor"],
)
def test_payers_that_keep_paying_after_the_application_are_genuine(
    amount: str, alerts: bool
) -> None:
    # Two of the four new payers pay again during the quiet week: what is left of the ramp
    # (two payers, 270 000 of 800 000) is too little.
    again = [
        _in("again-1", "shell-1", amount, at(days=2)),
        _in("again-2", "shell-3", amount, at(days=6)),
    ]

    assert len(_judge([*_business(), *_shells(), *again])) == int(alerts)
    assert len(_in_time_order([*_business(), *_shells(), *again])) == int(alerts)


def test_a_short_history_is_compared_with_what_there_is_and_says_so() -> None:
    # Fifteen days of history before the shells' 19 days (fewer than a full 56-day baseline).
    [finding] = _judge([*_business(first_day=-35), *_shells()])

    assert _codes([finding]) == [
        ["inflow_growth", "new_counterparty_share", "new_counterparties", "short_history"]
    ]
    growth, _, _, short = finding.reasons
    # The shells' days: 695 000. Baseline: 15 x 5 000 + 3 x 30 000 (days -35, -28, -21).
    assert growth.observed == round(695_000 / 19 / (165_000 / 15), 3)
    assert (short.observed, short.threshold) == (15, 7)
    assert "only 15 days" in short.message


def _long_ramp() -> list[Transaction]:
    """New payers whose first transfers came five to six weeks before the application."""
    return _shells(names=("slow-1", "slow-2", "slow-3", "slow-4"), days=(-40, -20, -12, -5))


def test_payers_first_seen_up_to_six_weeks_before_count_as_new() -> None:
    [finding] = _judge([*_business(), *_long_ramp()])

    assert "slow-1, slow-2, slow-3, slow-4" in finding.reasons[2].message
    assert finding.evidence == ("app-1", "slow-1--40", "slow-2--39", "slow-3--38", "slow-4--37")


def _early_ramp() -> list[Transaction]:
    """A six-week ramp that did most of its work more than four weeks before the application:
    in the last four weeks only two of its payers still sent money."""
    events = _shells(names=("slow-1", "slow-2", "slow-3", "slow-4"), days=(-41, -33))
    return events + _shells(names=("slow-1", "slow-2"), days=(-15, -6))


def test_a_six_week_ramp_that_stopped_early_is_judged_over_its_own_days() -> None:
    [finding] = _judge([*_business(), *_early_ramp()])

    growth, share, parties = finding.reasons
    # The new payers' days, -41 to -5: 37 x 5 000 + 5 x 30 000 (the old clients) + 12 x 45 000
    # = 875 000, against 43 x 5 000 + 7 x 30 000 = 425 000 in the 43 days of history before.
    assert growth.observed == round((875_000 / 37) / (425_000 / 43), 3)
    assert "37 days to 5 days before the application" in growth.message
    assert share.observed == round(540_000 / 875_000, 3)
    assert parties.observed == 4
    assert _judge([*_business(), *_early_ramp()], RevenueInflationThresholds(ramp_days=28)) == []


def _trading_partner(outflow: str = "60000") -> list[Transaction]:
    """A partner the borrower buys from and sells to: it pays in 150 000 every week."""
    events = [_out("buy-0", "partner-x", outflow, at(days=-86))]
    events += [
        _in(f"sell-{d}", "partner-x", "150000", at(days=d, hours=5)) for d in range(-84, 9, 7)
    ]
    return events


def test_money_from_a_trading_partner_is_not_turnover() -> None:
    # With the partner's 300 000 in the shells' days as turnover their share would be 54 %.
    # Nothing is spent in the window (the one outflow is the partner's, before it): the ramp
    # alerts at the application, and the quiet week confirms it.
    alert, finding = _judge([*_business(), *_shells(), *_trading_partner()])
    assert alert.episode == "inflation:app-1" and "unspent" in _codes([alert])[0]
    assert finding.episode == "inflation:app-1:confirmed"

    growth, share, _ = finding.reasons
    assert growth.observed == round(695_000 / 19 / (520_000 / 56), 3)
    assert share.observed == round(540_000 / 695_000, 3)
    assert "partner-x" not in finding.reasons[2].message


def test_one_off_payers_of_a_busy_business_do_not_push_the_ramp_out() -> None:
    # More new one-off payers than young payers are remembered, most first seen after the
    # shells: the smallest senders are forgotten first, not the earliest.
    one_offs = [
        _in(f"one-{i}", f"walk-in-{i}", "10500", at(days=-27 + i * 0.9, hours=6))
        for i in range(2 * MAX_YOUNG)
    ]
    [finding] = _judge([*_business(), *_shells(), *one_offs])

    assert {"shell-1--20", "shell-2--19", "shell-3--18", "shell-4--17"} <= set(finding.evidence)


def _sale_season() -> list[Transaction]:
    # Hundreds of new small customers in the weeks before the application, fewer after it.
    rng = random.Random(4)
    return [
        _in(f"sale-{i}", f"buyer-{i}", round(rng.uniform(50, 900), 2), at(days=-28 + i / 20))
        for i in range(600)
    ]


def _one_big_contract() -> list[Transaction]:
    # A new client pays a big contract in three instalments and is done.
    return [_in(f"big-{day}", "bigco", "150000", at(days=day, hours=4)) for day in (-25, -15, -5)]


def _genuine_growth(last_day: int = 9) -> list[Transaction]:
    # Four new clients join over a month and keep paying twice a week after the loan.
    return [
        _in(f"g{i}-{day}", f"grow-{i}", "30000", at(days=day, hours=4))
        for i in range(4)
        for day in range(-30 + 6 * i, last_day, 3)
        if day % 7 not in (1, 2)  # weekdays: day 0 is a Friday
    ]


def _seasonal_recovery() -> list[Transaction]:
    # The same customers and clients, after a slow season in the baseline: a quiet month
    # at a fifth of the takings, then back to normal and a busy month (old clients pay more).
    return [
        *_business(first_day=-84, last_day=-56),
        *_business(first_day=-56, last_day=-28, daily=1000),
        *_business(first_day=-28, last_day=9, daily=9000),
    ]


def _clients_from_before_the_window() -> list[Transaction]:
    # Four new clients that started more than six weeks ago, then grew.
    events = []
    for i in range(4):
        for day in (-60, -53, -46):
            events.append(_in(f"g{i}-{day}", f"grow-{i}", "12000", at(days=day + i, hours=4)))
        for day in (-20, -12, -5):
            events.append(_in(f"g{i}-{day}", f"grow-{i}", "45000", at(days=day + i, hours=4)))
    return events


def _own_account_transfers() -> list[Transaction]:
    events = [transaction("open-2", "b-1", "acc-2", "cust-1", "100", at(days=-90), "in")]
    for i in range(4):
        for day in (-20 + i, -12 + i, -5 + i):
            events.append(_in(f"own-{i}-{day}", "acc-2", "45000", at(days=day, hours=4)))
    return events


@pytest.mark.parametrize(
    "events",
    [
        [*_business()],
        [*_business(), *_sale_season()],
        [*_business(), *_one_big_contract()],
        [*_business(), *_genuine_growth()],
        _seasonal_recovery(),
        [*_business(), *_clients_from_before_the_window()],
        [*_business(first_day=-12), *_shells(days=(-6, -4, -2))],
        [*_business(), *_own_account_transfers()],
    ],
    ids=[
        "steady-business",
        "sale-season-many-small-customers",
        "one-big-new-contract",
        "genuine-growth-clients-keep-paying",
        "seasonal-recovery",
        "clients-started-before-the-ramp",
        "too-little-history",
        "own-account-transfers",
    ],
)
def test_traps_do_not_alert(events: list[Transaction]) -> None:
    assert _judge(events) == []
    assert _in_time_order(events) == []


def test_the_genuine_growth_is_a_ramp_until_its_clients_pay_again() -> None:
    # The trap above is quiet for the right reason: at the application it looks like a ramp.
    detector, state = _apply([*_business(last_day=0), *_genuine_growth(last_day=0)])

    outputs = detector.on_timer(TIMER, state)
    assert QUIET_TIMER in outputs and not any(isinstance(o, Finding) for o in outputs)
    assert len(_fire(detector, state, outputs)) == 1  # type: ignore[arg-type]


CODES = ["inflow_growth", "new_counterparty_share", "new_counterparties"]


@pytest.mark.parametrize(
    ("events", "thresholds", "codes"),
    [
        (
            [*_business(), *_sale_season()],
            # One-off buyers are silent before the application: no tell left but that one.
            RevenueInflationThresholds(
                min_new_share=0.0, min_new_counterparties=0, min_silent_days=30
            ),
            CODES,
        ),
        (
            [*_business(), *_one_big_contract()],
            RevenueInflationThresholds(min_new_counterparties=1),
            CODES,
        ),
        (
            [*_business(), *_genuine_growth()],
            RevenueInflationThresholds(quiet_days=0),
            CODES,
        ),
        (
            [*_business(), *_clients_from_before_the_window()],
            RevenueInflationThresholds(ramp_days=63, baseline_days=28),
            CODES,
        ),
        ([*_business(), *_long_ramp()], RevenueInflationThresholds(ramp_days=28), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(min_new_counterparties=5), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(min_growth=4.0), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(min_new_share=0.8), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(large_inflow=50_000), []),
        ([*_business(-40), *_shells()], RevenueInflationThresholds(min_baseline_days=21), []),
        (
            [*_business(), *_shells(), *_trading_partner(outflow="4000")],
            # A small payment out does not make a partner: its 300 000 in the shells' days is
            # turnover, and their share falls from 78 % to 54 %.
            RevenueInflationThresholds(min_new_share=0.6),
            [],
        ),
        (
            [
                *_business(),
                *_shells(),
                *[_in("a", "shell-1", "4000", at(days=3)), _in("b", "shell-3", "4000", at(days=4))],
            ],
            RevenueInflationThresholds(min_followup_inflow=3000),
            [],
        ),
    ],
    ids=[
        "growth-alone",
        "one-new-counterparty-enough",
        "no-quiet-week",
        "longer-ramp",
        "shorter-ramp",
        "five-counterparties",
        "more-growth",
        "bigger-share",
        "larger-inflows",
        "more-baseline",
        "partner-outflow-below-the-floor",
        "lower-followup-floor",
    ],
)
def test_thresholds_are_data(
    events: list[Transaction], thresholds: RevenueInflationThresholds, codes: list[str]
) -> None:
    assert _codes(_judge(events, thresholds)) == ([codes] if codes else [])


def test_state_survives_json_with_identical_behaviour() -> None:
    detector, state = _apply([*_business(last_day=0), *_shells()])
    assert detector.on_timer(TIMER, state) == [QUIET_TIMER]
    reloaded = BorrowerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    later = [_in(f"late-{d}", f"new-{d}", "30000", at(days=d)) for d in range(1, 4)]
    later += [
        _out("paid-1", "supplier-1", "20000", at(days=2)),
        _in("x", "shell-2", "9000", at(days=3)),
    ]

    assert detector.pending_timers(reloaded) == detector.pending_timers(state) == [QUIET_TIMER]
    _feed(detector, state, later)
    _feed(detector, reloaded, later)
    assert orjson.dumps(reloaded.to_dict()) == orjson.dumps(state.to_dict())
    assert detector.on_timer(QUIET_TIMER, reloaded) == detector.on_timer(QUIET_TIMER, state)


def test_memory_written_by_the_first_version_is_read() -> None:
    # Version 1 kept no payees, trading-partner days or quiet weeks.
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    state.slots["revenue_inflation"] = {"young": {}, "old": "", "sw": 0, "apps": [], "done": []}
    _feed(detector, state, _by_time([*_business(), *_shells()]))
    assert detector.on_login(APPLICATION, state, ()) == [TIMER]

    assert detector.on_timer(TIMER, state) == [QUIET_TIMER]
    assert len(detector.on_timer(QUIET_TIMER, state)) == 1


def test_memory_stays_bounded() -> None:
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    rng = random.Random(2)
    largest = 0
    for i in range(10_000):
        ts = at(hours=i * 0.6)
        counterparty = f"payer-{rng.randrange(5_000)}"
        if i % 3:
            _feed(detector, state, [_in(f"e-{i}", counterparty, 20_000 + i, ts)])
        else:  # paying a payer makes it a partner, whose later inflows are remembered by day
            _feed(detector, state, [_out(f"o-{i}", counterparty, 20_000, ts)])
        if i % 100 == 0:
            app = login(f"app-{i}", ts, device="p", ip="1.1.1.1", action="loan_application")
            for timer in detector.on_login(app, state, ()):
                assert isinstance(timer, Timer)
                detector.on_timer(timer, state)  # a ramp leaves a quiet week pending
        largest = max(largest, len(orjson.dumps(state.slots[detector.name])))

    assert largest < MAX_SLOT_BYTES


def test_typical_memory_is_small() -> None:
    _, steady = _apply(_business())
    _, inflated = _apply([*_business(), *_shells()])

    assert len(orjson.dumps(steady.slots["revenue_inflation"])) < 100
    assert len(orjson.dumps(inflated.slots["revenue_inflation"])) < 450


#: The detector's own contract events (a small weekly inflow since December, three new payers
#: in February, an application on 3 March, and nothing from those payers in the week after
#: it), which the shared contract test runs every detector over.
CONTRACT_EVENTS: list[Input] = RevenueInflationDetector.contract_events()


async def _through_engine(order: list[Input]) -> list[tuple[str, str, str]]:
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])
    alerts = []
    for item in order:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts
    # The quiet week's timer is armed by the application's: the next call fires it.
    alerts += engine.advance().alerts
    return [(a.borrower_id, a.episode, str([r.observed for r in a.reasons])) for a in alerts]


LATE: list[Input] = [
    Input(0, Source.TRANSACTIONS, transaction("r-late", "r-9", "ra-9", "z", "1", at(days=50))),
    Input(0, Source.LOGINS, login("r-late-l", at(days=50), device="d", ip="10.0.0.1")),
    Input(0, Source.REPAYMENTS, payment("r-late-p", at(days=50), "1", borrower_id="r-9")),
]


async def test_contract_events_alert_through_the_engine() -> None:
    in_time_order = sorted([*CONTRACT_EVENTS, *LATE], key=lambda i: i.record.ts)

    alerts = await _through_engine(in_time_order)

    # At the application (its payers stopped 12 days before it), then confirmed.
    assert [a[:2] for a in alerts] == [
        ("r-1", "inflation:r-app"),
        ("r-1", "inflation:r-app:confirmed"),
    ]


async def test_no_confirmation_before_the_quiet_week_has_passed() -> None:
    until = [
        Input(0, source, record)
        for source, record in (
            (Source.TRANSACTIONS, transaction("r-t", "r-9", "ra-9", "z", "1", at(days=8))),
            (Source.LOGINS, login("r-l", at(days=8), device="d", ip="10.0.0.1")),
            (Source.REPAYMENTS, payment("r-p", at(days=8), "1", borrower_id="r-9")),
        )
    ]
    in_time_order = sorted([*CONTRACT_EVENTS, *until], key=lambda i: i.record.ts)

    assert [a[:2] for a in await _through_engine(in_time_order)] == [("r-1", "inflation:r-app")]


async def test_the_verdict_does_not_depend_on_how_the_topics_interleave() -> None:
    # The logins topic lags: every transaction (some stamped after the application, one of a
    # new payer in the quiet week) is processed before the application itself.
    after = [
        Input(
            0,
            Source.TRANSACTIONS,
            transaction(f"r-x{d}", "r-1", "ra-1", "r-p9", "500000", at(days=d, hours=5), "in"),
        )
        for d in (2, 3, 4, 12)
    ]
    events = sorted([*CONTRACT_EVENTS, *after, *LATE], key=lambda i: i.record.ts)
    transactions_first = sorted(events, key=lambda i: i.source != Source.TRANSACTIONS)

    assert await _through_engine(transactions_first) == await _through_engine(events)
    assert len(await _through_engine(events)) == 2


# --- alerts at the application, and the confirmation that raises them -----------------------


def _suppliers(first_day: int = -84, last_day: int = 9, daily: int = 3000) -> list[Transaction]:
    """The business spends: ``daily`` a day to two suppliers it has always paid."""
    return [
        _out(f"sup-{day}", f"supplier-{day % 2}", daily, at(days=day, hours=9))
        for day in range(first_day, last_day)
    ]


def _sent_on(
    payers: list[Transaction], sinks: tuple[str, ...] = ("sink-1", "sink-2"), share: float = 0.9
) -> list[Transaction]:
    """Each forged transfer sent on the next day to one of a few payees never paid before."""
    return [
        _out(
            f"fwd-{e.event_id}",
            sinks[i % len(sinks)],
            round(float(e.amount) * share, 2),
            e.ts + timedelta(days=1),
        )
        for i, e in enumerate(payers)
    ]


def _ramp(
    names: tuple[str, ...], amount: str, days: tuple[int, ...] = (-20, -12, -5, -2)
) -> list[Transaction]:
    """New payers, each paying ``amount`` on a few days up to the application."""
    return [
        _in(f"{name}-{day}", name, amount, at(days=day, hours=4)) for name in names for day in days
    ]


FEW_LARGE = ("large-1", "large-2")
MANY_SMALL = tuple(f"small-{i}" for i in range(10))


@pytest.mark.parametrize(
    "payers",
    [
        _ramp(FEW_LARGE, "150000"),
        _ramp(MANY_SMALL, "12000"),
        _ramp(("mid-1", "mid-2", "mid-3"), "45000", days=(-41, -30, -20, -9, -1)),
    ],
    ids=["few-large-payers", "many-smaller-payers", "six-week-ramp-to-the-application"],
)
def test_a_ramp_sent_on_alerts_at_the_application_then_is_confirmed(
    payers: list[Transaction],
) -> None:
    events = [*_business(), *_suppliers(), *payers, *_sent_on(payers)]
    detector, state = _apply(events)

    at_application = detector.on_timer(TIMER, state)

    [alert, quiet] = at_application
    assert isinstance(alert, Finding) and quiet == QUIET_TIMER
    # At the application itself: before any drawdown, however soon it follows.
    assert alert.ts == APPLICATION.ts and alert.episode == "inflation:app-1"
    forwarded = next(r for r in alert.reasons if r.code == "forwarded")
    assert forwarded.threshold == 0.5 and float(str(forwarded.observed)) >= 0.5
    assert "sink-1, sink-2" in forwarded.message
    [confirmed] = detector.on_timer(QUIET_TIMER, state)
    assert isinstance(confirmed, Finding)
    assert confirmed.episode == "inflation:app-1:confirmed"
    assert confirmed.alert_id != alert.alert_id
    assert confirmed.score >= 0.9 > alert.score
    assert severity_for(alert.score) in ("medium", "high")
    assert severity_for(confirmed.score) == "critical"


def test_a_ramp_that_ended_two_weeks_before_the_application_alerts_at_it() -> None:
    payers = _ramp(("early-1", "early-2", "early-3"), "45000", days=(-35, -28, -21, -15))
    [alert, _] = _apply_and_judge([*_business(), *_suppliers(), *payers])

    stopped = next(r for r in alert.reasons if r.code == "stopped_before")
    assert float(str(stopped.observed)) >= 0.45 and "3 of them" in stopped.message
    assert "forwarded" not in _codes([alert])[0]


def test_money_left_idle_alerts_at_the_application() -> None:
    # The business spends as always; the ramp's money is neither spent nor sent on.
    [alert, _] = _apply_and_judge([*_business(), *_suppliers(), *_shells()])

    unspent = next(r for r in alert.reasons if r.code == "unspent")
    assert unspent.threshold == 0.95 and float(str(unspent.observed)) >= 0.95


def test_outflows_that_fell_while_the_ramp_came_in_are_worded_as_a_fall() -> None:
    # The business spends a third less from four weeks before ("rose by -710" read as a rise).
    spending = [*_suppliers(last_day=-28), *_suppliers(first_day=-28, daily=2000)]
    [alert, _] = _apply_and_judge([*_business(), *spending, *_shells()])

    unspent = next(r for r in alert.reasons if r.code == "unspent")
    assert unspent.message.startswith("outflows fell by ") and "by -" not in unspent.message


def test_a_history_that_began_mid_week_is_read_over_its_own_days() -> None:
    """The business began six days into an epoch week and spends 3,000 on every day since:
    its spending neither rose nor fell. Read over the baseline's whole weeks, the days
    before it began would dilute what it spent then, and the ramp's money look spent."""
    history = [*_business(first_day=-58), *_suppliers(first_day=-58)]
    [alert, _] = _apply_and_judge([*history, *_shells()])

    unspent = next(r for r in alert.reasons if r.code == "unspent")
    assert " by 0 a day" in unspent.message


def _apply_and_judge(events: list[Transaction]) -> list[Finding]:
    findings = _judge(events)
    assert [f.episode for f in findings] == ["inflation:app-1", "inflation:app-1:confirmed"]
    return findings


def _growing_business() -> list[Transaction]:
    """Four new clients join over a month and keep paying; the business buys more from its
    suppliers as it sells more (new stock paid to the suppliers it always paid)."""
    spend = [
        _out(f"more-{day}", f"supplier-{day % 2}", 400 * (day + 31), at(days=day, hours=10))
        for day in range(-30, 9)
    ]
    return [*_business(), *_suppliers(), *_genuine_growth(), *spend]


def _growing_business_with_a_new_supplier() -> list[Transaction]:
    """The growing business buys its new clients' goods from a new supplier: 40 % of each
    invoice, the next day (a margin kept, where sent-on money keeps none)."""
    goods = [
        _out(f"goods-{e.event_id}", "new-supplier", float(e.amount) * 0.4, e.ts + timedelta(days=1))
        for e in _genuine_growth()
    ]
    return [*_growing_business(), *goods]


@pytest.mark.parametrize(
    "events",
    [
        _growing_business(),
        _growing_business_with_a_new_supplier(),
        [*_business(), *_suppliers(), *_one_big_contract()],
        [*_business(), *_suppliers()],
        [*_business(), *_suppliers(), *_ramp(("bigco",), "150000")],
    ],
    ids=[
        "growing-business-spends-and-its-clients-stay",
        "growing-business-buys-from-a-new-supplier",
        "one-new-big-contract",
        "no-ramp",
        "one-new-big-customer",
    ],
)
def test_benign_twins_do_not_alert_at_the_application_nor_after(
    events: list[Transaction],
) -> None:
    assert _judge(events) == []
    assert _in_time_order(events) == []


# --- a second look at a drawdown days after the application ---------------------------------

DRAWDOWN = login("dd-1", at(days=2), device="phone-1", ip="10.0.0.1", action="drawdown")
DRAW_TIMER = Timer(DRAWDOWN.ts.timestamp(), "b-1", "revenue_inflation", "draw:app-1")


def _sent_on_after_the_application() -> list[Transaction]:
    """The shells' money goes on the day of the application and the next: 300 000 of the
    540 000 they sent, to a payee never paid before (nothing went on before the day)."""
    return [_out(f"on-{d}", "sink-1", "150000", at(days=d, hours=2)) for d in (0, 1)]


@pytest.mark.parametrize("drawdown_first", [False, True], ids=["timer-first", "drawdown-first"])
def test_money_sent_on_before_a_later_drawdown_alerts_at_the_drawdown(
    drawdown_first: bool,
) -> None:
    detector, state = _apply([*_business(), *_shells(), *_sent_on_after_the_application()])
    if drawdown_first:  # the logins topic ran ahead of the application's timer
        assert detector.on_login(DRAWDOWN, state, ()) == []
        assert detector.on_timer(TIMER, state) == [QUIET_TIMER, DRAW_TIMER]
    else:
        assert detector.on_timer(TIMER, state) == [QUIET_TIMER]  # no tell yet
        assert detector.on_login(DRAWDOWN, state, ()) == [DRAW_TIMER]
    assert detector.pending_timers(state) == [QUIET_TIMER, DRAW_TIMER]

    [alert] = detector.on_timer(DRAW_TIMER, state)

    assert isinstance(alert, Finding)
    assert alert.ts == DRAWDOWN.ts and alert.episode == "inflation:app-1"
    forwarded = next(r for r in alert.reasons if r.code == "forwarded")
    assert forwarded.observed == round(300_000 / 540_000, 3)
    assert detector.pending_timers(state) == [QUIET_TIMER]
    assert detector.on_timer(DRAW_TIMER, state) == []
    [confirmed] = detector.on_timer(QUIET_TIMER, state)
    assert isinstance(confirmed, Finding) and confirmed.episode == "inflation:app-1:confirmed"


def test_a_drawdown_the_day_of_the_application_brings_no_second_look() -> None:
    same_day = login("dd-0", at(hours=3), device="phone-1", ip="10.0.0.1", action="drawdown")
    detector, state = _apply([*_business(), *_shells(), *_sent_on_after_the_application()])

    assert detector.on_timer(TIMER, state) == [QUIET_TIMER]
    assert detector.on_login(same_day, state, ()) == []
    [late] = detector.on_timer(QUIET_TIMER, state)
    assert isinstance(late, Finding) and late.episode == "inflation:app-1"  # no tell: late


def test_nothing_sent_on_by_the_drawdown_leaves_the_verdict_to_the_quiet_week() -> None:
    detector, state = _apply([*_business(), *_shells()])

    assert detector.on_timer(TIMER, state) == [QUIET_TIMER]
    assert detector.on_login(DRAWDOWN, state, ()) == [DRAW_TIMER]
    assert detector.on_timer(DRAW_TIMER, state) == []
    [late] = detector.on_timer(QUIET_TIMER, state)
    assert isinstance(late, Finding) and late.episode == "inflation:app-1"


# --- a seasonal peak lifts the whole sector -------------------------------------------------


def _as_borrower(borrower: str, events: list[Transaction], sector: str | None) -> list[Transaction]:
    return [
        transaction(
            e.event_id,
            borrower,
            f"acc-{borrower}",
            e.counterparty_id,
            e.amount,
            e.ts,
            e.direction,
            sector=sector,
        )
        for e in events
    ]


def _with_peers(
    peers_peak: bool, sector: str | None
) -> tuple[RevenueInflationDetector, BorrowerState]:
    """b-1's ramp (new payers, the money left unspent) among seven peers of its sector that
    peak as much, or stay flat; the day before the application is closed."""
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    states = []
    for i in range(8):
        borrower = "b-1" if i == 0 else f"peer-{i}"
        peak = i == 0 or peers_peak
        events = [*_business(), *_suppliers(), *(_shells() if peak else [])]
        state = BorrowerState(borrower_id=borrower)
        _feed(detector, state, _by_time(_as_borrower(borrower, events, sector)))
        states.append(state)
    detector.on_day_close(0, day_of(APPLICATION.ts.timestamp()) - 1, states)
    assert detector.on_login(APPLICATION, states[0], ()) == [TIMER]
    return detector, states[0]


@pytest.mark.parametrize("sector", ["wholesale", None], ids=["sector", "no-sector-partition"])
def test_a_peak_the_peers_share_is_a_season_not_a_ramp(sector: str | None) -> None:
    detector, state = _with_peers(peers_peak=True, sector=sector)

    assert detector.on_timer(TIMER, state) == []


def test_a_peak_the_peers_do_not_share_alerts_and_snapshots_keep_the_peers() -> None:
    detector, state = _with_peers(peers_peak=False, sector="wholesale")
    snapshot = detector.snapshot(0)
    assert snapshot is not None

    [alert, quiet] = detector.on_timer(TIMER, state)

    assert isinstance(alert, Finding) and quiet == QUIET_TIMER
    assert "peer_lift" not in _codes([alert])[0]
    restored = RevenueInflationDetector(RevenueInflationThresholds())
    restored.restore(0, snapshot)
    assert restored.snapshot(0) == snapshot


def test_a_busy_business_paying_many_new_payees_keeps_the_one_the_money_went_to() -> None:
    # After the ramp's money went on, many more new payees than are remembered get smaller
    # sums: the least paid are forgotten first, not the payee the money went to.
    payers = _ramp(FEW_LARGE, "150000")
    one_offs = [
        _out(f"buy-{i}", f"vendor-{i}", "6000", at(days=-1, hours=i * 0.1))
        for i in range(3 * MAX_FRESH)
    ]
    events = [*_business(), *_suppliers(), *payers, *_sent_on(payers), *one_offs]
    detector, state = _apply(events)

    [alert, _] = detector.on_timer(TIMER, state)

    assert isinstance(alert, Finding)
    assert "sink-1, sink-2" in next(r for r in alert.reasons if r.code == "forwarded").message
    assert len(state.slots["revenue_inflation"]["fresh"]) == MAX_FRESH


def test_money_left_idle_needs_a_month_of_spending_before_the_window() -> None:
    # Two weeks of history before the shells' days: too few to know what is usually spent
    # (rent and payroll come monthly), and no peers known to say it instead, so the idle
    # money is no tell; the quiet week decides.
    findings = _judge([*_business(first_day=-35), *_suppliers(first_day=-35), *_shells()])

    assert [f.episode for f in findings] == ["inflation:app-1"]
    assert "unspent" not in _codes(findings)[0]
    assert findings[0].ts == QUIET_END


# --- a young borrower: its peers' spending is the baseline its history cannot give ---------


def _young_among_peers(events: list[Transaction], peers: int = 7) -> list[Finding]:
    """b-1 with only ``events`` (a short history) among peers with twelve weeks of the same
    business that spend as it always did; the day before the application is closed, then
    both timers fire."""
    return _young_judged(events, peers)[0]


def _young_judged(events: list[Transaction], peers: int = 7) -> tuple[list[Finding], bool]:
    """The findings, and whether the application's turnover was a ramp to watch."""
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    states = []
    for i in range(peers + 1):
        borrower = "b-1" if i == 0 else f"peer-{i}"
        own = events if i == 0 else [*_business(), *_suppliers()]
        state = BorrowerState(borrower_id=borrower)
        _feed(detector, state, _by_time(_as_borrower(borrower, own, "retail")))
        states.append(state)
    detector.on_day_close(0, day_of(APPLICATION.ts.timestamp()) - 1, states)
    assert detector.on_login(APPLICATION, states[0], ()) == [TIMER]
    findings: list[Finding] = []
    outputs = detector.on_timer(TIMER, states[0])
    watched = bool(states[0].slots["revenue_inflation"].get("watch"))
    for out in outputs:
        findings += [out] if isinstance(out, Finding) else detector.on_timer(out, states[0])
    return findings, watched


def _young(first_day: int = -42) -> list[Transaction]:
    """Six weeks of a business that spends a third of what it takes, as its peers do."""
    return [*_business(first_day=first_day), *_suppliers(first_day=first_day)]


def test_a_young_borrowers_idle_ramp_alerts_at_the_application_against_its_peers() -> None:
    # Two weeks of history before the window: its own spending says nothing yet, but its
    # peers spend a third of what they take, and none of the ramp's money was spent.
    [alert, confirmed] = _young_among_peers([*_young(), *_shells()])

    assert alert.ts == APPLICATION.ts and alert.episode == "inflation:app-1"
    idle = next(r for r in alert.reasons if r.code == "unspent_young")
    assert float(str(idle.observed)) >= 0.95 and "its peers" in idle.message
    assert confirmed.episode == "inflation:app-1:confirmed"


def _young_growth_that_spends() -> list[Transaction]:
    """New clients join over a month and stay; the young business buys 60 % of what they
    pay from its suppliers the next day (a shop that sells more buys more stock)."""
    stock = [
        _out(f"stock-{e.event_id}", "supplier-0", float(e.amount) * 0.6, e.ts + timedelta(days=1))
        for e in _genuine_growth()
    ]
    return [*_young(), *_genuine_growth(), *stock]


def _new_business_first_weeks() -> list[Transaction]:
    """A business opened five weeks before it applies: its clients (all new, the first after
    its first two weeks) come one by one and keep paying, its takings grow from nothing, and it
    spends as its peers do."""
    clients = [
        _in(f"nb{i}-{day}", f"first-client-{i}", "12000", at(days=day, hours=4))
        for i in range(5)
        for day in range(-20 + 3 * i, 9, 4)
    ]
    spend = [
        _out(f"nb-out-{e.event_id}", f"supplier-{i % 2}", float(e.amount) * 0.35, e.ts)
        for i, e in enumerate(clients)
    ]
    return [*_business(first_day=-35, daily=1000), *clients, *spend]


@pytest.mark.parametrize(
    "events",
    [_young_growth_that_spends(), _new_business_first_weeks()],
    ids=["young-growth-that-spends", "new-business-first-weeks"],
)
def test_young_benign_twins_do_not_alert_against_their_peers(events: list[Transaction]) -> None:
    # Both are ramps carried by new payers (watched a week); neither left its money idle.
    assert _young_judged(events) == ([], True)
    assert _young_among_peers(_young()) == []


def test_without_peers_a_young_borrowers_idle_money_is_no_tell() -> None:
    # Too few peers to read (the borrower among two): the quiet week decides, late.
    findings = _young_among_peers([*_young(-35), *_shells()], peers=2)

    assert [f.episode for f in findings] == ["inflation:app-1"]
    assert findings[0].ts == QUIET_END


def test_a_snapshot_of_the_previous_form_has_no_peers_spending_and_no_young_tell() -> None:
    # Day closes written before the peers' spending was kept: [day, lifts] only.
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    _feed(detector, state, _by_time(_as_borrower("b-1", [*_young(-35), *_shells()], "retail")))
    day = day_of(APPLICATION.ts.timestamp()) - 1
    detector.restore(0, orjson.dumps([[day, {"": [1.0, 8], "retail": [1.0, 8]}]]))
    assert detector.on_login(APPLICATION, state, ()) == [TIMER]

    outputs = detector.on_timer(TIMER, state)  # a ramp, watched, no tell
    assert QUIET_TIMER in outputs and not any(isinstance(o, Finding) for o in outputs)


def _late_heavy_ramp() -> list[Transaction]:
    """Three new payers whose sums grow to the application (the largest in its last two
    days), each sent on two days later to a payee never paid before: at the application, the
    last ones have not gone on yet."""
    sums = {-20: "20000", -14: "30000", -9: "40000", -6: "50000", -2: "90000", -1: "90000"}
    payers = [
        _in(f"late-{name}-{day}", name, amount, at(days=day, hours=4))
        for name in ("late-1", "late-2", "late-3")
        for day, amount in sums.items()
    ]
    sent_on = [
        _out(f"on-{e.event_id}", "sink-1", float(e.amount) * 0.95, e.ts + timedelta(days=2))
        for e in payers
    ]
    return [*payers, *sent_on]


def test_a_ramp_whose_last_sums_have_not_gone_on_yet_alerts_at_the_application() -> None:
    # Of all the new money, under half has gone on by the application; of the money whose
    # three days to go on have passed, nearly all of it.
    [alert, _] = _judge([*_business(), *_suppliers(), *_late_heavy_ramp()])

    forwarded = next(r for r in alert.reasons if r.code == "forwarded")
    assert float(str(forwarded.observed)) >= 0.9
    assert alert.ts == APPLICATION.ts


def test_the_money_gone_on_is_read_over_the_settled_inflows_only_when_they_weigh() -> None:
    # The same ramp when the settled inflows carry under a third of the new money: the share
    # of all of it (under a half) decides, and there is no tell at the application.
    events = [e for e in _late_heavy_ramp() if e.ts >= at(days=-9)]
    heavier = [
        _in(f"last-{name}", name, "400000", at(days=-1, hours=5))
        for name in ("late-1", "late-2", "late-3")
    ]
    findings = _judge([*_business(), *_suppliers(), *events, *heavier])

    # The payers' silence alerts it after the application, at their pace, and the quiet week
    # confirms it.
    assert [f.episode for f in findings] == ["inflation:app-1", "inflation:app-1:confirmed"]
    assert APPLICATION.ts < findings[0].ts < QUIET_END
    assert "forwarded" not in _codes(findings)[0] and "silent_at_pace" in _codes(findings)[0]
