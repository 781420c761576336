"""Verdicts on ``lending.feedback`` (contract 2.2): checked like every input."""

from __future__ import annotations

import orjson
import pytest

from streams.control.feedback import verdict_record
from topics.validate import ContractError, decode_feedback, parse_feedback

GOOD = {
    "event_id": "fb-1",
    "ts": "2026-03-01T10:00:00+08:00",
    "alert_id": "2f93f64f95075fc77e4b488dced124ad",
    "verdict": "dismissed",
    "author": "ana",
}


def test_a_verdict_the_console_makes_is_valid() -> None:
    record = verdict_record("a-1", "confirmed", "ana", "called the borrower")
    parsed = parse_feedback(record)
    assert (parsed.alert_id, parsed.verdict, parsed.note) == (
        "a-1",
        "confirmed",
        "called the borrower",
    )
    assert parsed.ts.utcoffset() is not None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"verdict": "maybe"}, "field 'verdict' must be one of"),
        ({"ts": "2026-03-01T10:00:00"}, "no UTC offset (naive timestamp)"),
        ({"alert_id": None}, "missing required field 'alert_id'"),
        ({"author": ""}, "field 'author' must not be empty"),
        ({"note": 5}, "field 'note' must be a string"),
    ],
)
def test_a_bad_verdict_is_refused_with_the_reason(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ContractError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_feedback({**GOOD, **change})


def test_a_verdict_needs_a_key_and_json() -> None:
    assert decode_feedback(b"h-1", orjson.dumps(GOOD)).verdict == "dismissed"
    with pytest.raises(ContractError, match="no key"):
        decode_feedback(None, orjson.dumps(GOOD))
    with pytest.raises(ContractError, match="not valid UTF-8 JSON"):
        decode_feedback(b"h-1", b"{")
    with pytest.raises(ContractError, match="tombstone"):
        decode_feedback(b"h-1", None)
