"""Benign repayments: everyone without a delinquency label pays in full within grace."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import CONFIG, instant, labels_of, values_of, yuan
from topics.names import Source


def test_no_borrower_without_a_delinquency_label_misses_an_installment(sim: Simulation) -> None:
    delinquent = {label.borrower_id for label in labels_of(sim, "missed_installment")}
    repayments = values_of(sim, Source.REPAYMENTS)
    dues = {(r["loan_id"], r["installment"]): r for r in repayments if r["kind"] == "scheduled"}
    paid: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
    for r in repayments:
        if r["kind"] == "payment":
            key = (r["loan_id"], r["installment"])
            grace = date.fromisoformat(dues[key]["due_date"]) + timedelta(days=3)
            assert instant(r) > instant(dues[key])  # never before the schedule exists
            if instant(r).date() <= grace:
                paid[key] += yuan(r)
    last_day = (CONFIG.start + timedelta(days=CONFIG.days - 1)).date()
    checked = 0
    for key, due in dues.items():
        if date.fromisoformat(due["due_date"]) + timedelta(days=3) < last_day:
            if due["borrower_id"] not in delinquent:
                assert paid[key] == Decimal(due["amount_due"]), due
                checked += 1
    assert checked >= 50
