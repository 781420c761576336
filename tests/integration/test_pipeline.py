"""The worker on a real broker and Redis: alerts out, bad input dead-lettered, replay agrees."""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from detectors.base import CATEGORIES
from streams.broker import BAD_RECORDS, produce_records
from streams.replay import replay
from streams.risk import RiskBoard
from streams.simulate import SimulationConfig, simulate
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration


async def test_live_pipeline_matches_replay_and_dead_letters_bad_input(
    deployment: Deployment,
) -> None:
    simulation = simulate(
        SimulationConfig(borrowers=60, days=45, seed=11, topics=deployment.topics)
    )
    worker = deployment.start_worker()
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
        received = await deployment.consume(
            [*topics.alert_topics(), topics.deadletter],
            idle=5.0,
            timeout=60,
        )
        worker.check_alive()
    finally:
        worker.stop()

    alerts = [(topic, value) for topic, value in received if topic != topics.deadletter]
    letters = [value for topic, value in received if topic == topics.deadletter]

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

    # The same events through replay give the same alert ids (at-least-once: compare sets).
    lines = [(n, orjson.dumps(record)) for n, record in enumerate(simulation.records, start=1)]
    report, replayed = await replay(
        lines, partitions=deployment.partitions, topics=deployment.topics
    )
    assert report.events == len(simulation.records) and not report.rejected
    live_ids = {alert["alert_id"] for _, alert in alerts}
    assert live_ids == {alert.alert_id for alert in replayed}

    await _check_risk_views(deployment, simulation.records, [a for _, a in alerts])


async def _check_risk_views(
    deployment: Deployment, records: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    """Every borrower with installments has a risk view; its last alert is its latest
    collections alert; the queue holds borrowers with open installments, riskiest first."""
    repaying = {r["key"] for r in records if r["topic"] == deployment.topics.repayments}
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
