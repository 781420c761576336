"""Outages of the real broker and the real Redis: the worker waits, degrades, comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from sim import SimulationConfig, simulate
from streams.lab.replay import replay
from streams.ops.broker import produce_records
from streams.ops.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from streams.privacy import Masker
from tests.integration.conftest import Deployment, make_deployment
from tests.integration.proxy import TcpProxy

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30
#: CPU a worker may burn while its broker is away: well under a core, no busy loop.
MAX_CPU_SHARE_WHILE_WAITING = 0.25
CROSS_BORROWER = {"circular_flow", "credential_stuffing", "device_ring"}


def _alert_topics(deployment: Deployment) -> list[str]:
    topics = deployment.topics
    return topics.alert_topics()


async def _replayed(
    deployment: Deployment, records: list[dict[str, object]], masker: Masker | None
) -> dict[str, str]:
    """Alert id -> detector, from replaying the records, the ids masked as the worker's."""
    lines = [(n, orjson.dumps(r)) for n, r in enumerate(records, start=1)]
    _, alerts = await replay(lines, partitions=deployment.partitions, topics=deployment.topics)
    return {(masker.alert(a) if masker else a).alert_id: a.detector for a in alerts}


@pytest.fixture
async def proxied_kafka() -> AsyncIterator[tuple[EmbeddedKafka, TcpProxy]]:
    """A broker of its own that clients reach only through a proxy the test can cut."""
    proxy_port = free_port()
    kafka = EmbeddedKafka(advertised_port=proxy_port).start()
    proxy = await TcpProxy(proxy_port, kafka.port).start()
    yield kafka, proxy
    await proxy.cut()
    kafka.cleanup()


async def test_the_worker_waits_out_a_broker_outage_and_loses_nothing(
    proxied_kafka: tuple[EmbeddedKafka, TcpProxy], redis_url: str, tmp_path: Path
) -> None:
    kafka, proxy = proxied_kafka
    deployment = await make_deployment(kafka, redis_url, tmp_path)
    records = simulate(
        SimulationConfig(borrowers=40, days=45, seed=8, topics=deployment.topics)
    ).records
    half = len(records) // 2
    # This worker runs with masking off (an internal deployment): raw ids, the replay's own.
    worker = deployment.start_worker("outage", LW_MASK_PERSONAL_DATA="0")
    try:
        sent = await produce_records(kafka.bootstrap, records[:half])
        await deployment.wait_committed(sent, 120, worker)

        cpu_before = worker.cpu_seconds()
        await proxy.cut()
        await asyncio.sleep(OUTAGE_SECONDS)
        waiting_cpu = worker.cpu_seconds() - cpu_before
        worker.check_alive()
        await proxy.restore()

        sent += await produce_records(kafka.bootstrap, records[half:])
        await deployment.wait_committed(sent, 180, worker)
        received = await deployment.consume(_alert_topics(deployment), idle=5.0, timeout=60)
        worker.check_alive()
    finally:
        worker.stop()

    assert waiting_cpu < MAX_CPU_SHARE_WHILE_WAITING * OUTAGE_SECONDS, (
        f"{waiting_cpu:.1f} s of CPU in a {OUTAGE_SECONDS} s outage"
    )
    assert {alert["alert_id"] for _, alert in received} == set(
        await _replayed(deployment, records, None)
    )
    borrowers = {str(record["key"]) for record in records}
    assert {alert["borrower_id"] for _, alert in received} <= borrowers
    log = worker.log.read_text()
    assert log.count("personal data is NOT masked") == 1, log[-3000:]


async def test_redis_down_degrades_the_cross_borrower_detectors_only(
    kafka: EmbeddedKafka, tmp_path: Path
) -> None:
    redis = EmbeddedRedis().start()
    try:
        deployment = await make_deployment(kafka, redis.url, tmp_path)
        records = simulate(
            SimulationConfig(borrowers=40, days=45, seed=9, topics=deployment.topics)
        ).records
        thirds = [records[: len(records) // 3], records[len(records) // 3 : 2 * len(records) // 3]]
        thirds.append(records[2 * len(records) // 3 :])
        worker = deployment.start_worker("redis-outage")
        try:
            sent = await produce_records(kafka.bootstrap, thirds[0])
            await deployment.wait_committed(sent, 120, worker)

            redis.stop()
            sent += await produce_records(kafka.bootstrap, thirds[1])
            await deployment.wait_committed(sent, 120, worker)  # processing goes on
            degraded = await worker.metric("lendwatch_degraded_batches_total")

            redis = EmbeddedRedis(port=redis.port).start()
            sent += await produce_records(kafka.bootstrap, thirds[2])
            await deployment.wait_committed(sent, 120, worker)
            received = await deployment.consume(_alert_topics(deployment), idle=5.0, timeout=60)
            worker.check_alive()
        finally:
            worker.stop()
    finally:
        redis.cleanup()

    log = worker.log.read_text()
    assert degraded > 0
    assert "cross-borrower index unavailable" in log
    assert "recovered:" in log, "the worker did not report Redis back"
    assert "Traceback" not in log
    expected = {
        alert_id
        for alert_id, detector in (await _replayed(deployment, records, deployment.masker)).items()
        if detector not in CROSS_BORROWER
    }
    assert expected <= {alert["alert_id"] for _, alert in received}
