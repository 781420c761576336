"""Revenue inflation: growth before an application, carried by counterparties new to it."""

from __future__ import annotations

import random
from datetime import datetime

import orjson
import pytest

from detectors.base import FALSIFIED_FLOW, Finding, alert_id
from detectors.clock import Timer
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.revenue_inflation import RevenueInflationDetector, RevenueInflationThresholds
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, login, payment, transaction
from topics.names import Source
from topics.records import Login, Transaction

ACCOUNT = "acc-1"
APPLICATION = login("app-1", at(), device="phone-1", ip="10.0.0.1", action="loan_application")
TIMER = Timer(at().timestamp(), "b-1", "revenue_inflation", "app-1")
MAX_SLOT_BYTES = 1_600  # stated cap: 48 hashes of 6 characters and 8 young counterparties


def _in(event_id: str, counterparty: str, amount: float | str, ts: datetime) -> Transaction:
    return transaction(event_id, "b-1", ACCOUNT, counterparty, amount, ts, "in")


def _feed(
    detector: RevenueInflationDetector, state: BorrowerState, events: list[Transaction]
) -> None:
    """What the engine does before the hook (own accounts, daily inflows), then the hook."""
    for event in events:
        state.note_own_account(event.account_id)
        if event.direction == "in" and event.counterparty_id not in state.own_accounts:
            state.inflows.add(day_of(event.ts.timestamp()), float(event.amount))
        assert detector.on_transaction(event, state, ()) == []


def _business(first_day: int = -84) -> list[Transaction]:
    """5 000 a day from small customers, and two old clients paying 15 000 a week."""
    events = []
    for day in range(first_day, 0):
        events.append(_in(f"s-{day}-a", f"cust-{day % 40}", "2000", at(days=day, hours=1)))
        events.append(_in(f"s-{day}-b", f"cust-{(day + 7) % 40}", "3000", at(days=day, hours=5)))
        if day % 7 == 0:
            events.append(_in(f"a-{day}", "client-a", "15000", at(days=day, hours=2)))
            events.append(_in(f"b-{day}", "client-b", "15000", at(days=day, hours=3)))
    return events


def _shells(
    names: tuple[str, ...] = ("shell-1", "shell-2", "shell-3", "shell-4"),
) -> list[Transaction]:
    """Payers never seen before, each paying 45 000 on three days of the last three weeks."""
    return [
        _in(f"{name}-{day}", name, "45000", at(days=day, hours=4 + i))
        for i, name in enumerate(names)
        for day in (-20 + i, -12 + i, -5 + i)
    ]


def _by_time(events: list[Transaction]) -> list[Transaction]:
    return sorted(events, key=lambda e: (e.ts, e.event_id))


