"""Small builders of contract records for the detector tests (aware datetimes only).

The record builders live in :mod:`detectors.scenarios` (detectors build their contract events
with them); the helpers that drive a detector or an engine stay here.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from detectors.base import Detector, Finding
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.scenarios import T0, at, login, payment, scheduled, transaction
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from topics.names import Source
from topics.records import Login

__all__ = [
    "T0",
    "at",
    "engine_alert_ids",
    "feed_logins",
    "interleaved",
    "login",
    "payment",
    "scheduled",
    "transaction",
]


async def feed_logins(
    detector: Detector, events: Sequence[Login], index: MemoryCrossIndex | None = None
) -> list[Finding]:
    """Each event's lookups, answered by one in-memory index, then its hook."""
    index = index or MemoryCrossIndex()
    states: dict[str, BorrowerState] = {}
    findings: list[Finding] = []
    for event in events:
        state = states.setdefault(event.borrower_id, BorrowerState(borrower_id=event.borrower_id))
        lookups = detector.lookups(event, state)
        found = () if lookups is None else await index.exchange(lookups.writes, lookups.reads, 200)
        findings += [f for f in detector.on_login(event, state, found) if isinstance(f, Finding)]
    return findings


async def engine_alert_ids(detector: Detector, events: Sequence[Login], batch: int = 1) -> set[str]:
    """Alert ids an engine running only ``detector`` sends, ``batch`` events at a time."""
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])
    ids: set[str] = set()
    inputs = [Input(0, Source.LOGINS, event) for event in events]
    for start in range(0, len(inputs), batch):
        result = await engine.process(inputs[start : start + batch])
        assert result.failed == [] and result.degraded == []
        ids |= {alert.alert_id for alert in result.alerts}
    return ids


def interleaved(events: Sequence[Login], seed: int) -> list[Login]:
    """Another arrival order: borrowers interleave at random, each keeps its own order."""
    queues: dict[str, list[Login]] = {}
    for event in events:
        queues.setdefault(event.borrower_id, []).append(event)
    turns = [b for b, queue in queues.items() for _ in queue]
    random.Random(seed).shuffle(turns)
    return [queues[b].pop(0) for b in turns]
