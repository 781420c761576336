"""The traffic generator: deterministic, on contract, with the injected cases and benign traps."""

from __future__ import annotations

import math
import re
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sim import (
    SALE_DAY,
    SLUMP_DAYS,
    TYPOLOGIES,
    Label,
    Simulation,
    SimulationConfig,
    iter_jsonl,
    simulate,
    simulate_stream,
    write_jsonl,
)
from topics.names import Source
from topics.validate import parse_value

#: Every typology at once; the legacy fields and ``cases`` together.
CONFIG = SimulationConfig(
    borrowers=200,
    days=60,
    seed=11,
    circular_rings=2,
    takeovers=2,
    delinquents=4,
    cases={
        "wash_trading": 2,
        "revenue_inflation": 2,
        "machine_generated": 2,
        "account_takeover_device_replay": 2,
        "credential_stuffing": 1,
        "device_ring": 1,
        "impossible_travel": 2,
    },
)
#: Cases per typology: rings of 3, stuffing campaigns and device rings count once.
EXPECTED_CASES = {
    "circular_transfer": 2,
    "wash_trading": 2,
    "revenue_inflation": 2,
    "machine_generated": 2,
    "account_takeover": 2,
    "account_takeover_device_replay": 2,
    "credential_stuffing": 1,
    "device_ring": 1,
    "impossible_travel": 2,
    "missed_installment": 4,
}
TINY = SimulationConfig(borrowers=12, days=10, seed=5)
SECTORS = {"ecommerce", "restaurant", "retail", "manufacturing", "logistics"}

Value = dict[str, Any]
Index = dict[Source, dict[str, list[Value]]]


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(CONFIG)


@pytest.fixture(scope="module")
def index(sim: Simulation) -> Index:
    """Each source's values per borrower, in stream order."""
    by: Index = {source: defaultdict(list) for source in Source}
    for record in sim.records:
        source = CONFIG.topics.source_of(record["topic"])
        assert source is not None
        by[source][record["key"]].append(record["value"])
    return by


def _instant(value: Value | str) -> datetime:
    return datetime.fromisoformat(value if isinstance(value, str) else value["ts"])


def _day(value: Value) -> int:
    return (_instant(value) - CONFIG.start).days


def _values(sim: Simulation, source: Source) -> list[Value]:
    topic = CONFIG.topics.input_topic(source)
    return [r["value"] for r in sim.records if r["topic"] == topic]


def _labels(sim: Simulation, typology: str) -> list[Label]:
    return [label for label in sim.labels if label.typology == typology]


def _labelled(sim: Simulation) -> set[str]:
    return {label.borrower_id for label in sim.labels}


def _yuan(value: Value) -> Decimal:
    return Decimal(value["amount"])


def _is_sales(tx: Value) -> bool:
    """Customer or client money: not own transfers, loans or transfers between borrowers."""
    return (
        tx["direction"] == "in"
        and tx.get("memo") != "own transfer"
        and not tx["counterparty_id"].startswith(("acct-", "lender-"))
    )


def _case(label: Label) -> str:
    """One case: a ring, a stuffing campaign or a device ring counts once."""
    for key in ("ring", "campaign"):
        if key in label.detail:
            return str(label.detail[key])
    return label.borrower_id


# --- determinism, streaming, contract ---------------------------------------------------------


def test_same_config_gives_the_same_output_and_another_seed_does_not(sim: Simulation) -> None:
    again = simulate(CONFIG)
    assert again.records == sim.records
    assert again.labels == sim.labels
    assert simulate(TINY) == simulate(TINY)
    assert simulate(replace(TINY, seed=6)).records != simulate(TINY).records


def test_the_stream_yields_the_records_of_simulate_in_the_same_order() -> None:
    config = SimulationConfig(borrowers=40, days=45, seed=4)
    labels, stream = simulate_stream(config)
    assert isinstance(stream, Iterator)
    whole = simulate(config)
    assert labels == whole.labels
    assert list(stream) == whole.records


def test_the_stream_holds_about_a_day_of_events_not_the_whole_period() -> None:
    config = SimulationConfig(borrowers=12, days=60, seed=4)
    tracemalloc.start()
    try:
        _, stream = simulate_stream(config)
        streamed = sum(1 for _ in stream)
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        records = simulate(config).records
        _, list_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert streamed == len(records)
    assert stream_peak < list_peak / 5


def test_every_record_meets_the_contract_and_is_keyed_by_borrower(sim: Simulation) -> None:
    for record in sim.records:
        source = CONFIG.topics.source_of(record["topic"])
        assert source is not None
        parsed = parse_value(source, record["value"])
        assert record["key"] == record["value"]["borrower_id"] == parsed.borrower_id
        assert record["value"]["ts"].endswith("+08:00")


def test_records_are_sorted_by_instant_and_event_ids_are_unique(sim: Simulation) -> None:
    order = [(_instant(r["value"]), r["topic"], r["value"]["event_id"]) for r in sim.records]
    assert order == sorted(order)
    ids = [r["value"]["event_id"] for r in sim.records]
    assert len(ids) == len(set(ids))
    assert all(_instant(r["value"]) >= CONFIG.start for r in sim.records)
    end = CONFIG.start + timedelta(days=CONFIG.days)
    assert all(_instant(r["value"]) < end for r in sim.records)


def test_amounts_have_two_decimals_and_ids_have_the_documented_shape(sim: Simulation) -> None:
    for tx in _values(sim, Source.TRANSACTIONS):
        assert Decimal(tx["amount"]).as_tuple().exponent == -2
        assert tx["borrower_id"].startswith("b-") and len(tx["borrower_id"]) == 7
        assert tx["account_id"].startswith(f"acct-{tx['borrower_id'][2:]}-")


