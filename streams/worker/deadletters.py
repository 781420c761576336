"""The dead-letter topic read back: which records a worker reading them again already lettered."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["DeadLetterLog"]

log = logging.getLogger("lendwatch")

#: Longest a read of the dead-letter topic's tail waits for one fetch.
FETCH_TIMEOUT_MS = 1000
#: Empty fetches in a row after which a read of the tail gives up (the broker away).
EMPTY_FETCHES = 5


class DeadLetterLog:
    """Dead letters of input partition ``p`` go to partition ``p % partitions`` of the
    dead-letter topic (``partitions`` as the broker says, once asked), so the letters a
    worker sent after the offsets stored with its state are all in that partition after the
    end offset stored with them (:meth:`~streams.worker.tables.ModelCheckpoints.positions`).
    Whoever reads those records again first reads that tail (:meth:`origins_since`) and does
    not letter them twice: exact where Redis's published set is not (a crash between the
    broker's acknowledgement and the mark in Redis).
    """

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.partitions = partitions
        self._consumer: AIOKafkaConsumer | None = None

    def partition_for(self, source_partition: int) -> int:
        return source_partition % self.partitions

    async def ends(self, source_partitions: Iterable[int]) -> dict[int, int]:
        """For each input partition, the end offset of its dead-letter partition now."""
        wanted = {p: TopicPartition(self.topic, self.partition_for(p)) for p in source_partitions}
        if not wanted:
            return {}
        consumer = await self._started()
        ends = await consumer.end_offsets(sorted(set(wanted.values())))
        return {p: ends[tp] for p, tp in wanted.items()}

    async def origins_since(self, starts: Mapping[int, int | None]) -> set[tuple[str, int, int]]:
        """The records of each input partition ``p`` of ``starts`` lettered from offset
        ``starts[p]`` of its dead-letter partition on (from the first one the topic holds when
        None), as (source topic, partition, offset).

        One exchange of log starts and ends for all of them: a dead-letter partition with
        nothing after its start, the usual case, is not read at all. (Read one by one, each
        cost half a second of aiokafka's offset reset even when empty: 4 s of a fresh start.)
        """
        if not starts:
            return set()
        consumer = await self._started()
        if self.topic not in await consumer.topics():
            return set()  # never written to; its offsets would be asked until a timeout
        by_tp: dict[TopicPartition, dict[int, int | None]] = {}
        for source, start in starts.items():
            tp = TopicPartition(self.topic, self.partition_for(source))
            by_tp.setdefault(tp, {})[source] = start
        tps = sorted(by_tp)
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        wanted = {
            tp: max(firsts[tp], min(firsts[tp] if s is None else s for s in sources.values()))
            for tp, sources in by_tp.items()
        }
        wanted = {tp: first for tp, first in wanted.items() if first < ends[tp]}
        found: set[tuple[str, int, int]] = set()
        if not wanted:
            return found
        consumer.assign(sorted(wanted))
        for tp, first in wanted.items():
            consumer.seek(tp, first)
        for tp in wanted:
            for offset, letter in await self._read(consumer, tp, ends[tp]):
                origin = letter.get("partition")
                if origin in by_tp[tp]:
                    since = by_tp[tp][origin]
                    if since is None or offset >= since:
                        found.add((letter["source_topic"], origin, letter["offset"]))
        return found

    @staticmethod
    async def _read(
        consumer: AIOKafkaConsumer, tp: TopicPartition, end: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """``tp``'s letters from its position up to ``end``, with their offsets."""
        letters = []
        empty = 0
        while await consumer.position(tp) < end and empty < EMPTY_FETCHES:
            batches = await consumer.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)
            empty = 0 if batches.get(tp) else empty + 1
            for record in batches.get(tp, []):
                if record.value is not None:
                    letters.append((record.offset, orjson.loads(record.value)))
        if empty >= EMPTY_FETCHES:
            raise TimeoutError(f"{tp.topic}/{tp.partition}: could not read up to offset {end}")
        return letters

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
            )
            await consumer.start()
            self._consumer = consumer
            await consumer.topics()  # metadata: how many partitions the topic really has
            found = consumer.partitions_for_topic(self.topic)
            if found:
                self.partitions = len(found)
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
