"""`lendwatch console` in a real headless Chromium, over a real broker and Redis: sign-in,
roles, CSRF, and threshold changes audited under the signed-in name.

The console runs as the command a team starts (a subprocess of ``lendwatch console``) with a
users file of one user per role, alerts are produced to real topics, and the page is driven
the way a person would: sign in, pick a key, type, click. Debian's ``chromium`` and
``chromium-driver`` are used as installed (``make browser``); nothing is downloaded at test
time. The queue and alert pages over a live run are in ``test_console_live.py``, the proxy
sign-in in ``test_console_proxy.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from streams.control.accounts import UsersFile
from streams.control.auth import CSRF_HEADER, AuthConfig, Gate
from streams.control.console import AlertBoard, create_app
from streams.control.store import ThresholdStore
from tests.integration.browser import (  # noqa: F401 (fixtures)
    USERS,
    absent,
    browser_fixture,
    post_from_page,
    running_console,
    screenshot,
    sign_in,
    text,
    users_file_fixture,
    wait_for,
)
from tests.integration.conftest import Deployment
from topics.codec import encode_alert
from topics.records import Alert, Reason

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(deployment: Deployment, redis_url: str) -> AsyncIterator[ThresholdStore]:
    """The thresholds under the deployment's own Redis prefix, as the console sees them."""
    redis = Redis.from_url(redis_url)
    yield ThresholdStore(redis, deployment.app_id)
    await redis.aclose()


@pytest.fixture
async def console(deployment: Deployment, tmp_path: Path, users_file: Path) -> AsyncIterator[str]:
    """``lendwatch console`` signing in from ``users_file``."""
    async with running_console(deployment, tmp_path, LW_CONSOLE_USERS=str(users_file)) as (
        url,
        _,
    ):
        yield url


def _alert(
    detector: str,
    category: str,
    borrower: str,
    severity: str,
    message: str,
    *,
    emitted_at: datetime,
    version: str = "v0",
) -> Alert:
    return Alert(
        alert_id=f"console-{detector}-{borrower}-{version}",
        ts=emitted_at,
        emitted_at=emitted_at,
        category=category,
        detector=detector,
        severity=severity,
        score={"low": 0.3, "medium": 0.6, "high": 0.8, "critical": 0.95}[severity],
        borrower_id=borrower,
        reasons=[Reason(code="test", message=message, observed=12, threshold=5)],
        evidence=["ev-1"],
        detector_version="1",
        thresholds_version=version,
        episode=f"episode:{borrower}",
    )