def test_every_transaction_carries_the_borrowers_stable_sector(sim: Simulation) -> None:
    sectors: dict[str, set[str]] = defaultdict(set)
    for tx in _values(sim, Source.TRANSACTIONS):
        sectors[tx["borrower_id"]].add(tx["sector"])
        if tx["channel"] == "ecommerce":
            assert tx["sector"] == "ecommerce"
        if tx["channel"] == "pos":
            assert tx["sector"] in ("restaurant", "retail")
    assert len(sectors) == CONFIG.borrowers
    assert all(len(values) == 1 for values in sectors.values())
    assert set().union(*sectors.values()) == SECTORS


# --- counts -----------------------------------------------------------------------------------


def test_each_typology_appears_with_the_configured_count(sim: Simulation) -> None:
    cases: dict[str, set[str]] = defaultdict(set)
    for label in sim.labels:
        cases[label.typology].add(_case(label))
        assert label.category == TYPOLOGIES[label.typology]
        assert _instant(label.start) <= _instant(label.end)
        assert label.start.endswith("+08:00") and label.end.endswith("+08:00")
    assert {typology: len(ids) for typology, ids in cases.items()} == EXPECTED_CASES
    counts = Counter(label.typology for label in sim.labels)
    assert counts["circular_transfer"] == 6
    assert 20 <= counts["credential_stuffing"] <= 60
    assert 3 <= counts["device_ring"] <= 6
    injected = [label.borrower_id for label in sim.labels]
    assert len(injected) == len(set(injected))  # one case per borrower


def test_defaults_at_2000_borrowers_label_at_least_15_borrowers_per_typology() -> None:
    labels, stream = simulate_stream(SimulationConfig(borrowers=2_000, days=90, seed=1))
    counts = Counter(label.typology for label in labels)
    assert set(counts) == set(TYPOLOGIES)
    assert min(counts.values()) >= 15
    assert sum(counts.values()) <= 0.35 * 2_000
    assert isinstance(stream, Iterator)  # nothing generated until asked


@pytest.mark.parametrize(
    "config",
    [
        SimulationConfig(borrowers=10, days=20, delinquents=1),
        SimulationConfig(borrowers=5, days=40, circular_rings=2),
        SimulationConfig(borrowers=10, days=20, start=datetime(2026, 1, 5)),
        SimulationConfig(borrowers=0),
        SimulationConfig(borrowers=50, days=30, cases={"credential_stuffing": 3}),
        SimulationConfig(borrowers=50, days=30, cases={"phishing": 1}),
        SimulationConfig(borrowers=50, days=30, cases={"revenue_inflation": 1}),
        SimulationConfig(borrowers=50, days=30, cases={"wash_trading": -1}),
        SimulationConfig(borrowers=50, days=30, takeovers=2, cases={"account_takeover": 3}),
    ],
)
def test_impossible_configs_are_refused(config: SimulationConfig) -> None:
    with pytest.raises(ValueError):
        simulate_stream(config)


# --- falsified flows --------------------------------------------------------------------------


def test_ring_transfers_are_out_in_pairs_with_equal_ts_and_shrinking_amounts(
    sim: Simulation,
) -> None:
    by_key = defaultdict(list)
    for tx in _values(sim, Source.TRANSACTIONS):
        by_key[(tx["ts"], tx["account_id"], tx["counterparty_id"], tx["direction"])].append(tx)
    for label in _labels(sim, "circular_transfer"):
        members, accounts = label.detail["members"], label.detail["accounts"]
        assert len(set(members)) == 3 and label.borrower_id in members
        assert 2 <= len(label.detail["cycles"]) <= 4
        days = [_day({"ts": cycle[0]["ts"]}) for cycle in label.detail["cycles"]]
        assert len(set(days)) == len(days)
        for cycle in label.detail["cycles"]:
            assert [hop["from"] for hop in cycle] == accounts
            assert [hop["to"] for hop in cycle] == accounts[1:] + accounts[:1]
            amounts = [Decimal(hop["amount"]) for hop in cycle]
            assert 50_000 <= amounts[0] <= 500_000
            for before, after in zip(amounts, amounts[1:], strict=False):
                assert Decimal("0.98") * before - 1 <= after <= Decimal("0.999") * before + 1
            times = [datetime.fromisoformat(hop["ts"]) for hop in cycle]
            for before, after in zip(times, times[1:], strict=False):
                assert timedelta(minutes=20) <= after - before <= timedelta(hours=6)
            assert times[-1] - times[0] <= timedelta(hours=24)
            for hop, payer, payee in zip(cycle, members, members[1:] + members[:1], strict=True):
                (out,) = by_key[(hop["ts"], hop["from"], hop["to"], "out")]
                (into,) = by_key[(hop["ts"], hop["to"], hop["from"], "in")]
                assert (out["borrower_id"], into["borrower_id"]) == (payer, payee)
                assert out["amount"] == into["amount"] == hop["amount"]
                assert out["channel"] == into["channel"] == "bank_transfer"


def _same_day_round_trips(txs: list[Value], tolerance: Decimal) -> list[int]:
    """Days with an in and an out of (nearly) the same sum, 5 min to 8 h apart."""
    days = []
    by_day: dict[int, list[Value]] = defaultdict(list)
    for tx in txs:
        by_day[_day(tx)].append(tx)
    for day, group in by_day.items():
        ins = [tx for tx in group if tx["direction"] == "in"]
        outs = [tx for tx in group if tx["direction"] == "out"]
        if any(
            abs(_yuan(i) - _yuan(o)) <= tolerance * max(_yuan(i), _yuan(o))
            and timedelta(minutes=5) <= abs(_instant(i) - _instant(o)) <= timedelta(hours=8)
            for i in ins
            for o in outs
        ):
            days.append(day)
    return sorted(days)


