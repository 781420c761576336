"""Crashes and rebalances: state, models and offsets come back; alerts are those of a replay."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from sim import SimulationConfig, simulate
from streams.ops.broker import BAD_RECORDS, produce_records
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration


async def _produce_bad_heads(deployment: Deployment) -> set[tuple[str, int, int]]:
    """One malformed record at the head of every input partition (before any good one), so a
    lost first fetch shows as a missing dead letter; returns where each one is."""
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka.bootstrap, acks="all")
    await producer.start()
    placed = set()
    try:
        topics = deployment.topics
        for number, topic in enumerate([topics.transactions, topics.logins, topics.repayments]):
            for partition in range(deployment.partitions):
                key, value = BAD_RECORDS[(number + partition) % len(BAD_RECORDS)]
                meta = await producer.send_and_wait(topic, value, key=key, partition=partition)
                placed.add((topic, partition, meta.offset))
    finally:
        await producer.stop()
    return placed


def _alert_topics(deployment: Deployment) -> list[str]:
    topics = deployment.topics
    return topics.alert_topics()


async def test_a_worker_killed_mid_stream_resumes_as_if_never_stopped(
    deployment: Deployment,
) -> None:
    simulation = simulate(SimulationConfig(borrowers=40, days=50, seed=5, topics=deployment.topics))
    records = simulation.records
    heads = await _produce_bad_heads(deployment)
    worker = deployment.start_worker("killed")
    try:
        produced = await produce_records(
            deployment.kafka.bootstrap,
            records,
            bad_every=499,
            bad_topic=deployment.topics.transactions,
        )
        sent = len(heads) + produced
        bad_sent = len(heads) + produced - len(records)
        await worker.wait_processed(sent // 2, timeout=180)
    finally:
        worker.kill()  # mid-stream: uncommitted batches, a model checkpoint possibly in flight
    committed = await deployment.committed()
    assert committed < sent, "the kill came too late to test anything"

    worker = deployment.start_worker("restarted")
    try:
        # The group's offsets follow those stored with the states, which pass a record only
        # once it is applied: every record sent is applied.
        await deployment.wait_committed(sent, 180, worker)
        received = await deployment.consume_keyed(
            [*_alert_topics(deployment), deployment.topics.deadletter], idle=5.0, timeout=60
        )
        worker.check_alive()
    finally:
        worker.stop()

    log = worker.log.read_text()
    assert re.search(r"resumed event time of partition", log), log[-2000:]
    letters = [value for topic, _, value in received if topic == deployment.topics.deadletter]
    origins = Counter((v["source_topic"], v["partition"], v["offset"]) for v in letters)
    assert {o: n for o, n in origins.items() if n > 1} == {}, "a dead letter sent twice"
    assert len(letters) == bad_sent
    assert heads <= set(origins)
    alerts = [value for topic, _, value in received if topic != deployment.topics.deadletter]
    await deployment.assert_as_replayed(records, alerts)


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
    await deployment.assert_as_replayed(records, [alert for _, alert in received])
    repeated = {alert_id: n for alert_id, n in Counter(ids).items() if n > 1}
    assert repeated == {}, "an alert published twice across the hand-over"


async def test_records_fetched_around_a_restart_and_a_rebalance_are_not_lost(
    deployment: Deployment,
) -> None:
    """A worker killed before its first commit; its successor resumes fetching and only seconds
    later seeks (tests.integration.slow_seek), with fetches of a few records; a second one joins
    while it reads, and both go through that window again. Every record must be applied: every
    bad record at a partition's head dead-lettered, the alerts those of a replay."""
    simulation = simulate(SimulationConfig(borrowers=40, days=50, seed=7, topics=deployment.topics))
    records = simulation.records
    bad = await _produce_bad_heads(deployment)
    killed = deployment.start_worker("killed")
    try:
        sent = len(bad) + await produce_records(deployment.kafka.bootstrap, records)
        await killed.wait_processed(1, timeout=180)
    finally:
        killed.kill()  # before its first commit: partitions no one committed
    assert await deployment.committed() < sent, "the kill came too late to test anything"

    slow = {"LW_TEST_SEEK_DELAY": "4", "LW_TEST_MAX_FETCH_BYTES": "2048"}
    first = deployment.start_worker("first", module="tests.integration.slow_seek", **slow)
    second = None
    try:
        await first.wait_processed(1, timeout=180)
        second = deployment.start_worker("second", module="tests.integration.slow_seek", **slow)
        await deployment.wait_committed(sent, 240, first, second)
        received = await deployment.consume_keyed(
            [*_alert_topics(deployment), deployment.topics.deadletter], idle=5.0, timeout=60
        )
        first.check_alive()
        second.check_alive()
    finally:
        first.stop()
        if second is not None:
            second.stop()

    letters = [value for topic, _, value in received if topic == deployment.topics.deadletter]
    lettered = {(v["source_topic"], v["partition"], v["offset"]) for v in letters}
    assert bad - lettered == set(), f"bad records never dead-lettered: {sorted(bad - lettered)}"
    alerts = [value for topic, _, value in received if topic != deployment.topics.deadletter]
    await deployment.assert_as_replayed(records, alerts)
