"""Circular transfers: out-in pairs round the ring, each hop smaller and later."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import day_of, labels_of, values_of
from topics.names import Source


def test_ring_transfers_are_out_in_pairs_with_equal_ts_and_shrinking_amounts(
    sim: Simulation,
) -> None:
    by_key = defaultdict(list)
    for tx in values_of(sim, Source.TRANSACTIONS):
        by_key[(tx["ts"], tx["account_id"], tx["counterparty_id"], tx["direction"])].append(tx)
    for label in labels_of(sim, "circular_transfer"):
        members, accounts = label.detail["members"], label.detail["accounts"]
        assert len(set(members)) == 3 and label.borrower_id in members
        assert 2 <= len(label.detail["cycles"]) <= 4
        days = [day_of({"ts": cycle[0]["ts"]}) for cycle in label.detail["cycles"]]
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