def test_wash_trading_sends_the_same_sum_back_and_forth_with_one_outsider(
    sim: Simulation, index: Index
) -> None:
    accounts = {tx["account_id"] for tx in _values(sim, Source.TRANSACTIONS)}
    for label in _labels(sim, "wash_trading"):
        other = label.detail["counterparty"]
        assert other not in accounts and not other.startswith("acct-")
        mine = [
            tx
            for tx in index[Source.TRANSACTIONS][label.borrower_id]
            if tx["counterparty_id"] == other
        ]
        assert {tx["channel"] for tx in mine} == {"bank_transfer"}
        assert all(20_000 <= _yuan(tx) <= 200_000 for tx in mine)
        days = _same_day_round_trips(mine, Decimal("0.005"))
        assert len(days) == len(label.detail["pairs"]) >= 4
        assert days[-1] - days[0] < 21
        assert {pair["first"] for pair in label.detail["pairs"]} <= {"in", "out"}


def test_revenue_inflation_ramps_up_new_payers_before_the_application_then_stops(
    sim: Simulation, index: Index
) -> None:
    for label in _labels(sim, "revenue_inflation"):
        detail = label.detail
        logins = index[Source.LOGINS][label.borrower_id]
        (application,) = [v for v in logins if v["action"] == "loan_application"]
        (drawdown,) = [v for v in logins if v["action"] == "drawdown"]
        assert application["ts"] == detail["application_ts"]
        assert application["amount"] == detail["application_amount"]
        assert drawdown["ts"] == detail["drawdown_ts"] == label.end
        assert _yuan(drawdown) <= _yuan(application)

        txs = index[Source.TRANSACTIONS][label.borrower_id]
        payers = set(detail["counterparties"])
        assert 3 <= len(payers) <= 8
        fake = [tx for tx in txs if tx["counterparty_id"] in payers]
        # Never seen before the ramp, gone after the drawdown.
        assert all(_instant(label.start) <= _instant(tx) < _instant(application) for tx in fake)
        assert {(tx["direction"], tx["channel"]) for tx in fake} == {("in", "bank_transfer")}
        assert all(10_000 <= _yuan(tx) <= 150_000 for tx in fake)
        assert 21 <= detail["ramp_days"] <= 42
        assert _instant(application) - _instant(label.start) <= timedelta(days=42)

        # The fake money at least doubles the inflow of the month before the application.
        applied = _day(application)
        ramp_start = _day(fake[0])
        usual = [tx for tx in txs if _is_sales(tx) and tx["counterparty_id"] not in payers]
        before = sum(_yuan(tx) for tx in usual if _day(tx) < ramp_start) / ramp_start * 30
        last_month = sum(_yuan(tx) for tx in fake if applied - 30 <= _day(tx) < applied)
        assert last_month >= Decimal("0.7") * before
        # The disbursement lands on the account: no payout change came before.
        assert any(
            tx["counterparty_id"] == "lender-disburse" and tx["memo"] == detail["loan_id"]
            for tx in txs
        )


def _benford_distance(amounts: list[Decimal]) -> float:
    """Mean absolute deviation of the first digits from Benford's law."""
    digits = Counter(str(amount).lstrip("0.")[0] for amount in amounts)
    return sum(abs(digits[str(d)] / len(amounts) - math.log10(1 + 1 / d)) for d in range(1, 10)) / 9


def test_machine_generated_inflows_are_regular_to_the_second(sim: Simulation, index: Index) -> None:
    for label in _labels(sim, "machine_generated"):
        detail = label.detail
        interval, jitter = detail["interval_seconds"], detail["jitter_seconds"]
        assert 37 * 60 <= interval <= 90 * 60 and 1 <= jitter <= 10
        payers = set(detail["counterparties"])
        assert 3 <= len(payers) <= 6
        fake = [
            tx
            for tx in index[Source.TRANSACTIONS][label.borrower_id]
            if tx["counterparty_id"] in payers
        ]
        assert len(fake) == detail["transfers"]
        assert all(tx["direction"] == "in" and tx["channel"] == detail["channel"] for tx in fake)
        times = [_instant(tx) for tx in fake]
        assert timedelta(days=13) <= times[-1] - times[0] <= timedelta(days=28)
        for before, after in zip(times, times[1:], strict=False):
            gap = (after - before).total_seconds()
            steps = round(gap / interval)
            assert steps >= 1 and abs(gap - steps * interval) <= steps * jitter
        amounts = [_yuan(tx) for tx in fake]
        if detail["amounts"] == "round":
            assert all(amount % 100 == 0 for amount in amounts)
        else:
            assert sum(amount % 1 != 0 for amount in amounts) > 0.9 * len(amounts)
            assert _benford_distance(amounts) > 0.02


# --- abnormal behaviour -----------------------------------------------------------------------


def _held(index: Index, borrower_id: str, drawdown: datetime) -> None:
    """A drawdown right after a payout change is held: no disbursement, no schedule."""
    later = drawdown + timedelta(days=4)
    assert not any(
        tx["counterparty_id"] == "lender-disburse" and drawdown <= _instant(tx) <= later
        for tx in index[Source.TRANSACTIONS][borrower_id]
    )
    assert not any(
        r["kind"] == "scheduled" and drawdown <= _instant(r) <= later
        for r in index[Source.REPAYMENTS][borrower_id]
    )


