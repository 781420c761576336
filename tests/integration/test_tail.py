"""`lendwatch tail` and `explain` against a real broker."""

from __future__ import annotations

import asyncio
import io

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.ops.broker import create_topics
from streams.ops.embedded import EmbeddedKafka
from streams.ops.tail import TailOptions, describe_alert, find_alert, tail
from streams.privacy import Masker

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "raw"])
async def test_tail_shows_the_alerts_that_pass_its_filters(
    kafka: EmbeddedKafka, masked: bool
) -> None:
    """The user types the borrower's raw id; masked alerts carry its keyed hash."""
    masker = Masker(b"tail-test-key-" + b"k" * 32, enabled=masked)
    topic = f"tail-test-{'masked' if masked else 'raw'}.alerts.collections"
    await create_topics(kafka.bootstrap, [topic], 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for number, (raw, severity) in enumerate(
            [("b-1", "low"), ("b-1", "high"), ("b-2", "critical"), ("b-1", "critical")]
        ):
            borrower = masker.borrower(raw)
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
        borrower="b-1",
        masker=masker,
        min_severity="high",
        from_beginning=True,
        colour=False,
        limit=2,
    )
    shown = await asyncio.wait_for(tail(kafka.bootstrap, [topic], options, out), timeout=60)

    assert shown == 2
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["high", "critical"]
    assert all(f" {masker.borrower('b-1')} " in line for line in lines)
    assert lines[1].endswith("reason 3")


async def test_explain_finds_an_alert_by_id_and_says_everything_it_holds(
    kafka: EmbeddedKafka,
) -> None:
    topics = ["explain-test.alerts.fraud", "explain-test.alerts.security"]
    await create_topics(kafka.bootstrap, topics, 2)
    wanted = {
        "alert_id": "c0ffee",
        "category": "abnormal_behaviour",
        "detector": "account_takeover",
        "detector_version": "2",
        "thresholds_version": "default-1",
        "episode": "ato:dev-9",
        "severity": "critical",
        "score": 0.95,
        "borrower_id": "b-7",
        "ts": "2026-03-01T08:00:00+00:00",
        "emitted_at": "2026-03-01T08:00:01+00:00",
        "reasons": [
            {"code": "failed_login_burst", "message": "6 failures", "observed": 6, "threshold": 5},
            {"code": "unseen_device", "message": "device dev-9 never seen"},
        ],
        "evidence": ["lg-1", "lg-2"],
    }
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        for number in range(30):
            other = {**wanted, "alert_id": f"other-{number}"}
            await producer.send(topics[number % 2], orjson.dumps(other), key=b"b-7")
        await producer.send_and_wait(topics[1], orjson.dumps(wanted), key=b"b-7")
    finally:
        await producer.stop()

    found = await asyncio.wait_for(find_alert(kafka.bootstrap, topics, "c0ffee"), timeout=60)
    assert found is not None and found["_topic"] == topics[1]
    text = describe_alert(found)
    for part in (
        "c0ffee  critical  score 0.95",
        "account_takeover (detector 2, thresholds default-1)",
        "failed_login_burst: 6 failures (observed 6, threshold 5)",
        "unseen_device: device dev-9 never seen",
        "evidence, 2 events: lg-1, lg-2",
    ):
        assert part in text, text
    assert await find_alert(kafka.bootstrap, topics, "absent") is None
