"""Wash trading: the same amount in from and back out to one counterparty on several days."""

from __future__ import annotations

import random
from datetime import datetime

import orjson
import pytest

from detectors.base import FALSIFIED_FLOW, Finding, alert_id
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from detectors.wash_trading import WashTradingDetector, WashTradingThresholds
from tests.detectors.factories import at, login, payment, transaction
from topics.names import Source
from topics.records import Transaction

ACCOUNT = "acc-1"
MAX_SLOT_BYTES = 2_000  # stated cap: 12 open legs and 4 counterparties of 5 round trips


def _tx(
    event_id: str,
    counterparty: str,
    amount: float | str,
    ts: datetime,
    direction: str,
    *,
    account: str = ACCOUNT,
    borrower: str = "b-1",
) -> Transaction:
    return transaction(event_id, borrower, account, counterparty, amount, ts, direction)


def _feed(
    detector: WashTradingDetector, state: BorrowerState, events: list[Transaction]
) -> list[Finding]:
    """What the engine does before the hook (learn own accounts), then the hook itself."""
    findings: list[Finding] = []
    for event in events:
        state.note_own_account(event.account_id)
        for output in detector.on_transaction(event, state, ()):
            assert isinstance(output, Finding)
            findings.append(output)
    return findings


def _round_trip(
    day: float, tag: str, *, cp: str = "x", amount: float = 50_000.0
) -> list[Transaction]:
    """``amount`` in from ``cp`` at 10:00, 0.2 % less back out to it five hours later."""
    return [
        _tx(f"in-{tag}", cp, amount, at(days=day, hours=1), "in"),
        _tx(f"out-{tag}", cp, round(amount * 0.998, 2), at(days=day, hours=6), "out"),
    ]


def _wash(
    days: tuple[float, ...] = (0, 2, 5), *, cp: str = "x", amount: float = 50_000.0
) -> list[Transaction]:
    return [e for day in days for e in _round_trip(day, f"{day:g}", cp=cp, amount=amount)]


def _codes(findings: list[Finding]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings]


def test_round_trips_on_three_days_alert_once_with_reasons() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    state = BorrowerState(borrower_id="b-1")
    events = _wash()

    assert _feed(detector, state, events[:-1]) == []  # two days are not a habit
    [finding] = _feed(detector, state, events[-1:])

    assert finding.detector == "wash_trading"
    assert finding.category == FALSIFIED_FLOW
    # The newest round-trip day, 2024-03-06, is in ISO week 10.
    assert finding.episode == "wash:x:2024-W10"
    assert finding.alert_id == alert_id("wash_trading", "b-1", "wash:x:2024-W10")
    assert finding.ts == at(days=5, hours=6)
    assert _codes([finding]) == [["wash_pairs", "round_trip_amount"]]
    pairs, amount = finding.reasons
    assert (pairs.observed, pairs.threshold) == (3, 3)
    assert (amount.observed, amount.threshold) == (0.002, 0.005)
    assert "50,000.00" in amount.message
    assert finding.evidence == ("in-0", "out-0", "in-2", "out-2", "in-5", "out-5")
    assert finding.score == pytest.approx(0.6 + 0.15 * (1 - 0.002 / 0.005))


def test_out_first_then_back_in_counts_too() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    state = BorrowerState(borrower_id="b-1")
    events = [
        e
        for day in (0, 1, 3)
        for e in (
            _tx(f"out-{day}", "y", "30000", at(days=day), "out"),
            _tx(f"in-{day}", "y", "30000", at(days=day, hours=20), "in"),
        )
    ]

    [finding] = _feed(detector, state, events)

    assert finding.episode == "wash:y:2024-W10"
    assert finding.evidence == ("in-0", "out-0", "in-1", "out-1", "in-3", "out-3")
    assert finding.reasons[1].observed == 0.0
    assert finding.score == pytest.approx(0.75)