def test_takeover_is_a_failure_burst_then_a_new_device_payout_change_and_drawdown(
    sim: Simulation, index: Index
) -> None:
    for label in _labels(sim, "account_takeover"):
        mine = index[Source.LOGINS][label.borrower_id]
        start = _instant(label.start)
        before = [v for v in mine if _instant(v) < start]
        attack = [v for v in mine if v["device_id"] == label.detail["device_id"]]
        assert before and _day(attack[0]) >= 7
        assert label.detail["device_id"] not in {v["device_id"] for v in before}
        home = Counter(v["geo"]["city"] for v in before).most_common(1)[0][0]
        assert label.detail["city"] != home
        assert {v["ip"] for v in attack} == {label.detail["ip"]}

        failures = [v for v in attack if not v["success"]]
        assert 6 <= len(failures) == label.detail["failed_logins"] <= 15
        span = _instant(failures[-1]) - _instant(failures[0])
        assert timedelta(minutes=5) <= span <= timedelta(minutes=20)
        actions = [v["action"] for v in attack if v["success"]]
        assert actions == ["login", "payout_account_change", "drawdown"]
        success, change, drawdown = (_instant(v) for v in attack if v["success"])
        assert _instant(failures[-1]) < success
        assert change - success <= timedelta(hours=1)
        assert success < drawdown and drawdown - success <= timedelta(hours=2)
        assert attack[-1]["amount"] == label.detail["drawdown_amount"]
        assert _instant(label.end) == drawdown
        _held(index, label.borrower_id, drawdown)


def test_device_replay_takeover_spoofs_the_known_device_from_a_new_place_and_hour(
    sim: Simulation, index: Index
) -> None:
    for label in _labels(sim, "account_takeover_device_replay"):
        detail = label.detail
        mine = index[Source.LOGINS][label.borrower_id]
        start = _instant(label.start)
        before = [v for v in mine if _instant(v) < start]
        assert detail["device_id"] in {v["device_id"] for v in before if v["success"]}
        assert detail["ip"] not in {v["ip"] for v in before}
        assert detail["user_agent"] not in {v["user_agent"] for v in before}
        home = Counter(v["geo"]["city"] for v in before).most_common(1)[0][0]
        assert detail["city"] != home
        assert start.hour < 6  # before dawn

        attack = [v for v in mine if v["ip"] == detail["ip"]]
        assert {(v["device_id"], v["user_agent"]) for v in attack} == {
            (detail["device_id"], detail["user_agent"])
        }
        failures = [v for v in attack if not v["success"]]
        assert 4 <= len(failures) == detail["failed_logins"] <= 12
        assert [v["action"] for v in attack if v["success"]] == [
            "login",
            "payout_account_change",
            "drawdown",
        ]
        success, change, drawdown = (_instant(v) for v in attack if v["success"])
        assert change - success <= timedelta(hours=1)
        assert drawdown - success <= timedelta(hours=2)
        _held(index, label.borrower_id, drawdown)


def test_credential_stuffing_fails_on_many_borrowers_from_one_address(
    sim: Simulation, index: Index
) -> None:
    campaigns: dict[str, list[Label]] = defaultdict(list)
    for label in _labels(sim, "credential_stuffing"):
        campaigns[label.detail["campaign"]].append(label)
    for labels in campaigns.values():
        (ip,) = {label.detail["ip"] for label in labels}
        (mode,) = {label.detail["mode"] for label in labels}
        assert 20 <= len(labels) == labels[0].detail["targets"] <= 60
        attempts = []
        for label in labels:
            mine = [
                v
                for v in index[Source.LOGINS][label.borrower_id]
                if v["ip"] == ip and _instant(label.start) <= _instant(v) <= _instant(label.end)
            ]
            assert len(mine) == label.detail["attempts"] in (1, 2)
            assert [v["success"] for v in mine][-1] == label.detail["success"]
            assert not any(v["success"] for v in mine[:-1])
            attempts += mine
        assert sum(v["success"] for v in attempts) <= 2
        span = max(map(_instant, attempts)) - min(map(_instant, attempts))
        if mode == "burst":
            assert span < timedelta(minutes=30)
        else:
            assert timedelta(hours=6) <= span <= timedelta(hours=20, minutes=15)


def test_device_ring_applies_for_several_borrowers_from_one_device(
    sim: Simulation, index: Index
) -> None:
    rings: dict[str, list[Label]] = defaultdict(list)
    for label in _labels(sim, "device_ring"):
        rings[label.detail["ring"]].append(label)
    logins = _values(sim, Source.LOGINS)
    for labels in rings.values():
        (device,) = {label.detail["device_id"] for label in labels}
        members = {label.borrower_id for label in labels}
        uses = [v for v in logins if v["device_id"] == device]
        assert {v["borrower_id"] for v in uses} == members and 3 <= len(members) <= 6
        assert all(v["success"] for v in uses)
        for member in members:
            actions = [v["action"] for v in uses if v["borrower_id"] == member]
            assert actions[:2] == ["login", "loan_application"]
        assert len({v["geo"]["city"] for v in uses}) == 1
        assert max(map(_instant, uses)) - min(map(_instant, uses)) <= timedelta(days=10)


def test_impossible_travel_is_a_far_login_within_the_hour_of_one_at_home(
    sim: Simulation, index: Index
) -> None:
    for label in _labels(sim, "impossible_travel"):
        detail = label.detail
        mine = [v for v in index[Source.LOGINS][label.borrower_id] if v["success"]]
        start, end = _instant(label.start), _instant(label.end)
        assert {v["geo"]["city"] for v in mine if _instant(v) < start} <= {detail["home_city"]}
        (home,) = [v for v in mine if _instant(v) == start and v["action"] == "login"]
        (far,) = [v for v in mine if _instant(v) == end and v["action"] == "login"]
        assert home["geo"]["city"] == detail["home_city"] != far["geo"]["city"] == detail["city"]
        assert end - start < timedelta(hours=1)
        assert detail["distance_km"] > 1_000


# --- delinquency ------------------------------------------------------------------------------


