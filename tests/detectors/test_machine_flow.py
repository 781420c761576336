"""Machine-made flows: round amounts, clockwork intervals, first digits far from Benford,
payers taking turns on the clock."""

from __future__ import annotations

import math
import random
import re

import orjson
import pytest

import detectors.machine_flow as machine_flow
from detectors.base import FALSIFIED_FLOW, Finding, alert_id
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.machine_flow import MachineFlowDetector, MachineFlowThresholds
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, transaction
from topics.records import Transaction

ACCOUNT = "acc-1"
HOUR = 3600.0
MAX_SLOT_BYTES = 1_200  # stated cap: ~45 numbers, six times and payers, five event ids

Flow = list[tuple[float, float, str]]  # (seconds after T0, amount, payer)


def _events(flow: Flow, *, direction: str = "in", counterparty: str = "") -> list[Transaction]:
    return [
        transaction(
            f"e-{i}",
            "b-1",
            ACCOUNT,
            counterparty or payer,
            f"{amount:.2f}",
            at(seconds=seconds),
            direction,
        )
        for i, (seconds, amount, payer) in enumerate(flow)
    ]


def _feed(
    detector: MachineFlowDetector, state: BorrowerState, events: list[Transaction]
) -> list[Finding]:
    """What the engine does before the hook (learn own accounts), then the hook itself."""
    findings: list[Finding] = []
    for event in events:
        state.note_own_account(event.account_id)
        for output in detector.on_transaction(event, state, ()):
            assert isinstance(output, Finding)
            findings.append(output)
    return findings


def _run(flow: Flow, thresholds: MachineFlowThresholds | None = None) -> list[Finding]:
    detector = MachineFlowDetector(thresholds or MachineFlowThresholds())
    return _feed(detector, BorrowerState(borrower_id="b-1"), _events(flow))


def _codes(findings: list[Finding]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings]


def _poisson(rng: random.Random, count: int, mean_gap: float) -> list[float]:
    times, now = [], 0.0
    for _ in range(count):
        now += rng.expovariate(1.0 / mean_gap)
        times.append(now)
    return times


def _customer(rng: random.Random) -> str:
    """A walk-in customer: a payer seldom seen twice."""
    return f"cust-{rng.randrange(10**8):08d}"


def _script_round_regular(count: int = 60, seed: int = 1, payer: str = "related-co") -> Flow:
    """Every four hours, give or take a minute, one of four round sums from one account."""
    rng = random.Random(seed)
    return [
        (
            4 * HOUR * i + rng.uniform(-60, 60),
            float(rng.choice([20_000, 30_000, 50_000, 80_000])),
            payer,
        )
        for i in range(count)
    ]


def _script_regular_uniform(count: int = 300, seed: int = 2) -> Flow:
    """Every six hours, from one account, an amount drawn uniformly between 1 000 and
    100 000, with cents."""
    rng = random.Random(seed)
    return [
        (6 * HOUR * i + rng.uniform(-60, 60), round(rng.uniform(1_000, 99_999), 2), "related-co")
        for i in range(count)
    ]


def _skewed(rng: random.Random) -> float:
    """A crude script's amount: never starting with 1 to 4, over three orders of magnitude."""
    return round(rng.uniform(5, 10) * 10 ** rng.choice([2, 3, 4]), 2)


def _script_regular_skewed(count: int = 300, seed: int = 2) -> Flow:
    """Every six hours, give or take a minute, an amount of :func:`_skewed`, from one account."""
    rng = random.Random(seed)
    return [(6 * HOUR * i + rng.uniform(-60, 60), _skewed(rng), "related-co") for i in range(count)]


def _script_among_customers(seed: int = 3) -> Flow:
    """Round sums from one account every 47 minutes to the second during office hours, for
    three weeks, while real customers keep paying at random times."""
    rng = random.Random(seed)
    script = []
    for day in range(21):
        start = 86_400.0 * day
        t = start + 2 * rng.uniform(0, 600)  # 09:00 or so
        while t < start + 12 * HOUR:
            script.append((t, float(rng.randint(5, 40) * 1000), "related-co"))
            t += 47 * 60 + rng.randint(-5, 5)
    names = random.Random(seed + 1)
    customers = [
        (t, round(max(100.0, math.exp(rng.gauss(7.0, 1.0))), 2), _customer(names))
        for t in _poisson(rng, 260, 2 * HOUR)
    ]
    return sorted([*script, *customers])


def _script_rotating(seed: int = 20, payers: int = 4, days: int = 21) -> Flow:
    """A script posing as customers: every 53 minutes, give or take 3 s, from 08:00 to 21:00,
    an amount drawn uniformly between 0.2 and 1.8 times 3 000 (with cents), from one of a few
    accounts picked at random; real customers keep paying at random times."""
    rng = random.Random(seed)
    accounts = [_customer(rng) for _ in range(payers)]
    script = []
    t = -HOUR + rng.uniform(0, 53 * 60)
    while t < days * 86_400.0:
        if 8 * HOUR <= (t + 9 * HOUR) % 86_400.0 < 21 * HOUR:  # T0 is 09:00
            script.append((t, round(3_000 * rng.uniform(0.2, 1.8), 2), rng.choice(accounts)))
        t += 53 * 60 + rng.randint(-3, 3)
    return sorted([*script, *_retail(count=days * 8, seed=seed + 1, mean_gap=3 * HOUR)])


