"""Machine-generated flows: payments regular to the second, round or un-Benford sums."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from sim import Simulation
from tests.sim.helpers import Index, instant, labels_of, yuan
from topics.names import Source


def _benford_distance(amounts: list[Decimal]) -> float:
    """Mean absolute deviation of the first digits from Benford's law."""
    digits = Counter(str(amount).lstrip("0.")[0] for amount in amounts)
    return sum(abs(digits[str(d)] / len(amounts) - math.log10(1 + 1 / d)) for d in range(1, 10)) / 9


def test_machine_generated_inflows_are_regular_to_the_second(sim: Simulation, index: Index) -> None:
    for label in labels_of(sim, "machine_generated"):
        detail = label.detail
        interval, jitter = detail["interval_seconds"], detail["jitter_seconds"]
        assert 37 * 60 <= interval <= 90 * 60 and 1 <= jitter <= 10
        payers = set(detail["counterparties"])
        assert 3 <= len(payers) <= 6
        fake = [
            tx
            for tx in index[Source.TRANSACTIONS][label.borrower_id]
            if tx["counterparty_id"] in payers
        ]
        assert len(fake) == detail["transfers"]
        assert all(tx["direction"] == "in" and tx["channel"] == detail["channel"] for tx in fake)
        times = [instant(tx) for tx in fake]
        assert timedelta(days=13) <= times[-1] - times[0] <= timedelta(days=28)
        for before, after in zip(times, times[1:], strict=False):
            gap = (after - before).total_seconds()
            steps = round(gap / interval)
            assert steps >= 1 and abs(gap - steps * interval) <= steps * jitter
        amounts = [yuan(tx) for tx in fake]
        if detail["amounts"] == "round":
            assert all(amount % 100 == 0 for amount in amounts)
        else:
            assert sum(amount % 1 != 0 for amount in amounts) > 0.9 * len(amounts)
            assert _benford_distance(amounts) > 0.02