def _check_missed(config: SimulationConfig, sim: Simulation, label: Label, by: Index) -> float:
    """Check one missed installment; return its inflow ratio (recent / baseline) or 0."""
    detail = label.detail
    due = date.fromisoformat(detail["due_date"])
    due_day = (due - config.start.date()).days
    assert 30 <= due_day <= config.days - 5
    grace_end = datetime.fromisoformat(f"{due + timedelta(days=3)}T23:59:59+08:00")
    if detail.get("later_installments_missed"):
        # Not cured: the borrower stays delinquent, the label runs to the end of the period.
        period_end = config.start + timedelta(days=config.days) - timedelta(seconds=1)
        assert _instant(label.end) == max(grace_end, period_end)
    else:
        assert _instant(label.end) == grace_end
    loan = [
        r for r in by[Source.REPAYMENTS][label.borrower_id] if r["loan_id"] == detail["loan_id"]
    ]
    scheduled = {r["installment"]: r for r in loan if r["kind"] == "scheduled"}
    assert scheduled[detail["installment"]]["due_date"] == detail["due_date"]
    assert _instant(scheduled[1]) < config.start + timedelta(hours=1)

    def paid_by(installment: int, when: datetime) -> Decimal:
        return sum(
            (
                _yuan(r)
                for r in loan
                if r["kind"] == "payment"
                and r["installment"] == installment
                and _instant(r) <= when
            ),
            Decimal(0),
        )

    amount_due = Decimal(detail["amount_due"])
    assert paid_by(detail["installment"], grace_end) < amount_due / 2
    if "cured" not in detail:
        assert all(
            paid_by(k, grace_end + timedelta(days=60)) == 0
            for k in scheduled
            if k > detail["installment"]
        )

    signals = set(detail["signals"])
    declined = 0.0
    if detail["strength"] == "strong":
        assert signals and "mild_decline" not in signals
    else:
        assert detail["strength"] == "weak" and signals <= {"mild_decline"}
    if "decline" in signals:
        sales: dict[int, Decimal] = defaultdict(Decimal)
        count: Counter[int] = Counter()
        for tx in by[Source.TRANSACTIONS][label.borrower_id]:
            if _is_sales(tx):
                sales[(_instant(tx) - config.start).days] += _yuan(tx)
                count[(_instant(tx) - config.start).days] += 1
        decline = (date.fromisoformat(detail["decline_start"]) - config.start.date()).days
        assert 21 <= due_day - decline <= 35

        def ratio(per_day: Any) -> float:
            recent = sum(per_day[d] for d in range(due_day - 10, due_day)) / 10
            return float(recent / (sum(per_day[d] for d in range(decline)) / decline))

        # The floor is 15-30 %, but a B2B borrower's one or two inflows a day make ten days
        # noisy: each case declines, the cases together clearly.
        declined = min(ratio(sales), ratio(count))
        assert declined < 1.0
    logins = by[Source.LOGINS][label.borrower_id]
    if "quiet" in signals:
        quiet = datetime.fromisoformat(f"{detail['quiet_from']}T00:00:00+08:00")
        assert 14 <= (due - quiet.date()).days <= 21
        silent = [v for v in logins if quiet <= _instant(v) <= grace_end]
        assert {v["action"] for v in silent} <= {"login", "payout_account_change", "logout"}
        # At most the session of a payout change (and the logout of the night before).
        assert sum(v["action"] == "login" for v in silent) <= 1
    if "payout_change" in signals:
        (change,) = [v for v in logins if v["ts"] == detail["payout_change_ts"]]
        assert change["action"] == "payout_account_change"
        assert 2 <= (due - _instant(change).date()).days <= 6
    if "late_earlier" in signals:
        earlier = detail["installment"] - 1
        earlier_due = date.fromisoformat(scheduled[earlier]["due_date"])
        grace = datetime.fromisoformat(f"{earlier_due + timedelta(days=3)}T23:59:59+08:00")
        assert paid_by(earlier, grace) < Decimal(scheduled[earlier]["amount_due"])
        assert detail["earlier_payments"]
    return declined


def test_missed_installment_is_unpaid_after_the_grace_period(sim: Simulation, index: Index) -> None:
    labels = _labels(sim, "missed_installment")
    assert len(labels) == 4
    for label in labels:
        _check_missed(CONFIG, sim, label, index)


def test_delinquency_pre_signals_vary_and_some_cases_are_weak() -> None:
    config = SimulationConfig(borrowers=80, days=70, seed=2, delinquents=24)
    heavy = simulate(config)
    by: Index = {source: defaultdict(list) for source in Source}
    for record in heavy.records:
        source = config.topics.source_of(record["topic"])
        assert source is not None
        by[source][record["key"]].append(record["value"])
    labels = _labels(heavy, "missed_installment")
    assert len(labels) == 24
    ratios = [_check_missed(config, heavy, label, by) for label in labels]
    declines = [
        r for r, label in zip(ratios, labels, strict=True) if "decline" in label.detail["signals"]
    ]
    assert len(declines) >= 5 and sum(declines) / len(declines) < 0.6
    signals = Counter(s for label in labels for s in label.detail["signals"])
    assert set(signals) >= {"decline", "quiet", "payout_change", "late_earlier"}
    assert any(len(label.detail["signals"]) >= 2 for label in labels)
    assert any(label.detail["strength"] == "weak" for label in labels)
    assert any(float(label.detail["paid"]) > 0 for label in labels)


# --- benign traps -----------------------------------------------------------------------------


def _own_account(tx: Value) -> bool:
    return bool(tx["counterparty_id"].startswith(f"acct-{tx['borrower_id'][2:]}-"))