def _retail(
    count: int = 500, seed: int = 4, round_share: float = 0.15, mean_gap: float = 2 * HOUR
) -> Flow:
    """Customers paying at random times, log-normal amounts, some of them in round sums; one
    customer in four is a regular (one of thirty)."""
    rng, names = random.Random(seed), random.Random(-seed)
    regulars = [_customer(names) for _ in range(30)]
    flow = []
    for t in _poisson(rng, count, mean_gap):
        amount = max(100.0, math.exp(rng.gauss(7.0, 1.0)))
        payer = names.choice(regulars) if names.random() < 0.25 else _customer(names)
        flow.append(
            (t, round(amount, -2) if rng.random() < round_share else round(amount, 2), payer)
        )
    return flow


def _settlement(count: int = 300, seed: int = 5) -> Flow:
    """The card acquirer settles yesterday's takings at 02:00 every day: never round."""
    rng = random.Random(seed)
    return [
        (
            86_400.0 * i + 17 * HOUR + rng.uniform(0, 180),
            round(math.exp(rng.gauss(9.0, 0.25)), 2),
            "acquirer",
        )
        for i in range(count)
    ]


def test_round_sums_on_a_clock_alert_with_both_reasons() -> None:
    flow = _script_round_regular()
    detector = MachineFlowDetector(MachineFlowThresholds())
    state = BorrowerState(borrower_id="b-1")
    events = _events(flow)

    assert _feed(detector, state, events[:39]) == []  # below the minimum sample
    [finding] = _feed(detector, state, events[39:40])

    assert finding.detector == "machine_flow"
    assert finding.category == FALSIFIED_FLOW
    # The 40th inflow, 156 hours after Friday 1 March 09:00, is on Thursday 7 March: week 10.
    assert finding.episode == "machine:2024-W10"
    assert finding.alert_id == alert_id("machine_flow", "b-1", "machine:2024-W10")
    assert finding.ts == events[39].ts
    assert _codes([finding]) == [["round_amounts", "regular_intervals"]]
    round_, regular = finding.reasons
    assert (round_.observed, round_.threshold) == (1.0, 0.5)
    assert isinstance(regular.observed, float) and regular.observed < 0.01
    assert regular.threshold == 0.15
    assert "4.0 h" in regular.message
    assert finding.evidence == ("e-35", "e-36", "e-37", "e-38", "e-39")
    assert finding.score == pytest.approx(0.5 + 0.3 * (2.0 - regular.observed / 0.15) / 2, abs=1e-3)


def test_one_alert_per_iso_week() -> None:
    findings = _run(_script_round_regular(count=120))

    # 120 inflows every 4 hours run to Thursday 21 March: weeks 10, 11 and 12.
    assert [f.episode for f in findings] == [
        "machine:2024-W10",
        "machine:2024-W11",
        "machine:2024-W12",
    ]


def test_clockwork_with_skewed_digits_alerts_on_benford() -> None:
    findings = _run(_script_regular_skewed())

    assert findings
    assert set(map(tuple, _codes(findings))) == {("regular_intervals", "benford_deviation")}
    benford = findings[-1].reasons[1]
    assert isinstance(benford.observed, float) and isinstance(benford.threshold, float)
    assert benford.observed >= benford.threshold
    # 0.1 for real flows' own deviation and sampling noise at ~119 amounts, in quadrature.
    assert benford.threshold == pytest.approx(math.hypot(0.1, 0.06 * math.sqrt(60 / 119)), abs=2e-3)


def test_uniform_script_amounts_are_not_a_benford_deviation() -> None:
    # Uniform amounts deviate by ~0.06, as much as many real merchants do: regular only.
    assert _run(_script_regular_uniform()) == []
    assert _codes(_run(_script_regular_uniform(), MachineFlowThresholds(min_signals=1)))[0] == [
        "regular_intervals"
    ]


def test_a_clock_among_real_customers_is_still_regular() -> None:
    findings = _run(_script_among_customers())

    assert findings
    assert _codes(findings[:1]) == [["round_amounts", "regular_intervals"]]
    regular = findings[0].reasons[1]
    assert regular.threshold == 0.3  # the clock share, not the coefficient of variation
    assert isinstance(regular.observed, float) and regular.observed >= 0.3
    assert re.search(r"came 4[67]\.\d min after an earlier one", regular.message)


def test_all_three_signals_score_highest() -> None:
    rng = random.Random(6)
    flow = [
        (
            2 * HOUR * i,
            float(rng.randint(1, 99) * 1000) if rng.random() < 0.7 else _skewed(rng),
            "related-co",
        )
        for i in range(300)
    ]

    findings = _run(flow)

    three = [f for f in findings if len(f.reasons) == 3]
    assert three and min(f.score for f in three) >= 0.65
    assert max(f.score for f in three) > max(f.score for f in _run(_script_round_regular(300)))


