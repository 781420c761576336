"""The console's aggregation and its request handling, without a broker.

Handlers that need Redis to answer are tested in ``tests/integration/test_console.py``; here
the Redis client points at a closed port, a real refusal, not a mock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from detectors.thresholds import TUNABLES, InvalidThreshold
from streams.control.accounts import UsersFile
from streams.control.auth import CSRF_HEADER, AuthConfig, Gate
from streams.control.console import AlertBoard, create_app, parse_change_request, thresholds_view
from streams.control.store import AuditEntry, Candidate, ThresholdStore, ThresholdVersion
from streams.ops.embedded import free_port

SHADOW = "alerts.shadow"


def _alert(
    detector: str = "delinquency",
    emitted_at: str = "2026-03-01T08:00:00+00:00",
    version: str = "v0",
    borrower: str = "b-1",
) -> dict[str, Any]:
    return {
        "alert_id": f"{detector}-{borrower}-{emitted_at}",
        "ts": emitted_at,
        "emitted_at": emitted_at,
        "detector": detector,
        "severity": "high",
        "score": 0.8,
        "borrower_id": borrower,
        "reasons": [
            {"code": "past_due", "message": "2 days past due"},
            {"code": "silence", "message": "no login for 9 days"},
        ],
        "thresholds_version": version,
    }


def _candidate(number: int = 3, at: str = "2026-03-01T09:00:00+00:00") -> Candidate:
    return Candidate(
        number=number,
        base=1,
        values={"takeover.min_failures": 6},
        changes={"takeover.min_failures": [5, 6]},
        author="ana",
        at=at,
        reason="fewer false alarms",
    )


def test_counts_per_topic_and_detector_and_unreadable_records() -> None:
    board = AlertBoard(SHADOW)
    board.add("alerts.collections", _alert("delinquency"))
    board.add("alerts.collections", _alert("delinquency"))
    board.add("alerts.fraud", _alert("circular_flow"))
    board.add("alerts.fraud", _alert("wash_trading"))
    board.add("alerts.fraud", _alert("circular_flow"))
    assert not board.add("alerts.fraud", None)  # not JSON
    assert not board.add("alerts.fraud", {"no": "detector"})

    counts = board.counts()
    assert counts["topics"] == [
        {"topic": "alerts.collections", "count": 2},
        {"topic": "alerts.fraud", "count": 3},
    ]
    assert counts["detectors"] == [
        {"topic": "alerts.collections", "detector": "delinquency", "count": 2},
        {"topic": "alerts.fraud", "detector": "circular_flow", "count": 2},
        {"topic": "alerts.fraud", "detector": "wash_trading", "count": 1},
    ]
    assert counts["unreadable"] == 2


def test_latest_is_bounded_newest_first_and_lists_no_shadow_alert() -> None:
    board = AlertBoard(SHADOW, latest=3)
    for number in range(5):
        board.add("alerts.security", _alert("account_takeover", borrower=f"b-{number}"))
    board.add(SHADOW, _alert("account_takeover", borrower="b-shadow", version="c1"))

    latest = board.latest
    assert [a["borrower_id"] for a in latest] == ["b-4", "b-3", "b-2"]
    assert latest[0]["reasons"] == ["2 days past due", "no login for 9 days"]
    assert latest[0]["topic"] == "alerts.security"
    assert board.by_topic[SHADOW] == 1  # counted all the same


def test_shadow_comparison_counts_the_candidates_label_and_live_alerts_since_it_started() -> None:
    board = AlertBoard(SHADOW)
    board.add("alerts.security", _alert("account_takeover", "2026-03-01T08:59:59+00:00"))
    board.add("alerts.security", _alert("account_takeover", "2026-03-01T09:00:00+00:00"))
    board.add("alerts.security", _alert("account_takeover", "2026-03-01T09:30:00+00:00"))
    board.add("alerts.fraud", _alert("circular_flow", "2026-03-01T10:00:00+00:00"))
    board.add(SHADOW, _alert("account_takeover", "2026-03-01T09:10:00+00:00", "c3"))
    board.add(SHADOW, _alert("credential_stuffing", "2026-03-01T09:10:00+00:00", "c3"))
    board.add(SHADOW, _alert("account_takeover", "2026-03-01T09:10:00+00:00", "c2"))  # older

    since = datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert board.comparison("c3", since)["rows"] == [
        {"detector": "account_takeover", "live": 2, "shadow": 1, "difference": -1},
        {"detector": "circular_flow", "live": 1, "shadow": 0, "difference": -1},
        {"detector": "credential_stuffing", "live": 0, "shadow": 1, "difference": 1},
    ]

    # Alerts that come after the comparison was first asked for are counted in as they come.
    board.add("alerts.fraud", _alert("circular_flow", "2026-03-01T11:00:00+00:00"))
    board.add("alerts.fraud", _alert("circular_flow", "2026-03-01T08:00:00+00:00"))  # before
    board.add(SHADOW, _alert("circular_flow", "2026-03-01T11:00:00+00:00", "c3"))
    compared = board.comparison("c3", since)
    assert {r["detector"]: (r["live"], r["shadow"]) for r in compared["rows"]} == {
        "account_takeover": (2, 1),
        "circular_flow": (2, 1),
        "credential_stuffing": (0, 1),
    }
    assert (compared["live"], compared["shadow"], compared["partial"]) == (4, 3, False)

    # A candidate that starts later is compared with the live alerts since its own start.
    later = board.snapshot(_candidate(4, "2026-03-01T10:30:00+00:00"))["comparison"]
    assert later["candidate"] == "c4"
    assert later["rows"] == [
        {"detector": "circular_flow", "live": 1, "shadow": 0, "difference": -1}
    ]


def test_a_comparison_that_needs_forgotten_alerts_says_partial() -> None:
    board = AlertBoard(SHADOW, window=2)
    for minute in range(4):
        board.add("alerts.fraud", _alert("circular_flow", f"2026-03-01T09:0{minute}:00+00:00"))
    assert board.comparison("c1", datetime(2026, 3, 1, 9, tzinfo=UTC))["partial"]
    recent = board.comparison("c1", datetime(2026, 3, 1, 9, 2, tzinfo=UTC))
    assert (recent["live"], recent["partial"]) == (2, False)


def test_no_candidate_no_comparison() -> None:
    board = AlertBoard(SHADOW)
    board.add("alerts.fraud", _alert("circular_flow"))
    assert board.snapshot(None)["comparison"] is None


def test_thresholds_view_values_as_typed_shadow_where_it_differs_history_newest_first() -> None:
    v0 = ThresholdVersion.defaults()
    v1 = ThresholdVersion(
        1,
        {**v0.values, "takeover.min_failures": 7},
        "ana",
        "2026-03-01T08:00:00+00:00",
        "fewer false alarms",
        "set",
        {"takeover.min_failures": [5, 7]},
    )
    candidate = Candidate(
        2, 1, {**v1.values, "takeover.min_failures": 6}, {}, "bo", "2026-03-01T09:00:00+00:00", "x"
    )
    history = [
        AuditEntry("set", "v1", "ana", "2026-03-01T08:00:00+00:00", "first", {}),
        AuditEntry("shadow", "c2", "bo", "2026-03-01T09:00:00+00:00", "second", {}),
    ]
    view = thresholds_view(v1, candidate, history)

    assert view["live"]["label"] == "v1"
    assert view["candidate"]["label"] == "c2" and view["candidate"]["base"] == "v1"
    values = {v["key"]: v for v in view["values"]}
    assert list(values) == list(TUNABLES)
    assert values["takeover.min_failures"]["value"] == "7"
    assert values["takeover.min_failures"]["changed"] is True
    assert values["takeover.min_failures"]["shadow"] == "6"
    days = next(v for v in view["values"] if TUNABLES[v["key"]].type == "days")
    assert "," in days["value"] and days["shadow"] is None and days["changed"] is False
    assert [e["reason"] for e in view["history"]] == ["second", "first"]


def test_a_change_request_needs_a_change_and_a_reason_and_names_no_author() -> None:
    asked = parse_change_request(
        {"changes": {"takeover.min_failures": "6"}, "reason": " noisy "}, changes=True
    )
    assert asked.changes == {"takeover.min_failures": "6"}
    assert asked.reason == "noisy"
    for body, needs in [
        ({"changes": {}, "reason": "r"}, "at least one"),
        ({"changes": {"k": True}, "reason": "r"}, "not a value"),
        ({"changes": {"k": "1"}, "reason": "  "}, "reason is required"),
        ({"reason": "r"}, "at least one"),
        (["not", "an", "object"], "JSON object"),
        # The audit records who signed in: a typed author is refused, not recorded.
        ({"changes": {"k": "1"}, "reason": "r", "author": "mallory"}, "send no author"),
    ]:
        with pytest.raises(InvalidThreshold, match=needs):
            parse_change_request(body, changes=True)
    assert parse_change_request({"reason": "done"}, changes=False).changes == {}


@pytest.fixture
async def unreachable_redis_client(tmp_path: Path) -> Any:
    """A console whose Redis refuses connections (a closed local port), signed in as a tuner;
    POSTs carry the session's CSRF token."""
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    board = AlertBoard(SHADOW)
    board.add("alerts.fraud", _alert("circular_flow"))
    users = tmp_path / "users.json"
    UsersFile(users).add("tina", ["tuner"], "tuner-password")
    gate = Gate(AuthConfig(users_path=str(users)))
    app = create_app(ThresholdStore(redis, "lw-unit"), board, gate)
    async with TestClient(TestServer(app)) as client:
        signed_in = await client.post(
            "/api/login", json={"name": "tina", "password": "tuner-password"}
        )
        assert signed_in.status == 200
        client.session.headers[CSRF_HEADER] = (await signed_in.json())["csrf"]
        yield client
    await redis.aclose()


