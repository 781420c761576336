"""`lendwatch console` in a real headless Chromium, over a real broker and Redis.

The console runs as the command a team starts (a subprocess of ``lendwatch console``), alerts
are produced to real topics, and the page is driven the way a person would: pick a key, type,
click. Debian's ``chromium`` and ``chromium-driver`` are used as installed (``make browser``);
nothing is downloaded at test time.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from streams.control.console import AlertBoard, create_app
from streams.control.store import ThresholdStore
from streams.ops.embedded import free_port
from tests.integration.conftest import Deployment
from topics.codec import encode_alert
from topics.records import Alert, Reason

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, and quiet on a closed network: without these Chromium keeps dialling Google.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's Chromium through its chromedriver; missing ones fail the test, never skip it."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: run `make browser` (installs Debian's "
            "chromium and chromium-driver)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)  # with the Service path: no Selenium Manager
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def store(deployment: Deployment, redis_url: str) -> AsyncIterator[ThresholdStore]:
    """The thresholds under the deployment's own Redis prefix, as the console sees them."""
    redis = Redis.from_url(redis_url)
    yield ThresholdStore(redis, deployment.app_id)
    await redis.aclose()


@pytest.fixture
async def console(deployment: Deployment, tmp_path: Path) -> AsyncIterator[str]:
    """``lendwatch console`` on a free port with the deployment's topics and Redis prefix."""
    port = free_port()
    log = tmp_path / "console.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.ops.cli", "console", "--port", str(port)],
            env=deployment.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_answering(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"console exited {process.returncode}:\n{log.read_text()}")
            try:
                async with session.get(f"{url}/api/state") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"console did not answer in 20 s:\n{log.read_text()}")


def wait_for(
    driver: webdriver.Chrome, what: str, holds: Callable[[], bool], timeout: float = 15.0
) -> None:
    """Poll the DOM until ``holds``; on timeout say what was awaited and what the page shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if holds():
                return
        except StaleElementReferenceException:  # the page re-rendered under us: look again
            pass
        time.sleep(0.1)
    page = driver.find_element(By.TAG_NAME, "body").text
    raise AssertionError(f"not seen in {timeout} s: {what}\npage:\n{page[:3000]}")


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


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


def _screenshot(driver: webdriver.Chrome, path: Path) -> None:
    """The whole page, not just the window (Chromium's DevTools capture beyond the viewport)."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    extra = os.environ.get("LW_CONSOLE_SCREENSHOT")
    if extra:
        shutil.copyfile(path, extra)


async def test_console_shows_alerts_and_changes_thresholds_in_chromium(
    deployment: Deployment,
    console: str,
    browser: webdriver.Chrome,
    store: ThresholdStore,
    tmp_path: Path,
) -> None:
    topics = deployment.topics
    browser.get(console)
    wait_for(browser, "live version v0", lambda: text(browser, "live-version") == "v0")

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

    # A change made on the page makes v1, on the page and in Redis.
    browser.find_element(By.ID, "change-author").send_keys("console-test")
    _set(browser, "takeover.min_failures", "7", "fewer false alarms on shared devices", "set-live")
    wait_for(browser, "live version v1", lambda: text(browser, "live-version") == "v1")
    live = await store.live()
    assert (live.label, live.values["takeover.min_failures"]) == ("v1", 7)
    assert (live.author, live.reason) == ("console-test", "fewer false alarms on shared devices")
    wait_for(browser, "v1 in the history", lambda: "v1" in text(browser, "history"))
    assert "takeover.min_failures: 5 → 7" in text(browser, "history")

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

    screenshot = tmp_path / "console.png"
    _screenshot(browser, screenshot)
    assert screenshot.stat().st_size > 10_000

    # Promoted from the page: c1's values become v2 and the candidate is gone.
    browser.find_element(By.ID, "change-reason").send_keys("9 misses nothing real")
    browser.find_element(By.ID, "promote").click()
    wait_for(browser, "live version v2", lambda: text(browser, "live-version") == "v2")
    promoted = await store.live()
    assert (promoted.action, promoted.values["takeover.min_failures"]) == ("promote", 9)
    assert await store.candidate() is None


async def test_every_action_is_refused_whole_with_the_stores_reason(redis_url: str) -> None:
    """The JSON endpoints against real Redis: what is refused leaves every key as it was."""
    redis = Redis.from_url(redis_url)
    store = ThresholdStore(redis, f"lw-console-{uuid.uuid4().hex[:8]}")
    app = create_app(store, AlertBoard("alerts.shadow"))
    try:
        async with TestClient(TestServer(app)) as client:

            async def post(path: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
                response = await client.post(path, json=body)
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

            change = {"changes": {"takeover.min_failures": "6"}, "reason": "noisy", "author": "a"}
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
    finally:
        await redis.delete(store.versions_key, store.audit_key, store.candidate_seq_key)
        await redis.aclose()