def _rent_and_payroll() -> list[Transaction]:
    # A shop: customers at random, a tenant's round rent each month, and round payroll and
    # rent paid out.
    events = _events(_retail(count=400, seed=8))
    for month in range(3):
        ts = at(days=30 * month, hours=1)
        events.append(transaction(f"rent-in-{month}", "b-1", ACCOUNT, "tenant", "8000", ts, "in"))
        for k in range(12):
            events.append(
                transaction(f"pay-{month}-{k}", "b-1", ACCOUNT, f"staff-{k}", "6000", ts, "out")
            )
        events.append(transaction(f"rent-{month}", "b-1", ACCOUNT, "landlord", "30000", ts, "out"))
    return sorted(events, key=lambda e: e.ts)


def _round_sums_at_random_times() -> Flow:
    # A wholesaler's clients pay invoices in round sums, whenever they like: round only.
    rng = random.Random(18)
    clients = [f"corp-{k}" for k in range(12)]
    return [
        (t, float(rng.randint(1, 99) * 1000), rng.choice(clients))
        for t in _poisson(rng, 300, 5 * HOUR)
    ]


def _top_ups_and_card_payments() -> Flow:
    # A gym: members top up prepaid cards in round sums, others pay by card.
    rng = random.Random(15)
    members = [f"member-{k}" for k in range(60)]
    flow = []
    for t in _poisson(rng, 400, 2 * HOUR):
        if rng.random() < 0.6:
            amount = float(rng.choice((100, 200, 200, 300, 500, 500, 1000)))
            flow.append((t, amount, rng.choice(members)))
        else:
            flow.append((t, round(max(100.0, math.exp(rng.gauss(6.5, 0.8))), 2), _customer(rng)))
    return flow


def _platform_batches_and_retail() -> Flow:
    # A marketplace settles orders every four hours to the second; customers also pay direct.
    rng = random.Random(16)
    batches = [
        (4 * HOUR * i, round(math.exp(rng.gauss(8.5, 0.3)), 2), "platform-1") for i in range(6 * 40)
    ]
    return sorted([*batches, *_retail(count=240, seed=17)])


def _platforms_settling_together(seed: int = 32, shops: int = 3, orders: float = 0.45) -> Flow:
    """A seller on a few platforms that all settle every four hours, within 25 s of each
    other; a platform with no orders in a slot pays nothing, so on many ticks one platform
    settles alone, and not the one of the tick before. Customers also pay direct."""
    rng = random.Random(seed)
    batches = []
    for tick in range(6 * 45):
        for shop in range(shops):
            if rng.random() < orders:
                amount = round(math.exp(rng.gauss(8.0, 0.8)), 2)
                batches.append((4 * HOUR * tick + rng.uniform(0, 25), amount, f"platform-{shop}"))
    return sorted([*batches, *_retail(count=540, seed=seed + 1)])


def _narrow_prices_at_random_times(seed: int = 21) -> Flow:
    """A noodle shop: every customer pays between 180 and 420, any cent, whenever they come;
    its card takings settle at 02:00 the next day from one acquirer."""
    rng = random.Random(seed)
    walk_ins = [
        (t, round(rng.uniform(180, 420), 2), _customer(rng)) for t in _poisson(rng, 900, HOUR)
    ]
    daily = [
        (
            86_400.0 * day + 17 * HOUR + rng.uniform(0, 40),
            round(rng.uniform(6_000, 9_000), 2),
            "acq",
        )
        for day in range(40)
    ]
    return sorted([*walk_ins, *daily])


def _two_acquirers() -> Flow:
    """Card takings settled by two acquirers, at 02:00 and at 07:30, each from its own account,
    with narrow amounts, and a few customers at random times: the second acquirer always
    comes 5.5 hours after the first, another payer, on what looks like a 5.5-hour clock."""
    rng = random.Random(22)
    daily = []
    for day in range(60):
        for hour, payer in ((17.0, "acq-a"), (22.5, "acq-b")):
            t = 86_400.0 * day + hour * HOUR + rng.uniform(0, 40)
            daily.append((t, round(math.exp(rng.gauss(9.0, 0.2)), 2), payer))
    return sorted([*daily, *_retail(count=60, seed=23, mean_gap=24 * HOUR)])


def _own_account_sweeps() -> list[Transaction]:
    events = [transaction("open-2", "b-1", "acc-2", "cust-1", "150", at(days=-1), "in")]
    events += _events(_script_round_regular(count=100), counterparty="acc-2")
    return events


