"""What a timer reads does not depend on where batches end: replay's batches are not the live
worker's, and both must raise the same alerts over the same events."""

from __future__ import annotations

from typing import Any

import pytest

from detectors.base import Detector, Output
from detectors.clock import Timer
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import Found, MemoryCrossIndex
from detectors.scenarios import at, transaction
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from topics.names import Source


class _Counting(Detector):
    """Counts a borrower's transactions; an hour after the first, notes how many it had."""

    name = "counting"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_transaction(self, event: Any, state: BorrowerState, found: Found) -> Output:
        memory = self.slot(state, lambda: {"count": 0})
        memory["count"] += 1
        if memory["count"] > 1:
            return []
        due = event.ts.timestamp() + 3600
        return [Timer(due, state.borrower_id, self.name, "an hour on")]

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        self.seen.append(state.slots[self.name]["count"])
        return []


EVENTS = [
    Input(0, Source.TRANSACTIONS, transaction(f"tx-{n}", "b-1", "a", "c", "100", at(minutes=m)))
    for n, m in enumerate([0, 30, 59, 61, 90, 120])
]


async def _seen(batch_size: int) -> list[int]:
    detector = _Counting()
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])
    engine.clock.expect(0, {Source.TRANSACTIONS.value})
    for start in range(0, len(EVENTS), batch_size):
        await engine.process(EVENTS[start : start + batch_size])
    return detector.seen


@pytest.mark.parametrize("batch_size", [1, 2, 4, 6])
async def test_a_timer_fires_right_after_the_event_that_passes_it(batch_size: int) -> None:
    """The event at minute 61 moves event time past the timer (minute 60): the timer reads the
    four events up to it, not the ones the same batch holds after it."""
    assert await _seen(batch_size) == [4]