def test_an_ongoing_habit_alerts_once_a_week_and_scores_higher() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    state = BorrowerState(borrower_id="b-1")

    findings = _feed(detector, state, _wash((0, 2, 5, 6, 7, 11)))

    assert [f.episode for f in findings] == ["wash:x:2024-W10", "wash:x:2024-W11"]
    assert [f.reasons[0].observed for f in findings] == [3, 5]
    assert findings[1].score > findings[0].score


def test_counterparties_are_kept_apart() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    state = BorrowerState(borrower_id="b-1")
    events = [*_wash((0, 1), cp="x"), *_wash((3, 4), cp="z", amount=20_000.0)]

    assert _feed(detector, state, sorted(events, key=lambda e: e.ts)) == []


def _refund_once() -> list[Transaction]:
    return [
        _tx("sale", "cust-9", "12000", at(hours=2), "in"),
        _tx("refund", "cust-9", "12000", at(days=1), "out"),
    ]


def _refunds_to_different_customers() -> list[Transaction]:
    return [
        e
        for day in range(5)
        for e in (
            _tx(f"sale-{day}", f"cust-{day}", "15000", at(days=day), "in"),
            _tx(f"refund-{day}", f"cust-{day}", "15000", at(days=day, hours=3), "out"),
        )
    ]


def _deposit_returned_once() -> list[Transaction]:
    return [
        _tx("deposit", "landlord", "30000", at(), "out"),
        _tx("deposit-back", "landlord", "30000", at(hours=20), "in"),
        _tx("rent", "landlord", "30000", at(days=7), "out"),
    ]


def _supplier_trade() -> list[Transaction]:
    # Buy stock from a supplier and sell some back: never the same amount.
    rng = random.Random(3)
    events = []
    for day in range(10):
        bought = rng.randint(20_000, 60_000)
        events.append(_tx(f"buy-{day}", "supplier", bought, at(days=day), "out"))
        sold = round(bought * rng.uniform(1.05, 1.3), 2)
        events.append(_tx(f"sell-{day}", "supplier", sold, at(days=day, hours=5), "in"))
    return events


def _own_account_transfers() -> list[Transaction]:
    events = [_tx("open-2", "cust-1", "120", at(days=-1), "in", account="acc-2")]
    for day in range(6):
        events.append(_tx(f"sweep-{day}", "acc-2", "50000", at(days=day), "out"))
        events.append(
            _tx(f"back-{day}", ACCOUNT, "50000", at(days=day, hours=3), "in", account="acc-2")
        )
    return events


