"""The Faust worker: one agent per input topic, decode → engine → alerts, state changelogged."""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import faust
import orjson
from faust.serializers import codecs
from faust.types import TP, EventT, TableT
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.asyncio import Redis

from detectors.engine import BatchResult, Engine, Input
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from streams.consumer_watch import (
    REFETCH_AFTER_IDLE_SECONDS,
    CommitWatch,
    DeliveryGaps,
    describe_stall,
    refetch_paused,
    seek,
    withdraw_acks,
)
from streams.delivery import Breaker, PublishedAlerts
from streams.redis_index import RedisCrossIndex
from streams.settings import Settings
from topics import ContractError, Source, decode
from topics.codec import dead_letter, encode_alert, encode_dead_letter

__all__ = ["Pipeline", "create_app"]

log = logging.getLogger("lendwatch")

STATE_TABLE = "borrower-state"
MODEL_TABLE = "model-checkpoints"
#: Key prefix of the event-time clock positions in the model table.
CLOCK_KEY = "clock"


class StateCodec(codecs.Codec):
    """Changelog encoding of :class:`BorrowerState`: JSON, never pickle (the topic is data)."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj.to_dict())

    def _loads(self, s: bytes) -> Any:
        return BorrowerState.from_dict(orjson.loads(s))


codecs.register("lendwatch_state", StateCodec())


class TableStateStore:
    """Engine state read from the Faust table's store; the changelog is written once per batch."""

    def __init__(self, table: TableT[str, BorrowerState]) -> None:
        self.table = table

    def get(self, borrower_id: str) -> BorrowerState | None:
        state: BorrowerState | None = self.table.data.get(borrower_id)
        return state

    def put(self, borrower_id: str, state: BorrowerState) -> None:
        self.table.data[borrower_id] = state

    def states_in_partition(self, partition: int) -> Iterable[BorrowerState]:
        return [s for s in list(self.table.data.values()) if s.partition == partition]

    async def persist(self, dirty: dict[str, BorrowerState]) -> None:
        """One changelog record per changed borrower, on the partition its events come from,
        acknowledged before the next batch: a model checkpoint is then ahead of the states by
        one batch at most (see :meth:`Engine.resume`).

        Sent straight to the producer rather than through ``send_soon``'s 100-message buffer,
        which a batch of 500 borrowers would overflow.
        """
        topic = self.table.changelog_topic
        acks = []
        for borrower_id, state in dirty.items():
            sending = await topic.send(
                key=borrower_id,
                value=state,
                partition=state.partition,
                key_serializer="raw",
                value_serializer="lendwatch_state",
            )
            acks.append(sending)
        await asyncio.gather(*acks)


