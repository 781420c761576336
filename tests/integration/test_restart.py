"""A worker restarted mid-stream resumes with its state and its models: alerts as in replay."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from streams.broker import produce_records
from streams.replay import replay
from streams.simulate import SimulationConfig, simulate
from tests.integration.conftest import Deployment

pytestmark = pytest.mark.integration


async def test_models_and_state_survive_a_restart(deployment: Deployment) -> None:
    simulation = simulate(SimulationConfig(borrowers=60, days=60, seed=5, topics=deployment.topics))
    half = len(simulation.records) // 2
    first, second = simulation.records[:half], simulation.records[half:]
    topics = deployment.topics
    alert_topics = [topics.alerts_fraud, topics.alerts_security, topics.alerts_collections]

    worker = deployment.start_worker("before", LW_CHECKPOINT_SECONDS="1")
    try:
        sent = await produce_records(deployment.kafka.bootstrap, first)
        await worker.wait_processed(sent, timeout=180)
        await asyncio.sleep(3)  # a checkpoint of the models after the last batch
    finally:
        worker.stop()  # graceful: Faust commits the offsets it has processed

    worker = deployment.start_worker("after", LW_CHECKPOINT_SECONDS="1")
    try:
        sent = await produce_records(deployment.kafka.bootstrap, second)
        await worker.wait_processed(sent, timeout=180)
        received = await deployment.consume(alert_topics, idle=5.0, timeout=60)
        worker.check_alive()
    finally:
        worker.stop()

    restored = [line for line in worker.log.read_text().splitlines() if "restored" in line]
    assert any("delinquency model" in line for line in restored), worker.log.read_text()[-2000:]
    lines = [(n, orjson.dumps(r)) for n, r in enumerate(simulation.records, start=1)]
    _, replayed = await replay(lines, partitions=deployment.partitions, topics=topics)
    assert {alert["alert_id"] for _, alert in received} == {a.alert_id for a in replayed}
