"""The dead-letter topic read back at an assignment (streams/worker/deadletters.py)."""

from __future__ import annotations

import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.ops.broker import create_topics
from streams.ops.embedded import EmbeddedKafka
from streams.worker.deadletters import DeadLetterLog

pytestmark = pytest.mark.integration

SOURCE = "lending.logins"


async def _letter(
    producer: AIOKafkaProducer, topic: str, source_partition: int, offset: int
) -> int:
    """A dead letter of record ``offset`` of input partition ``source_partition``; its offset."""
    letter = {"source_topic": SOURCE, "partition": source_partition, "offset": offset}
    sent = await producer.send_and_wait(topic, orjson.dumps(letter), partition=source_partition % 2)
    return sent.offset


async def test_letters_after_each_partitions_start_and_none_where_nothing_was_written(
    kafka: EmbeddedKafka,
) -> None:
    topic = f"lending.deadletter.{uuid.uuid4().hex[:8]}"
    await create_topics(kafka.bootstrap, [topic], 2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        # Input partitions 0 and 2 share dead-letter partition 0; 1 and 3 share partition 1.
        before = await _letter(producer, topic, 0, 5)  # before 0's stored end: not counted
        await _letter(producer, topic, 2, 7)
        await _letter(producer, topic, 0, 9)
        await _letter(producer, topic, 1, 4)
    finally:
        await producer.stop()
    deadletters = DeadLetterLog(kafka.bootstrap, topic, partitions=2)
    try:
        found = await deadletters.origins_since({0: before + 1, 2: None, 3: None})
        assert found == {(SOURCE, 0, 9), (SOURCE, 2, 7)}, "1's letter is not asked for"
        assert await deadletters.origins_since({1: 1}) == set(), "read from after it"
        assert await deadletters.origins_since({}) == set()
    finally:
        await deadletters.stop()


async def test_a_topic_never_written_holds_no_letters(kafka: EmbeddedKafka) -> None:
    """A fresh deployment's: asking the broker for its offsets would end in a timeout."""
    deadletters = DeadLetterLog(kafka.bootstrap, f"lending.deadletter.{uuid.uuid4().hex[:8]}", 8)
    try:
        assert await deadletters.origins_since(dict.fromkeys(range(8))) == set()
    finally:
        await deadletters.stop()
