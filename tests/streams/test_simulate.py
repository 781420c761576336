"""The traffic generator: deterministic, on contract, with the injected cases and benign traps."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.simulate import (
    SALE_DAY,
    Label,
    Simulation,
    SimulationConfig,
    iter_jsonl,
    simulate,
    write_jsonl,
)
from topics.names import Source
from topics.validate import parse_value

CONFIG = SimulationConfig(
    borrowers=60, days=50, seed=11, circular_rings=2, takeovers=2, delinquents=3
)
TINY = SimulationConfig(borrowers=12, days=10, seed=5)

Value = dict[str, Any]


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(CONFIG)


def _instant(value: Value) -> datetime:
    return datetime.fromisoformat(value["ts"])


def _day(value: Value) -> int:
    return (_instant(value) - CONFIG.start).days


def _values(sim: Simulation, source: Source) -> list[Value]:
    topic = CONFIG.topics.input_topic(source)
    return [r["value"] for r in sim.records if r["topic"] == topic]


def _labels(sim: Simulation, typology: str) -> list[Label]:
    return [label for label in sim.labels if label.typology == typology]


def _is_sales(tx: Value) -> bool:
    """Customer or client money: not own transfers, loans or transfers between borrowers."""
    return (
        tx["direction"] == "in"
        and tx.get("memo") is None
        and not tx["counterparty_id"].startswith(("acct-", "lender-"))
    )


def test_same_config_gives_the_same_output_and_another_seed_does_not(sim: Simulation) -> None:
    again = simulate(CONFIG)
    assert again.records == sim.records
    assert again.labels == sim.labels
    assert simulate(TINY) == simulate(TINY)
    assert simulate(replace(TINY, seed=6)).records != simulate(TINY).records


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


def test_amounts_have_two_decimals_and_ids_have_the_documented_shape(sim: Simulation) -> None:
    for tx in _values(sim, Source.TRANSACTIONS):
        assert Decimal(tx["amount"]).as_tuple().exponent == -2
        assert tx["borrower_id"].startswith("b-") and len(tx["borrower_id"]) == 7
        assert tx["account_id"].startswith(f"acct-{tx['borrower_id'][2:]}-")


def test_each_typology_appears_with_the_configured_count(sim: Simulation) -> None:
    counts = Counter(label.typology for label in sim.labels)
    assert counts == {"circular_transfer": 6, "account_takeover": 2, "missed_installment": 3}
    rings = {label.detail["ring"] for label in _labels(sim, "circular_transfer")}
    assert len(rings) == 2
    categories = {label.typology: label.category for label in sim.labels}
    assert categories == {
        "circular_transfer": "falsified_flow",
        "account_takeover": "abnormal_behaviour",
        "missed_installment": "delinquency_risk",
    }
    injected = [label.borrower_id for label in sim.labels]
    assert len(injected) == len(set(injected))  # one case per borrower


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


def test_takeover_is_a_failure_burst_then_a_new_device_payout_change_and_drawdown(
    sim: Simulation,
) -> None:
    logins = _values(sim, Source.LOGINS)
    repayments = {r["borrower_id"] for r in _values(sim, Source.REPAYMENTS)}
    for label in _labels(sim, "account_takeover"):
        mine = [v for v in logins if v["borrower_id"] == label.borrower_id]
        start = datetime.fromisoformat(label.start)
        before = [v for v in mine if _instant(v) < start]
        attack = [v for v in mine if v["device_id"] == label.detail["device_id"]]
        assert label.borrower_id not in repayments  # a loan-free victim
        assert _day(attack[0]) - _day(before[0]) >= 7
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
        assert datetime.fromisoformat(label.end) == drawdown


def test_missed_installment_follows_a_decline_and_is_unpaid_or_partly_paid(
    sim: Simulation,
) -> None:
    repayments = _values(sim, Source.REPAYMENTS)
    sales = [tx for tx in _values(sim, Source.TRANSACTIONS) if _is_sales(tx)]
    for label in _labels(sim, "missed_installment"):
        detail = label.detail
        due = date.fromisoformat(detail["due_date"])
        due_day = (due - CONFIG.start.date()).days
        assert 30 <= due_day <= CONFIG.days - 5
        assert label.end == f"{due + timedelta(days=3)}T23:59:59+08:00"
        loan = [r for r in repayments if r["loan_id"] == detail["loan_id"]]
        scheduled = {r["installment"]: r for r in loan if r["kind"] == "scheduled"}
        assert scheduled[detail["installment"]]["due_date"] == detail["due_date"]
        assert _instant(scheduled[1]) < CONFIG.start + timedelta(hours=1)
        paid = Counter[int]()
        for r in loan:
            if r["kind"] == "payment":
                paid[r["installment"]] += int(Decimal(r["amount"]) * 100)
        amount_due = int(Decimal(detail["amount_due"]) * 100)
        assert paid[detail["installment"]] < amount_due / 2
        assert all(paid[k] == 0 for k in scheduled if k > detail["installment"])

        mine = defaultdict(Decimal)
        for tx in sales:
            if tx["borrower_id"] == label.borrower_id:
                mine[_day(tx)] += Decimal(tx["amount"])
        decline = (date.fromisoformat(detail["decline_start"]) - CONFIG.start.date()).days
        assert 21 <= due_day - decline <= 35
        baseline = sum(mine[d] for d in range(decline)) / decline
        last_week = sum(mine[d] for d in range(due_day - 7, due_day)) / 7
        # The floor is 15-30 %; a B2B borrower's few large inflows a day make one week noisy.
        assert last_week < Decimal("0.7") * baseline


def _own_account(tx: Value) -> bool:
    return bool(tx["counterparty_id"].startswith(f"acct-{tx['borrower_id'][2:]}-"))


def test_benign_traps_exist(sim: Simulation) -> None:
    labelled = {label.borrower_id for label in sim.labels}
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

    # Late payers pay the full installment one or two days after the due date.
    repayments = _values(sim, Source.REPAYMENTS)
    dues = {(r["loan_id"], r["installment"]): r for r in repayments if r["kind"] == "scheduled"}
    late = []
    for r in repayments:
        if r["kind"] == "payment":
            due = dues[(r["loan_id"], r["installment"])]
            days_late = (_instant(r).date() - date.fromisoformat(due["due_date"])).days
            if r["amount"] == due["amount_due"] and 1 <= days_late <= 2:
                late.append(r["borrower_id"])
    assert set(late) - labelled


def test_sale_day_lifts_every_ecommerce_borrower(sim: Simulation) -> None:
    txs = _values(sim, Source.TRANSACTIONS)
    ecommerce = {tx["borrower_id"] for tx in txs if tx["channel"] == "ecommerce"}
    per_day: dict[str, Counter[int]] = defaultdict(Counter)
    for tx in txs:
        if _is_sales(tx) and tx["borrower_id"] in ecommerce:
            per_day[tx["borrower_id"]][_day(tx)] += 1
    assert len(ecommerce) >= 10
    for counts in per_day.values():
        usual = sum(counts[d] for d in range(SALE_DAY)) / SALE_DAY
        assert counts[SALE_DAY] > 1.5 * usual
    sale = sum(counts[SALE_DAY] for counts in per_day.values())
    usual = sum(counts[d] for counts in per_day.values() for d in range(SALE_DAY)) / SALE_DAY
    assert sale > 2.5 * usual


def test_write_and_read_jsonl_round_trip_byte_for_byte(tmp_path: Path) -> None:
    tiny = simulate(TINY)
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    write_jsonl(tiny, events, labels)
    first = events.read_bytes(), labels.read_bytes()
    write_jsonl(simulate(TINY), events, labels)
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
    # Defaults scale with the population; a 30-day period is too short for a day-30+ due date.
    assert Counter(label.typology for label in result.labels) == {
        "circular_transfer": 3,
        "account_takeover": 1,
    }


@pytest.mark.parametrize(
    "config",
    [
        SimulationConfig(borrowers=10, days=20, delinquents=1),
        SimulationConfig(borrowers=5, days=40, circular_rings=2),
        SimulationConfig(borrowers=10, days=20, start=datetime(2026, 1, 5)),
        SimulationConfig(borrowers=0),
    ],
)
def test_impossible_configs_are_refused(config: SimulationConfig) -> None:
    with pytest.raises(ValueError):
        simulate(config)
