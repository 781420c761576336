"""The cross-borrower edge index in Redis: sorted sets of edges by account, scored by event time."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from detectors.graph import Edge, Neighbourhood

__all__ = ["RedisEdgeIndex"]

# Edges are judged by event time; this wall-clock expiry only collects accounts gone quiet.
EDGE_TTL_SECONDS = 7 * 24 * 3600


class RedisEdgeIndex:
    """Edges of every partition in one place, two pipelined round trips per batch."""

    def __init__(self, redis: Redis, prefix: str = "lw") -> None:
        self.redis = redis
        self.prefix = prefix

    def _out(self, account: str) -> str:
        return f"{self.prefix}:edges:out:{account}"

    def _in(self, account: str) -> str:
        return f"{self.prefix}:edges:in:{account}"

    async def add_and_fetch(
        self, edges: Sequence[Edge], window_seconds: float, max_per_account: int
    ) -> list[Neighbourhood]:
        writes = self.redis.pipeline(transaction=False)
        for edge in edges:
            member = edge.encode()
            for key in (self._out(edge.src), self._in(edge.dst)):
                writes.zadd(key, {member: edge.ts})
                # Keep the newest by event time, as MemoryEdgeIndex does.
                writes.zremrangebyrank(key, 0, -(max_per_account + 1))
                writes.expire(key, EDGE_TTL_SECONDS)
        await writes.execute()
        reads = self.redis.pipeline(transaction=False)
        for edge in edges:
            low, high = edge.ts - window_seconds, edge.ts + window_seconds
            reads.zrangebyscore(self._out(edge.dst), low, high)
            reads.zrangebyscore(self._in(edge.src), low, high)
        found = await reads.execute()
        return [
            Neighbourhood(
                out_of_dst=tuple(Edge.decode(m) for m in found[2 * i]),
                into_src=tuple(Edge.decode(m) for m in found[2 * i + 1]),
            )
            for i in range(len(edges))
        ]
