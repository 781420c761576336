"""What a batch and a timer do: decode, dead-letter, engine, alerts out, states written behind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TP, Message, TableT
from redis.asyncio import Redis

from detectors.engine import BatchResult, Engine, Input
from detectors.thresholds import Thresholds
from streams.control.store import ThresholdStore, ThresholdWatcher
from streams.settings import Settings
from streams.worker.compat import committed_offset, release, seek
from streams.worker.consumer_watch import REFETCH_AFTER_IDLE_SECONDS, DeliveryGaps, describe_stall
from streams.worker.delivery import Breaker
from streams.worker.metrics import DegradedBatches, Metrics
from streams.worker.publisher import AlertPublisher
from streams.worker.redis_index import RedisCrossIndex
from streams.worker.tables import ModelCheckpoints, TableStateStore
from streams.worker.writer import WriteBehind
from topics import ContractError, Source, decode
from topics.codec import dead_letter, encode_dead_letter

__all__ = ["Pipeline"]

log = logging.getLogger("lendwatch")


class Pipeline:
    """Glue between Faust and the engine: what the input reader and the timers call.

    Delivery is at least once. A batch's alerts are sent at once (latency,
    :class:`AlertPublisher`), and its changed models are written and acknowledged with it.
    Changed states are written behind (:class:`WriteBehind`), and only when the broker has
    them and the alerts before them are the records behind them acknowledged to Faust, which
    then commits their offsets. A crash in between redelivers those records; alerts already
    published are not sent again and records a written state already reflects are not applied
    twice (the engine's per-borrower offsets).
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        table: TableT[str, bytes],
        models: TableT[str, bytes],
        redis: Redis,
    ) -> None:
        self.app = app
        self.settings = settings
        self.store = TableStateStore(table, settings.hot_states)
        self.metrics = Metrics()
        breaker = self.breaker = Breaker()
        self.engine = Engine(
            Thresholds(),
            self.store,
            RedisCrossIndex(redis, settings.redis_prefix, breaker),
            idle_after=settings.idle_stream_seconds,
            now=lambda: datetime.now(UTC),
        )
        self.degraded = DegradedBatches(self.metrics, breaker)
        self.thresholds = ThresholdWatcher(
            ThresholdStore(redis, settings.redis_prefix), self.apply_thresholds
        )
        self.checkpoints = ModelCheckpoints(models, self.engine)
        self.writer = WriteBehind(
            app, self.store, self.checkpoints, settings.state_flush_ms / 1000.0
        )
        # One batch, timer round or flush at a time through the engine and to the producer:
        # a flush must take states, clocks and acknowledgements that belong together.
        self._one_batch = asyncio.Lock()
        self.positions: dict[tuple[str, int], int] = {}  # last offset handled, for the lag
        self.last_batch_at = time.monotonic()
        self.stall_reported = False
        self.sources = {settings.topics.input_topic(source): source for source in Source}
        self.input_topics = set(self.sources)
        self.gaps = DeliveryGaps(self.input_topics)
        self.deadletter_topic = app.topic(
            settings.topics.deadletter, key_serializer="raw", value_serializer="raw"
        )
        self.publisher = AlertPublisher(
            app, settings, redis, breaker, self.store, self.metrics, self.degraded
        )

    async def handle(self, messages: Sequence[Message]) -> None:
        """Process one batch of input records; bad records go to the dead-letter topic.

        The records handled are acknowledged to Faust when the states they changed are
        written (:class:`WriteBehind`); those held back behind a gap are not.
        """
        if not self.thresholds.ready.is_set():
            await self.thresholds.ready.wait()  # the first batch runs on the stored version
        async with self._one_batch:
            self.writer.records_handled(await self._handle(messages))
            if self.writer.due():
                await self.writer.flush()

    async def apply_thresholds(self, live: Thresholds, candidate: Thresholds | None) -> None:
        """New live thresholds or candidate, between two batches; alerts from the next batch
        on carry the new version."""
        async with self._one_batch:
            self.engine.set_thresholds(live, candidate)
        self.metrics.thresholds.clear()
        self.metrics.thresholds.labels(live.version, candidate.version if candidate else "").set(1)
        shadow = f", {candidate.version} in shadow" if candidate else ""
        log.warning("thresholds: %s live%s", live.version, shadow)

    async def flush(self) -> None:
        """Write the states changed since the last flush, and wait until they, the alerts
        before them and the records behind them are acknowledged, and the alerts recorded
        as published: a worker handing its partitions over (a rebalance, a stop) leaves its
        successor nothing to send again."""
        async with self._one_batch:
            await self.writer.flush()
        await self.writer.confirmed()
        await self.publisher.recorded()

    async def _handle(self, messages: Sequence[Message]) -> list[Message]:
        """Decode, dead-letter what cannot be read, run the engine, send the alerts; returns
        the records handled (not those held back behind a gap)."""
        started = time.perf_counter()
        self.last_batch_at = time.monotonic()
        messages = await self._in_offset_order(messages)
        inputs: list[Input] = []
        originals: list[Message] = []
        counts: dict[str, int] = {}
        for message in messages:
            topic = message.topic
            counts[topic] = counts.get(topic, 0) + 1
            self.positions[(topic, message.partition)] = message.offset
            source = self.sources[topic]
            try:
                record = decode(source, message.key, message.value)
            except ContractError as exc:
                await self._dead_letter(message, str(exc))
                continue
            inputs.append(Input(message.partition, source, record, message.offset))
            originals.append(message)
            self.checkpoints.note(message.partition, topic, message.offset)
        self.checkpoints.restore({item.partition for item in inputs})
        result = await self.engine.process(inputs, wall=time.time())
        for position, reason in result.failed:
            await self._dead_letter(originals[position], reason)
        sent_at = {m.key: m.timestamp for m in originals}
        repaid = {i.record.borrower_id for i in inputs if i.source is Source.REPAYMENTS}
        await self._publish(result, "inputs", sent_at, repaid)
        self.writer.clocks_moved(item.partition for item in inputs)
        for topic, count in counts.items():
            self.metrics.events.labels(topic).inc(count)
        if result.duplicates:
            self.metrics.skipped.labels("inputs", "duplicate_event_id").inc(result.duplicates)
        if result.redelivered:
            self.metrics.skipped.labels("inputs", "redelivered").inc(result.redelivered)
        self.metrics.batch_seconds.labels("inputs").observe(time.perf_counter() - started)
        return messages

    async def _in_offset_order(self, messages: Sequence[Message]) -> list[Message]:
        """The records to handle: none past a gap in its partition's offsets (see
        :class:`DeliveryGaps`); a partition with a gap is fetched again from it."""
        consumer = self.app.consumer
        tps = [message.tp for message in messages]
        admitted, refetch = self.gaps.admit(
            [(tp, message.offset) for tp, message in zip(tps, messages, strict=True)],
            {tp: committed_offset(consumer, tp) for tp in set(tps)},
        )
        kept = [message for message, admit in zip(messages, admitted, strict=True) if admit]
        if len(kept) < len(messages):
            release(consumer, [m for m, admit in zip(messages, admitted, strict=True) if not admit])
        for tp, offset in self.gaps.opened:
            log.warning(
                "%s/%d: offset %d was skipped; fetching again from it",
                tp.topic,
                tp.partition,
                offset,
            )
            self.metrics.refetched_partitions.labels(tp.topic).inc()
        for tp, offset in refetch.items():
            await seek(consumer, tp, offset)
        return kept

    async def tick(self) -> None:
        """Fire event-time timers of partitions that went quiet; write states when due.

        Not once the worker is stopping: Faust stops timers last, after the producer, and
        stopping has already written and confirmed what was in flight (Consumer.wait_empty).
        """
        if self.app.should_stop:
            return
        async with self._one_batch:
            await self._publish(self.engine.advance(wall=time.time()), "timers", {})
            if self.writer.due():
                await self.writer.flush()

    async def _publish(
        self,
        result: BatchResult,
        topic_name: str,
        sent_at: dict[bytes | None, float],
        repaid: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Alerts handed to the producer at once (their acknowledgement is waited for with the
        states', see :class:`WriteBehind`); then new models, acknowledged. The states are
        written behind, except after new models: then at once, so that states never fall
        behind the models checkpointed (see :meth:`Engine.resume`)."""
        sent = await self.publisher.send(result, topic_name, sent_at)
        self.writer.alerts_sent(sent.acks)
        degraded = result.degraded + sent.degraded
        degraded += await self.publisher.update_risk(result, sent.collections, repaid)
        self.degraded.report(degraded)
        self.writer.states_changed(result.dirty)
        if await self.checkpoints.save(result):
            await self.writer.flush()

    def report_stall(self, consumer: Any, idle: float) -> None:
        """Once per idle spell, log what keeps input partitions from being committed."""
        if idle < REFETCH_AFTER_IDLE_SECONDS:
            self.stall_reported = False
            return
        if self.stall_reported:
            return
        try:
            description = describe_stall(consumer, self.input_topics, self.positions)
        except Exception:  # a diagnostic must never take the worker down
            log.exception("could not describe the stall")
            return
        if description:
            self.stall_reported = True
            log.warning("idle %.0fs with %s", idle, description)

    def observe_lag(self, consumer: Any) -> None:
        """Set the lag gauge from the consumer's high-water marks (at scrape time)."""
        assigned = consumer.assignment()
        for (topic, partition), offset in list(self.positions.items()):
            tp = TP(topic, partition)
            if tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - offset - 1)
                self.metrics.lag.labels(topic, str(partition)).set(lag)

    def forget(self, partition: int, topics: set[str]) -> None:
        """A partition now owned elsewhere: no timers, models, states or lag of it here."""
        self.engine.forget_partition(partition)
        self.store.forget_partition(partition)
        self.checkpoints.forget(partition)
        revoked = {TP(topic, partition) for topic in topics}
        self.gaps.forget(revoked)
        for topic in topics:
            if self.positions.pop((topic, partition), None) is not None:
                self.metrics.lag.remove(topic, str(partition))

    async def _dead_letter(self, message: Message, reason: str) -> None:
        letter = dead_letter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason=reason,
            received_at=datetime.now(UTC),
        )
        await self.deadletter_topic.send(key=message.key, value=encode_dead_letter(letter))
        self.metrics.deadletters.labels(message.topic).inc()
        log.info(
            "dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, reason
        )