def _script_under_the_minimum(seed: int = 40, days: int = 21, period: float = 3_660) -> Flow:
    """A script every 61 minutes day and night from five accounts in no fixed order, uniform
    amounts of 15-150 (nearly two in three under ``min_amount``, left out of every statistic,
    so the ticks that count are often two or three periods apart), among a shop's customers
    every two hours. With ``period`` 0 the same accounts pay at random times instead."""
    rng = random.Random(seed)
    accounts = [_customer(rng) for _ in range(5)]
    script, t = [], rng.uniform(0, 3_660)
    while t < days * 86_400.0:
        script.append((t, round(rng.uniform(15, 150), 2), rng.choice(accounts)))
        t += period + rng.randint(-5, 5) if period else rng.expovariate(1 / 3_660)
    return sorted([*script, *_retail(count=days * 12, seed=seed + 1, mean_gap=2 * HOUR)])


def _small_shop(seed: int, days: int = 28) -> Flow:
    """A corner shop whose customers pay 5 to 600 yuan, a few an hour by day and now and
    then at night (wallet and card), most of them under ``min_amount``."""
    rng, names = random.Random(seed), random.Random(-seed)
    flow = []
    for t in _poisson(rng, days * 6, 4 * HOUR):
        flow.append((t, round(min(600.0, math.exp(rng.gauss(4.3, 0.9))), 2), _customer(names)))
    return flow


def _small_script(seed: int = 50, days: int = 21, payers: int = 3) -> Flow:
    """A script forging a corner shop's turnover: every 61 minutes, give or take 7 s, day and
    night, 9 to 82 yuan from one of three accounts picked at random: the shop's own scale,
    every one of them under ``min_amount``."""
    rng = random.Random(seed)
    accounts = [_customer(rng) for _ in range(payers)]
    script, t = [], 7 * 86_400.0 + rng.uniform(0, 3_660)
    while t < (7 + days) * 86_400.0:
        script.append((t, round(rng.uniform(9, 82), 2), rng.choice(accounts)))
        t += 3_660 + rng.randint(-7, 7)
    return sorted([*script, *_small_shop(seed + 1)])


def _small_shop_and_its_settlements(seed: int = 60) -> Flow:
    """A corner shop whose card acquirer settles each morning and whose delivery platform
    pays out every hour from 10:00 to 22:00, both in sums of tens of yuan, both from one
    account each: as regular as a script, but each settlement from its own payer."""
    rng = random.Random(seed)
    settlements = []
    for day in range(28):
        settlements.append((86_400.0 * day + 22 * HOUR, round(rng.uniform(40, 300), 2), "acq"))
        for hour in range(1, 13):
            at_hour = 86_400.0 * day + hour * HOUR + rng.uniform(0, 20)
            settlements.append((at_hour, round(rng.uniform(10, 90), 2), "platform"))
    return sorted([*settlements, *_small_shop(seed + 1)])


def _busy_tea_shop(seed: int = 70) -> Flow:
    """A tea shop: 15 to 40 yuan from a customer every few minutes from 10:00 to 22:00."""
    rng, names = random.Random(seed), random.Random(-seed)
    flow = []
    for t in _poisson(rng, 28 * 100, 7 * 60.0):
        if 1 * HOUR <= t % 86_400.0 < 13 * HOUR:
            flow.append((t, round(rng.uniform(15, 40), 2), _customer(names)))
    return flow


@pytest.mark.parametrize("seed", [50, 51, 52, 53])
def test_a_script_at_a_small_shops_scale_alerts(seed: int) -> None:
    findings = _run(_small_script(seed=seed))

    assert len(findings) >= 2
    assert {tuple(c) for c in _codes(findings)} == {("regular_intervals", "rotating_payers")}
    assert all(f.ts >= at(days=7) for f in findings)
    assert _run(_small_script(seed=seed), MachineFlowThresholds(min_share_of_typical=0.0)) == []


@pytest.mark.parametrize(
    "flow",
    [_small_shop(80), _small_shop_and_its_settlements(), _busy_tea_shop()],
    ids=["corner-shop", "corner-shop-with-its-acquirer-and-platform", "busy-tea-shop"],
)
def test_small_shops_at_their_own_scale_do_not_alert(flow: Flow) -> None:
    assert _run(flow) == []


def _busy_shop(seed: int, days: int = 35) -> Flow:
    """A busy restaurant: a customer every half hour or so from 08:00 to 22:00 (about 700 at
    the median), one in four a regular."""
    rng, names = random.Random(seed), random.Random(-seed)
    regulars = [_customer(names) for _ in range(40)]
    flow = []
    for t in _poisson(rng, days * 60, 35 * 60.0):
        if 8 * HOUR <= (t + 9 * HOUR) % 86_400.0 < 22 * HOUR:  # T0 is 09:00
            payer = names.choice(regulars) if names.random() < 0.25 else _customer(names)
            flow.append((t, round(max(20.0, rng.lognormvariate(6.5, 0.9)), 2), payer))
    return flow


def _script_in_a_busy_shop(seed: int) -> Flow:
    """From day 7 to day 28, every 67 minutes, give or take 6 s, from 09:00 to 20:00, 300 to
    2,700 with cents from one of three accounts in turn at random: about one inflow in four
    of the busy shop's, whose customers land on any period's 90-second slack several times
    an hour."""
    rng = random.Random(seed)
    accounts = [_customer(rng) for _ in range(3)]
    script = []
    t = 7 * 86_400.0 + rng.uniform(0, 67 * 60)
    while t < 28 * 86_400.0:
        if 9 * HOUR <= (t + 9 * HOUR) % 86_400.0 < 20 * HOUR:
            script.append((t, round(1_500 * rng.uniform(0.2, 1.8), 2), rng.choice(accounts)))
        t += 67 * 60 + rng.randint(-6, 6)
    return sorted([*script, *_busy_shop(seed + 1)])


