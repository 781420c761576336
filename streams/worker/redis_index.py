"""The cross-borrower index in Redis: one sorted set per key, scored by event time."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from detectors.index import Read, Write
from streams.worker.delivery import Breaker

__all__ = ["RedisCrossIndex"]

# Sets are judged by event time; this wall-clock expiry only collects keys gone quiet.
INDEX_TTL_SECONDS = 7 * 24 * 3600


class RedisCrossIndex:
    """What spans partitions, shared by every worker: two pipelined round trips per batch."""

    def __init__(self, redis: Redis, prefix: str = "lw", breaker: Breaker | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breaker = breaker or Breaker()

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        """Write then read; raises (the engine degrades) while Redis is down."""
        return await self.breaker.call(lambda: self._exchange(writes, reads, max_members))

    async def _exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        if writes:
            pipe = self.redis.pipeline(transaction=False)
            for write in writes:
                pipe.zadd(f"{self.prefix}:{write.key}", {write.member: write.score}, gt=True)
            for key in {f"{self.prefix}:{write.key}" for write in writes}:
                # Keep the highest scores, as MemoryCrossIndex does.
                pipe.zremrangebyrank(key, 0, -(max_members + 1))
                pipe.expire(key, INDEX_TTL_SECONDS)
            await pipe.execute()
        if not reads:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for read in reads:
            pipe.zrangebyscore(f"{self.prefix}:{read.key}", read.low, read.high)
        return [list(found) for found in await pipe.execute()]
