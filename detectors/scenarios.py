"""Small builders of contract records (aware datetimes only) for contract scenarios and tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from topics.names import Source
from topics.records import Geo, Login, Repayment, Transaction
from topics.validate import InputRecord

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = [
    "CITIES",
    "T0",
    "at",
    "geo",
    "inputs",
    "login",
    "payment",
    "scheduled",
    "transaction",
]

#: A Friday morning in UTC; every scenario is placed relative to it.
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


#: Where a scenario's logins come from: latitude and longitude of a few city centres.
CITIES = {
    "Shanghai": (31.2304, 121.4737),
    "Beijing": (39.9042, 116.4074),
    "Shenzhen": (22.5431, 114.0579),
}


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
    *,
    sector: str | None = None,
) -> Transaction:
    return Transaction(
        event_id=event_id,
        ts=ts,
        borrower_id=borrower_id,
        account_id=account_id,
        counterparty_id=counterparty_id,
        direction=direction,
        amount=Decimal(str(amount)),
        sector=sector,
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


def geo(city: str) -> Geo:
    """The centre of one of :data:`CITIES`, as a platform geolocates a login there."""
    lat, lon = CITIES[city]
    return Geo(lat=lat, lon=lon, city=city)


def inputs(source: Source, records: Iterable[InputRecord], partition: int = 0) -> list[Input]:
    """``records`` of one stream as engine inputs of ``partition``, in the order given."""
    # Imported here: the engine imports the registry, which imports every detector module,
    # and those import this one.
    from detectors.engine import Input

    return [Input(partition, source, record) for record in records]