def _busy_shop_and_its_settlements(seed: int) -> Flow:
    """The busy restaurant, its acquirer settling at 07:00 and its delivery platform every
    hour from 10:00 to 21:00, each to within 10 s and from one account."""
    rng = random.Random(seed)
    settlements = []
    for day in range(35):
        start = 86_400.0 * day
        settlements.append(
            (start + 22 * HOUR + rng.uniform(0, 10), round(rng.uniform(4_000, 9_000), 2), "acq")
        )
        for hour in range(1, 13):
            at_hour = start + hour * HOUR + rng.uniform(0, 10)
            settlements.append((at_hour, round(rng.uniform(100, 900), 2), "platform"))
    return sorted([*settlements, *_busy_shop(seed + 1)])


def test_a_script_among_a_busy_shops_customers_is_found_by_keeping_time() -> None:
    # On the 90-second slack chance puts 15-25 % of the busy shop's inflows on any period,
    # as many as the script's own ticks; within 15 s of the period to the second, a quarter
    # of that. Found in eight of ten such shops, each in at least two of its three weeks.
    slack_only = MachineFlowThresholds(min_tight_clock_share=1.0)
    found, found_on_the_slack = 0, 0
    for seed in range(90, 100):
        flow = _script_in_a_busy_shop(seed)
        findings = _run(flow)
        assert all(at(days=7) <= f.ts < at(days=29) for f in findings)
        assert {tuple(c) for c in _codes(findings)} <= {("regular_intervals", "rotating_payers")}
        assert all("give or take 15 s" in f.reasons[0].message for f in findings)
        found += len(findings) >= 2
        found_on_the_slack += len(_run(flow, slack_only)) >= 2

    assert found >= 8
    assert found_on_the_slack <= 2


@pytest.mark.parametrize("seed", range(90, 100))
def test_a_busy_shop_and_its_settlements_to_the_second_do_not_alert(seed: int) -> None:
    # The platform's hourly clock holds to the second, but its ticks come from one payer:
    # customers on the slack, who would take turns with it, are not read as its ticks.
    assert _run(_busy_shop(seed)) == []
    assert _run(_busy_shop_and_its_settlements(seed)) == []


def test_chance_keeps_time_as_often_as_it_lands_beside_the_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With no clock, the inflows that keep time are chance, as many as those beside the
    # period: measured against the period before it moves towards them.
    counts = {"keeps": 0, "beside": 0}
    judged = machine_flow._against_period

    def counting(*args: object) -> tuple[bool, bool]:
        keeps, beside = judged(*args)  # type: ignore[arg-type]
        counts["keeps"] += keeps
        counts["beside"] += beside
        return keeps, beside

    monkeypatch.setattr(machine_flow, "_against_period", counting)
    for seed in range(90, 110):
        assert _run(_busy_shop(seed)) == []

    assert counts["beside"] > 500
    assert abs(counts["keeps"] - counts["beside"]) < 0.1 * counts["beside"]


def test_an_inflow_is_judged_against_the_period_before_it_moves_it() -> None:
    memory = machine_flow._empty()
    memory.update(tb=120, pt=3_615.0, ct=[0], hk=[120], hv=[5.0], tc=5.0, ch=1.0, w=1.0)
    memory.update(iw=1.0, i1=3_600.0)

    MachineFlowDetector._clock(memory, 3_632, 1.0, "p", MachineFlowThresholds())  # 17 s late

    assert memory["pt"] == 3_617.1  # moved an eighth of the way towards it ...
    assert memory["tt"] == 0.0  # ... but it did not keep time (14.9 s from the moved period)


def test_a_slot_of_version_5_learns_the_period_to_the_second_from_then_on() -> None:
    detector = MachineFlowDetector(MachineFlowThresholds())
    state = BorrowerState(borrower_id="b-1")
    events = _events(_script_in_a_busy_shop(92))
    _feed(detector, state, events[:300])
    for key in ("pt", "tt"):  # what version 5 did not write
        del state.slots["machine_flow"][key]

    assert len(_feed(detector, state, events[300:])) >= 2
    assert state.slots["machine_flow"]["tt"] > 0.0


def _settlement_skipping_sundays_and_retail() -> Flow:
    """The acquirer settles at 02:00 but not on Sundays; customers pay in between."""
    daily = [tick for i, tick in enumerate(_settlement(count=90)) if i % 7 != 6]
    return sorted([*daily, *_retail(count=700, seed=41, mean_gap=3 * HOUR)])