def test_benign_traps_exist(sim: Simulation) -> None:
    labelled = _labelled(sim)
    txs = _values(sim, Source.TRANSACTIONS)

    # Own-account transfers: an out on one account and the matching in on the other, same ts.
    outs = {
        (tx["ts"], tx["account_id"], tx["counterparty_id"], tx["amount"])
        for tx in txs
        if tx["direction"] == "out" and _own_account(tx)
    }
    own = [
        tx
        for tx in txs
        if tx["direction"] == "in"
        and _own_account(tx)
        and (tx["ts"], tx["counterparty_id"], tx["account_id"], tx["amount"]) in outs
    ]
    assert len(own) >= 20
    assert {tx["account_id"][-2:] for tx in own} == {"-1", "-2"}

    # Refunds: a customer's payment sent back whole to the same customer within a day.
    paid_in = {
        (tx["borrower_id"], tx["counterparty_id"], tx["amount"]): _instant(tx)
        for tx in txs
        if tx["direction"] == "in"
    }
    refunds = [
        tx
        for tx in txs
        if tx.get("memo") == "refund"
        and tx["borrower_id"] not in labelled
        and timedelta(0)
        < _instant(tx) - paid_in[(tx["borrower_id"], tx["counterparty_id"], tx["amount"])]
        <= timedelta(days=1)
    ]
    assert len(refunds) >= 5

    # Forgot password: a failure burst, a reset and a success, all on an already-known device.
    logins = _values(sim, Source.LOGINS)
    known: dict[str, set[str]] = defaultdict(set)
    resets = 0
    for i, v in enumerate(logins):
        if v["action"] == "password_reset":
            failures = [
                f
                for f in logins[max(0, i - 200) : i]
                if f["borrower_id"] == v["borrower_id"]
                and not f["success"]
                and _instant(v) - _instant(f) <= timedelta(minutes=15)
            ]
            assert len(failures) >= 5
            assert {f["device_id"] for f in failures} == {v["device_id"]}
            assert v["device_id"] in known[v["borrower_id"]]
            after = next(a for a in logins[i + 1 :] if a["borrower_id"] == v["borrower_id"])
            assert (after["action"], after["success"]) == ("login", True)
            assert after["device_id"] == v["device_id"]
            resets += 1
        if v["success"]:
            known[v["borrower_id"]].add(v["device_id"])
    assert resets >= 1

    # Habits: some pay one or two days late (within grace), some a week or more early.
    repayments = _values(sim, Source.REPAYMENTS)
    dues = {(r["loan_id"], r["installment"]): r for r in repayments if r["kind"] == "scheduled"}
    late, early = [], []
    for r in repayments:
        if r["kind"] == "payment":
            due = dues[(r["loan_id"], r["installment"])]
            days_late = (_instant(r).date() - date.fromisoformat(due["due_date"])).days
            if r["amount"] == due["amount_due"] and 1 <= days_late <= 2:
                late.append(r["borrower_id"])
            if r["amount"] == due["amount_due"] and days_late <= -6:
                early.append(r["borrower_id"])
    assert set(late) - labelled
    assert set(early) - labelled


def test_no_borrower_without_a_delinquency_label_misses_an_installment(sim: Simulation) -> None:
    delinquent = {label.borrower_id for label in _labels(sim, "missed_installment")}
    repayments = _values(sim, Source.REPAYMENTS)
    dues = {(r["loan_id"], r["installment"]): r for r in repayments if r["kind"] == "scheduled"}
    paid: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for r in repayments:
        if r["kind"] == "payment":
            key = (r["loan_id"], r["installment"])
            grace = date.fromisoformat(dues[key]["due_date"]) + timedelta(days=3)
            assert _instant(r) > _instant(dues[key])  # never before the schedule exists
            if _instant(r).date() <= grace:
                paid[key] += _yuan(r)
    last_day = (CONFIG.start + timedelta(days=CONFIG.days - 1)).date()
    checked = 0
    for key, due in dues.items():
        if date.fromisoformat(due["due_date"]) + timedelta(days=3) < last_day:
            if due["borrower_id"] not in delinquent:
                assert paid[key] == Decimal(due["amount_due"]), due
                checked += 1
    assert checked >= 50


def test_carrier_nat_addresses_are_shared_by_many_with_a_few_typos_a_day() -> None:
    config = SimulationConfig(borrowers=1_000, days=5, seed=1)
    labelled = {label.borrower_id for label in simulate_stream(config)[0]}
    succeeded: dict[tuple[str, str], set[str]] = defaultdict(set)
    failed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in simulate_stream(config)[1]:
        v = record["value"]
        if record["topic"] == config.topics.logins and v["borrower_id"] not in labelled:
            ip_day = (v["ip"], v["ts"][:10])
            (succeeded if v["success"] else failed)[ip_day].add(v["borrower_id"])
    # Many borrowers log in from one carrier NAT or office address the same day ...
    assert sum(len(borrowers) >= 10 for borrowers in succeeded.values()) >= 20
    # ... and there, a few of them mistype their passwords the same day: 2-4, never 20.
    clusters = [len(bs) for ip_day, bs in failed.items() if len(succeeded[ip_day]) >= 10]
    assert sum(2 <= size <= 4 for size in clusters) >= 5
    assert max(clusters) < 10


def test_two_person_devices_are_benign_and_never_three(sim: Simulation) -> None:
    labelled = _labelled(sim)
    logins = [v for v in _values(sim, Source.LOGINS) if v["borrower_id"] not in labelled]
    devices: dict[str, set[str]] = defaultdict(set)
    for v in logins:
        if v["success"]:
            devices[v["device_id"]].add(v["borrower_id"])
    # A family tablet or an accountant's computer: two borrowers on one device, never three.
    sizes = Counter(len(borrowers) for borrowers in devices.values())
    assert sizes[2] >= 1
    assert max(sizes) == 2
    rings = {label.detail["device_id"] for label in _labels(sim, "device_ring")}
    everyone: dict[str, set[str]] = defaultdict(set)
    for v in _values(sim, Source.LOGINS):
        if v["success"] and v["device_id"] not in rings:
            everyone[v["device_id"]].add(v["borrower_id"])
    assert max(len(borrowers) for borrowers in everyone.values()) == 2


