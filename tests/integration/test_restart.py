"""Crashes and rebalances: state, models and offsets come back; alerts are those of a replay."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import orjson
import pytest

from sim import SimulationConfig, simulate
from streams.lab.replay import replay
from streams.ops.broker import produce_records
from tests.integration.conftest import Deployment
from topics.codec import alert_to_dict

pytestmark = pytest.mark.integration


async def _assert_as_replayed(
    deployment: Deployment, records: list[dict[str, object]], live: list[dict[str, Any]]
) -> None:
    """The live alerts are the replay's, masked with the workers' key (ids and borrowers); on
    a difference, show the alerts that differ."""
    lines = [(n, orjson.dumps(r)) for n, r in enumerate(records, start=1)]
    _, alerts = await replay(lines, partitions=deployment.partitions, topics=deployment.topics)
    replayed = {alert.alert_id: alert for alert in map(deployment.masker.alert, alerts)}
    received = {alert["alert_id"]: alert for alert in live}
    only_live = [received[i] for i in received.keys() - replayed.keys()]
    only_replayed = [alert_to_dict(replayed[i]) for i in replayed.keys() - received.keys()]
    assert not only_live and not only_replayed, (
        f"{len(only_live)} alerts only live: {only_live}\n"
        f"{len(only_replayed)} only in replay: {only_replayed}"
    )
    assert all(received[i]["borrower_id"] == replayed[i].borrower_id for i in received)


def _alert_topics(deployment: Deployment) -> list[str]:
    topics = deployment.topics
    return topics.alert_topics()


async def test_a_worker_killed_mid_stream_resumes_as_if_never_stopped(
    deployment: Deployment,
) -> None:
    simulation = simulate(SimulationConfig(borrowers=40, days=50, seed=5, topics=deployment.topics))
    records = simulation.records
    worker = deployment.start_worker("killed")
    try:
        sent = await produce_records(deployment.kafka.bootstrap, records)
        await worker.wait_processed(sent // 2, timeout=180)
    finally:
        worker.kill()  # mid-stream: uncommitted batches, a model checkpoint possibly in flight
    committed = await deployment.committed()
    assert committed < sent, "the kill came too late to test anything"

    worker = deployment.start_worker("restarted")
    try:
        await deployment.wait_committed(sent, 180, worker)
        received = await deployment.consume(_alert_topics(deployment), idle=5.0, timeout=60)
        worker.check_alive()
    finally:
        worker.stop()

    log = worker.log.read_text()
    assert re.search(r"resumed event time of partition", log), log[-2000:]
    await _assert_as_replayed(deployment, records, [alert for _, alert in received])


async def test_a_second_worker_takes_over_when_the_first_stops(deployment: Deployment) -> None:
    simulation = simulate(SimulationConfig(borrowers=40, days=50, seed=6, topics=deployment.topics))
    records = simulation.records
    first = deployment.start_worker("first")
    second = deployment.start_worker("second")
    try:
        sent = await produce_records(deployment.kafka.bootstrap, records)
        await first.wait_processed(1, timeout=120)
        await second.wait_processed(1, timeout=120)  # both own partitions
        first.stop()  # graceful: it commits, leaves the group; the second takes everything
        await deployment.wait_committed(sent, 180, second)
        received = await deployment.consume(_alert_topics(deployment), idle=5.0, timeout=60)
        second.check_alive()
    finally:
        first.stop()
        second.stop()

    ids = [alert["alert_id"] for _, alert in received]
    await _assert_as_replayed(deployment, records, [alert for _, alert in received])
    repeated = {alert_id: n for alert_id, n in Counter(ids).items() if n > 1}
    assert repeated == {}, "an alert published twice across the hand-over"
