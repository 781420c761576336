"""The worker on a real broker and Redis: alerts out, bad input dead-lettered, replay agrees."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from detectors.base import CATEGORIES
from sim import SimulationConfig, simulate
from streams.ops.broker import BAD_RECORDS, produce_records
from streams.worker.risk import RiskBoard
from tests.integration.conftest import Deployment
from tests.streams.test_privacy import personal_values, raw_values_in

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("input_path", ["reader", "agent"])
async def test_live_pipeline_matches_replay_and_dead_letters_bad_input(
    deployment: Deployment, input_path: str
) -> None:
    """Both ways in (LW_INPUT_PATH: the input reader, a Faust agent) give replay's alerts."""
    simulation = simulate(
        SimulationConfig(borrowers=60, days=45, seed=11, topics=deployment.topics)
    )
    worker = deployment.start_worker(LW_INPUT_PATH=input_path)
    try:
        # Bad records are mixed in every 5,000 good ones: the worker must go on after each.
        sent = await produce_records(
            deployment.kafka.bootstrap,
            simulation.records,
            bad_every=5000,
            bad_topic=deployment.topics.transactions,
        )
        bad_sent = sent - len(simulation.records)
        assert bad_sent >= len(BAD_RECORDS)
        await worker.wait_processed(sent, timeout=240)
        topics = deployment.topics
        received = await deployment.consume_keyed(
            [*topics.alert_topics(), topics.deadletter],
            idle=5.0,
            timeout=60,
        )
        worker.check_alive()
    finally:
        worker.stop()

    alerts = [(topic, value) for topic, _, value in received if topic != topics.deadletter]
    keys = [key for topic, key, _ in received if topic != topics.deadletter]
    letters = [value for topic, _, value in received if topic == topics.deadletter]

    # Every alert is on its category's topic, and every category produced some.
    for topic, alert in alerts:
        assert topic == topics.alert_topic(alert["category"]), alert
    assert {alert["category"] for _, alert in alerts} == set(CATEGORIES)

    # Every bad record is dead-lettered once, whole, with its reason and origin.
    assert len(letters) == bad_sent
    bad_values = {value for _, value in BAD_RECORDS}
    for letter in letters:
        assert letter["source_topic"] == topics.transactions
        assert letter["reason"]
        assert base64.b64decode(letter["value_b64"]) in bad_values
        assert letter["offset"] >= 0 and 0 <= letter["partition"] < deployment.partitions
    assert Counter(letter["reason"].split(" ")[0] for letter in letters)
    # A dead letter keeps the record raw, for the platform's operators to fix it; the worker's
    # log line about it names no borrower.
    [mismatch, *_] = [letter for letter in letters if letter["reason"].startswith("record key")]
    assert mismatch["reason"] == "record key 'b-other' does not match borrower_id 'b-bad'"
    assert base64.b64decode(mismatch["key_b64"]) == b"b-other"
    masker = deployment.masker
    log = worker.log.read_text()
    masked_reason = (
        f"record key '{masker.borrower('b-other')}' does not match borrower_id "
        f"'{masker.borrower('b-bad')}'"
    )
    assert masked_reason in log, log[-3000:]
    assert "b-bad" not in log and "b-other" not in log
    assert "LW_PRIVACY_KEY" not in log  # the platform's key is set: no warning

    # The same events through replay give the same alert ids (at-least-once: compare sets).
    # Masked with the workers' key, replay's alerts are the live ones: ids, borrowers (the
    # message key too) and episodes.
    masked = await deployment.assert_as_replayed(simulation.records, [a for _, a in alerts])
    for key, (_, alert) in zip(keys, alerts, strict=True):
        expected = masked[alert["alert_id"]]
        assert alert["borrower_id"] == expected.borrower_id and key == alert["borrower_id"].encode()
        assert alert["episode"] == expected.episode

    # No borrower, device, account or counterparty id, and no full IP, on the alert topics.
    published = b"\n".join(orjson.dumps(alert) for _, alert in alerts).decode()
    assert raw_values_in(published, personal_values(simulation.records)) == set()

    await _check_risk_views(deployment, simulation.records, [a for _, a in alerts])


async def _check_risk_views(
    deployment: Deployment, records: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    """Every borrower with installments has a risk view; its last alert is its latest
    collections alert; the queue holds borrowers with open installments, riskiest first."""
    repaying = {
        deployment.masker.borrower(r["key"])  # views are kept under the id alerts carry
        for r in records
        if r["topic"] == deployment.topics.repayments
    }
    latest: dict[str, dict[str, Any]] = {}
    for alert in sorted(alerts, key=lambda a: a["ts"]):
        if alert["category"] == "delinquency_risk":
            latest[alert["borrower_id"]] = alert
    assert latest, "the simulation has collections alerts"
    redis = Redis.from_url(deployment.redis_url)
    try:
        board = RiskBoard(redis, deployment.app_id)
        keys = [k.decode() async for k in redis.scan_iter(match=board.key("*"))]
        assert {k.rsplit(":", 1)[1] for k in keys} == repaying
        for borrower, alert in latest.items():
            view = await board.get(borrower)
            assert view is not None and view["last_alert"] is not None, borrower
            assert view["last_alert"]["alert_id"] == alert["alert_id"], borrower
        queue = await board.queue(limit=1000)
        assert queue and all(view["open_installments"] for view in queue)
        scores = [view["score"] for view in queue]
        assert scores == sorted(scores, reverse=True) and 0.0 <= scores[-1] <= scores[0] <= 1.0
    finally:
        await redis.aclose()
