"""Turn raw input bytes into contract records, or say precisely why not."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import orjson

from topics.names import Source
from topics.records import Geo, Login, Repayment, Transaction

__all__ = [
    "ContractError",
    "InputRecord",
    "choice_field",
    "date_field",
    "decode",
    "identifier_field",
    "parse_value",
    "require_field",
    "timestamp_field",
]

InputRecord = Transaction | Login | Repayment
_Record = TypeVar("_Record", Transaction, Login, Repayment, Geo)

DIRECTIONS = frozenset({"in", "out"})
ACTIONS = frozenset(
    {"login", "logout", "password_reset", "payout_account_change", "loan_application", "drawdown"}
)
REPAYMENT_KINDS = frozenset({"scheduled", "payment", "reversal"})

MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 2000
# A double carries 15 significant decimal digits exactly; a JSON number with more would be
# silently rounded by any float parser, so such amounts must be sent as strings.
MAX_FLOAT_DIGITS = 15
MAX_AMOUNT = Decimal("1e13")
MAX_AMOUNT_DECIMALS = 4
MIN_YEAR, MAX_YEAR = 2000, 2100


class ContractError(ValueError):
    """An input record breaks the event contract; the message is the dead-letter reason."""


def _build(cls: type[_Record], **fields: Any) -> _Record:
    """The record with exactly these fields, built in one step.

    Faust's generated ``__init__`` stores each field through its descriptor, which with
    validation and coercion off (``topics.records``) stores the value unchanged, at about a
    microsecond a field: most of what decoding an event cost. Every field is validated here
    first and given explicitly (defaults included), so the record is the one ``__init__``
    would build (``tests/topics/test_validate.py`` compares them).
    """
    record = cls.__new__(cls)
    fields["__evaluated_fields__"] = set()
    record.__dict__.update(fields)
    return record


def require_field(value: Mapping[str, Any], field: str) -> Any:
    if field not in value or value[field] is None:
        raise ContractError(f"missing required field '{field}'")
    return value[field]


def identifier_field(value: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    raw = value.get(field)
    if type(raw) is str and 0 < len(raw) <= MAX_ID_LENGTH and not raw.isspace():
        return raw  # the common case, in one test: a valid identifier
    raw = require_field(value, field) if required else value.get(field)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ContractError(f"field '{field}' must be a string, got {type(raw).__name__}")
    if not raw.strip():
        raise ContractError(f"field '{field}' must not be empty")
    if len(raw) > MAX_ID_LENGTH:
        raise ContractError(f"field '{field}' is longer than {MAX_ID_LENGTH} characters")
    return raw


def _text(value: Mapping[str, Any], field: str) -> str | None:
    raw = value.get(field)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ContractError(f"field '{field}' must be a string, got {type(raw).__name__}")
    if len(raw) > MAX_TEXT_LENGTH:
        raise ContractError(f"field '{field}' is longer than {MAX_TEXT_LENGTH} characters")
    return raw


def choice_field(value: Mapping[str, Any], field: str, allowed: frozenset[str]) -> str:
    raw = require_field(value, field)
    if raw not in allowed:
        raise ContractError(f"field '{field}' must be one of {sorted(allowed)}, got {raw!r}")
    return str(raw)


def timestamp_field(value: Mapping[str, Any], field: str) -> datetime:
    raw = require_field(value, field)
    if not isinstance(raw, str):
        raise ContractError(f"field '{field}' must be an ISO-8601 string, got {type(raw).__name__}")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ContractError(f"field '{field}' is not an ISO-8601 timestamp: {raw[:40]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ContractError(f"field '{field}' has no UTC offset (naive timestamp): {raw[:40]!r}")
    instant = parsed.astimezone(UTC)
    if not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise ContractError(f"field '{field}' is outside {MIN_YEAR}..{MAX_YEAR}: {raw[:40]!r}")
    return instant


def date_field(value: Mapping[str, Any], field: str) -> date:
    raw = require_field(value, field)
    if not isinstance(raw, str):
        raise ContractError(f"field '{field}' must be an ISO date string, got {type(raw).__name__}")
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        raise ContractError(
            f"field '{field}' is not an ISO date (YYYY-MM-DD): {raw[:40]!r}"
        ) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ContractError(f"field '{field}' is outside {MIN_YEAR}..{MAX_YEAR}: {raw!r}")
    return parsed


def _amount(value: Mapping[str, Any], field: str, *, required: bool = True) -> Decimal | None:
    raw = require_field(value, field) if required else value.get(field)
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ContractError(f"field '{field}' must be a number or decimal string, got bool")
    if isinstance(raw, int):
        amount = Decimal(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise ContractError(f"field '{field}' must be finite")
        text = repr(raw)
        if sum(ch.isdigit() for ch in text.split("e")[0].lstrip("0.")) > MAX_FLOAT_DIGITS:
            raise ContractError(
                f"field '{field}' has more than {MAX_FLOAT_DIGITS} significant digits; "
                "send it as a decimal string"
            )
        amount = Decimal(text)
    elif isinstance(raw, str):
        try:
            amount = Decimal(raw.strip())
        except InvalidOperation:
            raise ContractError(f"field '{field}' is not a decimal number: {raw[:40]!r}") from None
        if not amount.is_finite():
            raise ContractError(f"field '{field}' must be finite")
    else:
        raise ContractError(
            f"field '{field}' must be a number or decimal string, got {type(raw).__name__}"
        )
    if amount < 0:
        raise ContractError(f"field '{field}' must not be negative, got {amount}")
    if amount >= MAX_AMOUNT:
        raise ContractError(f"field '{field}' is implausibly large: {amount}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_AMOUNT_DECIMALS:
        raise ContractError(f"field '{field}' has more than {MAX_AMOUNT_DECIMALS} decimal places")
    return amount


def _currency(value: Mapping[str, Any]) -> str:
    raw = value.get("currency", "CNY")
    if raw is None:
        return "CNY"
    if not (isinstance(raw, str) and len(raw) == 3 and raw.isascii() and raw.isupper()):
        raise ContractError(f"field 'currency' must be an ISO-4217 code like 'CNY', got {raw!r}")
    return raw


def _transaction(value: Mapping[str, Any]) -> Transaction:
    return _build(
        Transaction,
        event_id=identifier_field(value, "event_id"),
        ts=timestamp_field(value, "ts"),
        borrower_id=identifier_field(value, "borrower_id"),
        account_id=identifier_field(value, "account_id"),
        counterparty_id=identifier_field(value, "counterparty_id"),
        direction=choice_field(value, "direction", DIRECTIONS),
        amount=_amount(value, "amount"),
        currency=_currency(value),
        channel=identifier_field(value, "channel", required=False),
        counterparty_name=_text(value, "counterparty_name"),
        memo=_text(value, "memo"),
        sector=identifier_field(value, "sector", required=False),
    )


def _geo(value: Mapping[str, Any]) -> Geo | None:
    raw = value.get("geo")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ContractError(f"field 'geo' must be an object, got {type(raw).__name__}")
    coordinates = []
    for field, limit in (("lat", 90.0), ("lon", 180.0)):
        number = raw.get(field)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ContractError(f"field 'geo.{field}' must be a number")
        if not (math.isfinite(number) and -limit <= number <= limit):
            raise ContractError(f"field 'geo.{field}' must be within ±{limit:g}, got {number}")
        coordinates.append(float(number))
    return _build(Geo, lat=coordinates[0], lon=coordinates[1], city=_text(raw, "city"))


def _login(value: Mapping[str, Any]) -> Login:
    success = value.get("success", True)
    if success is None:
        success = True
    if not isinstance(success, bool):
        raise ContractError(f"field 'success' must be true or false, got {success!r}")
    return _build(
        Login,
        event_id=identifier_field(value, "event_id"),
        ts=timestamp_field(value, "ts"),
        borrower_id=identifier_field(value, "borrower_id"),
        action=choice_field(value, "action", ACTIONS),
        device_id=identifier_field(value, "device_id"),
        ip=identifier_field(value, "ip"),
        success=success,
        user_id=identifier_field(value, "user_id", required=False),
        geo=_geo(value),
        user_agent=_text(value, "user_agent"),
        amount=_amount(value, "amount", required=False),
    )


def _installment(value: Mapping[str, Any]) -> int:
    raw = require_field(value, "installment")
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ContractError(f"field 'installment' must be an integer, got {type(raw).__name__}")
    if not 1 <= raw <= 10_000:
        raise ContractError(f"field 'installment' must be within 1..10000, got {raw}")
    return raw


def _repayment(value: Mapping[str, Any]) -> Repayment:
    kind = choice_field(value, "kind", REPAYMENT_KINDS)
    scheduled = kind == "scheduled"
    return _build(
        Repayment,
        event_id=identifier_field(value, "event_id"),
        ts=timestamp_field(value, "ts"),
        borrower_id=identifier_field(value, "borrower_id"),
        loan_id=identifier_field(value, "loan_id"),
        installment=_installment(value),
        kind=kind,
        due_date=date_field(value, "due_date") if scheduled else None,
        amount_due=_amount(value, "amount_due") if scheduled else None,
        amount=None if scheduled else _amount(value, "amount"),
        currency=_currency(value),
    )


_PARSERS: dict[Source, Callable[[Mapping[str, Any]], InputRecord]] = {
    Source.TRANSACTIONS: _transaction,
    Source.LOGINS: _login,
    Source.REPAYMENTS: _repayment,
}


def parse_value(source: Source, value: Any) -> InputRecord:
    """Validate an already-decoded JSON value of ``source`` and build its record."""
    if not isinstance(value, dict):
        raise ContractError(f"event must be a JSON object, got {type(value).__name__}")
    return _PARSERS[source](value)


def decode(source: Source, key: bytes | None, value: bytes | None) -> InputRecord:
    """Decode one Kafka record of ``source``; raise :class:`ContractError` with the reason.

    The key must be the borrower id: state is partitioned by it, so a record keyed otherwise
    would be processed beside the wrong borrower's state.
    """
    if value is None:
        raise ContractError("record has no value (tombstone)")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"value is not valid UTF-8 JSON: {exc}") from None
    record = parse_value(source, decoded)
    check_key(key, record.borrower_id)
    return record


def check_key(key: bytes | str | None, borrower_id: str) -> None:
    """Refuse a record whose message key is not its ``borrower_id``."""
    if key is None:
        raise ContractError("record has no key; the key must be the borrower_id")
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if text != borrower_id:
        raise ContractError(f"record key {text[:40]!r} does not match borrower_id {borrower_id!r}")
