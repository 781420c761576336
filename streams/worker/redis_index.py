"""The cross-borrower index in Redis: one sorted set per key, scored by event time."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from detectors.index import Read, Write
from streams.worker.delivery import Breaker

__all__ = ["RedisCrossIndex"]

# Sets are judged by event time; this wall-clock expiry only collects keys gone quiet.
INDEX_TTL_SECONDS = 7 * 24 * 3600

#: A batch's writes, then its reads, in one call. Sent as a pipeline of one command per key,
#: the same work cost the worker a third of its time in redis-py's encoding and parsing of
#: a command per write and per read (cProfile of `python -m benchmarks --parts b`); a
#: script takes one command and returns one nested reply. KEYS: the keys written, then the
#: keys read. ARGV: max members, TTL, how many keys are written, then each write as (its key's
#: position, score, member), then each read's low and high scores.
EXCHANGE = """
local max_members, ttl, written = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reads_from = #ARGV - 2 * (#KEYS - written) + 1
for i = 4, reads_from - 1, 3 do
  redis.call('ZADD', KEYS[tonumber(ARGV[i])], 'GT', ARGV[i + 1], ARGV[i + 2])
end
for k = 1, written do
  -- Keep the highest scores, as MemoryCrossIndex does.
  redis.call('ZREMRANGEBYRANK', KEYS[k], 0, -(max_members + 1))
  redis.call('EXPIRE', KEYS[k], ttl)
end
local found = {}
for k = written + 1, #KEYS do
  local at = reads_from + 2 * (k - written - 1)
  found[#found + 1] = redis.call('ZRANGEBYSCORE', KEYS[k], ARGV[at], ARGV[at + 1])
end
return found
"""


class RedisCrossIndex:
    """What spans partitions, shared by every worker: one round trip per batch.

    The script names many keys in one call, which a Redis Cluster refuses unless they share a
    hash slot: the index needs a single Redis (or a replicated primary), as deployed.
    """

    def __init__(self, redis: Redis, prefix: str = "lw", breaker: Breaker | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.breaker = breaker or Breaker()
        self._script = redis.register_script(EXCHANGE)

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        """Write then read; raises (the engine degrades) while Redis is down."""
        return await self.breaker.call(lambda: self._exchange(writes, reads, max_members))

    async def _exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        if not writes and not reads:
            return []
        position: dict[str, int] = {}
        args: list[bytes | str | int | float] = [max_members, INDEX_TTL_SECONDS, 0]
        for write in writes:
            key = f"{self.prefix}:{write.key}"
            at = position.setdefault(key, len(position) + 1)
            args += [at, write.score, write.member]
        args[2] = len(position)
        for read in reads:
            args += [read.low, read.high]
        keys = [*position, *(f"{self.prefix}:{read.key}" for read in reads)]
        found = await self._script(keys=keys, args=args)
        return [list(members) for members in found]