class ModelCheckpoints:
    """Per-partition detector models, checkpointed with the input offsets they reflect.

    Models (River estimators) live in the detectors, one per partition, and learn only when a
    timer fires or a day closes (the engine reports which partitions). Their snapshots are
    written in the same batch as the state, before its offsets are committed, to a changelogged
    table keyed ``detector:partition`` on that partition; whichever worker owns the partition
    next recovers them with it and restores them before its first batch, so state, models and
    committed offsets agree after a crash. A snapshot equal to the last one written is not
    written again. Snapshots are pickles: the table is written by lendwatch workers only.
    """

    def __init__(self, table: TableT[str, bytes], engine: Engine) -> None:
        self.table = table
        self.engine = engine
        self.offsets: dict[int, dict[str, int]] = {}
        self._restored: set[int] = set()
        self._written: dict[tuple[str, int], bytes] = {}

    def note(self, partition: int, topic: str, offset: int) -> None:
        """The latest input offset a partition's models have seen."""
        seen = self.offsets.setdefault(partition, {})
        if offset > seen.get(topic, -1):
            seen[topic] = offset

    def restore(self, partitions: Iterable[int]) -> None:
        for partition in set(partitions) - self._restored:
            self._restored.add(partition)
            for key, value in list(self.table.data.items()):
                detector, _, owner = key.rpartition(":")
                if owner != str(partition):
                    continue
                if detector == CLOCK_KEY:
                    position = orjson.loads(value)
                    self.engine.clock.resume(partition, position)
                    log.info("resumed event time of partition %d at %s", partition, position)
                    continue
                checkpoint = orjson.loads(value)
                snapshot = base64.b64decode(checkpoint["snapshot"])
                self.engine.restore(detector, partition, snapshot)
                self._written[(detector, partition)] = snapshot
                self.engine.resume(detector, partition, checkpoint.get("progress", {}))
                self.offsets[partition] = dict(checkpoint["offsets"])
                log.info(
                    "restored %s model of partition %d, reflecting offsets %s",
                    detector,
                    partition,
                    checkpoint["offsets"],
                )

    def forget(self, partition: int) -> None:
        self._restored.discard(partition)
        for key in [key for key in self._written if key[1] == partition]:
            del self._written[key]

    async def save_clocks(self, partitions: Iterable[int]) -> None:
        """Write how far each stream of ``partitions`` has come, after the batch's states:
        a restarted worker's clock then starts no later than its states (see
        :meth:`EventTimeClock.resume`)."""
        acks = []
        for partition in sorted(partitions):
            position = self.engine.clock.position(partition)
            if position is None:
                continue
            key = f"{CLOCK_KEY}:{partition}"
            value = orjson.dumps(position)
            acks.append(
                await self.table.changelog_topic.send(
                    key=key,
                    value=value,
                    partition=partition,
                    key_serializer="raw",
                    value_serializer="raw",
                )
            )
            self.table.data[key] = value
        await asyncio.gather(*acks)

    async def save(self, result: BatchResult) -> int:
        """Write the models of ``partitions`` that changed since they were last written, and
        wait for the broker's acknowledgement: the states that follow must never be ahead of
        the models (see :meth:`Engine.resume`)."""
        acks = []
        for partition in sorted(result.learned):
            for detector in self.engine.detectors:
                snapshot = detector.snapshot(partition)
                key = (detector.name, partition)
                if snapshot is None or self._written.get(key) == snapshot:
                    continue
                value = orjson.dumps(
                    {
                        "detector": detector.name,
                        "partition": partition,
                        "offsets": self.offsets.get(partition, {}),
                        "progress": self.engine.progress(partition, result),
                        "saved_at": datetime.now(UTC),
                        "snapshot": base64.b64encode(snapshot).decode("ascii"),
                    }
                )
                sending = await self.table.changelog_topic.send(
                    key=f"{detector.name}:{partition}",
                    value=value,
                    partition=partition,
                    key_serializer="raw",
                    value_serializer="raw",
                )
                acks.append(sending)
                self.table.data[f"{detector.name}:{partition}"] = value
                self._written[key] = snapshot
        await asyncio.gather(*acks)
        return len(acks)


