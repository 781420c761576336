"""Benign flows: sector-wide shocks, regular settlements, own transfers, refunds and habits."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal

from sim import SALE_DAY, SLUMP_DAYS, Simulation
from tests.sim.helpers import (
    CONFIG,
    Index,
    Value,
    day_of,
    instant,
    is_sales,
    labelled_ids,
    values_of,
    yuan,
)
from topics.names import Source


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
            if is_sales(tx):
                if not tx["counterparty_id"].startswith("plat-"):
                    per_day[day_of(tx)] += 1
                amounts[day_of(tx)] += yuan(tx)
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
                if is_sales(tx) and tx["channel"] in ("pos", "wallet"):
                    before[day_of(tx)] += 1
    slump = [d for d in SLUMP_DAYS if d < CONFIG.days]
    normal = [d for d in range(CONFIG.days) if d not in SLUMP_DAYS and d + 1 not in SLUMP_DAYS]
    during = sum(before[d] for d in slump) / len(slump)
    usual = sum(before[d] for d in normal) / len(normal)
    assert during < 0.75 * usual


def test_regular_settlements_round_top_ups_and_back_and_forth_are_benign(
    sim: Simulation, index: Index
) -> None:
    labelled = labelled_ids(sim)
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
        top_ups += sum(tx["channel"] == "wallet" and yuan(tx) % 100 == 0 for tx in txs)
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


def _own_account(tx: Value) -> bool:
    return bool(tx["counterparty_id"].startswith(f"acct-{tx['borrower_id'][2:]}-"))


def test_benign_traps_exist(sim: Simulation) -> None:
    labelled = labelled_ids(sim)
    txs = values_of(sim, Source.TRANSACTIONS)

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
        (tx["borrower_id"], tx["counterparty_id"], tx["amount"]): instant(tx)
        for tx in txs
        if tx["direction"] == "in"
    }
    refunds = [
        tx
        for tx in txs
        if tx.get("memo") == "refund"
        and tx["borrower_id"] not in labelled
        and timedelta(0)
        < instant(tx) - paid_in[(tx["borrower_id"], tx["counterparty_id"], tx["amount"])]
        <= timedelta(days=1)
    ]
    assert len(refunds) >= 5

    # Forgot password: a failure burst, a reset and a success, all on an already-known device.
    logins = values_of(sim, Source.LOGINS)
    known: dict[str, set[str]] = defaultdict(set)
    resets = 0
    for i, v in enumerate(logins):
        if v["action"] == "password_reset":
            failures = [
                f
                for f in logins[max(0, i - 200) : i]
                if f["borrower_id"] == v["borrower_id"]
                and not f["success"]
                and instant(v) - instant(f) <= timedelta(minutes=15)
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
    repayments = values_of(sim, Source.REPAYMENTS)
    dues = {(r["loan_id"], r["installment"]): r for r in repayments if r["kind"] == "scheduled"}
    late, early = [], []
    for r in repayments:
        if r["kind"] == "payment":
            due = dues[(r["loan_id"], r["installment"])]
            days_late = (instant(r).date() - date.fromisoformat(due["due_date"])).days
            if r["amount"] == due["amount_due"] and 1 <= days_late <= 2:
                late.append(r["borrower_id"])
            if r["amount"] == due["amount_due"] and days_late <= -6:
                early.append(r["borrower_id"])
    assert set(late) - labelled
    assert set(early) - labelled
