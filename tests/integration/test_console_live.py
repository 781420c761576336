"""The console over a live run: a worker processes simulated traffic, and the page shows its
collections queue and its alerts' pages; an analyst's verdict reaches the feedback topic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from selenium.webdriver.common.by import By

from sim import SimulationConfig, simulate
from streams.ops.broker import produce_records
from streams.worker.risk import RiskBoard
from tests.integration.browser import (  # noqa: F401 (fixtures)
    absent,
    browser_fixture,
    click,
    running_console,
    screenshot,
    sign_in,
    text,
    users_file_fixture,
    wait_for,
)
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration


def _as_js(value: float | str) -> str:
    """A value as the page's JavaScript writes it: 4.0 is "4"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


async def _risk_queue(deployment: Deployment) -> list[dict[str, Any]]:
    redis = Redis.from_url(deployment.redis_url)
    try:
        return await RiskBoard(redis, deployment.app_id).queue(500)
    finally:
        await redis.aclose()


async def test_the_queue_and_an_alerts_page_show_a_live_run_and_a_verdict_is_published(
    deployment: Deployment, browser: Any, users_file: Path, tmp_path: Path
) -> None:
    # A live run: the simulator's traffic through a real worker, with alerts of every team.
    simulation = simulate(SimulationConfig(borrowers=30, days=50, seed=3, topics=deployment.topics))
    worker = deployment.start_worker()
    try:
        sent = await produce_records(deployment.kafka.bootstrap, simulation.records)
        await worker.wait_processed(sent, timeout=300)
        published = await deployment.consume(deployment.topics.alert_topics(), idle=5.0, timeout=60)
        worker.check_alive()
    finally:
        worker.stop()
    alerts = {alert["alert_id"]: alert for _, alert in published}
    queue = await _risk_queue(deployment)
    assert queue and alerts, "the run produced a risk queue and alerts"
    with_alert = [view for view in queue if view["last_alert"]]
    assert with_alert, "a borrower in the queue has a collections alert"

    async with running_console(deployment, tmp_path, LW_CONSOLE_USERS=str(users_file)) as (
        url,
        _,
    ):
        analyst = sign_in(browser, url, "analyst")
        assert absent(browser, "change-card")  # an analyst does not tune thresholds

        # The queue: the risk view's borrowers, riskiest first, as `lendwatch risk` reads it.
        browser.find_element(By.ID, "nav-queue").click()
        top = queue[0]["borrower_id"]
        wait_for(browser, "the queue", lambda: top in text(browser, "queue"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        assert len(rows) == len(queue)
        assert rows[0].text.startswith(top)
        due = min(i["due_date"] for i in queue[0]["open_installments"])
        assert due in rows[0].text
        screenshot(browser, tmp_path, "console-queue")
        # Filtered by a borrower: only that borrower's row.
        chosen = with_alert[0]
        browser.find_element(By.ID, "queue-borrower").send_keys(chosen["borrower_id"])
        wait_for(
            browser,
            "one row",
            lambda: (
                len(browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")) == 1
                and chosen["borrower_id"] in text(browser, "queue")
            ),
        )

        # Its last alert opens the alert's page: reasons with observed values and thresholds,
        # evidence, versions, the thresholds of that version, the borrower's alerts.
        alert_id = chosen["last_alert"]["alert_id"]
        click(browser, "#queue a.alert-link")
        alert = alerts[alert_id]
        wait_for(browser, "the alert's page", lambda: alert_id in text(browser, "alert-facts"))
        reasons = text(browser, "alert-reasons")
        for reason in alert["reasons"]:
            assert reason["message"] in reasons
            for value in (reason.get("observed"), reason.get("threshold")):
                if isinstance(value, int | float | str):
                    assert _as_js(value) in reasons, (value, reasons)
        assert alert["evidence"] and alert["evidence"][0] in text(browser, "alert-evidence")
        facts = text(browser, "alert-facts")
        assert alert["thresholds_version"] in facts and alert["detector_version"] in facts
        wait_for(
            browser,
            "the delinquency thresholds of v0",
            lambda: "delinquency.min_alert_score" in text(browser, "alert-thresholds"),
        )
        others = [
            a for a in alerts.values() if a["borrower_id"] == alert["borrower_id"] and a != alert
        ]
        history = text(browser, "alert-history")
        for other in others[:5]:
            assert other["detector"] in history
        assert "Contact the borrower" in text(browser, "alert-next")

        # The analyst's verdict goes to lending.feedback, keyed by the alert's borrower and
        # signed with the analyst's name; the page shows it.
        browser.find_element(By.ID, "verdict-note").send_keys("called: lost the main customer")
        screenshot(browser, tmp_path, "console-alert")
        browser.find_element(By.ID, "verdict-confirmed").click()
        wait_for(
            browser, "the verdict sent", lambda: "confirmed" in text(browser, "verdict-message")
        )
        wait_for(browser, "the verdict listed", lambda: analyst in text(browser, "alert-verdicts"))

    [(topic, key, record)] = await deployment.consume_keyed(
        [deployment.topics.feedback], idle=3.0, timeout=30
    )
    assert key == alert["borrower_id"].encode()
    assert record["alert_id"] == alert_id and record["verdict"] == "confirmed"
    assert record["author"] == analyst and record["note"] == "called: lost the main customer"
    assert record["event_id"].startswith("fb-") and record["ts"].endswith("+00:00")
