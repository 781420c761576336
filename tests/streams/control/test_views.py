"""The queue, the alert page and the verdict records, as plain data (no Redis, no broker)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from streams.control.board import AlertBoard
from streams.control.feedback import VERDICTS, verdict_record
from streams.control.store import ThresholdVersion
from streams.control.views import NEXT_STEPS, alert_view, detector_thresholds, queue_view
from topics.names import CATEGORIES


def _view(borrower: str, score: float, *dues: str) -> dict[str, Any]:
    return {
        "borrower_id": borrower,
        "score": score,
        "scored_at": "2026-03-01T08:00:00+00:00",
        "scored_installment": "ln-1#2",
        "open_installments": [
            {"loan_id": "ln-1", "installment": n, "due_date": due, "amount_due": "100", "paid": "0"}
            for n, due in enumerate(dues, start=1)
        ],
        "last_alert": None,
        "updated_at": "2026-03-01T08:00:01+00:00",
    }


def test_the_queue_keeps_the_risk_order_and_filters() -> None:
    views = [
        _view("h-aaa", 0.9, "2026-03-10", "2026-03-05"),
        _view("h-bbb", 0.6, "2026-04-20"),
        _view("h-abc", 0.2, "2026-03-03"),
    ]
    everyone = queue_view(views)
    assert [r["borrower_id"] for r in everyone["rows"]] == ["h-aaa", "h-bbb", "h-abc"]
    assert everyone["rows"][0]["next_due"] == "2026-03-05"  # the earliest open installment
    today = date(2026, 3, 1)
    assert [r["borrower_id"] for r in queue_view(views, search="AB")["rows"]] == ["h-abc"]
    assert [r["borrower_id"] for r in queue_view(views, min_score=0.5)["rows"]] == [
        "h-aaa",
        "h-bbb",
    ]
    soon = queue_view(views, due_within_days=7, today=today)
    assert [r["borrower_id"] for r in soon["rows"]] == ["h-aaa", "h-abc"]
    assert (soon["shown"], soon["read"]) == (2, 3)


def test_an_alert_page_has_its_detectors_thresholds_history_and_next_steps() -> None:
    v0 = ThresholdVersion.defaults()
    values = detector_thresholds("account_takeover", v0)
    assert values["takeover.min_failures"] == "5"
    assert all(key.startswith("takeover.") for key in values)
    assert detector_thresholds("no_such_detector", v0) == {}

    alert = {"alert_id": "a-2", "category": "abnormal_behaviour", "borrower_id": "h-1"}
    history = [{"alert_id": "a-2"}, {"alert_id": "a-1"}]
    view = alert_view(alert, history=history, verdicts=[], thresholds=values)
    assert [h["alert_id"] for h in view["history"]] == ["a-1"]  # the others, not itself
    assert view["next_steps"][:-1] == NEXT_STEPS["abnormal_behaviour"]
    assert "verdict" in view["next_steps"][-1]
    assert set(NEXT_STEPS) == set(CATEGORIES)


def _alert(alert_id: str, borrower: str, ts: str) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "ts": ts,
        "emitted_at": ts,
        "category": "delinquency_risk",
        "detector": "delinquency",
        "severity": "high",
        "score": 0.8,
        "borrower_id": borrower,
        "reasons": [{"code": "past_due", "message": "2 days past due"}],
        "thresholds_version": "v0",
    }


def test_the_board_keeps_alerts_by_id_borrower_histories_and_verdicts() -> None:
    board = AlertBoard("alerts.shadow", feedback_topic="lending.feedback")
    board.add("alerts.collections", _alert("a-1", "h-1", "2026-03-01T08:00:00+00:00"))
    board.add("alerts.collections", _alert("a-2", "h-1", "2026-03-02T08:00:00+00:00"))
    board.add("alerts.collections", _alert("a-3", "h-2", "2026-03-02T09:00:00+00:00"))
    board.add("alerts.shadow", _alert("s-1", "h-1", "2026-03-02T09:00:00+00:00"))
    assert board.alerts["a-2"]["topic"] == "alerts.collections"
    assert "s-1" not in board.alerts  # shadow alerts reach no team's page
    assert [h["alert_id"] for h in board.history("h-1")] == ["a-2", "a-1"]
    record = verdict_record("a-2", "confirmed", "ana", "called")
    assert board.add("lending.feedback", orjson.loads(orjson.dumps(record)))
    assert not board.add("lending.feedback", {"no": "alert"})
    assert board.verdicts["a-2"] == [
        {"verdict": "confirmed", "author": "ana", "ts": record["ts"], "note": "called"}
    ]
    assert "lending.feedback" not in board.by_topic  # verdicts are not alerts


def test_a_verdict_record_is_the_feedback_contract() -> None:
    at = datetime(2026, 3, 1, 8, tzinfo=UTC)
    record = verdict_record("a-1", "dismissed", "ana", "  ", now=at, event_id="fb-1")
    assert record == {
        "event_id": "fb-1",
        "ts": "2026-03-01T08:00:00+00:00",
        "alert_id": "a-1",
        "verdict": "dismissed",
        "author": "ana",
    }
    assert verdict_record("a-1", "duplicate", "ana", "see a-0")["note"] == "see a-0"
    assert VERDICTS == ("confirmed", "dismissed", "duplicate")
    with pytest.raises(ValueError, match="one of"):
        verdict_record("a-1", "maybe", "ana")
    with pytest.raises(ValueError, match="author"):
        verdict_record("a-1", "confirmed", "")
