"""The population: every sector present, each borrower in one sector throughout."""

from __future__ import annotations

from collections import defaultdict

from sim import Simulation
from tests.sim.helpers import CONFIG, SECTORS, values_of
from topics.names import Source


def test_every_transaction_carries_the_borrowers_stable_sector(sim: Simulation) -> None:
    sectors: dict[str, set[str]] = defaultdict(set)
    for tx in values_of(sim, Source.TRANSACTIONS):
        sectors[tx["borrower_id"]].add(tx["sector"])
        if tx["channel"] == "ecommerce":
            assert tx["sector"] == "ecommerce"
        if tx["channel"] == "pos":
            assert tx["sector"] in ("restaurant", "retail")
    assert len(sectors) == CONFIG.borrowers
    assert all(len(values) == 1 for values in sectors.values())
    assert set().union(*sectors.values()) == SECTORS