class Metrics:
    """What Prometheus scrapes at ``/metrics`` and ``lendwatch status`` prints."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.events = Counter(
            "lendwatch_events", "Input records consumed", ["topic"], registry=registry
        )
        self.deadletters = Counter(
            "lendwatch_deadletters", "Input records dead-lettered", ["topic"], registry=registry
        )
        self.skipped = Counter(
            "lendwatch_skipped_events",
            "Valid records not applied: a duplicate event id, or redelivered after a crash",
            ["topic", "why"],
            registry=registry,
        )
        self.alerts = Counter(
            "lendwatch_alerts", "Alerts published", ["topic", "detector"], registry=registry
        )
        self.resends = Counter(
            "lendwatch_alerts_suppressed",
            "Alerts not sent again: already published (a redelivery or a rebalance)",
            ["detector"],
            registry=registry,
        )
        self.scores = Histogram(
            "lendwatch_alert_score",
            "Scores of the alerts published",
            ["detector"],
            buckets=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
            registry=registry,
        )
        self.latency = Histogram(
            "lendwatch_event_to_alert_seconds",
            "From the broker timestamp of the borrower's latest event in the batch behind an "
            "alert to the alert's acknowledgement",
            ["topic"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "lendwatch_batch_seconds", "Time to process one batch", ["topic"], registry=registry
        )
        self.lag = Gauge(
            "lendwatch_consumer_lag",
            "Records in the partition not yet processed by this worker",
            ["topic", "partition"],
            registry=registry,
        )
        self.refetched_partitions = Counter(
            "lendwatch_offset_gaps",
            "Partitions fetched again from a record Faust skipped (held back what came after)",
            ["topic"],
            registry=registry,
        )
        self.redelivered_partitions = Counter(
            "lendwatch_partitions_redelivered",
            "Partitions delivered again from their committed offset because Faust's commit of "
            "them stopped behind acknowledged records",
            ["topic"],
            registry=registry,
        )
        self.degraded = Counter(
            "lendwatch_degraded_batches",
            "Batches run without a dependency",
            ["detector"],
            registry=registry,
        )


class Pipeline:
    """Glue between Faust and the engine: what the agents and the timer call.

    Delivery is at least once: a batch's alerts are sent and acknowledged by the broker, then
    its states and changed models are written, and only then does the agent take the next
    batch, which lets Faust commit this one's offsets (after flushing the producer). Alerts
    already published are not sent again (:class:`PublishedAlerts`); records redelivered
    after a crash are not applied twice (the engine's per-borrower offsets).
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        table: TableT[str, BorrowerState],
        models: TableT[str, bytes],
        redis: Redis,
    ) -> None:
        self.settings = settings
        self.store = TableStateStore(table)
        self.metrics = Metrics()
        breaker = self.breaker = Breaker()
        self.engine = Engine(
            Thresholds(),
            self.store,
            RedisCrossIndex(redis, settings.redis_prefix, breaker),
            idle_after=settings.idle_stream_seconds,
            now=lambda: datetime.now(UTC),
        )
        self.published = PublishedAlerts(redis, settings.redis_prefix, breaker)
        self.checkpoints = ModelCheckpoints(models, self.engine)
        self.positions: dict[tuple[str, int], int] = {}
        self._redis_down = False
        # One batch at a time through engine and publication, whichever agent it comes from:
        # a batch's states must not be written (by another agent's batch touching the same
        # borrowers or models) before its own alerts are acknowledged.
        self._one_batch = asyncio.Lock()
        self.last_batch_at = time.monotonic()
        self.stall_reported = False
        self.input_topics = {settings.topics.input_topic(source) for source in Source}
        self.app = app
        self.gaps = DeliveryGaps(self.input_topics)
        # Records of a batch held back behind a gap: Faust acknowledges them with the batch, so
        # their acknowledgements are withdrawn until they come again and are handled.
        self._held_back: dict[TP, set[int]] = {}
        names = settings.topics
        self.deadletter_topic = app.topic(
            names.deadletter, key_serializer="raw", value_serializer="raw"
        )
        self.alert_topics = {
            category: app.topic(
                names.alert_topic(category), key_serializer="raw", value_serializer="raw"
            )
            for category in ("falsified_flow", "abnormal_behaviour", "delinquency_risk")
        }

    async def handle(self, source: Source, events: Sequence[EventT[bytes]]) -> None:
        """Process one batch of one input topic; bad records go to the dead-letter topic."""
        async with self._one_batch:
            await self._handle(source, events)

    async def _handle(self, source: Source, events: Sequence[EventT[bytes]]) -> None:
        started = time.perf_counter()
        self.last_batch_at = time.monotonic()
        events = await self._in_offset_order(events)
        inputs: list[Input] = []
        originals: list[EventT[bytes]] = []
        for event in events:
            message = event.message
            self.positions[(message.topic, message.partition)] = message.offset
            try:
                record = decode(source, message.key, message.value)
            except ContractError as exc:
                await self._dead_letter(event, str(exc))
                continue
            inputs.append(Input(message.partition, source, record, message.offset))
            originals.append(event)
            self.checkpoints.note(message.partition, message.topic, message.offset)
        self.checkpoints.restore({item.partition for item in inputs})
        result = await self.engine.process(inputs, wall=time.time())
        for position, reason in result.failed:
            await self._dead_letter(originals[position], reason)
        topic = self.settings.topics.input_topic(source)
        sent_at = {e.message.key: e.message.timestamp for e in originals}
        await self._publish(result, topic, sent_at)
        await self.checkpoints.save_clocks({item.partition for item in inputs})
        self.metrics.events.labels(topic).inc(len(events))
        if result.duplicates:
            self.metrics.skipped.labels(topic, "duplicate_event_id").inc(result.duplicates)
        if result.redelivered:
            self.metrics.skipped.labels(topic, "redelivered").inc(result.redelivered)
        self.metrics.batch_seconds.labels(topic).observe(time.perf_counter() - started)

    async def _in_offset_order(self, events: Sequence[EventT[bytes]]) -> list[EventT[bytes]]:
        """The events to handle: none past a gap in its partition's offsets (see
        :class:`DeliveryGaps`); a partition with a gap is fetched again from it."""
        consumer: Any = self.app.consumer  # Faust's acknowledgement record is not typed
        for tp, offsets in self._held_back.items():
            withdraw_acks(consumer, tp, offsets)
        tps = [event.message.tp for event in events]
        admitted, refetch = self.gaps.admit(
            [(tp, event.message.offset) for tp, event in zip(tps, events, strict=True)],
            {tp: consumer._committed_offset.get(tp) for tp in set(tps)},
        )
        kept = []
        for event, tp, admit in zip(events, tps, admitted, strict=True):
            held = self._held_back.get(tp)
            if admit:
                kept.append(event)
                if held is not None:
                    held.discard(event.message.offset)
            else:
                self._held_back.setdefault(tp, set()).add(event.message.offset)
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
        for tp in [tp for tp, held in self._held_back.items() if not held]:
            del self._held_back[tp]
        return kept

    async def tick(self) -> None:
        """Fire event-time timers of partitions that went quiet."""
        async with self._one_batch:
            await self._publish(self.engine.advance(wall=time.time()), "timers", {})

    async def _publish(
        self, result: BatchResult, topic_name: str, sent_at: dict[bytes | None, float]
    ) -> None:
        """Alerts first, acknowledged; then the models, acknowledged; then the states."""
        alerts = result.alerts
        degraded = list(result.degraded)
        try:
            pending = await self.published.unpublished([a.alert_id for a in alerts])
        except Exception as exc:  # Redis down: send them all (at least once)
            pending = [True] * len(alerts)
            if alerts:
                degraded.append(f"delivery: published alerts unknown, resending: {exc!r}")
        acks = []
        for alert, send in zip(alerts, pending, strict=True):
            if not send:
                self.metrics.resends.labels(alert.detector).inc()
                continue
            topic = self.alert_topics[alert.category]
            acks.append(await topic.send(key=alert.borrower_id.encode(), value=encode_alert(alert)))
        sent = [alert for alert, send in zip(alerts, pending, strict=True) if send]
        if acks:
            await asyncio.gather(*acks)
            acked = time.time()
            for alert in sent:
                topic = self.alert_topics[alert.category]
                self.metrics.alerts.labels(topic.get_topic_name(), alert.detector).inc()
                self.metrics.scores.labels(alert.detector).observe(alert.score)
                origin = sent_at.get(alert.borrower_id.encode())
                if origin is not None:
                    self.metrics.latency.labels(topic_name).observe(max(0.0, acked - origin))
            try:
                await self.published.mark([alert.alert_id for alert in sent])
            except Exception as exc:
                degraded.append(f"delivery: could not record published alerts: {exc!r}")
        self._report(degraded)
        await self.checkpoints.save(result)
        await self.store.persist(result.dirty)

    def _report(self, degraded: list[str]) -> None:
        """Count degraded batches. Redis going and coming back is logged once each way (the
        breaker says which); any other degradation, a failed timer, is logged every time."""
        redis_down = self.breaker.is_open
        for reason in degraded:
            self.metrics.degraded.labels(reason.split(":", 1)[0]).inc()
            if not redis_down or not self._redis_down:
                log.warning("degraded: %s", reason)
        if self._redis_down and not redis_down:
            log.warning("recovered: Redis answers again; every detector runs in full")
        self._redis_down = redis_down

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
        """A partition now owned elsewhere: no timers, models or lag of it here."""
        self.engine.forget_partition(partition)
        self.checkpoints.forget(partition)
        revoked = {TP(topic, partition) for topic in topics}
        self.gaps.forget(revoked)
        for tp in revoked:
            self._held_back.pop(tp, None)
        for topic in topics:
            if self.positions.pop((topic, partition), None) is not None:
                self.metrics.lag.remove(topic, str(partition))

    async def _dead_letter(self, event: EventT[bytes], reason: str) -> None:
        message = event.message
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


