"""`lendwatch tail`'s filters and line format (no broker: the reading is an integration test)."""

from __future__ import annotations

from typing import Any

from streams.ops.tail import TailOptions, format_alert, wanted
from streams.privacy import Masker


def _alert(borrower: str = "b-1", severity: str = "high") -> dict[str, Any]:
    return {
        "alert_id": "a1",
        "detector": "delinquency",
        "borrower_id": borrower,
        "severity": severity,
        "score": 0.8,
        "ts": "2026-03-01T08:00:00+00:00",
        "reasons": [{"code": "past_due", "message": "installment 3 is 2 days past due"}],
    }


def test_severity_is_a_floor() -> None:
    options = TailOptions(min_severity="high")
    assert [
        s for s in ("low", "medium", "high", "critical") if wanted(_alert(severity=s), options)
    ] == [
        "high",
        "critical",
    ]


def test_one_borrower_only() -> None:
    options = TailOptions(borrower="b-2")
    assert wanted(_alert("b-2"), options)
    assert not wanted(_alert("b-1"), options)


def test_an_unknown_severity_is_shown_not_hidden() -> None:
    assert wanted(_alert(severity="severe"), TailOptions(min_severity="critical"))


def test_a_line_holds_the_reasons_and_colours_only_when_asked() -> None:
    line = format_alert("alerts.collections", _alert(), colour=False)
    assert "\033[" not in line
    assert "delinquency" in line and "b-1" in line and "2 days past due" in line
    assert format_alert("alerts.collections", _alert()).startswith("\033[31mhigh")


def test_a_raw_borrower_id_finds_its_masked_alerts() -> None:
    masker = Masker(b"k" * 32)
    hashed = masker.borrower("b-2")
    options = TailOptions(borrower="b-2", masker=masker)

    assert wanted(_alert(hashed), options)
    assert wanted(_alert("b-2"), options)  # a deployment with masking off
    assert not wanted(_alert(masker.borrower("b-1")), options)
    # The hash copied from an alert line finds the same alerts.
    assert wanted(_alert(hashed), TailOptions(borrower=hashed, masker=masker))


def test_with_masking_off_the_id_is_compared_as_typed() -> None:
    off = Masker(b"k" * 32, enabled=False)
    options = TailOptions(borrower="b-2", masker=off)

    assert wanted(_alert("b-2"), options)
    assert not wanted(_alert(Masker(b"k" * 32).borrower("b-2")), options)
