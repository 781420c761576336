"""Circular transfers: out-in pairs round the ring, each hop smaller and later."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import day_of, labels_of, values_of
from topics.names import Source


def test_ring_transfers_are_out_in_pairs_with_equal_ts_and_amounts_near_the_last(
    sim: Simulation,
) -> None:
    by_key = defaultdict(list)
    for tx in values_of(sim, Source.TRANSACTIONS):
        by_key[(tx["ts"], tx["account_id"], tx["counterparty_id"], tx["direction"])].append(tx)
    for label in labels_of(sim, "circular_transfer"):
        members, accounts = label.detail["members"], label.detail["accounts"]
        assert len(set(accounts)) == 3 and label.borrower_id in members
        assert len(set(members)) == sum(a.startswith("acct-") for a in accounts) in (2, 3)
        small = label.detail["small"]
        assert (4 if small else 2) <= len(label.detail["cycles"]) <= (7 if small else 4)
        days = [day_of({"ts": cycle[0]["ts"]}) for cycle in label.detail["cycles"]]
        assert len(set(days)) == len(days)
        low, high = (Decimal("0.97"), Decimal("1.03"))
        if not label.detail["varying"]:
            low, high = (Decimal("0.98"), Decimal("0.999"))
        for cycle in label.detail["cycles"]:
            assert [hop["from"] for hop in cycle] == accounts
            assert [hop["to"] for hop in cycle] == accounts[1:] + accounts[:1]
            amounts = [Decimal(hop["amount"]) for hop in cycle]
            assert (500 <= amounts[0] <= 4_500) if small else (50_000 <= amounts[0] <= 500_000)
            for before, after in zip(amounts, amounts[1:], strict=False):
                assert low * before - 1 <= after <= high * before + 1
            times = [datetime.fromisoformat(hop["ts"]) for hop in cycle]
            for before, after in zip(times, times[1:], strict=False):
                assert timedelta(minutes=20) <= after - before <= timedelta(hours=6)
            assert times[-1] - times[0] <= timedelta(hours=24)
            for hop in cycle:
                outs = by_key[(hop["ts"], hop["from"], hop["to"], "out")]
                ins = by_key[(hop["ts"], hop["to"], hop["from"], "in")]
                # A hop shows on the statement of each borrower it touches, on no other.
                assert len(outs) == hop["from"].startswith("acct-")
                assert len(ins) == hop["to"].startswith("acct-")
                for tx in outs + ins:
                    assert tx["amount"] == hop["amount"] and tx["channel"] == "bank_transfer"
                    assert tx["borrower_id"] in members