@pytest.mark.parametrize(
    "events",
    [
        _events(_settlement()),
        _events(_platform_batches_and_retail()),
        _events(_top_ups_and_card_payments()),
        _events(_round_sums_at_random_times()),
        _rent_and_payroll(),
        _events(_retail()),
        _events(_retail(seed=9, round_share=0.3)),
        _events(_platforms_settling_together()),
        _events(_platforms_settling_together(seed=24, shops=2, orders=0.6)),
        _events(_narrow_prices_at_random_times()),
        _events(_two_acquirers()),
        _events(_settlement_skipping_sundays_and_retail()),
        _events(_script_under_the_minimum(period=0)),
        _events(_script_round_regular(count=39)),
        _events([(4 * HOUR * i, 50.0, f"cp-{i % 4}") for i in range(300)]),
        _events(_script_round_regular(count=300), direction="out"),
        _own_account_sweeps(),
    ],
    ids=[
        "daily-card-settlement",
        "platform-batches-every-four-hours",
        "prepaid-top-ups-in-round-sums",
        "round-sums-at-irregular-times",
        "rent-and-payroll",
        "genuine-retail",
        "retail-with-many-round-payments",
        "three-platforms-settling-together",
        "two-platforms-settling-together",
        "narrow-prices-and-daily-settlement",
        "two-acquirers-each-on-its-clock",
        "settlement-skipping-sundays-among-customers",
        "a-few-regulars-paying-small-sums-at-random",
        "too-few-samples",
        "below-min-amount",
        "outflows",
        "own-account-sweeps",
    ],
)
def test_traps_do_not_alert(events: list[Transaction]) -> None:
    detector = MachineFlowDetector(MachineFlowThresholds())

    assert _feed(detector, BorrowerState(borrower_id="b-1"), events) == []


def test_the_settlement_is_regular_and_nothing_else() -> None:
    only_one = MachineFlowThresholds(min_signals=1)

    findings = _run(_settlement(), only_one)

    assert findings and set(map(tuple, _codes(findings))) == {("regular_intervals",)}


def test_payers_taking_turns_on_a_clock_alert() -> None:
    findings = _run(_script_rotating())

    assert findings
    assert set(map(tuple, _codes(findings))) == {("regular_intervals", "rotating_payers")}
    rotating = findings[0].reasons[1]
    assert rotating.threshold == 0.5
    # Four accounts picked at random: each lag repeats about a quarter of the time.
    assert isinstance(rotating.observed, float) and 0.1 <= rotating.observed <= 0.5
    assert re.search(
        r"on the 5[23]\.\d min clock come from payers in no fixed order", rotating.message
    )
    assert re.search(r"at most \d+% have the payer of the one [1-4] before them", rotating.message)
    assert re.search(
        r"\d+% came within 5 min of another on the clock \(at most 2%", rotating.message
    )
    # Three weeks from Friday 1 March: one alert a week, weeks 10 to 13 at most.
    assert 3 <= len(findings) <= 4
    assert all(0.5 <= f.score <= 0.8 for f in findings)


@pytest.mark.parametrize(
    ("thresholds", "alerts"),
    [
        (MachineFlowThresholds(), True),
        (MachineFlowThresholds(max_payer_repeat_share=0.1), False),
        (MachineFlowThresholds(max_batched_share=0.0, max_payer_repeat_share=1.0), True),
        (MachineFlowThresholds(min_payer_samples=10_000), False),
    ],
    ids=["defaults", "stricter-order", "no-batch-at-all", "more-payer-samples"],
)
def test_rotation_thresholds_are_data(thresholds: MachineFlowThresholds, alerts: bool) -> None:
    assert bool(_run(_script_rotating(), thresholds)) is alerts


def test_rotation_waits_for_enough_payers_on_the_clock() -> None:
    events = _events(_script_rotating())
    first = {}
    for floor in (10, 2):
        detector = MachineFlowDetector(
            MachineFlowThresholds(min_samples=5, min_payer_samples=floor)
        )
        state = BorrowerState(borrower_id="b-1")
        for count, event in enumerate(events):
            if _feed(detector, state, [event]):
                first[floor] = count
                assert state.slots["machine_flow"]["pn"] >= floor
                break

    # A share of fewer payers would be noise: the floor, not the rest, sets the first alert.
    assert first[2] < first[10]


def test_a_slot_of_version_1_learns_payers_from_then_on() -> None:
    events = _events(_script_rotating())
    detector = MachineFlowDetector(MachineFlowThresholds())
    state = BorrowerState(borrower_id="b-1")
    _feed(detector, state, events[:40])
    for key in ("lc", "pp", "pc", "pn", "pm", "bt"):  # what version 1 did not keep
        del state.slots["machine_flow"][key]

    findings = _feed(detector, state, events[40:])

    assert set(map(tuple, _codes(findings))) == {("regular_intervals", "rotating_payers")}
    assert state.slots["machine_flow"]["pn"] >= 10


