"""The cross-borrower index in a real Redis answers as the in-memory one replay uses."""

from __future__ import annotations

import asyncio
import random
import uuid

from redis.asyncio import Redis

from detectors.index import MemoryCrossIndex, Read, Write
from streams.worker.redis_index import INDEX_TTL_SECONDS, RedisCrossIndex


def _batch(rng: random.Random) -> tuple[list[Write], list[Read]]:
    """Writes to and reads of a few keys, members written again with lower or higher scores."""
    writes = [
        Write(f"k{rng.randrange(20)}", f"m{rng.randrange(30)}".encode(), float(rng.randrange(1000)))
        for _ in range(rng.randrange(0, 40))
    ]
    reads = [
        Read(f"k{rng.randrange(25)}", float(rng.randrange(500)), rng.choice([900.0, float("inf")]))
        for _ in range(rng.randrange(0, 10))
    ]
    return writes, reads


async def _compare(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    prefix = f"test-index-{uuid.uuid4().hex[:8]}"
    live, replay = RedisCrossIndex(redis, prefix), MemoryCrossIndex()
    rng = random.Random(12)
    try:
        for number in range(60):
            if number == 30:
                await redis.script_flush()  # a Redis restarted: the script is loaded again
            writes, reads = _batch(rng)
            assert await live.exchange(writes, reads, 5) == await replay.exchange(
                writes, reads, 5
            ), f"batch {number}"
        keys = await redis.keys(f"{prefix}:*")
        assert keys
        for key in keys:
            assert 0 < await redis.ttl(key) <= INDEX_TTL_SECONDS
            assert await redis.zcard(key) <= 5  # the highest 5 kept
    finally:
        keys = await redis.keys(f"{prefix}:*")
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def test_the_redis_index_answers_as_the_replays_one(redis_url: str) -> None:
    asyncio.run(_compare(redis_url))
