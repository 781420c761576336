"""The event contract: valid inputs decode to exact records, invalid ones say precisely why not."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from topics import (
    CONTRACT_VERSION,
    Alert,
    ContractError,
    Geo,
    Login,
    Reason,
    Repayment,
    Source,
    TopicNames,
    Transaction,
    decode,
)
from topics.codec import dead_letter, encode_alert, encode_dead_letter

Value = dict[str, Any]

TRANSACTION: Value = {
    "event_id": "tx-1",
    "ts": "2024-03-01T17:30:00+08:00",
    "borrower_id": "b-1",
    "account_id": "acc-1",
    "counterparty_id": "cp-9",
    "direction": "in",
    "amount": 12.34,
    "channel": "bank_transfer",
    "counterparty_name": "Acme Trading",
    "memo": "invoice 7",
    "sector": "retail",
}
LOGIN: Value = {
    "event_id": "lg-1",
    "ts": "2024-03-01T09:30:00Z",
    "borrower_id": "b-1",
    "action": "login",
    "device_id": "dev-1",
    "ip": "10.0.0.1",
    "geo": {"lat": 31.23, "lon": 121.47, "city": "Shanghai"},
    "user_agent": "app/1.2",
}
SCHEDULED: Value = {
    "event_id": "rp-1",
    "ts": "2024-02-01T00:00:00+00:00",
    "borrower_id": "b-1",
    "loan_id": "loan-1",
    "installment": 3,
    "kind": "scheduled",
    "due_date": "2024-03-10",
    "amount_due": "3000.50",
}
PAYMENT: Value = {
    "event_id": "rp-2",
    "ts": "2024-03-09T23:59:59-05:00",
    "borrower_id": "b-1",
    "loan_id": "loan-1",
    "installment": 3,
    "kind": "payment",
    "amount": "3000.50",
    "currency": "USD",
}
REVERSAL: Value = {**PAYMENT, "event_id": "rp-3", "kind": "reversal", "amount": 1000}

BASES: dict[Source, Value] = {
    Source.TRANSACTIONS: TRANSACTION,
    Source.LOGINS: LOGIN,
    Source.REPAYMENTS: PAYMENT,
}


def _bytes(value: Any) -> bytes:
    return orjson.dumps(value)


def _decode(source: Source, value: Any, key: bytes | None = b"b-1") -> Any:
    return decode(source, key, _bytes(value))


def _with(base: Value, **changes: Any) -> Value:
    return {**base, **changes}


def _without(base: Value, field: str) -> Value:
    return {k: v for k, v in base.items() if k != field}


def _exact(amount: Decimal | None) -> tuple[Any, ...] | None:
    """Sign, digits and exponent: Decimal('12.34') and Decimal('12.340') compare equal, not here."""
    return None if amount is None else tuple(amount.as_tuple())


# ---------------------------------------------------------------------------------------------
# Valid inputs
# ---------------------------------------------------------------------------------------------


def test_transaction_decodes_with_exact_values() -> None:
    record = _decode(Source.TRANSACTIONS, {**TRANSACTION, "unknown_extra": {"nested": [1, 2]}})

    assert type(record) is Transaction
    assert record.asdict() == {
        "event_id": "tx-1",
        "ts": datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
        "borrower_id": "b-1",
        "account_id": "acc-1",
        "counterparty_id": "cp-9",
        "direction": "in",
        "amount": Decimal("12.34"),
        "currency": "CNY",
        "channel": "bank_transfer",
        "counterparty_name": "Acme Trading",
        "memo": "invoice 7",
        "sector": "retail",
    }
    assert _exact(record.amount) == _exact(Decimal("12.34"))
    assert record.ts.tzinfo is UTC
    assert not hasattr(record, "unknown_extra")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12.34, "12.34"),
        ("12.34", "12.34"),
        (" 12.34 ", "12.34"),
        (0.1, "0.1"),
        (5000, "5000"),
        (0, "0"),
        ("1.2345", "1.2345"),
        (123456789012.345, "123456789012.345"),
        ("9999999999999.9999", "9999999999999.9999"),
    ],
    ids=[
        "json-float",
        "string",
        "string-with-spaces",
        "float-0.1-not-binary-noise",
        "json-int",
        "zero",
        "four-decimals",
        "float-15-significant-digits",
        "just-below-max",
    ],
)
def test_amount_is_an_exact_decimal(raw: Any, expected: str) -> None:
    record = _decode(Source.TRANSACTIONS, _with(TRANSACTION, amount=raw))

    assert isinstance(record.amount, Decimal)
    assert _exact(record.amount) == _exact(Decimal(expected))


def test_login_decodes_with_defaults_z_suffix_and_geo() -> None:
    record = _decode(Source.LOGINS, {**LOGIN, "amount": "250.00", "whatever": True})

    assert type(record) is Login
    assert record.ts == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    assert record.ts.tzinfo is UTC
    assert record.success is True
    assert record.action == "login"
    assert (record.device_id, record.ip, record.user_id) == ("dev-1", "10.0.0.1", None)
    assert record.user_agent == "app/1.2"
    assert type(record.geo) is Geo
    assert (record.geo.lat, record.geo.lon, record.geo.city) == (31.23, 121.47, "Shanghai")
    assert _exact(record.amount) == _exact(Decimal("250.00"))


def test_login_success_false_and_null_success_default() -> None:
    failed = _decode(Source.LOGINS, _with(LOGIN, success=False, geo={"lat": -90, "lon": 180}))
    defaulted = _decode(Source.LOGINS, _with(_without(LOGIN, "geo"), success=None))

    assert failed.success is False
    assert (failed.geo.lat, failed.geo.lon, failed.geo.city) == (-90.0, 180.0, None)
    assert type(failed.geo.lat) is float
    assert defaulted.success is True
    assert defaulted.geo is None


def test_scheduled_repayment_decodes() -> None:
    record = _decode(Source.REPAYMENTS, SCHEDULED)

    assert type(record) is Repayment
    assert record.asdict() == {
        "event_id": "rp-1",
        "ts": datetime(2024, 2, 1, tzinfo=UTC),
        "borrower_id": "b-1",
        "loan_id": "loan-1",
        "installment": 3,
        "kind": "scheduled",
        "due_date": date(2024, 3, 10),
        "amount_due": Decimal("3000.50"),
        "amount": None,
        "currency": "CNY",
    }
    assert _exact(record.amount_due) == _exact(Decimal("3000.50"))


def test_payment_converts_offset_to_utc_and_keeps_currency() -> None:
    record = _decode(Source.REPAYMENTS, PAYMENT)

    assert record.kind == "payment"
    # 23:59:59 at UTC-5 is 04:59:59 UTC the next day.
    assert record.ts == datetime(2024, 3, 10, 4, 59, 59, tzinfo=UTC)
    assert record.ts.tzinfo is UTC
    assert (record.due_date, record.amount_due) == (None, None)
    assert _exact(record.amount) == _exact(Decimal("3000.50"))
    assert record.currency == "USD"


def test_reversal_decodes_with_int_amount() -> None:
    record = _decode(Source.REPAYMENTS, REVERSAL)

    assert (record.kind, record.event_id, record.installment) == ("reversal", "rp-3", 3)
    assert _exact(record.amount) == _exact(Decimal(1000))


@pytest.mark.parametrize(
    ("source", "value"),
    [
        (Source.TRANSACTIONS, _with(TRANSACTION, ts="2000-01-01T00:00:00+00:00")),
        (Source.TRANSACTIONS, _with(TRANSACTION, ts="2100-12-31T23:59:59+00:00")),
        (Source.TRANSACTIONS, _with(TRANSACTION, borrower_id="b" * 200)),
        (Source.TRANSACTIONS, _with(TRANSACTION, currency=None)),
        (Source.REPAYMENTS, _with(PAYMENT, installment=10_000)),
        (Source.LOGINS, _with(LOGIN, geo={"lat": 90, "lon": -180.0})),
    ],
    ids=[
        "year-2000",
        "year-2100",
        "id-200-chars",
        "null-currency",
        "installment-10000",
        "geo-edge",
    ],
)
def test_boundary_values_are_accepted(source: Source, value: Value) -> None:
    record = _decode(source, value, key=value["borrower_id"].encode())

    assert record.borrower_id == value["borrower_id"]
    assert record.event_id == value["event_id"]


def test_null_currency_defaults_to_cny() -> None:
    assert _decode(Source.TRANSACTIONS, _with(TRANSACTION, currency=None)).currency == "CNY"


# ---------------------------------------------------------------------------------------------
# Invalid inputs
# ---------------------------------------------------------------------------------------------

REQUIRED = {
    Source.TRANSACTIONS: [
        "event_id",
        "ts",
        "borrower_id",
        "account_id",
        "counterparty_id",
        "direction",
        "amount",
    ],
    Source.LOGINS: ["event_id", "ts", "borrower_id", "action", "device_id", "ip"],
    Source.REPAYMENTS: ["event_id", "ts", "borrower_id", "loan_id", "installment", "kind"],
}

MISSING_CASES = [
    pytest.param(source, _without(BASES[source], field), field, id=f"{source.value}-no-{field}")
    for source, fields in REQUIRED.items()
    for field in fields
] + [
    pytest.param(
        source, _with(BASES[source], **{field: None}), field, id=f"{source.value}-null-{field}"
    )
    for source, field in [
        (Source.TRANSACTIONS, "amount"),
        (Source.LOGINS, "device_id"),
        (Source.REPAYMENTS, "kind"),
    ]
]


@pytest.mark.parametrize(("source", "value", "field"), MISSING_CASES)
def test_missing_required_field_is_refused(source: Source, value: Value, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        _decode(source, value)

    assert str(caught.value) == f"missing required field '{field}'"


# (source, value or raw bytes, key, a regular expression the reason must match)
INVALID_CASES = [
    pytest.param(
        Source.TRANSACTIONS,
        b'{"event_id": ',
        b"b-1",
        r"^value is not valid UTF-8 JSON",
        id="not-json",
    ),
    pytest.param(
        Source.TRANSACTIONS, b"", b"b-1", r"^value is not valid UTF-8 JSON", id="empty-bytes"
    ),
    pytest.param(
        Source.LOGINS,
        b'{"event_id": "\xff\xfe"}',
        b"b-1",
        r"^value is not valid UTF-8 JSON: .*UTF-8",
        id="not-utf8",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _bytes([TRANSACTION]),
        b"b-1",
        r"^event must be a JSON object, got list$",
        id="json-array",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _bytes("text"),
        b"b-1",
        r"^event must be a JSON object, got str$",
        id="json-string",
    ),
    pytest.param(
        Source.TRANSACTIONS, None, b"b-1", r"^record has no value \(tombstone\)$", id="tombstone"
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount=True),
        b"b-1",
        r"^field 'amount' must be a number or decimal string, got bool$",
        id="amount-bool",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount=[12]),
        b"b-1",
        r"^field 'amount' must be a number or decimal string, got list$",
        id="amount-list",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount={"v": 1}),
        b"b-1",
        r"^field 'amount' must be a number or decimal string, got dict$",
        id="amount-object",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="12,34"),
        b"b-1",
        r"^field 'amount' is not a decimal number: '12,34'$",
        id="amount-garbage",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _with(PAYMENT, installment="3"),
        b"b-1",
        r"^field 'installment' must be an integer, got str$",
        id="installment-str",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _with(PAYMENT, installment=True),
        b"b-1",
        r"^field 'installment' must be an integer, got bool$",
        id="installment-bool",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _with(PAYMENT, installment=3.0),
        b"b-1",
        r"^field 'installment' must be an integer, got float$",
        id="installment-float",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _with(PAYMENT, installment=0),
        b"b-1",
        r"^field 'installment' must be within 1\.\.10000, got 0$",
        id="installment-0",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, success="yes"),
        b"b-1",
        r"^field 'success' must be true or false, got 'yes'$",
        id="success-yes",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, success=1),
        b"b-1",
        r"^field 'success' must be true or false, got 1$",
        id="success-int",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, direction="sideways"),
        b"b-1",
        r"^field 'direction' must be one of \['in', 'out'\], got 'sideways'$",
        id="unknown-direction",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, direction="IN"),
        b"b-1",
        r"^field 'direction' must be one of \['in', 'out'\], got 'IN'$",
        id="direction-wrong-case",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, action="hack"),
        b"b-1",
        r"^field 'action' must be one of \[.*'login'.*\], got 'hack'$",
        id="unknown-action",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _with(PAYMENT, kind="refund"),
        b"b-1",
        r"^field 'kind' must be one of \['payment', 'reversal', 'scheduled'\], "
        r"got 'refund'$",
        id="unknown-kind",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, ts="2024-03-01T10:00:00"),
        b"b-1",
        r"^field 'ts' has no UTC offset \(naive timestamp\)",
        id="naive-ts",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, ts="yesterday at noon"),
        b"b-1",
        r"^field 'ts' is not an ISO-8601 timestamp: 'yesterday at noon'$",
        id="unparsable-ts",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, ts=1709285400),
        b"b-1",
        r"^field 'ts' must be an ISO-8601 string, got int$",
        id="epoch-ts",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, ts="1970-01-01T00:00:00Z"),
        b"b-1",
        r"^field 'ts' is outside 2000\.\.2100",
        id="ts-1970",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, ts="2200-01-01T00:00:00+00:00"),
        b"b-1",
        r"^field 'ts' is outside 2000\.\.2100",
        id="ts-2200",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="-5"),
        b"b-1",
        r"^field 'amount' must not be negative, got -5$",
        id="negative-string",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount=-0.01),
        b"b-1",
        r"^field 'amount' must not be negative, got -0\.01$",
        id="negative-float",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="NaN"),
        b"b-1",
        r"^field 'amount' must be finite$",
        id="nan-string",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="Infinity"),
        b"b-1",
        r"^field 'amount' must be finite$",
        id="infinity-string",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="-Infinity"),
        b"b-1",
        r"^field 'amount' must be finite$",
        id="minus-infinity-string",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        b'{"amount": NaN}',
        b"b-1",
        r"^value is not valid UTF-8 JSON",
        id="nan-literal-not-json",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount=1234567.123456789),
        b"b-1",
        r"^field 'amount' has more than 15 significant digits; send it as a decimal",
        id="float-16-digits",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="12.34567"),
        b"b-1",
        r"^field 'amount' has more than 4 decimal places$",
        id="five-decimals-string",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount=0.12345),
        b"b-1",
        r"^field 'amount' has more than 4 decimal places$",
        id="five-decimals-float",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, amount="1e13"),
        b"b-1",
        r"^field 'amount' is implausibly large",
        id="amount-too-large",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, borrower_id=""),
        b"",
        r"^field 'borrower_id' must not be empty$",
        id="empty-borrower-id",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, borrower_id="   "),
        b"   ",
        r"^field 'borrower_id' must not be empty$",
        id="blank-borrower-id",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, borrower_id=17),
        b"17",
        r"^field 'borrower_id' must be a string, got int$",
        id="int-borrower-id",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, device_id="d" * 201),
        b"b-1",
        r"^field 'device_id' is longer than 200 characters$",
        id="over-long-id",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, memo="m" * 2001),
        b"b-1",
        r"^field 'memo' is longer than 2000 characters$",
        id="over-long-memo",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, currency="cny"),
        b"b-1",
        r"^field 'currency' must be an ISO-4217 code like 'CNY', got 'cny'$",
        id="currency-lowercase",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        _with(TRANSACTION, currency="YUAN"),
        b"b-1",
        r"^field 'currency' must be an ISO-4217 code",
        id="currency-4-letters",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, geo={"lat": 91, "lon": 0}),
        b"b-1",
        r"^field 'geo\.lat' must be within ±90, got 91$",
        id="geo-lat-91",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, geo={"lat": 0, "lon": -180.5}),
        b"b-1",
        r"^field 'geo\.lon' must be within ±180, got -180\.5$",
        id="geo-lon",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, geo={"lat": "31", "lon": 0}),
        b"b-1",
        r"^field 'geo\.lat' must be a number$",
        id="geo-lat-string",
    ),
    pytest.param(
        Source.LOGINS,
        _with(LOGIN, geo=[31.2, 121.4]),
        b"b-1",
        r"^field 'geo' must be an object, got list$",
        id="geo-list",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _without(SCHEDULED, "due_date"),
        b"b-1",
        r"^missing required field 'due_date'$",
        id="scheduled-without-due-date",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _without(SCHEDULED, "amount_due"),
        b"b-1",
        r"^missing required field 'amount_due'$",
        id="scheduled-without-amount-due",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _with(SCHEDULED, due_date="10/03/2024"),
        b"b-1",
        r"^field 'due_date' is not an ISO date \(YYYY-MM-DD\): '10/03/2024'$",
        id="due-date-not-iso",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _without(PAYMENT, "amount"),
        b"b-1",
        r"^missing required field 'amount'$",
        id="payment-without-amount",
    ),
    pytest.param(
        Source.REPAYMENTS,
        _without(REVERSAL, "amount"),
        b"b-1",
        r"^missing required field 'amount'$",
        id="reversal-without-amount",
    ),
    pytest.param(
        Source.TRANSACTIONS,
        TRANSACTION,
        None,
        r"^record has no key; the key must be the borrower_id$",
        id="key-missing",
    ),
    pytest.param(
        Source.LOGINS,
        LOGIN,
        b"b-2",
        r"^record key 'b-2' does not match borrower_id 'b-1'$",
        id="key-mismatch",
    ),
    pytest.param(
        Source.REPAYMENTS,
        PAYMENT,
        b"",
        r"^record key '' does not match borrower_id 'b-1'$",
        id="key-empty",
    ),
    pytest.param(
        Source.REPAYMENTS,
        PAYMENT,
        b"b-1 ",
        r"^record key 'b-1 ' does not match borrower_id 'b-1'$",
        id="key-trailing-space",
    ),
]


@pytest.mark.parametrize(("source", "value", "key", "reason"), INVALID_CASES)
def test_invalid_input_is_refused_with_its_reason(
    source: Source, value: Value | bytes | None, key: bytes | None, reason: str
) -> None:
    raw = value if value is None or isinstance(value, bytes) else _bytes(value)

    with pytest.raises(ContractError) as caught:
        decode(source, key, raw)

    assert re.search(reason, str(caught.value)), str(caught.value)


def test_contract_error_is_a_value_error() -> None:
    assert issubclass(ContractError, ValueError)


# ---------------------------------------------------------------------------------------------
# Topic names
# ---------------------------------------------------------------------------------------------


def test_topic_names_defaults() -> None:
    names = TopicNames()

    assert names.all() == [
        "lending.transactions",
        "lending.logins",
        "lending.repayments",
        "lending.deadletter",
        "alerts.fraud",
        "alerts.security",
        "alerts.collections",
        "alerts.shadow",
        "lending.feedback",
    ]
    assert [names.input_topic(s) for s in Source] == [
        "lending.transactions",
        "lending.logins",
        "lending.repayments",
    ]


def test_topic_names_from_env_overrides_only_what_is_set() -> None:
    names = TopicNames.from_env(
        {
            "LW_TOPIC_TRANSACTIONS": "acme.tx",
            "LW_TOPIC_ALERTS_FRAUD": "acme.fraud",
            "LW_TOPIC_DEADLETTER": "acme.dlq",
            "LW_TOPIC_logins": "ignored: names are upper case",
            "UNRELATED": "x",
        }
    )

    assert names == TopicNames(
        transactions="acme.tx", alerts_fraud="acme.fraud", deadletter="acme.dlq"
    )
    assert names.logins == "lending.logins"


def test_topic_names_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LW_TOPIC_REPAYMENTS", "env.repayments")
    monkeypatch.setenv("LW_TOPIC_ALERTS_COLLECTIONS", "env.collections")

    names = TopicNames.from_env()

    assert names.repayments == "env.repayments"
    assert names.alerts_collections == "env.collections"
    assert names.transactions == "lending.transactions"


def test_source_of_follows_overrides() -> None:
    names = TopicNames.from_env({"LW_TOPIC_TRANSACTIONS": "acme.tx"})

    assert names.source_of("acme.tx") is Source.TRANSACTIONS
    assert names.source_of("lending.logins") is Source.LOGINS
    assert names.source_of("lending.repayments") is Source.REPAYMENTS
    assert names.source_of("lending.transactions") is None
    assert names.source_of("alerts.fraud") is None
    assert names.source_of("lending.deadletter") is None


def test_alert_topic_per_category() -> None:
    names = TopicNames.from_env({"LW_TOPIC_ALERTS_SECURITY": "sec"})

    assert names.alert_topic("falsified_flow") == "alerts.fraud"
    assert names.alert_topic("abnormal_behaviour") == "sec"
    assert names.alert_topic("delinquency_risk") == "alerts.collections"
    with pytest.raises(KeyError):
        names.alert_topic("fraud")


# ---------------------------------------------------------------------------------------------
# What the pipeline publishes
# ---------------------------------------------------------------------------------------------

ALERT_FIELDS = {
    "alert_id",
    "ts",
    "emitted_at",
    "category",
    "detector",
    "severity",
    "score",
    "borrower_id",
    "reasons",
    "evidence",
    "detector_version",
    "thresholds_version",
    "episode",
    "loan_id",
    "installment",
    "due_date",
    "schema_version",
}


def test_encode_alert_has_every_documented_field() -> None:
    alert = Alert(
        alert_id="0123456789abcdef0123456789abcdef",
        ts=datetime(2024, 3, 13, 16, 0, tzinfo=UTC),
        emitted_at=datetime(2024, 3, 13, 16, 0, 5, 250000, tzinfo=UTC),
        category="delinquency_risk",
        detector="delinquency",
        severity="critical",
        score=0.9,
        borrower_id="b-1",
        reasons=[
            Reason(
                code="installment_missed", message="0 of 3000 paid", observed="0", threshold="3000"
            ),
            Reason(code="inflow_decline", message="20%", observed=0.2, threshold=0.6),
        ],
        evidence=["rp-1"],
        detector_version="1",
        thresholds_version="default-1",
        episode="loan-1#3:deadline",
        loan_id="loan-1",
        installment=3,
        due_date=date(2024, 3, 10),
    )

    decoded = orjson.loads(encode_alert(alert))

    assert set(decoded) == ALERT_FIELDS
    assert decoded == {
        "alert_id": "0123456789abcdef0123456789abcdef",
        "ts": "2024-03-13T16:00:00+00:00",
        "emitted_at": "2024-03-13T16:00:05.250000+00:00",
        "category": "delinquency_risk",
        "detector": "delinquency",
        "severity": "critical",
        "score": 0.9,
        "borrower_id": "b-1",
        "reasons": [
            {
                "code": "installment_missed",
                "message": "0 of 3000 paid",
                "observed": "0",
                "threshold": "3000",
            },
            {"code": "inflow_decline", "message": "20%", "observed": 0.2, "threshold": 0.6},
        ],
        "evidence": ["rp-1"],
        "detector_version": "1",
        "thresholds_version": "default-1",
        "episode": "loan-1#3:deadline",
        "loan_id": "loan-1",
        "installment": 3,
        "due_date": "2024-03-10",
        "schema_version": CONTRACT_VERSION,
    }


def test_encode_alert_without_installment_fields() -> None:
    alert = Alert(
        alert_id="a" * 32,
        ts=datetime(2024, 3, 1, tzinfo=UTC),
        emitted_at=datetime(2024, 3, 1, tzinfo=UTC),
        category="abnormal_behaviour",
        detector="account_takeover",
        severity="high",
        score=0.87,
        borrower_id="b-1",
        reasons=[Reason(code="unseen_device", message="device d9")],
        evidence=["f1", "s1"],
        detector_version="1",
        thresholds_version="v",
        episode="device:d9",
    )

    decoded = orjson.loads(encode_alert(alert))

    assert set(decoded) == ALERT_FIELDS
    assert (decoded["loan_id"], decoded["installment"], decoded["due_date"]) == (None, None, None)
    assert decoded["reasons"] == [
        {"code": "unseen_device", "message": "device d9", "observed": None, "threshold": None}
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"b-1", b'{"event_id": "x"'),
        (b"\xff\xfe-not-utf8", b"\x00\x81\xc3\x28 binary \xff"),
        (None, b"[1, 2, 3]"),
    ],
    ids=["truncated-json", "non-utf8-bytes", "no-key"],
)
def test_dead_letter_keeps_the_original_bytes(key: bytes | None, value: bytes) -> None:
    received = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    letter = dead_letter(
        source_topic="lending.transactions",
        partition=3,
        offset=1234,
        key=key,
        value=value,
        reason="value is not valid UTF-8 JSON: unexpected end",
        received_at=received,
    )

    decoded = orjson.loads(encode_dead_letter(letter))

    assert set(decoded) == {
        "source_topic",
        "partition",
        "offset",
        "reason",
        "value_b64",
        "key_b64",
        "received_at",
        "schema_version",
    }
    assert decoded["source_topic"] == "lending.transactions"
    assert (decoded["partition"], decoded["offset"]) == (3, 1234)
    assert decoded["reason"] == "value is not valid UTF-8 JSON: unexpected end"
    assert decoded["received_at"] == "2024-03-01T12:00:00+00:00"
    assert decoded["schema_version"] == CONTRACT_VERSION
    assert base64.b64decode(decoded["value_b64"], validate=True) == value
    if key is None:
        assert decoded["key_b64"] is None
    else:
        assert base64.b64decode(decoded["key_b64"], validate=True) == key


def test_dead_letter_of_a_tombstone_has_empty_value() -> None:
    letter = dead_letter(
        source_topic="lending.logins",
        partition=0,
        offset=7,
        key=b"b-1",
        value=None,
        reason="record has no value (tombstone)",
        received_at=datetime(2024, 3, 1, tzinfo=UTC),
    )

    decoded = orjson.loads(encode_dead_letter(letter))

    assert decoded["value_b64"] == ""
    assert base64.b64decode(decoded["key_b64"]) == b"b-1"


def test_decode_error_reason_round_trips_through_a_dead_letter() -> None:
    raw = b'{"event_id": "\xff"}'
    with pytest.raises(ContractError) as caught:
        decode(Source.TRANSACTIONS, b"b-1", raw)

    letter = dead_letter(
        source_topic="lending.transactions",
        partition=1,
        offset=2,
        key=b"b-1",
        value=raw,
        reason=str(caught.value),
        received_at=datetime(2024, 3, 1, tzinfo=UTC),
    )
    decoded = orjson.loads(encode_dead_letter(letter))

    assert decoded["reason"] == str(caught.value)
    assert base64.b64decode(decoded["value_b64"]) == raw