def _apply(
    events: list[Transaction], thresholds: RevenueInflationThresholds | None = None
) -> tuple[RevenueInflationDetector, BorrowerState]:
    detector = RevenueInflationDetector(thresholds or RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    _feed(detector, state, _by_time(events))
    assert detector.on_login(APPLICATION, state, ()) == [TIMER]
    return detector, state


def _judge(
    events: list[Transaction], thresholds: RevenueInflationThresholds | None = None
) -> list[Finding]:
    detector, state = _apply(events, thresholds)
    findings = detector.on_timer(TIMER, state)
    assert all(isinstance(f, Finding) for f in findings)
    return findings  # type: ignore[return-value]


def test_inflation_before_the_application_alerts_with_every_reason() -> None:
    [finding] = _judge([*_business(), *_shells()])

    assert finding.detector == "revenue_inflation"
    assert finding.category == FALSIFIED_FLOW
    assert finding.episode == "inflation:app-1"
    assert finding.alert_id == alert_id("revenue_inflation", "b-1", "inflation:app-1")
    assert finding.ts == APPLICATION.ts
    assert [r.code for r in finding.reasons] == [
        "inflow_growth",
        "new_counterparty_share",
        "new_counterparties",
    ]
    growth, share, parties = finding.reasons
    # Baseline: 56 days of 5 000 and 16 client payments of 15 000 = 520 000, 9 286 a day.
    # Recent: 28 x 5 000 + 8 x 15 000 + 12 x 45 000 = 800 000, 28 571 a day.
    assert (growth.observed, growth.threshold) == (round(800_000 / 28 / (520_000 / 56), 3), 1.8)
    assert (share.observed, share.threshold) == (0.675, 0.4)
    assert (parties.observed, parties.threshold) == (4, 3)
    assert "shell-1, shell-2, shell-3, shell-4" in parties.message
    assert finding.evidence == ("app-1", "shell-1--20", "shell-2--19", "shell-3--18", "shell-4--17")
    expected = 0.6 + 0.15 * (3.077 / 1.8 - 1) + 0.15 * (0.275 / 0.6) + 0.1 / 3
    assert finding.score == pytest.approx(expected, abs=1e-3)


def test_the_timer_is_armed_at_the_application_and_fires_once() -> None:
    detector, state = _apply([*_business(), *_shells()])

    assert detector.pending_timers(state) == [TIMER]
    assert len(detector.on_timer(TIMER, state)) == 1
    assert detector.pending_timers(state) == []
    assert detector.on_timer(TIMER, state) == []
    assert detector.on_login(APPLICATION, state, ()) == []  # a redelivered application


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


def test_inflows_after_the_application_do_not_change_the_verdict() -> None:
    # The transactions topic ran ahead: inflows of the application day and the five days after
    # it, from the shells and from a new counterparty, are in the state when the timer fires.
    after = [
        *[_in(f"late-{d}", "shell-1", "900000", at(days=d, hours=2)) for d in range(6)],
        *[_in(f"new-{d}", "shell-9", "300000", at(days=d, hours=3)) for d in range(6)],
    ]
    [on_time] = _judge([*_business(), *_shells()])
    detector, state = _apply([*_business(), *_shells()])
    _feed(detector, state, after)

    [ahead] = detector.on_timer(TIMER, state)

    assert ahead == on_time


def _sale_season() -> list[Transaction]:
    # Hundreds of new small customers in the weeks before the application.
    rng = random.Random(4)
    return [
        _in(f"sale-{i}", f"buyer-{i}", round(rng.uniform(50, 900), 2), at(days=-28 + i / 20))
        for i in range(560)
    ]


def _one_big_contract() -> list[Transaction]:
    return [_in(f"big-{day}", "bigco", "150000", at(days=day, hours=4)) for day in (-25, -15, -5)]


def _clients_from_before_the_window() -> list[Transaction]:
    # Four new clients that started small-but-large during the baseline, then grew.
    events = []
    for i in range(4):
        for day in (-50, -43, -36):
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
        [*_business(), *_clients_from_before_the_window()],
        [*_business(first_day=-40), *_shells()],
        [*_business(), *_own_account_transfers()],
    ],
    ids=[
        "steady-business",
        "sale-season-many-small-customers",
        "one-big-new-contract",
        "clients-started-before-the-window",
        "too-little-history",
        "own-account-transfers",
    ],
)
def test_traps_do_not_alert(events: list[Transaction]) -> None:
    assert _judge(events) == []


@pytest.mark.parametrize(
    ("events", "thresholds", "codes"),
    [
        (
            [*_business(), *_sale_season()],
            RevenueInflationThresholds(min_new_share=0.0, min_new_counterparties=0),
            ["inflow_growth", "new_counterparty_share", "new_counterparties"],
        ),
        (
            [*_business(), *_one_big_contract()],
            RevenueInflationThresholds(min_new_counterparties=1),
            ["inflow_growth", "new_counterparty_share", "new_counterparties"],
        ),
        (
            [*_business(), *_clients_from_before_the_window()],
            RevenueInflationThresholds(recent_days=56, baseline_days=28, min_baseline_days=14),
            ["inflow_growth", "new_counterparty_share", "new_counterparties"],
        ),
        ([*_business(), *_shells()], RevenueInflationThresholds(min_new_counterparties=5), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(min_growth=4.0), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(min_new_share=0.7), []),
        ([*_business(), *_shells()], RevenueInflationThresholds(large_inflow=50_000), []),
        ([*_business(-60), *_shells()], RevenueInflationThresholds(min_baseline_days=33), []),
    ],
    ids=[
        "growth-alone",
        "one-new-counterparty-enough",
        "longer-recent-window",
        "five-counterparties",
        "more-growth",
        "bigger-share",
        "larger-inflows",
        "more-baseline",
    ],
)
def test_thresholds_are_data(
    events: list[Transaction], thresholds: RevenueInflationThresholds, codes: list[str]
) -> None:
    findings = _judge(events, thresholds)

    assert [[r.code for r in f.reasons] for f in findings] == ([codes] if codes else [])


