"""Wash trading: the same sum back and forth with one outsider, the same day."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import Index, Value, day_of, instant, labels_of, values_of, yuan
from topics.names import Source


def _same_day_round_trips(txs: list[Value], tolerance: Decimal) -> list[int]:
    """Days with an in and an out of (nearly) the same sum, 5 min to 8 h apart."""
    days = []
    by_day: dict[int, list[Value]] = defaultdict(list)
    for tx in txs:
        by_day[day_of(tx)].append(tx)
    for day, group in by_day.items():
        ins = [tx for tx in group if tx["direction"] == "in"]
        outs = [tx for tx in group if tx["direction"] == "out"]
        if any(
            abs(yuan(i) - yuan(o)) <= tolerance * max(yuan(i), yuan(o))
            and timedelta(minutes=5) <= abs(instant(i) - instant(o)) <= timedelta(hours=8)
            for i in ins
            for o in outs
        ):
            days.append(day)
    return sorted(days)


def test_wash_trading_sends_the_same_sum_back_and_forth_with_one_outsider(
    sim: Simulation, index: Index
) -> None:
    accounts = {tx["account_id"] for tx in values_of(sim, Source.TRANSACTIONS)}
    for label in labels_of(sim, "wash_trading"):
        other = label.detail["counterparty"]
        assert other not in accounts and not other.startswith("acct-")
        mine = [
            tx
            for tx in index[Source.TRANSACTIONS][label.borrower_id]
            if tx["counterparty_id"] == other
        ]
        assert {tx["channel"] for tx in mine} == {"bank_transfer"}
        assert all(20_000 <= yuan(tx) <= 200_000 for tx in mine)
        days = _same_day_round_trips(mine, Decimal("0.005"))
        assert len(days) == len(label.detail["pairs"]) >= 4
        assert days[-1] - days[0] < 21
        assert {pair["first"] for pair in label.detail["pairs"]} <= {"in", "out"}