def test_frequent_flyers_move_at_airliner_speed_and_nobody_benign_faster(
    sim: Simulation, index: Index
) -> None:
    windows = {
        label.borrower_id: (_instant(label.start), _instant(label.end)) for label in sim.labels
    }
    flights = 0
    for borrower_id, logins in index[Source.LOGINS].items():
        # The borrower's own logins: outside the window of any injected case.
        start, end = windows.get(borrower_id, (CONFIG.start, CONFIG.start))
        seen = [
            v
            for v in logins
            if v["success"] and v["action"] == "login" and not start <= _instant(v) <= end
        ]
        for before, after in zip(seen, seen[1:], strict=False):
            if before["geo"]["city"] == after["geo"]["city"]:
                continue
            hours = (_instant(after) - _instant(before)).total_seconds() / 3600
            km = _distance(before["geo"], after["geo"])
            assert km / hours < 800, (borrower_id, before, after)
            if km > 1_000 and timedelta(hours=2) <= timedelta(hours=hours) <= timedelta(hours=4):
                flights += 1
    assert flights >= 1


def _distance(a: Value, b: Value) -> float:
    p1, p2 = math.radians(a["lat"]), math.radians(b["lat"])
    dp, dl = p2 - p1, math.radians(b["lon"] - a["lon"])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def test_regular_settlements_round_top_ups_and_back_and_forth_are_benign(
    sim: Simulation, index: Index
) -> None:
    labelled = _labelled(sim)
    regular = back_and_forth = returned = top_ups = 0
    for borrower_id, txs in index[Source.TRANSACTIONS].items():
        if borrower_id in labelled:
            continue
        # Settlement batches at one time of day, to the minute, with amounts that are not round.
        times: dict[str, Counter[str]] = defaultdict(Counter)
        for tx in txs:
            if tx["counterparty_id"].startswith(("plat-", "acq-")):
                times[tx["counterparty_id"]][tx["ts"][11:16]] += 1
        for counter in times.values():
            if counter and counter.most_common(1)[0][1] >= 10:
                regular += 1
        top_ups += sum(tx["channel"] == "wallet" and _yuan(tx) % 100 == 0 for tx in txs)
        # Buying from and selling to one partner, or a deposit returned: in and out, one party.
        partners: dict[str, list[Value]] = defaultdict(list)
        for tx in txs:
            if not tx["counterparty_id"].startswith(("acct-", "lender-", "cust-")):
                partners[tx["counterparty_id"]].append(tx)
        for group in partners.values():
            if {"in", "out"} <= {tx["direction"] for tx in group}:
                back_and_forth += 1
                outs = {tx["amount"] for tx in group if tx["direction"] == "out"}
                returned += any(tx["direction"] == "in" and tx["amount"] in outs for tx in group)
    assert regular >= 10
    assert top_ups >= 20
    assert back_and_forth >= 5
    assert returned >= 1


def test_genuine_growth_before_an_application_keeps_its_new_clients(
    sim: Simulation, index: Index
) -> None:
    labelled = _labelled(sim)
    growers = 0
    for borrower_id, logins in index[Source.LOGINS].items():
        applications = [_instant(v) for v in logins if v["action"] == "loan_application"]
        if borrower_id in labelled or not applications:
            continue
        payments: dict[str, list[datetime]] = defaultdict(list)
        for tx in index[Source.TRANSACTIONS][borrower_id]:
            if tx["direction"] == "in" and tx["counterparty_id"].startswith("corp-"):
                payments[tx["counterparty_id"]].append(_instant(tx))
        for applied in applications:
            # New big clients: first paid in the six weeks before, still paying after.
            new = [
                times
                for times in payments.values()
                if CONFIG.start + timedelta(days=7) < times[0] < applied
                and applied - times[0] <= timedelta(days=42)
                and len(times) >= 2
            ]
            staying = [times for times in new if times[-1] > applied + timedelta(days=3)]
            growers += len(new) >= 2 and len(staying) >= 1
    assert growers >= 1


def test_app_updates_change_the_agent_version_but_not_the_phone(sim: Simulation) -> None:
    labelled = _labelled(sim)
    agents: dict[str, set[str]] = defaultdict(set)
    for v in _values(sim, Source.LOGINS):
        if v["borrower_id"] not in labelled:
            agents[v["device_id"]].add(v["user_agent"])
    updated = [a for a in agents.values() if len(a) > 1]
    assert len(updated) >= 5
    for versions in updated:
        assert len({agent.split(" ", 1)[1] for agent in versions}) == 1  # one phone model


def test_a_benign_drawdown_after_a_payout_change_is_held_then_booked(
    sim: Simulation, index: Index
) -> None:
    labelled = _labelled(sim)
    held = 0
    for borrower_id, logins in index[Source.LOGINS].items():
        if borrower_id in labelled:
            continue
        changes = [_instant(v) for v in logins if v["action"] == "payout_account_change"]
        for v in logins:
            if v["action"] == "drawdown" and any(
                timedelta(0) < _instant(v) - c <= timedelta(days=1) for c in changes
            ):
                drawdown = _instant(v)
                assert not any(
                    tx["counterparty_id"] == "lender-disburse"
                    and drawdown <= _instant(tx) <= drawdown + timedelta(days=5)
                    for tx in index[Source.TRANSACTIONS][borrower_id]
                )
                booked = [
                    _instant(r)
                    for r in index[Source.REPAYMENTS][borrower_id]
                    if r["kind"] == "scheduled" and _instant(r) > drawdown
                ]
                assert not booked or min(booked) - drawdown >= timedelta(days=1)
                held += 1
    assert held >= 1