async def _produce(bootstrap: str, alerts: list[tuple[str, Alert]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for topic, alert in alerts:
            await producer.send_and_wait(topic, encode_alert(alert), key=alert.borrower_id.encode())
    finally:
        await producer.stop()


def _set(driver: webdriver.Chrome, key: str, value: str, reason: str, button: str) -> None:
    """What a person does: pick the key, type the value and the reason, click."""
    Select(driver.find_element(By.ID, "threshold-key")).select_by_value(key)
    for element_id, typed in (("threshold-value", value), ("change-reason", reason)):
        field = driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(typed)
    driver.find_element(By.ID, button).click()


async def test_a_tuner_signs_in_and_changes_are_audited_under_that_name(
    deployment: Deployment,
    console: str,
    browser: webdriver.Chrome,
    store: ThresholdStore,
    tmp_path: Path,
) -> None:
    topics = deployment.topics
    tuner = sign_in(browser, console, "tuner")
    wait_for(browser, "live version v0", lambda: text(browser, "live-version") == "v0")
    assert "tuner" in text(browser, "user-roles")

    # Alerts produced to the teams' topics appear on the page, with their reasons.
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await _produce(
        deployment.kafka.bootstrap,
        [
            (
                topics.alerts_fraud,
                _alert(
                    "circular_flow",
                    "falsified_flow",
                    "b-ring-1",
                    "critical",
                    "205,300.00 went round three accounts in 2.4 h",
                    emitted_at=an_hour_ago,
                ),
            ),
            (
                topics.alerts_security,
                _alert(
                    "account_takeover",
                    "abnormal_behaviour",
                    "b-ato-2",
                    "high",
                    "12 failed logins in the 30 minutes before the success",
                    emitted_at=an_hour_ago,
                ),
            ),
            (
                topics.alerts_collections,
                _alert(
                    "delinquency",
                    "delinquency_risk",
                    "b-late-3",
                    "medium",
                    "0 of 2894.51 paid by the end of the grace period",
                    emitted_at=an_hour_ago,
                ),
            ),
        ],
    )
    wait_for(
        browser,
        "the three alerts in the latest alerts",
        lambda: all(b in text(browser, "latest") for b in ("b-ring-1", "b-ato-2", "b-late-3")),
    )
    latest = text(browser, "latest")
    assert "12 failed logins in the 30 minutes before the success" in latest
    counts = text(browser, "counts")
    for topic in topics.alert_topics():
        assert f"{topic} 1" in counts, counts
    severity = browser.find_element(By.CSS_SELECTOR, "#latest .sev-critical")
    assert severity.text == "critical"

    # A change made on the page makes v1, on the page and in Redis, by the signed-in tuner:
    # there is no author field to type into.
    assert absent(browser, "change-author")
    _set(browser, "takeover.min_failures", "7", "fewer false alarms on shared devices", "set-live")
    wait_for(browser, "live version v1", lambda: text(browser, "live-version") == "v1")
    live = await store.live()
    assert (live.label, live.values["takeover.min_failures"]) == ("v1", 7)
    assert (live.author, live.reason) == (tuner, "fewer false alarms on shared devices")
    assert [entry.author for entry in await store.history()] == [tuner]
    wait_for(browser, "v1 in the history", lambda: "v1" in text(browser, "history"))
    assert "takeover.min_failures: 5 → 7" in text(browser, "history")
    assert f"by {tuner}" in text(browser, "live-meta")

    # A forged request, with the tuner's session cookie but not the page's CSRF token, is
    # refused and changes nothing; so is one that types an author.
    forged = post_from_page(
        browser,
        "/api/thresholds",
        {"changes": {"takeover.min_failures": "9"}, "reason": "forged"},
        csrf=False,
    )
    assert forged["status"] == 403 and "CSRF" in forged["body"]["error"], forged
    typed = post_from_page(
        browser,
        "/api/thresholds",
        {"changes": {"takeover.min_failures": "9"}, "reason": "r", "author": "mallory"},
        csrf=True,
    )
    assert typed["status"] == 400, typed
    assert (await store.live()).label == "v1" and len(await store.history()) == 1

    # An out-of-range value is refused with the store's reason; nothing changes.
    _set(browser, "takeover.min_failures", "1000", "way too many", "set-live")
    wait_for(browser, "the refusal", lambda: "out of range" in text(browser, "form-error"))
    assert "takeover.min_failures: 1000 is out of range [1, 100]" in text(browser, "form-error")
    assert text(browser, "live-version") == "v1"
    assert (await store.live()).label == "v1"

    # Values tried in shadow: the candidate's alerts beside the live ones since it started.
    _set(browser, "takeover.min_failures", "9", "see what 9 would miss", "try-shadow")
    wait_for(browser, "candidate c1", lambda: text(browser, "candidate-version") == "c1")
    now = datetime.now(UTC) + timedelta(seconds=1)
    await _produce(
        deployment.kafka.bootstrap,
        [
            (
                topics.alerts_security,
                _alert(
                    "account_takeover",
                    "abnormal_behaviour",
                    "b-ato-4",
                    "critical",
                    "8 failed logins in the 30 minutes before the success",
                    emitted_at=now,
                    version="v1",
                ),
            ),
            (
                topics.alerts_shadow,
                _alert(
                    "account_takeover",
                    "abnormal_behaviour",
                    "b-ato-5",
                    "critical",
                    "10 failed logins in the 30 minutes before the success",
                    emitted_at=now,
                    version="c1",
                ),
            ),
        ],
    )
    wait_for(
        browser,
        "account_takeover: 1 live, 1 in shadow since c1 started",
        lambda: "account_takeover 1 1 0" in text(browser, "comparison"),
    )
    assert "b-ato-5" not in text(browser, "latest")  # shadow alerts reach no team's list

    screenshot(browser, tmp_path, "console-overview")

    # Promoted from the page: c1's values become v2 and the candidate is gone.
    browser.find_element(By.ID, "change-reason").send_keys("9 misses nothing real")
    browser.find_element(By.ID, "promote").click()
    wait_for(browser, "live version v2", lambda: text(browser, "live-version") == "v2")
    promoted = await store.live()
    assert (promoted.action, promoted.values["takeover.min_failures"]) == ("promote", 9)
    assert promoted.author == tuner
    assert await store.candidate() is None

    # Rolled back from the page to v1's values: v3, by the tuner.
    browser.find_element(By.ID, "rollback-version").send_keys("v1")
    browser.find_element(By.ID, "change-reason").send_keys("back to 7 for the weekend")
    browser.find_element(By.ID, "rollback").click()
    wait_for(browser, "live version v3", lambda: text(browser, "live-version") == "v3")
    rolled = await store.live()
    assert (rolled.action, rolled.author, rolled.values["takeover.min_failures"]) == (
        "rollback",
        tuner,
        7,
    )


async def test_a_viewer_has_no_change_form_and_is_refused_a_change(
    deployment: Deployment,
    console: str,
    browser: webdriver.Chrome,
    store: ThresholdStore,
    tmp_path: Path,
) -> None:
    browser.get(console)
    wait_for(browser, "the sign-in page", lambda: browser.current_url.endswith("/login"))
    screenshot(browser, tmp_path, "console-sign-in")
    # A wrong password is refused on the page.
    browser.find_element(By.ID, "login-name").send_keys(USERS["viewer"][0])
    browser.find_element(By.ID, "login-password").send_keys("not-the-password")
    browser.find_element(By.ID, "login-submit").click()
    wait_for(
        browser, "the refusal", lambda: "wrong name or password" in text(browser, "login-error")
    )

    viewer = sign_in(browser, console, "viewer")
    wait_for(browser, "live version v0", lambda: text(browser, "live-version") == "v0")
    assert text(browser, "user-roles") == "viewer"
    # The buttons are not on the page at all...
    for element in ("change-card", "set-live", "try-shadow", "promote", "rollback"):
        assert absent(browser, element), element
    assert browser.find_elements(By.ID, "thresholds")  # ...the thresholds are, to read
    # ...and the endpoint refuses the viewer even with the page's CSRF token.
    refused = post_from_page(
        browser,
        "/api/thresholds",
        {"changes": {"takeover.min_failures": "9"}, "reason": "I am only a viewer"},
        csrf=True,
    )
    assert refused["status"] == 403, refused
    assert f"{viewer} (viewer) may not change thresholds" in refused["body"]["error"]
    assert (await store.live()).label == "v0" and await store.history() == []

    # Signed out, the page is the sign-in page again and the API answers 401.
    browser.find_element(By.ID, "sign-out").click()
    wait_for(browser, "the sign-in page", lambda: browser.current_url.endswith("/login"))
    after = post_from_page(
        browser,
        "/api/thresholds",
        {"changes": {"takeover.min_failures": "9"}, "reason": "r"},
        csrf=True,
    )
    assert after["status"] == 401 and "sign in" in after["body"]["error"], after


async def test_every_action_is_refused_whole_with_the_stores_reason(
    redis_url: str, tmp_path: Path
) -> None:
    """The JSON endpoints against real Redis, signed in as a tuner: what is refused leaves
    every key as it was."""
    redis = Redis.from_url(redis_url)
    store = ThresholdStore(redis, f"lw-console-{uuid.uuid4().hex[:8]}")
    users = tmp_path / "users.json"
    UsersFile(users).add("tina", ["tuner"], "tuner-password")
    app = create_app(store, AlertBoard("alerts.shadow"), Gate(AuthConfig(users_path=str(users))))
    try:
        async with TestClient(TestServer(app)) as client:
            login = await client.post(
                "/api/login", json={"name": "tina", "password": "tuner-password"}
            )
            csrf = (await login.json())["csrf"]

            async def post(path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
                response = await client.post(path, json=body, headers={CSRF_HEADER: csrf})
                return response.status, await response.json()

            refused = [
                ("/api/thresholds", {"changes": {"takeover.min_failure": "6"}, "reason": "r"}),
                ("/api/thresholds", {"changes": {"takeover.min_failures": "six"}, "reason": "r"}),
                ("/api/thresholds", {"changes": {"takeover.min_failures": "5"}, "reason": "r"}),
                ("/api/promote", {"reason": "nothing to promote"}),
                ("/api/discard", {"reason": "nothing to discard"}),
            ]
            for path, body in refused:
                status, answer = await post(path, body)
                assert status == 400, (path, body, answer)
            assert "no such threshold" in str((await post(*refused[0]))[1]["error"])
            assert await redis.keys(f"{store.versions_key}*") == []
            assert await store.history() == []

            change = {"changes": {"takeover.min_failures": "6"}, "reason": "noisy"}
            assert await post("/api/shadow", change) == (
                200,
                {"candidate": "c1", "changes": {"takeover.min_failures": [5, 6]}},
            )
            change["changes"] = {"takeover.min_failures": "7"}
            assert (await post("/api/thresholds", change))[1]["live"] == "v1"
            status, answer = await post("/api/promote", {"reason": "too late"})
            assert status == 400 and "v1 is live now" in str(answer["error"])
            assert (await store.live()).label == "v1"
            assert (await post("/api/discard", {"reason": "stale"}))[1] == {"discarded": "c1"}

            state = await (await client.get("/api/state")).json()
            assert state["thresholds"]["live"]["label"] == "v1"
            assert state["thresholds"]["candidate"] is None
            assert [e["action"] for e in state["thresholds"]["history"]] == [
                "discard",
                "set",
                "shadow",
            ]
            assert {e["author"] for e in state["thresholds"]["history"]} == {"tina"}
    finally:
        await redis.delete(store.versions_key, store.audit_key, store.candidate_seq_key)
        await redis.aclose()
