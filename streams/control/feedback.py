"""A team's verdict on an alert, produced to ``lending.feedback`` (the console's buttons; the
command line's ``explain --verdict`` can reuse :func:`send_verdict`).

One record per verdict, keyed by the alert's ``borrower_id`` as published::

    {"event_id": "fb-…", "ts": "…+00:00", "alert_id": "…", "verdict": "confirmed",
     "author": "ana", "note": "called the borrower"}

The worker checks them (``topics.validate.parse_feedback``) and learns from them
(``streams.worker.feedback``); here they are only made, with the signed-in identity as
``author``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from topics.validate import VERDICTS

__all__ = ["NOTE_LIMIT", "VERDICTS", "FeedbackProducer", "send_verdict", "verdict_record"]

#: The longest note kept, in characters.
NOTE_LIMIT = 2000


def verdict_record(
    alert_id: str,
    verdict: str,
    author: str,
    note: str | None = None,
    *,
    now: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """The feedback record of a verdict; ValueError for an unknown verdict or a long note."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r}: one of {', '.join(VERDICTS)}")
    if not alert_id or not author:
        raise ValueError("a verdict needs the alert id and its author")
    record: dict[str, Any] = {
        "event_id": event_id or f"fb-{uuid.uuid4().hex}",
        "ts": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "alert_id": alert_id,
        "verdict": verdict,
        "author": author,
    }
    note = (note or "").strip()
    if len(note) > NOTE_LIMIT:
        raise ValueError(f"a note has at most {NOTE_LIMIT} characters")
    if note:
        record["note"] = note
    return record


async def send_verdict(
    producer: AIOKafkaProducer,
    topic: str,
    borrower_id: str,
    alert_id: str,
    verdict: str,
    author: str,
    note: str | None = None,
) -> dict[str, Any]:
    """Produce one verdict, keyed by ``borrower_id`` as the alert carries it, and wait for the
    broker's acknowledgement; returns the record sent."""
    record = verdict_record(alert_id, verdict, author, note)
    await producer.send_and_wait(topic, orjson.dumps(record), key=borrower_id.encode())
    return record


class FeedbackProducer:
    """A producer for verdicts, started on the first one (the console starts without a
    broker, and says so only when a verdict cannot be sent)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10_000
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
