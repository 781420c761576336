"""At-least-once delivery of alerts, with re-sends suppressed: what consumers see once."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.asyncio import Redis

__all__ = ["Breaker", "DependencyDown", "PublishedAlerts"]

T = TypeVar("T")

#: How long an alert id is remembered as published. A redelivery comes within a consumer
#: session timeout of the crash; a week also covers replays of a day's input by an operator.
PUBLISHED_TTL_SECONDS = 7 * 24 * 3600


class DependencyDown(RuntimeError):
    """A dependency (Redis) failed lately; calls are refused until the breaker retries."""


class Breaker:
    """Refuses calls for a while after a failure, so an outage costs no time per batch.

    Redis down means a refused connection (fast) or a timeout (slow): either way, after a
    failure the next ``retry_after`` seconds of calls fail at once, doubling up to
    ``max_retry_after`` while the failures go on; the first success closes the breaker.
    """

    def __init__(self, retry_after: float = 0.5, max_retry_after: float = 5.0) -> None:
        self.first_retry_after = retry_after
        self.max_retry_after = max_retry_after
        self.retry_after = retry_after
        self.closed_until = 0.0
        self.last_error: str | None = None

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        if time.monotonic() < self.closed_until:
            raise DependencyDown(f"retrying after {self.last_error}")
        try:
            value = await operation()
        except Exception as exc:
            self.last_error = repr(exc)
            self.closed_until = time.monotonic() + self.retry_after
            self.retry_after = min(self.max_retry_after, self.retry_after * 2)
            raise
        self.retry_after = self.first_retry_after
        self.last_error = None
        return value

    @property
    def is_open(self) -> bool:
        """Whether the dependency is currently considered down."""
        return self.last_error is not None


class PublishedAlerts:
    """Alert ids already published, in Redis with a TTL, shared by every worker.

    Alert ids are deterministic (detector, borrower, episode), so events re-processed after a
    crash or a rebalance yield the ids already sent; :meth:`unpublished` drops those before
    sending, :meth:`mark` records the ones the broker acknowledged. An id sent but not marked
    (a crash between the two) is sent again: at least once, once in the normal case.
    """

    def __init__(self, redis: Redis, prefix: str, breaker: Breaker) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breaker = breaker

    def _key(self, alert_id: str) -> str:
        return f"{self.prefix}:published:{alert_id}"

    async def unpublished(self, alert_ids: Sequence[str]) -> list[bool]:
        """For each id, whether it still has to be sent (raises when Redis is down)."""

        async def check() -> list[int]:
            pipe = self.redis.pipeline(transaction=False)
            for alert_id in alert_ids:
                pipe.exists(self._key(alert_id))
            return list(await pipe.execute())

        if not alert_ids:
            return []
        return [not found for found in await self.breaker.call(check)]

    async def mark(self, alert_ids: Sequence[str]) -> None:
        async def record() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for alert_id in alert_ids:
                pipe.set(self._key(alert_id), b"1", ex=PUBLISHED_TTL_SECONDS)
            await pipe.execute()

        if alert_ids:
            await self.breaker.call(record)
