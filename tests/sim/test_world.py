"""The world's records: on contract, keyed by borrower, in time order, ids of one shape."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import CONFIG, instant, values_of
from topics.names import Source
from topics.validate import parse_value


def test_every_record_meets_the_contract_and_is_keyed_by_borrower(sim: Simulation) -> None:
    for record in sim.records:
        source = CONFIG.topics.source_of(record["topic"])
        assert source is not None
        parsed = parse_value(source, record["value"])
        assert record["key"] == record["value"]["borrower_id"] == parsed.borrower_id
        assert record["value"]["ts"].endswith("+08:00")


def test_records_are_sorted_by_instant_and_event_ids_are_unique(sim: Simulation) -> None:
    order = [(instant(r["value"]), r["topic"], r["value"]["event_id"]) for r in sim.records]
    assert order == sorted(order)
    ids = [r["value"]["event_id"] for r in sim.records]
    assert len(ids) == len(set(ids))
    assert all(instant(r["value"]) >= CONFIG.start for r in sim.records)
    end = CONFIG.start + timedelta(days=CONFIG.days)
    assert all(instant(r["value"]) < end for r in sim.records)


def test_amounts_have_two_decimals_and_ids_have_the_documented_shape(sim: Simulation) -> None:
    for tx in values_of(sim, Source.TRANSACTIONS):
        assert Decimal(tx["amount"]).as_tuple().exponent == -2
        assert tx["borrower_id"].startswith("b-") and len(tx["borrower_id"]) == 7
        assert tx["account_id"].startswith(f"acct-{tx['borrower_id'][2:]}-")
