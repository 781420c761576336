"""Small builders of contract records (aware datetimes only) for contract scenarios and tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

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