async def test_the_page_is_served_with_its_stable_ids(unreachable_redis_client: TestClient) -> None:
    response = await unreachable_redis_client.get("/")
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    for element in ('id="live-version"', 'id="set-live"', 'id="try-shadow"', 'id="latest"'):
        assert element in page
    for name in ("console.js", "console.css"):
        served = await unreachable_redis_client.get(f"/static/{name}")
        assert served.status == 200
        page += await served.text()
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


async def test_state_shows_the_alerts_while_redis_is_down(
    unreachable_redis_client: TestClient,
) -> None:
    response = await unreachable_redis_client.get("/api/state")
    assert response.status == 200
    state = await response.json()
    assert state["counts"]["topics"] == [{"topic": "alerts.fraud", "count": 1}]
    assert state["thresholds"] is None
    assert state["error"].startswith("Redis is unreachable")
    assert state["reader_error"] is None


async def test_posts_must_be_json_with_a_reason(unreachable_redis_client: TestClient) -> None:
    form = await unreachable_redis_client.post(
        "/api/thresholds", data={"changes": "takeover.min_failures=6", "reason": "r"}
    )
    assert form.status == 415  # what a cross-site form would send
    no_reason = await unreachable_redis_client.post(
        "/api/thresholds", json={"changes": {"takeover.min_failures": "6"}, "reason": ""}
    )
    assert no_reason.status == 400
    assert "reason is required" in (await no_reason.json())["error"]
    down = await unreachable_redis_client.post(
        "/api/thresholds", json={"changes": {"takeover.min_failures": "6"}, "reason": "noisy"}
    )
    assert down.status == 503
    assert "nothing changed" in (await down.json())["error"]