def _script_then_quiet() -> Flow:
    """Round sums every four hours for 16 days; then a quiet shop: a customer a day, a
    tenant's round rent on day 35, and on day 40 two customers four hours apart to the
    second, on the stopped script's period."""
    rng = random.Random(27)
    script = _script_round_regular(count=100)
    quiet = [
        (86_400.0 * day + rng.uniform(0, 8 * HOUR), round(rng.uniform(300, 3_000), 2), f"c-{day}")
        for day in range(17, 50)
    ]
    rent = [(35 * 86_400.0 + 3 * HOUR, 5_000.0, "tenant")]
    chance = [(40 * 86_400.0 + 10 * HOUR + k * 4 * HOUR, 1_234.56, f"w-{k}") for k in range(2)]
    return sorted([*script, *quiet, *rent, *chance])


def test_a_stopped_script_does_not_alert_from_its_decayed_statistics() -> None:
    findings = _run(_script_then_quiet())

    # Weeks 10 to 12 while the script runs (to 17 March); nothing after, though the round
    # share and the clock share fade slowly at a customer a day, and a round sum and a
    # chance hit on the old period come weeks later.
    assert findings and all(f.ts < at(days=17) for f in findings)
    assert [f.episode for f in findings] == ["machine:2024-W10", "machine:2024-W11"]


