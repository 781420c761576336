"""The labels file of the contract: what a line must hold, and every refusal with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from topics.labels import CaseLabel, LabelsError, parse_label, read_labels, write_labels
from topics.validate import ContractError

FRAUD = {
    "case_id": "c-1",
    "borrower_id": "b-00017",
    "category": "falsified_flow",
    "typology": "circular_transfer",
    "start": "2026-01-13T09:23:51+08:00",
    "end": "2026-01-14T09:00:00+08:00",
    "entities": ["b-00388", "acct-00388-1"],
}
MISSED = {
    "case_id": "c-2",
    "borrower_id": "b-00005",
    "category": "delinquency_risk",
    "typology": "missed_installment",
    "start": "2026-01-05T00:00:00+08:00",
    "end": "2026-02-08T23:59:59+08:00",
    "loan_id": "ln-5-1",
    "installment": 1,
    "due_date": "2026-02-05",
}


def test_a_fraud_case_and_a_missed_installment_parse() -> None:
    fraud = parse_label(FRAUD)
    assert fraud.start == datetime(2026, 1, 13, 1, 23, 51, tzinfo=UTC)
    assert fraud.entities == ("b-00388", "acct-00388-1")
    assert fraud.loan_id is None
    missed = parse_label({**MISSED, "detail": {"signals": ["decline"]}, "extra": 1})
    assert (missed.loan_id, missed.installment, missed.due_date) == ("ln-5-1", 1, date(2026, 2, 5))
    assert missed.entities == ()
    assert missed.detail == {"signals": ["decline"]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"category": "fraud"}, "field 'category' must be one of"),
        ({"start": "2026-01-13T09:23:51"}, "no UTC offset"),
        ({"end": "2026-01-12T09:00:00+08:00"}, "'end' is before 'start'"),
        ({"entities": "b-1"}, "field 'entities' must be a list"),
        ({"entities": ["b-1", ""]}, "must not be empty"),
        ({"case_id": None}, "missing required field 'case_id'"),
        ({"borrower_id": 17}, "field 'borrower_id' must be a string"),
    ],
)
def test_a_bad_fraud_line_is_refused_saying_why(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        parse_label({**FRAUD, **change})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"loan_id": None}, "missing required field 'loan_id'"),
        ({"installment": 0}, "integer 1..10000"),
        ({"installment": True}, "integer 1..10000"),
        ({"due_date": "5 Feb"}, "not an ISO date"),
        ({"due_date": None}, "missing required field 'due_date'"),
    ],
)
def test_a_delinquency_case_must_name_its_installment(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        parse_label({**MISSED, **change})


def test_a_file_round_trips_and_bad_lines_are_named_by_number(tmp_path: Path) -> None:
    good = tmp_path / "labels.jsonl"
    labels = [parse_label(FRAUD), parse_label(MISSED)]
    assert write_labels(good, labels) == 2
    assert read_labels(good) == labels

    bad = tmp_path / "bad.jsonl"
    lines = [orjson.dumps(FRAUD), b"{not json", b"", orjson.dumps({**MISSED, "installment": 0})]
    bad.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(LabelsError) as refused:
        read_labels(bad)
    assert [number for number, _ in refused.value.problems] == [2, 4]
    assert "line 2: line is not JSON" in str(refused.value)


def test_the_json_form_keeps_the_offset_of_the_instants_given() -> None:
    label = CaseLabel(
        case_id="c",
        borrower_id="b",
        category="abnormal_behaviour",
        typology="account_takeover",
        start=datetime.fromisoformat("2026-01-20T10:00:00+08:00"),
        end=datetime.fromisoformat("2026-01-20T11:00:00+08:00"),
    )
    line = label.to_dict()
    assert line["start"] == "2026-01-20T10:00:00+08:00"
    assert "loan_id" not in line and "detail" not in line
    assert parse_label(line).start == label.start
