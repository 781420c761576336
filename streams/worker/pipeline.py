"""What a batch and a timer do: decode, dead-letter, engine, alerts out, states written behind."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, Message, TableT
from redis.asyncio import Redis

from detectors.engine import BatchResult, Engine, Input
from detectors.thresholds import Thresholds
from streams.control.store import ThresholdStore, ThresholdWatcher
from streams.settings import Settings
from streams.worker.align import StreamAligner
from streams.worker.compat import commit, fetch_positions, log_starts, seek
from streams.worker.deadletters import DeadLetterLog
from streams.worker.delivery import Breaker
from streams.worker.feedback import VerdictFollower, feedback_dead_letters
from streams.worker.metrics import DegradedBatches, Metrics
from streams.worker.offsets import REFETCH_AFTER_IDLE_SECONDS, InputOffsets, describe_stall
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

    Delivery is at least once, and no record is skipped. Each input partition is read in
    offset order from where its stored offset says (:class:`InputOffsets`,
    :meth:`position_inputs`). A batch's alerts are sent at once (latency,
    :class:`AlertPublisher`), and its changed models are written and acknowledged with it.
    Changed states are written behind (:class:`WriteBehind`): only when the broker has the
    alerts are the states sent, and only when it has the states are the partitions' next
    offsets stored. A crash in between makes the next owner read those records again; alerts
    already published are not sent again and records a written state already reflects are not
    applied twice (the engine's per-borrower offsets).
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
        self.deadletters = DeadLetterLog(
            settings.bootstrap_servers, settings.topics.deadletter, settings.partitions
        )
        #: Records of the partitions read here already lettered (found by position_inputs).
        self.lettered: set[tuple[str, int, int]] = set()
        self.writer = WriteBehind(
            app, self.store, self.checkpoints, settings.state_flush_ms / 1000.0, self.deadletters
        )
        # One batch, timer round or flush at a time through the engine and to the producer:
        # a flush must take states, clocks and acknowledgements that belong together.
        self._one_batch = asyncio.Lock()
        self.positions: dict[tuple[str, int], int] = {}  # last offset handled, for the lag
        self.last_batch_at = time.monotonic()
        self.stall_reported = False
        self.sources = {settings.topics.input_topic(source): source for source in Source}
        self.input_topics = set(self.sources)
        self.offsets = InputOffsets()
        #: Each input partition's streams merged in event time before the engine.
        self.aligner = StreamAligner(
            self.input_topics, settings.align_hold_seconds, settings.align_max_held
        )
        self._received: dict[TP, int] = {}  # next offset after the last record received
        self._arrived_at: dict[TP, float] = {}  # when it was received (monotonic)
        #: Whether the tables hold every assigned partition (False from a revocation until
        #: recovery completes): no stored offset is read before.
        self.recovered = False
        self.deadletter_topic = app.topic(
            settings.topics.deadletter, key_serializer="raw", value_serializer="raw"
        )
        self.publisher = AlertPublisher(
            app, settings, redis, breaker, self.store, self.metrics, self.degraded
        )
        #: The verdict models: fed by the whole feedback topic, they judge each alert.
        self.verdicts = VerdictFollower(
            settings, redis, self.metrics.registry, feedback_dead_letters(self)
        )
        #: Awaited before the first batch and timer round (streams.worker.app.SlowImports).
        self.warming: Callable[[], Awaitable[None]] | None = None

    async def handle(self, messages: Sequence[Message]) -> None:
        """Process one batch of input records; bad records go to the dead-letter topic.

        The offsets after the records applied are stored once the states they changed are
        written (:class:`WriteBehind`).
        """
        if self.warming is not None:
            await self.warming()  # modules the models need, imported off the event loop
            self.warming = None
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

    async def _handle(self, messages: Sequence[Message]) -> dict[TP, int]:
        """Decode, dead-letter what cannot be read, hold what another stream of its partition
        may still precede (:class:`StreamAligner`), run the engine on the rest, send the
        alerts; returns the next offset to apply of each partition the batch moved."""
        self.last_batch_at = arrived = time.monotonic()
        messages = await self._in_offset_order(messages)
        if not messages:
            return {}
        valid: list[tuple[Input, Message]] = []
        bad: list[tuple[Message, str]] = []
        for message in messages:
            self.positions[(message.topic, message.partition)] = message.offset
            self._received[message.tp] = message.offset + 1
            self._arrived_at[message.tp] = arrived
            source = self.sources[message.topic]
            try:
                record = decode(source, message.key, message.value)
            except ContractError as exc:
                bad.append((message, str(exc)))
                continue
            valid.append((Input(message.partition, source, record, message.offset), message))
        if bad:
            await self._dead_letter(bad)
            for message, _ in bad:
                self.metrics.events.labels(message.topic).inc()  # consumed: dead-lettered
        self.aligner.add(valid, time.monotonic())
        applied = await self._apply_released()
        return self._next_offsets({message.tp for message in messages} | applied)

    async def _apply_released(self) -> set[TP]:
        """Run the engine on what the aligner releases; returns the partitions it moved."""
        released = self.aligner.release(self._lagging, time.monotonic())
        if not released:
            return set()
        started = time.perf_counter()
        inputs = [item for item, _ in released]
        originals = [message for _, message in released]
        counts: dict[str, int] = {}
        for message in originals:
            counts[message.topic] = counts.get(message.topic, 0) + 1
            self.checkpoints.note(message.partition, message.topic, message.offset)
        partitions = {item.partition for item in inputs}
        await self.checkpoints.complete_states(
            partitions, self.store, self.settings.bootstrap_servers
        )
        self.checkpoints.restore(partitions)
        result = await self.engine.process(inputs, wall=time.time())
        if result.failed:
            await self._dead_letter([(originals[at], reason) for at, reason in result.failed])
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
        return {message.tp for message in originals}

    def _lagging(self, tp: TP) -> float | None:
        """None when every record of input partition ``tp`` up to its high-water mark has
        arrived here; else when the last one arrived (``-inf`` when none did since the
        assignment, or the high-water mark is not known yet). See :class:`StreamAligner`."""
        consumer = self.app.consumer
        if tp not in consumer.assignment():
            return None
        highwater = consumer.highwater(tp)
        received = self._received.get(tp, self.offsets.expected(tp))
        if highwater is not None and received is not None and received >= highwater:
            return None
        if highwater is None:
            return -math.inf
        return self._arrived_at.get(tp, -math.inf)

    def _next_offsets(self, tps: set[TP]) -> dict[TP, int]:
        """The next offset to apply of each of ``tps``: after the last record received, or
        the first one the aligner still holds."""
        offsets = {}
        for tp in tps:
            held = self.aligner.held_from(tp)
            offset = held if held is not None else self._received.get(tp)
            if offset is not None:
                offsets[tp] = offset
        return offsets

    async def _in_offset_order(self, messages: Sequence[Message]) -> list[Message]:
        """The records to apply, each partition's in offset order from its expected offset
        (:class:`InputOffsets`); a partition that skipped records is fetched again."""
        admitted, refetch = self.offsets.admit(
            ((message.tp, message.offset) for message in messages), time.monotonic()
        )
        kept = [message for message, admit in zip(messages, admitted, strict=True) if admit]
        for tp in refetch:
            await self._fetch_again(tp, "records from offset %s were skipped")
        return kept

    async def _fetch_again(self, tp: TP, why: str) -> None:
        """Seek ``tp`` back to its expected offset, logged (``why`` takes that offset) and
        counted: the one way a partition that lost records on the way is read again."""
        expected = self.offsets.expected(tp)
        log.warning("%s/%d: " + why + "; fetching again from it", tp.topic, tp.partition, expected)
        self.metrics.refetched_partitions.labels(tp.topic).inc()
        await self._seek_expected(tp)

    async def position_inputs(self, assigned: set[TP]) -> None:
        """After table recovery, at every assignment: seek each input partition to the offset
        stored with its state, or to its log start when none is stored.

        Faust also seeks when its fetch loop runs while flow is stopped; a partition still
        read here then goes on from the next record to apply (everything before it is
        applied here, and stored by the next flush), and one not read here waits for the end
        of table recovery (:attr:`recovered`): its stored offsets are in the tables."""
        tps = sorted(
            tp
            for tp in assigned
            if tp.topic in self.input_topics
            and (self.recovered or self.offsets.expected(tp) is not None)
        )
        if not tps:
            return
        consumer = self.app.consumer
        starts = await log_starts(consumer, tps)
        await self._find_lettered({tp.partition for tp in tps if self.offsets.expected(tp) is None})
        sought = {}
        stored: dict[TP, int] = {}
        for tp in tps:
            expected = self.offsets.expected(tp)
            if expected is None:
                expected = self.checkpoints.stored_offsets(tp.partition).get(tp.topic)
            offset = self._not_before_log_start(tp, expected, starts.get(tp, 0))
            await seek(consumer, tp, offset)
            self.offsets.start(tp, offset, time.monotonic())
            sought[f"{tp.topic}/{tp.partition}"] = offset
            if expected is not None:
                stored[tp] = offset
        log.info("input partitions sought to their stored offsets: %s", sought)
        await self._commit_stored(stored)

    async def _commit_stored(self, stored: dict[TP, int]) -> None:
        """The group's offsets brought up to those stored with the states. A worker killed
        between storing a flush's offsets and committing them left the group behind, and a
        partition with no record after them would never be committed again: lag tooling
        would show that lag for good. (The stored offsets are never behind the committed
        ones: a flush stores before it commits.)"""
        if not stored:
            return
        try:
            await commit(self.app.consumer, stored)
        except Exception as exc:  # only lag tooling reads them: the next flush commits again
            log.warning("stored offsets not committed to the group: %r", exc)

    async def _find_lettered(self, partitions: set[int]) -> None:
        """The records of ``partitions`` after their stored offsets that a previous owner
        already dead-lettered (:class:`DeadLetterLog`): not lettered again."""
        starts = {p: self.checkpoints.deadletters_from(p) for p in sorted(partitions)}
        try:
            self.lettered |= await self.deadletters.origins_since(starts)
        except Exception as exc:  # at least once: Redis's published set still helps
            log.warning("partitions %s: dead letters not read back: %r", sorted(partitions), exc)

    async def _seek_expected(self, tp: TP) -> None:
        """Fetch ``tp`` again from its expected offset (its log start if that is gone).

        A seek that fails (the partition revoked meanwhile, the broker away) is left to the
        next owner, or to :meth:`refetch_stalled`, which seeks again a partition that sent
        nothing since."""
        consumer = self.app.consumer
        expected = self.offsets.expected(tp)
        try:
            start = (await log_starts(consumer, [tp])).get(tp, 0)
            offset = self._not_before_log_start(tp, expected, start)
            if offset != expected:
                self.offsets.moved_to(tp, offset)
            await seek(consumer, tp, offset)
        except Exception as exc:
            log.warning("%s/%d: could not seek to %s: %r", tp.topic, tp.partition, expected, exc)

    def _not_before_log_start(self, tp: TP, expected: int | None, start: int) -> int:
        """Where to read ``tp`` from: ``expected``, unless the log no longer holds it
        (retention, compaction): then records were lost for good, logged and counted."""
        if expected is None:
            return start
        if expected < start:
            log.error(
                "%s/%d: offsets %d..%d were deleted before they were applied; reading on from %d",
                tp.topic,
                tp.partition,
                expected,
                start - 1,
                start,
            )
            self.metrics.lost_records.labels(tp.topic).inc(start - expected)
            return start
        return expected

    async def refetch_stalled(self) -> None:
        """Fetch again partitions fetched past their next record with nothing delivered for a
        while (:meth:`InputOffsets.stalled`), and seek any input partition assigned but not
        sought (both only once a rebalance is over)."""
        consumer: Any = self.app.consumer
        app = self.app
        if not self.recovered or app.rebalancing or not consumer.flow_active or app.should_stop:
            return
        assigned = {tp for tp in consumer.assignment() if tp.topic in self.input_topics}
        unsought = self.offsets.not_started(assigned)
        if unsought:
            names = sorted(f"{tp.topic}/{tp.partition}" for tp in unsought)
            log.warning("input partitions assigned but never sought: %s", names)
            await self.position_inputs(unsought)
        for tp in self.offsets.stalled(fetch_positions(consumer, assigned), time.monotonic()):
            await self._fetch_again(tp, "fetched past offset %s, which never came")

    async def tick(self) -> None:
        """Fire event-time timers of partitions that went quiet; write states when due.

        Not once the worker is stopping: Faust stops timers last, after the producer, and
        stopping has already written and confirmed what was in flight (Consumer.wait_empty).
        Nor during a rebalance, from the revocation until the tables are recovered: what was
        in flight is written and confirmed before the revocation, and a round that fired
        timers then wrote states of partitions already forgotten (or handed over) while their
        next owner recovered them.
        """
        if self.app.should_stop or self.warming is not None:
            return
        async with self._one_batch:
            if self.app.rebalancing or not self.recovered:
                return  # asked under the lock: a round queued behind a revocation sees it
            await self._publish(self.engine.advance(wall=time.time()), "timers", {})
            if self.aligner:  # held past their time, or the stream they waited for caught up
                self.writer.records_handled(self._next_offsets(await self._apply_released()))
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
        behind the models checkpointed (see :meth:`Engine.resume`). The verdict models first
        hold back the alerts they judge the teams would dismiss (to the shadow topic)."""
        await self.verdicts.gate(result)
        sent = await self.publisher.send(result, topic_name, sent_at)
        self.writer.alerts_sent(sent.acks)
        degraded = result.degraded + sent.degraded
        degraded += await self.publisher.update_risk(result, sent.collections, repaid)
        self.degraded.report(degraded)
        self.writer.states_changed(result.dirty)
        if await self.checkpoints.save(result):
            await self.writer.flush()

    def report_stall(self, consumer: Any, idle: float) -> None:
        """Once per idle spell, log what keeps input partitions behind."""
        if idle < REFETCH_AFTER_IDLE_SECONDS:
            self.stall_reported = False
            return
        if self.stall_reported:
            return
        try:
            description = describe_stall(consumer, self.input_topics, self.offsets)
        except Exception:  # a diagnostic must never take the worker down
            log.exception("could not describe the stall")
            return
        if description:
            self.stall_reported = True
            log.warning("idle %.0fs with %s", idle, description)

    def observe_lag(self, consumer: Any) -> None:
        """Set the lag gauge from the consumer's high-water marks (at scrape time).

        A scrape can come before the consumer thread has started: no lag to tell yet.
        """
        try:
            assigned = consumer.assignment()
        except ConsumerNotStarted:
            return
        for (topic, partition), offset in list(self.positions.items()):
            tp = TP(topic, partition)
            if tp not in assigned:
                continue
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - offset - 1)
                self.metrics.lag.labels(topic, str(partition)).set(lag)

    async def revoke(self, partitions: set[int]) -> None:
        """Partitions now owned elsewhere: forgotten once the batch or timer round in flight
        is done, never under it (it would write their states after they were forgotten)."""
        self.recovered = False  # first: a round waiting for the lock then does nothing
        async with self._one_batch:
            for partition in sorted(partitions):
                self.forget(partition, self.input_topics)

    def forget(self, partition: int, topics: set[str]) -> None:
        """A partition now owned elsewhere: no timers, models, states or lag of it here."""
        self.engine.forget_partition(partition)
        self.aligner.forget(partition)
        self.store.forget_partition(partition)
        self.checkpoints.forget(partition)
        self.offsets.forget({TP(topic, partition) for topic in topics})
        self.lettered = {origin for origin in self.lettered if origin[1] != partition}
        for topic in topics:
            self._received.pop(TP(topic, partition), None)
            self._arrived_at.pop(TP(topic, partition), None)
            if self.positions.pop((topic, partition), None) is not None:
                self.metrics.lag.remove(topic, str(partition))

    async def _dead_letter(self, bad: list[tuple[Message, str]]) -> None:
        """Each record that cannot be applied to ``lending.deadletter``, once: a dead letter
        names its record (source topic, partition, offset), and one already published is not
        sent again when a restart reads the record again. Acknowledged before the offsets
        after it are stored (with the flush's alerts)."""
        received_at = datetime.now(UTC)
        letters = []
        for message, reason in bad:
            letter = dead_letter(
                source_topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                reason=reason,
                received_at=received_at,
            )
            origin = (message.topic, message.partition, message.offset)
            if origin in self.lettered:
                self.metrics.skipped.labels(message.topic, "already_dead_lettered").inc()
                continue
            letter_id = f"deadletter:{message.topic}:{message.partition}:{message.offset}"
            partition = self.deadletters.partition_for(message.partition)
            letters.append((letter_id, message.key, encode_dead_letter(letter), partition))
            log.info(
                "dead-lettered %s[%d]@%d: %s",
                message.topic,
                message.partition,
                message.offset,
                reason,
            )
        acks, degraded = await self.publisher.send_once(self.deadletter_topic, letters)
        self.writer.alerts_sent(acks)
        self.degraded.report(degraded)
        for message, _ in bad:
            self.metrics.deadletters.labels(message.topic).inc()
