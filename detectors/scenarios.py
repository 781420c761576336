"""Small builders of contract records for the detector tests (aware datetimes only)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from detectors.base import Detector, Finding
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from topics.names import Source
from topics.records import Geo, Login, Repayment, Transaction

#: A Friday morning in UTC; every scenario is placed relative to it.
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def at(*, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def transaction(
    event_id: str,
    borrower_id: str,
    account_id: str,
    counterparty_id: str,
    amount: float | str | Decimal,
    ts: datetime,
    direction: str = "out",
) -> Transaction:
    return Transaction(
        event_id=event_id,
        ts=ts,
        borrower_id=borrower_id,
        account_id=account_id,
        counterparty_id=counterparty_id,
        direction=direction,
        amount=Decimal(str(amount)),
    )


def login(
    event_id: str,
    ts: datetime,
    *,
    device: str,
    ip: str,
    success: bool = True,
    action: str = "login",
    borrower_id: str = "b-1",
    geo: Geo | None = None,
    user_agent: str | None = None,
    amount: str | None = None,
) -> Login:
    return Login(
        event_id=event_id,
        ts=ts,
        borrower_id=borrower_id,
        action=action,
        device_id=device,
        ip=ip,
        success=success,
        geo=geo,
        user_agent=user_agent,
        amount=None if amount is None else Decimal(amount),
    )


def scheduled(
    event_id: str,
    ts: datetime,
    due: date,
    amount_due: str,
    *,
    loan_id: str = "loan-1",
    installment: int = 1,
    borrower_id: str = "b-1",
) -> Repayment:
    return Repayment(
        event_id=event_id,
        ts=ts,
        borrower_id=borrower_id,
        loan_id=loan_id,
        installment=installment,
        kind="scheduled",
        due_date=due,
        amount_due=Decimal(amount_due),
    )


def payment(
    event_id: str,
    ts: datetime,
    amount: str,
    *,
    kind: str = "payment",
    loan_id: str = "loan-1",
    installment: int = 1,
    borrower_id: str = "b-1",
) -> Repayment:
    return Repayment(
        event_id=event_id,
        ts=ts,
        borrower_id=borrower_id,
        loan_id=loan_id,
        installment=installment,
        kind=kind,
        amount=Decimal(amount),
    )


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