def create_app(settings: Settings) -> tuple[faust.App, Pipeline]:
    """Build the Faust app and wire its agents; ``lendwatch worker`` runs it."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        producer_linger=settings.producer_linger_ms / 1000.0,
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_host="127.0.0.1" if settings.web_port else "0.0.0.0",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
    )
    table = cast(
        faust.Table[str, BorrowerState], _table(app, settings, STATE_TABLE, "lendwatch_state")
    )
    models = cast(faust.Table[str, bytes], _table(app, settings, MODEL_TABLE, "raw"))
    # Timeouts bound a hung Redis; the breaker then keeps an outage off the per-batch path.
    redis = Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    pipeline = Pipeline(app, settings, table, models, redis)

    for source in Source:
        topic = app.topic(
            settings.topics.input_topic(source),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        app.agent(topic, name=f"lendwatch.{source.value}")(_consumer(pipeline, source))

    input_topics = pipeline.input_topics

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types receivers narrowly
    async def forget_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Timers of partitions now owned elsewhere must not fire here."""
        revoked: set[TP] = args[0]
        for partition in {tp.partition for tp in revoked if tp.topic in input_topics}:
            pipeline.forget(partition, input_topics)

    @app.task  # type: ignore[untyped-decorator]
    async def dump_tasks_on_sigusr1() -> None:
        """``kill -USR1 <pid>`` logs every asyncio task's stack: what a stuck worker waits on."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def fire_quiet_timers() -> None:
        await pipeline.tick()

    commits = CommitWatch(pipeline.input_topics)

    @app.timer(5.0)  # type: ignore[untyped-decorator]
    async def keep_fetching_and_committing() -> None:
        """Repairs of Faust's consumer bookkeeping (see streams.consumer_watch)."""
        idle = time.monotonic() - pipeline.last_batch_at
        refetch_paused(app.consumer, idle=idle)
        for tp in await commits.repair(app.consumer, time.monotonic(), idle):
            pipeline.metrics.redelivered_partitions.labels(tp.topic).inc()
        pipeline.report_stall(app.consumer, idle)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        pipeline.observe_lag(app.consumer)
        return web.bytes(generate_latest(pipeline.metrics.registry), content_type="text/plain")

    return app, pipeline


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        chain = []
        awaiting: Any = task.get_coro()
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
            if frame is not None:
                code = frame.f_code
                chain.append(f"  {code.co_filename}:{frame.f_lineno} {code.co_name}")
            awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
        log.warning("task %s awaits:\n%s", task.get_name(), "\n".join(chain) or repr(task))