def test_sale_day_lifts_every_ecommerce_borrower(sim: Simulation, index: Index) -> None:
    ecommerce = {
        b for b, txs in index[Source.TRANSACTIONS].items() if txs[0]["sector"] == "ecommerce"
    }
    assert len(ecommerce) >= 10
    amounts: dict[int, Decimal] = defaultdict(Decimal)
    lifted: list[bool] = []
    for borrower_id in ecommerce:
        per_day: Counter[int] = Counter()
        for tx in index[Source.TRANSACTIONS][borrower_id]:
            if _is_sales(tx):
                if not tx["counterparty_id"].startswith("plat-"):
                    per_day[_day(tx)] += 1
                amounts[_day(tx)] += _yuan(tx)
        if sum(per_day.values()) > 5 * SALE_DAY:  # not only batch settlements
            usual = sum(per_day[d] for d in range(SALE_DAY)) / SALE_DAY
            assert per_day[SALE_DAY] > usual
            lifted.append(per_day[SALE_DAY] > 1.5 * usual)
    assert sum(lifted) >= 0.9 * len(lifted)
    # Settlement batches pay a day's orders the next day: count the sale day and the next.
    usual = sum(amounts[d] for d in range(SALE_DAY - 14, SALE_DAY)) / 14
    assert amounts[SALE_DAY] + amounts[SALE_DAY + 1] > Decimal("3.5") * usual


def test_restaurant_slump_hits_the_whole_sector(sim: Simulation, index: Index) -> None:
    before: Counter[int] = Counter()
    for txs in index[Source.TRANSACTIONS].values():
        if txs[0]["sector"] == "restaurant":
            for tx in txs:
                if _is_sales(tx) and tx["channel"] in ("pos", "wallet"):
                    before[_day(tx)] += 1
    slump = [d for d in SLUMP_DAYS if d < CONFIG.days]
    normal = [d for d in range(CONFIG.days) if d not in SLUMP_DAYS and d + 1 not in SLUMP_DAYS]
    during = sum(before[d] for d in slump) / len(slump)
    usual = sum(before[d] for d in normal) / len(normal)
    assert during < 0.75 * usual


# --- no artefacts -----------------------------------------------------------------------------


def test_injected_cases_carry_no_artefact_benign_traffic_lacks(
    sim: Simulation, index: Index
) -> None:
    windows: dict[str, tuple[datetime, datetime]] = {
        label.borrower_id: (_instant(label.start), _instant(label.end)) for label in sim.labels
    }

    def in_case(v: Value) -> bool:
        window = windows.get(v["borrower_id"])
        return window is not None and window[0] <= _instant(v) <= window[1]

    def tx_features(tx: Value) -> set[tuple[str, Any]]:
        memo = tx.get("memo")
        return {
            ("channel", tx["channel"]),
            ("prefix", tx["counterparty_id"].split("-")[0]),
            ("memo", "loan" if memo and memo.startswith("ln-") else memo),
            ("name", tx.get("counterparty_name")),
            ("direction+channel", (tx["direction"], tx["channel"])),
        }

    def login_features(v: Value) -> set[tuple[str, Any]]:
        agent = v["user_agent"]
        version, _, model = agent.partition(" ")
        return {
            ("action", v["action"]),
            ("app", version),
            ("model", model),
            ("device", re.sub("[0-9a-f]", "h", v["device_id"])),
            ("ip", ".".join(v["ip"].split(".")[:2])),
            ("city", v["geo"]["city"]),
        }

    for source, features in (
        (Source.TRANSACTIONS, tx_features),
        (Source.LOGINS, login_features),
    ):
        benign: set[tuple[str, Any]] = set()
        injected: set[tuple[str, Any]] = set()
        for borrower_id, values in index[source].items():
            for v in values:
                if borrower_id not in windows:
                    benign |= features(v)
                elif in_case(v):
                    injected |= features(v)
        assert injected, source
        assert injected <= benign, injected - benign
    words = set()
    for record in sim.records:
        for value in record["value"].values():
            if isinstance(value, str):
                words.update(re.split("[^a-z]+", value.lower()))
    assert not words & {"fraud", "fake", "ring", "wash", "attack", "script", "stuffing", "mule"}


# --- files and volume -------------------------------------------------------------------------


def test_write_and_read_jsonl_round_trip_byte_for_byte(tmp_path: Path) -> None:
    tiny = simulate(TINY)
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    assert write_jsonl(tiny, events, labels) == len(tiny.records)
    first = events.read_bytes(), labels.read_bytes()
    # Straight from the config, streamed day by day: the same bytes.
    assert write_jsonl(TINY, events, labels) == len(tiny.records)
    assert (events.read_bytes(), labels.read_bytes()) == first
    write_jsonl(simulate_stream(TINY), events, labels)
    assert (events.read_bytes(), labels.read_bytes()) == first
    assert list(iter_jsonl(events)) == tiny.records
    assert list(iter_jsonl(labels)) == [asdict(label) for label in tiny.labels]
    assert first[0].count(b"\n") == len(tiny.records)


def test_volume_is_15_to_25_events_per_borrower_day_and_fast() -> None:
    config = SimulationConfig(borrowers=50, days=30, seed=3)
    began = time.perf_counter()
    result = simulate(config)
    elapsed = time.perf_counter() - began
    assert 15 <= len(result.records) / (50 * 30) <= 25
    assert elapsed < 5
    # Defaults scale with the population; a 30-day period is too short for a day-30+ due date
    # or a ramp of weeks before an application; stuffing needs 1,000 borrowers by default.
    counts = Counter(label.typology for label in result.labels)
    assert set(counts) == set(TYPOLOGIES) - {
        "missed_installment",
        "revenue_inflation",
        "credential_stuffing",
    }
    assert counts["circular_transfer"] == 3 and 3 <= counts["device_ring"] <= 6
    assert sum(counts.values()) <= 0.35 * 50