def test_state_survives_json_with_identical_behaviour() -> None:
    detector, state = _apply([*_business(), *_shells()])
    reloaded = BorrowerState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    later = [_in(f"late-{d}", f"new-{d}", "30000", at(days=d)) for d in range(1, 4)]

    assert detector.pending_timers(reloaded) == detector.pending_timers(state) == [TIMER]
    assert detector.on_timer(TIMER, reloaded) == detector.on_timer(TIMER, state)
    _feed(detector, state, later)
    _feed(detector, reloaded, later)
    assert orjson.dumps(reloaded.to_dict()) == orjson.dumps(state.to_dict())


def test_memory_stays_bounded() -> None:
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    state = BorrowerState(borrower_id="b-1")
    rng = random.Random(2)
    largest = 0
    for i in range(10_000):
        counterparty = f"payer-{rng.randrange(5_000)}"
        _feed(detector, state, [_in(f"e-{i}", counterparty, 20_000 + i, at(hours=i * 0.6))])
        if i % 500 == 0:
            app = login(
                f"app-{i}", at(hours=i * 0.6), device="p", ip="1.1.1.1", action="loan_application"
            )
            detector.on_login(app, state, ())
        largest = max(largest, len(orjson.dumps(state.slots[detector.name])))

    assert largest < MAX_SLOT_BYTES


def test_typical_memory_is_small() -> None:
    _, steady = _apply(_business())
    _, inflated = _apply([*_business(), *_shells()])

    assert len(orjson.dumps(steady.slots["revenue_inflation"])) < 100
    assert len(orjson.dumps(inflated.slots["revenue_inflation"])) < 450


#: Events that make revenue_inflation find something in the shared contract test: a small
#: weekly inflow since December, three new payers in February, an application on 3 March.
CONTRACT_EVENTS: list[Input] = [
    *[
        Input(
            0,
            Source.TRANSACTIONS,
            transaction(f"r-w{d}", "r-1", "ra-1", "r-shop", "7000", at(days=d, hours=1), "in"),
        )
        for d in range(-80, 2, 7)
    ],
    *[
        Input(
            0,
            Source.TRANSACTIONS,
            transaction(
                f"r-{name}-{d}", "r-1", "ra-1", f"r-{name}", "30000", at(days=d, hours=3), "in"
            ),
        )
        for name in ("p1", "p2", "p3")
        for d in (-20, -10)
    ],
    Input(
        0,
        Source.LOGINS,
        login(
            "r-app",
            at(days=2),
            device="r-phone",
            ip="10.9.0.1",
            action="loan_application",
            borrower_id="r-1",
        ),
    ),
]


async def _through_engine(order: list[Input]) -> list[tuple[str, str, str]]:
    detector = RevenueInflationDetector(RevenueInflationThresholds())
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])
    alerts = []
    for item in order:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts
    return [(a.borrower_id, a.episode, str([r.observed for r in a.reasons])) for a in alerts]


LATE: list[Input] = [
    Input(0, Source.TRANSACTIONS, transaction("r-late", "r-9", "ra-9", "z", "1", at(days=50))),
    Input(0, Source.LOGINS, login("r-late-l", at(days=50), device="d", ip="10.0.0.1")),
    Input(0, Source.REPAYMENTS, payment("r-late-p", at(days=50), "1", borrower_id="r-9")),
]


async def test_contract_events_alert_through_the_engine() -> None:
    in_time_order = sorted([*CONTRACT_EVENTS, *LATE], key=lambda i: i.record.ts)

    alerts = await _through_engine(in_time_order)

    assert [a[:2] for a in alerts] == [("r-1", "inflation:r-app")]


async def test_the_verdict_does_not_depend_on_how_the_topics_interleave() -> None:
    # The logins topic lags: every transaction (some stamped after the application) is
    # processed before the application itself.
    after = [
        Input(
            0,
            Source.TRANSACTIONS,
            transaction(f"r-x{d}", "r-1", "ra-1", "r-p9", "500000", at(days=d, hours=5), "in"),
        )
        for d in (2, 3, 4)
    ]
    events = sorted([*CONTRACT_EVENTS, *after, *LATE], key=lambda i: i.record.ts)
    transactions_first = sorted(events, key=lambda i: i.source != Source.TRANSACTIONS)

    assert await _through_engine(transactions_first) == await _through_engine(events)
    assert len(await _through_engine(events)) == 1