def _table(app: faust.App, settings: Settings, name: str, value_serializer: str) -> Any:
    """A changelogged in-memory table keyed by a plain string, with our value codec.

    Faust derives a table's codecs from its key and value *types*, JSON for anything that is
    not a Record, and decodes recovery through the changelog topic it made with them; so the
    changelog topic is made here, with the codecs the writes use.
    """
    changelog = app.topic(
        f"{settings.app_id}-{name}-changelog",
        key_type=str,
        key_serializer="raw",
        value_serializer=value_serializer,
        partitions=settings.partitions,
        compacting=True,
        acks=False,
        internal=True,
        maxsize=131_072,
        allow_empty=True,
    )
    table = cast(
        faust.Table[str, Any],
        app.Table(
            name,
            default=None,
            partitions=settings.partitions,
            key_type=str,
            changelog_topic=changelog,
        ),
    )
    table.key_serializer = "raw"
    table.value_serializer = value_serializer
    return table


def _consumer(pipeline: Pipeline, source: Source) -> Any:
    batch_size = pipeline.settings.batch_size
    within = pipeline.settings.batch_window_ms / 1000.0

    async def consume(stream: faust.Stream[bytes]) -> None:
        async for events in stream.take_events(batch_size, within=within):
            await pipeline.handle(source, events)

    consume.__name__ = f"consume_{source.value}"
    return consume


class QuietWorker(faust.Worker):
    """A worker that does not turn the root logger to DEBUG for its spinner (20–38 µs/event)."""

    def _setup_spinner_handler(self, logger: logging.Logger, level: int) -> None:
        return None


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker until SIGINT/SIGTERM."""
    app, _ = create_app(settings)
    worker = QuietWorker(app, loglevel=loglevel)
    worker.spinner = None
    worker.execute_from_commandline()
