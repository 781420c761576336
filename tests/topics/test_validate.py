"""Records built in one step (``topics.validate._build``) are those Faust's ``__init__`` builds."""

from __future__ import annotations

from typing import Any

import pytest

from topics import Geo, Login, Repayment, Source, Transaction, parse_value
from topics.validate import ContractError, identifier_field

from .test_contract import LOGIN, PAYMENT, REVERSAL, SCHEDULED, TRANSACTION, Value

CASES: list[tuple[Source, Value]] = [
    (Source.TRANSACTIONS, TRANSACTION),
    (Source.TRANSACTIONS, {**TRANSACTION, "currency": None, "channel": None, "memo": None}),
    (Source.LOGINS, LOGIN),
    (Source.LOGINS, {**LOGIN, "success": False, "geo": None, "amount": "12.5"}),
    (Source.LOGINS, {**LOGIN, "geo": {"lat": 1, "lon": 2}, "user_id": "u-1"}),
    (Source.REPAYMENTS, SCHEDULED),
    (Source.REPAYMENTS, PAYMENT),
    (Source.REPAYMENTS, REVERSAL),
]


def _rebuilt(record: Any) -> Any:
    """The same record through Faust's own ``__init__``."""
    fields = {name: getattr(record, name) for name in type(record)._options.fields}
    if isinstance(fields.get("geo"), Geo):
        fields["geo"] = Geo(**{name: getattr(fields["geo"], name) for name in Geo._options.fields})
    return type(record)(**fields)


@pytest.mark.parametrize(("source", "value"), CASES)
def test_a_record_built_in_one_step_is_the_record_init_builds(source: Source, value: Value) -> None:
    record = parse_value(source, value)
    rebuilt = _rebuilt(record)

    assert type(record) is type(rebuilt)
    assert record.__dict__.keys() == rebuilt.__dict__.keys()
    assert record == rebuilt
    assert record.asdict() == rebuilt.asdict()
    assert record.dumps() == rebuilt.dumps()
    assert isinstance(record, Transaction | Login | Repayment)
    if isinstance(record, Login) and record.geo is not None:
        assert record.geo.__dict__ == rebuilt.geo.__dict__


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "must not be empty"),
        ("  \t", "must not be empty"),
        ("x" * 201, "longer than 200"),
        (7, "must be a string"),
        (None, "missing required field"),
    ],
)
def test_the_fast_path_of_an_identifier_refuses_what_the_slow_one_did(
    raw: Any, reason: str
) -> None:
    with pytest.raises(ContractError, match=reason):
        identifier_field({"event_id": raw}, "event_id")


def test_an_identifier_with_inner_spaces_or_200_characters_is_kept() -> None:
    assert identifier_field({"id": " a b "}, "id") == " a b "
    assert identifier_field({"id": "y" * 200}, "id") == "y" * 200
