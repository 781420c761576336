"""Revenue inflation: new payers ramp up, then stop; a genuine growth keeps its clients."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import (
    CONFIG,
    Index,
    day_of,
    instant,
    is_sales,
    labelled_ids,
    labels_of,
    yuan,
)
from topics.names import Source


def test_revenue_inflation_ramps_up_new_payers_before_the_application_then_stops(
    sim: Simulation, index: Index
) -> None:
    for label in labels_of(sim, "revenue_inflation"):
        detail = label.detail
        logins = index[Source.LOGINS][label.borrower_id]
        (application,) = [v for v in logins if v["action"] == "loan_application"]
        (drawdown,) = [v for v in logins if v["action"] == "drawdown"]
        assert application["ts"] == detail["application_ts"]
        assert application["amount"] == detail["application_amount"]
        assert drawdown["ts"] == detail["drawdown_ts"] == label.end.isoformat()
        assert yuan(drawdown) <= yuan(application)

        txs = index[Source.TRANSACTIONS][label.borrower_id]
        payers = set(detail["counterparties"])
        assert 2 <= len(payers) <= 15
        fake = [tx for tx in txs if tx["counterparty_id"] in payers]
        # Never seen before the ramp, gone at its end: the application or 1-2 weeks before.
        gap = detail["ramp_ends_days_before_application"]
        assert gap == 0 or 7 <= gap <= 14
        ramp_end = instant(application) - timedelta(days=gap)
        assert all(instant(label.start) <= instant(tx) < ramp_end for tx in fake)
        assert {(tx["direction"], tx["channel"]) for tx in fake} == {("in", "bank_transfer")}
        assert all(10_000 <= yuan(tx) <= 150_000 for tx in fake)
        assert 21 <= detail["ramp_days"] <= 42
        assert ramp_end - instant(label.start) <= timedelta(days=42)

        # The fake money at least doubles the inflow of the ramp's last month.
        applied = day_of(application) - gap
        ramp_start = day_of(fake[0])
        usual = [tx for tx in txs if is_sales(tx) and tx["counterparty_id"] not in payers]
        before = sum(yuan(tx) for tx in usual if day_of(tx) < ramp_start) / ramp_start * 30
        last_month = sum(yuan(tx) for tx in fake if applied - 30 <= day_of(tx) < applied)
        assert last_month >= Decimal("0.7") * before
        # The disbursement lands on the account: no payout change came before.
        assert any(
            tx["counterparty_id"] == "lender-disburse" and tx["memo"] == detail["loan_id"]
            for tx in txs
        )


def test_genuine_growth_before_an_application_keeps_its_new_clients(
    sim: Simulation, index: Index
) -> None:
    labelled = labelled_ids(sim)
    growers = 0
    for borrower_id, logins in index[Source.LOGINS].items():
        applications = [instant(v) for v in logins if v["action"] == "loan_application"]
        if borrower_id in labelled or not applications:
            continue
        payments: dict[str, list[datetime]] = defaultdict(list)
        for tx in index[Source.TRANSACTIONS][borrower_id]:
            if tx["direction"] == "in" and tx["counterparty_id"].startswith("corp-"):
                payments[tx["counterparty_id"]].append(instant(tx))
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
