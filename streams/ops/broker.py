"""Talking to the broker outside the worker: topic creation and producing records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = ["BAD_RECORDS", "create_topics", "produce_records"]

#: Malformed records the demo mixes in, one of each kind the contract refuses.
BAD_RECORDS: list[tuple[bytes | None, bytes]] = [
    (b"b-bad", b"{not json"),
    (b"b-bad", orjson.dumps({"event_id": "x1", "borrower_id": "b-bad"})),
    (
        b"b-bad",
        orjson.dumps(
            {
                "event_id": "x2",
                "ts": "2026-01-05T10:00:00",
                "borrower_id": "b-bad",
                "account_id": "a",
                "counterparty_id": "c",
                "direction": "in",
                "amount": "10.00",
            }
        ),
    ),
    (
        b"b-bad",
        orjson.dumps(
            {
                "event_id": "x3",
                "ts": "2026-01-05T10:00:00+08:00",
                "borrower_id": "b-bad",
                "account_id": "a",
                "counterparty_id": "c",
                "direction": "sideways",
                "amount": "-5",
            }
        ),
    ),
    (
        None,
        orjson.dumps(
            {
                "event_id": "x4",
                "ts": "2026-01-05T10:00:00+08:00",
                "borrower_id": "b-bad",
                "account_id": "a",
                "counterparty_id": "c",
                "direction": "in",
                "amount": "10.00",
            }
        ),
    ),
    (
        b"b-other",  # another borrower's key: state is partitioned by the key
        orjson.dumps(
            {
                "event_id": "x5",
                "ts": "2026-01-05T10:00:00+08:00",
                "borrower_id": "b-bad",
                "account_id": "a",
                "counterparty_id": "c",
                "direction": "in",
                "amount": "10.00",
            }
        ),
    ),
]


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    timeout: float = 30.0,
    *,
    one_partition: Iterable[str] = (),
) -> list[str]:
    """Create the topics that do not exist yet; return those created. Idempotent.

    Topics in ``one_partition`` get one partition: ``lending.feedback``, which every worker
    reads whole and must learn from in the same order (streams/worker/feedback.py)."""
    single = set(one_partition)
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in names if name not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(name, 1 if name in single else partitions, 1) for name in missing]
                    )
                except TopicAlreadyExistsError:
                    pass
            return missing
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def produce_records(
    bootstrap: str,
    records: Iterable[dict[str, Any]],
    *,
    rate: float | None = None,
    bad_every: int | None = None,
    bad_topic: str | None = None,
    on_sent: Any = None,
) -> int:
    """Produce ``{"topic", "key", "value"}`` records keyed by borrower; return how many.

    ``rate`` caps events per second; ``bad_every`` mixes one malformed record into
    ``bad_topic`` after every that many good ones (the demo shows the dead-letter path).
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    sent = 0
    started = time.monotonic()
    try:
        for record in records:
            key = record["key"].encode() if record.get("key") is not None else None
            await producer.send(record["topic"], orjson.dumps(record["value"]), key=key)
            sent += 1
            if bad_every and bad_topic and sent % bad_every == 0:
                bad_key, bad_value = BAD_RECORDS[(sent // bad_every) % len(BAD_RECORDS)]
                await producer.send(bad_topic, bad_value, key=bad_key)
                sent += 1
            if on_sent is not None and sent % 1000 == 0:
                on_sent(sent)
            if rate and sent % 100 == 0:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    if on_sent is not None:
        on_sent(sent)
    return sent
