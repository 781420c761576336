"""Pass-through: money through the borrower to and from a network off the platform."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import Index, instant, labels_of, values_of, yuan
from topics.names import Source


def test_pass_through_moves_money_through_a_network_off_the_platform(
    sim: Simulation, index: Index
) -> None:
    accounts = {tx["account_id"] for tx in values_of(sim, Source.TRANSACTIONS)}
    labels = labels_of(sim, "pass_through")
    assert labels
    for label in labels:
        network = set(label.detail["counterparties"])
        assert not network & accounts
        assert set(label.entities) == network
        mine = [
            tx
            for tx in index[Source.TRANSACTIONS][label.borrower_id]
            if tx["counterparty_id"] in network
        ]
        moves = label.detail["moves"]
        assert len(mine) >= 2 * len(moves) >= 2 * 5
        days = {instant(tx).date() for tx in mine}
        assert 5 <= len(days) and max(days) - min(days) < timedelta(days=24)
        for move in moves:
            near, far = (Decimal(a) for a in move["amounts"])
            assert Decimal("0.94") * near <= far <= Decimal("1.03") * near
            assert move["minutes"] <= 150 and move["first"] in ("in", "out")
        ins = sum(yuan(tx) for tx in mine if tx["direction"] == "in")
        outs = sum(yuan(tx) for tx in mine if tx["direction"] == "out")
        assert Decimal("0.9") <= ins / outs <= Decimal("1.1")


def test_some_cases_vary_their_style(sim: Simulation) -> None:
    """Forwarded or round trips, fee-shrinking or varying, small or large: drawn per case."""
    details = [label.detail for label in labels_of(sim, "pass_through")]
    for detail in details:
        assert detail["style"] in ("forward", "round_trip", "mixed")
        assert isinstance(detail["varying"], bool) and isinstance(detail["small"], bool)
        if detail["small"]:
            assert all(Decimal(m["amounts"][0]) <= 2_500 for m in detail["moves"])


def test_wholesalers_and_sweeps_are_among_the_benign(sim: Simulation, index: Index) -> None:
    """The look-alikes: suppliers paid the day clients pay, and takings swept to savings."""
    labelled = {label.borrower_id for label in sim.labels}
    sweeping = {
        b
        for b, txs in index[Source.TRANSACTIONS].items()
        if any(tx.get("memo") == "to savings" for tx in txs)
    }
    assert sweeping and not sweeping & labelled
    for b in sweeping:
        saved = [tx for tx in index[Source.TRANSACTIONS][b] if tx.get("memo") == "to savings"]
        assert all(yuan(tx) % 1000 == 0 for tx in saved)
        assert len({tx["counterparty_id"] for tx in saved}) == 1


def test_a_pass_through_case_runs_from_its_earliest_move_to_its_latest(
    sim: Simulation, index: Index
) -> None:
    """A day's moves are drawn in no order: the case window holds every transfer of it,
    not only those between the first move drawn and the last."""
    for label in labels_of(sim, "pass_through"):
        network = set(label.detail["counterparties"])
        times = [
            instant(tx)
            for tx in index[Source.TRANSACTIONS][label.borrower_id]
            if tx["counterparty_id"] in network
        ]
        assert label.start == min(times) and label.end == max(times)