def _sale_day() -> list[Transaction]:
    # 11.11: hundreds of customers pay the same price; the supplier is paid the same amounts.
    rng = random.Random(11)
    events = []
    for i in range(300):
        ts = at(days=i // 100, hours=rng.uniform(0, 14))
        events.append(_tx(f"sale-{i}", f"cust-{i}", "12999.00", ts, "in"))
        if i % 20 == 0:
            events.append(_tx(f"stock-{i}", "supplier", "12999.00", ts, "out"))
    return sorted(events, key=lambda e: e.ts)


def _too_slow() -> list[Transaction]:
    return [
        e
        for day in (0, 3, 6)
        for e in (
            _tx(f"in-{day}", "x", "50000", at(days=day), "in"),
            _tx(f"out-{day}", "x", "50000", at(days=day + 1, hours=1), "out"),
        )
    ]


@pytest.mark.parametrize(
    "events",
    [
        _refund_once(),
        _refunds_to_different_customers(),
        _deposit_returned_once(),
        _supplier_trade(),
        _own_account_transfers(),
        _sale_day(),
        _too_slow(),
        _wash((0, 15, 30)),
        _wash(amount=9_000.0),
    ],
    ids=[
        "single-refund",
        "refunds-to-different-customers",
        "deposit-returned-once",
        "supplier-buy-and-resell",
        "own-account-transfers",
        "sale-day-volume",
        "back-after-more-than-24h",
        "days-spread-over-30-days",
        "below-min-amount",
    ],
)
def test_traps_do_not_alert(events: list[Transaction]) -> None:
    detector = WashTradingDetector(WashTradingThresholds())

    assert _feed(detector, BorrowerState(borrower_id="b-1"), events) == []


@pytest.mark.parametrize(
    ("thresholds", "alerts"),
    [
        (WashTradingThresholds(), True),
        (WashTradingThresholds(min_pair_days=4), False),
        (WashTradingThresholds(amount_tolerance=0.001), False),
        (WashTradingThresholds(min_amount=60_000), False),
        (WashTradingThresholds(pair_window_hours=4), False),
        (WashTradingThresholds(lookback_days=5), False),
    ],
    ids=[
        "defaults",
        "four-days",
        "tighter-amounts",
        "bigger-amounts",
        "faster",
        "shorter-lookback",
    ],
)
def test_thresholds_are_data(thresholds: WashTradingThresholds, alerts: bool) -> None:
    findings = _feed(WashTradingDetector(thresholds), BorrowerState(borrower_id="b-1"), _wash())

    assert bool(findings) is alerts


def test_a_refund_habit_alerts_when_two_days_are_enough() -> None:
    twice = [*_round_trip(0, "a", cp="cust-9"), *_round_trip(3, "b", cp="cust-9")]

    assert _feed(WashTradingDetector(WashTradingThresholds()), BorrowerState("b-1"), twice) == []
    relaxed = WashTradingDetector(WashTradingThresholds(min_pair_days=2))
    assert _codes(_feed(relaxed, BorrowerState("b-1"), twice)) == [
        ["wash_pairs", "round_trip_amount"]
    ]


def _noisy_stream(count: int, seed: int) -> list[Transaction]:
    """Large in and out legs with a few counterparties, many of them matching."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        cp = f"cp-{rng.randrange(12)}"
        amount = rng.choice([10_000, 25_000, 50_000, rng.randint(10_000, 90_000)])
        direction = rng.choice(["in", "out"])
        events.append(_tx(f"e-{i}", cp, amount, at(hours=i * 0.7), direction))
    return events


def test_slot_survives_json_with_identical_behaviour() -> None:
    events = _noisy_stream(2_000, seed=5)
    detector = WashTradingDetector(WashTradingThresholds())
    straight = BorrowerState(borrower_id="b-1")
    first = _feed(detector, straight, events[:1_000])
    reloaded = BorrowerState(borrower_id="b-1", own_accounts=list(straight.own_accounts))
    reloaded.slots = orjson.loads(orjson.dumps(straight.slots))

    later = _feed(detector, straight, events[1_000:])
    later_reloaded = _feed(detector, reloaded, events[1_000:])

    assert first and later  # the stream does contain round trips
    assert later_reloaded == later
    assert orjson.dumps(reloaded.slots) == orjson.dumps(straight.slots)


def test_memory_stays_bounded() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    state = BorrowerState(borrower_id="b-1")
    largest = 0
    for event in _noisy_stream(10_000, seed=9):
        _feed(detector, state, [event])
        largest = max(largest, len(orjson.dumps(state.slots[detector.name])))

    assert largest < MAX_SLOT_BYTES


def test_quiet_borrower_memory_is_small() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    state = BorrowerState(borrower_id="b-1")
    _feed(detector, state, _supplier_trade())

    assert len(orjson.dumps(state.slots[detector.name])) < 400


#: The detector's own contract events, which the shared contract test runs every detector over.
CONTRACT_EVENTS: list[Input] = WashTradingDetector.contract_events()


async def test_contract_events_alert_through_the_engine() -> None:
    detector = WashTradingDetector(WashTradingThresholds())
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])
    late = [
        Input(0, Source.LOGINS, login("w-late", at(days=50), device="d", ip="10.0.0.1")),
        Input(0, Source.REPAYMENTS, payment("w-late-p", at(days=50), "1", borrower_id="w-9")),
    ]
    alerts = []
    for item in sorted([*CONTRACT_EVENTS, *late], key=lambda i: i.record.ts):
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts

    assert [(a.borrower_id, a.detector, a.episode) for a in alerts] == [
        ("w-1", "wash_trading", "wash:wx:2024-W10")
    ]
