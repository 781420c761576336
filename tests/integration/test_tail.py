"""`lendwatch tail` against a real broker: filtered alerts, in order, and nothing else."""

from __future__ import annotations

import asyncio
import io

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.broker import create_topics
from streams.embedded import EmbeddedKafka
from streams.tail import TailOptions, tail

pytestmark = pytest.mark.integration


async def test_tail_shows_the_alerts_that_pass_its_filters(kafka: EmbeddedKafka) -> None:
    topic = "tail-test.alerts.collections"
    await create_topics(kafka.bootstrap, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for number, (borrower, severity) in enumerate(
            [("b-1", "low"), ("b-1", "high"), ("b-2", "critical"), ("b-1", "critical")]
        ):
            alert = {
                "alert_id": f"a{number}",
                "detector": "delinquency",
                "borrower_id": borrower,
                "severity": severity,
                "score": 0.5,
                "ts": "2026-03-01T08:00:00+00:00",
                "reasons": [{"code": "past_due", "message": f"reason {number}"}],
            }
            await producer.send_and_wait(topic, orjson.dumps(alert), key=borrower.encode())
        await producer.send_and_wait(topic, b"{not json", key=b"b-1")  # shown as nothing
    finally:
        await producer.stop()

    out = io.StringIO()
    options = TailOptions(
        borrower="b-1", min_severity="high", from_beginning=True, colour=False, limit=2
    )
    shown = await asyncio.wait_for(tail(kafka.bootstrap, [topic], options, out), timeout=60)

    assert shown == 2
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["high", "critical"]
    assert all(" b-1 " in line for line in lines)
    assert lines[1].endswith("reason 3")