@pytest.mark.parametrize("seed", [40, 41, 42, 43])
def test_a_script_mostly_under_the_minimum_keeps_its_clock_across_skipped_ticks(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = _script_under_the_minimum(seed=seed)

    findings = _run(flow)

    assert len(findings) >= 3  # its three weeks
    assert {tuple(c) for c in _codes(findings)} == {("regular_intervals", "rotating_payers")}
    assert "after an earlier one" in findings[0].reasons[0].message  # the clock, not the cv
    absolute = MachineFlowThresholds(min_share_of_typical=0.0)  # the floor is min_amount alone
    assert len(_run(flow, absolute)) >= 3
    # One period only, on the slack alone (the tight clock, which needs a smaller share, would
    # hold on the ticks one period apart): skipped ones are off the clock, a week at most.
    monkeypatch.setattr(machine_flow, "CLOCK_MULTIPLES", 1)
    slack_only = MachineFlowThresholds(min_share_of_typical=0.0, min_tight_clock_share=1.0)
    assert len(_run(flow, slack_only)) <= 1


def test_a_fraction_of_the_period_found_first_gives_way_to_the_scripts_own() -> None:
    # A shop's first inflows come 26.5 minutes apart by chance (ten in a row), so half the
    # script's 53-minute period is the clock the detector learns first. Every tick of the
    # script is then two of those periods: counted for the half period, it kept the half as
    # the clock while the script's own gaps grew the true one no faster, and whom each tick
    # came from was never read (a simulated shop's script went unseen for two weeks).
    rng = random.Random(7)
    half = [(-6 * HOUR + i * 26.5 * 60, round(rng.uniform(300, 900), 2), _customer(rng))
            for i in range(10)]  # fmt: skip
    detector = MachineFlowDetector(MachineFlowThresholds())
    state = BorrowerState(borrower_id="b-1")
    _feed(detector, state, _events(half))
    assert state.slots["machine_flow"]["tb"] * 30 < 30 * 60  # the half period, to begin with

    script = _events(sorted(_script_rotating(days=14)))
    first = next(i for i, event in enumerate(script) if _feed(detector, state, [event]))

    # As soon as enough inflows are seen (min_samples 40, the ten above among them): the
    # 53-minute clock took over at the script's first ticks (it took 73 inflows before).
    assert first <= 40
    findings = _feed(detector, state, script[first + 1 :])
    assert findings
    assert {tuple(c) for c in _codes(findings)} == {("regular_intervals", "rotating_payers")}
    assert re.search(r"on the 5[23]\.\d min clock", findings[0].reasons[1].message)


def test_a_script_with_one_account_does_not_rotate() -> None:
    one_account = [(t, a, "related-co") for t, a, _ in _script_rotating()]

    assert _run(one_account) == []
    assert _codes(_run(one_account, MachineFlowThresholds(min_signals=1)))[0] == [
        "regular_intervals"
    ]


def _interleaved_settlements(hours: tuple[float, ...]) -> Flow:
    """A restaurant whose card acquirer settles at one hour of the day and its delivery
    platform(s) at others, each from its own account, and a few customers at random: the
    settlements are evenly spaced and alternate payers, but in a fixed order."""
    rng = random.Random(25)
    daily = []
    for day in range(60):
        for k, hour in enumerate(hours):
            t = 86_400.0 * day + hour * HOUR + rng.uniform(0, 40)
            daily.append((t, round(math.exp(rng.gauss(9.0, 0.3)), 2), f"settles-{k}"))
    return sorted([*daily, *_retail(count=60, seed=26, mean_gap=24 * HOUR)])


@pytest.mark.parametrize(
    ("flow", "relaxed"),
    [
        (_platforms_settling_together(), MachineFlowThresholds(max_batched_share=1.0)),
        (_interleaved_settlements((17, 5)), MachineFlowThresholds(max_payer_repeat_share=1.0)),
        (_interleaved_settlements((1, 9, 17)), MachineFlowThresholds(max_payer_repeat_share=1.0)),
        (_two_acquirers(), MachineFlowThresholds(max_payer_repeat_share=1.0)),
        (_settlement(), MachineFlowThresholds(max_payer_repeat_share=1.0)),
        (_platform_batches_and_retail(), MachineFlowThresholds(max_payer_repeat_share=1.0)),
    ],
    ids=[
        "platforms-settling-together",
        "acquirer-and-platform-12-h-apart",
        "three-settlements-8-h-apart",
        "two-acquirers-5.5-h-apart",
        "daily-settlement",
        "platform-batches",
    ],
)
def test_settlement_clocks_do_not_rotate(flow: Flow, relaxed: MachineFlowThresholds) -> None:
    # Each has a clock (alone, an alert with min_signals=1), and payers that only the guard
    # relaxed here tells from a script's: several on one tick, or a fixed order.
    regular_only = _codes(_run(flow, MachineFlowThresholds(min_signals=1)))
    assert regular_only and {tuple(codes) for codes in regular_only} == {("regular_intervals",)}
    assert _run(flow) == []
    assert ["regular_intervals", "rotating_payers"] in _codes(_run(flow, relaxed))


@pytest.mark.parametrize(
    ("thresholds", "first_alert_at"),
    [
        (MachineFlowThresholds(), 39),
        (MachineFlowThresholds(min_samples=100), 99),
        (MachineFlowThresholds(min_signals=3), None),
        (MachineFlowThresholds(round_unit=1_000_000), None),
        (
            MachineFlowThresholds(
                max_interval_cv=0.0001, min_clock_share=1.0, min_tight_clock_share=1.0
            ),
            None,
        ),
        (MachineFlowThresholds(min_amount=100_000, min_share_of_typical=0.0), None),
        (MachineFlowThresholds(min_amount=100_000, min_share_of_typical=0.5), 39),
        (MachineFlowThresholds(max_payer_repeat_share=1.0, max_batched_share=1.0), 39),
    ],
    ids=[
        "defaults",
        "more-samples",
        "three-signals",
        "rounder",
        "stricter-clock",
        "bigger",
        "bigger-but-the-business-scale",
        "any-payers-rotate",
    ],
)
def test_thresholds_are_data(thresholds: MachineFlowThresholds, first_alert_at: int | None) -> None:
    events = _events(_script_round_regular(count=150))

    findings = _feed(MachineFlowDetector(thresholds), BorrowerState(borrower_id="b-1"), events)

    if first_alert_at is None:
        assert findings == []
    else:
        assert findings[0].ts == events[first_alert_at].ts


def _mixed(seed: int) -> Flow:
    """Retail, then a script takes over, then retail again."""
    script = [(t + 50 * 86_400.0, a, p) for t, a, p in _script_round_regular(150, seed)]
    after = [(t + 80 * 86_400.0, a, p) for t, a, p in _retail(count=200, seed=seed)]
    return [*_retail(count=400, seed=seed), *script, *after]


def test_slot_survives_json_with_identical_behaviour() -> None:
    events = _events(_mixed(seed=10))
    detector = MachineFlowDetector(MachineFlowThresholds())
    straight = BorrowerState(borrower_id="b-1")
    _feed(detector, straight, events[:450])
    reloaded = BorrowerState(borrower_id="b-1", own_accounts=list(straight.own_accounts))
    reloaded.slots = orjson.loads(orjson.dumps(straight.slots))

    later = _feed(detector, straight, events[450:])
    later_reloaded = _feed(detector, reloaded, events[450:])

    assert later  # the script is found after the reload
    assert later_reloaded == later
    assert orjson.dumps(reloaded.slots) == orjson.dumps(straight.slots)


def test_rescaling_the_weights_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    flow = _mixed(seed=12)
    usual = _run(flow)
    monkeypatch.setattr(machine_flow, "RESCALE_AT", 1e3)  # rescale every few inflows

    rescaled = _run(flow)

    assert [(f.episode, f.evidence, _codes([f])) for f in rescaled] == [
        (f.episode, f.evidence, _codes([f])) for f in usual
    ]
    for a, b in zip(rescaled, usual, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_memory_stays_bounded() -> None:
    detector = MachineFlowDetector(MachineFlowThresholds())
    state = BorrowerState(borrower_id="b-1")
    largest = 0
    flow = [*_retail(count=5_000, seed=13), *_script_regular_skewed(count=5_000, seed=14)]
    for event in _events(flow):
        _feed(detector, state, [event])
        largest = max(largest, len(orjson.dumps(state.slots[detector.name])))

    assert largest < MAX_SLOT_BYTES


#: The detector's own contract events (45 round sums, one every three hours, from 2 March),
#: which the shared contract test runs every detector over.
CONTRACT_EVENTS: list[Input] = MachineFlowDetector.contract_events()


async def test_contract_events_alert_through_the_engine() -> None:
    detector = MachineFlowDetector(MachineFlowThresholds())
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])
    alerts = []
    for item in CONTRACT_EVENTS:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts

    assert [(a.borrower_id, a.episode) for a in alerts] == [("m-1", "machine:2024-W10")]
