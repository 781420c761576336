"""The Faust worker: one agent per input topic, decode → engine → alerts, state changelogged."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import faust
import orjson
from faust.serializers import codecs
from faust.types import TP, EventT, TableT
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from redis.asyncio import Redis

from detectors.engine import BatchResult, Engine, Input
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from streams.redis_index import RedisCrossIndex
from streams.settings import Settings
from topics import ContractError, Source, decode
from topics.codec import dead_letter, encode_alert, encode_dead_letter

__all__ = ["Pipeline", "create_app"]

log = logging.getLogger("lendwatch")

STATE_TABLE = "borrower-state"
MODEL_TABLE = "model-checkpoints"


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
        """One changelog record per changed borrower, on the partition its events come from.

        Sent straight to the producer rather than through ``send_soon``'s 100-message buffer,
        which a batch of 500 borrowers would overflow; Faust flushes the producer before it
        commits offsets, so state is durable before the events that made it are committed.
        """
        topic = self.table.changelog_topic
        for borrower_id, state in dirty.items():
            await topic.send(
                key=borrower_id,
                value=state,
                partition=state.partition,
                key_serializer="raw",
                value_serializer="lendwatch_state",
            )


class ModelCheckpoints:
    """Per-partition detector models, checkpointed with the input offsets they reflect.

    Models (River estimators) live in the detectors, one per partition. Every
    ``LW_CHECKPOINT_SECONDS`` their snapshots go to a changelogged table, keyed
    ``detector:partition`` and written to that partition, so whichever worker owns the partition
    next recovers them with it; a process restores a partition's models before its first batch.
    Snapshots are pickles: the table is written by lendwatch workers only.
    """

    def __init__(self, table: TableT[str, bytes], engine: Engine) -> None:
        self.table = table
        self.engine = engine
        self.offsets: dict[int, dict[str, int]] = {}
        self._restored: set[int] = set()

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
                checkpoint = orjson.loads(value)
                self.engine.restore(detector, partition, base64.b64decode(checkpoint["snapshot"]))
                self.offsets[partition] = dict(checkpoint["offsets"])
                log.info(
                    "restored %s model of partition %d, reflecting offsets %s",
                    detector,
                    partition,
                    checkpoint["offsets"],
                )

    def forget(self, partition: int) -> None:
        self._restored.discard(partition)

    async def save(self) -> int:
        saved = 0
        for (detector, partition), snapshot in self.engine.snapshots().items():
            key = f"{detector}:{partition}"
            value = orjson.dumps(
                {
                    "detector": detector,
                    "partition": partition,
                    "offsets": self.offsets.get(partition, {}),
                    "saved_at": datetime.now(UTC),
                    "snapshot": base64.b64encode(snapshot).decode("ascii"),
                }
            )
            await self.table.changelog_topic.send(
                key=key,
                value=value,
                partition=partition,
                key_serializer="raw",
                value_serializer="raw",
            )
            self.table.data[key] = value
            saved += 1
        return saved


class Metrics:
    """Counters the status line, ``lendwatch status`` and Prometheus read."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "lendwatch_events", "Input events processed", ["topic"], registry=self.registry
        )
        self.deadletters = Counter(
            "lendwatch_deadletters",
            "Input records dead-lettered",
            ["topic"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "lendwatch_alerts", "Alerts published", ["topic", "detector"], registry=self.registry
        )
        self.degraded = Counter(
            "lendwatch_degraded_batches",
            "Batches run without a dependency",
            ["detector"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "lendwatch_batch_seconds",
            "Time to process one batch",
            ["topic"],
            registry=self.registry,
        )


class Pipeline:
    """Glue between Faust and the engine: what the agents and the timer call."""

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
        self.engine = Engine(
            Thresholds(),
            self.store,
            RedisCrossIndex(redis, settings.redis_prefix),
            idle_after=settings.idle_stream_seconds,
            now=lambda: datetime.now(UTC),
        )
        self.checkpoints = ModelCheckpoints(models, self.engine)
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
        started = time.perf_counter()
        inputs: list[Input] = []
        originals: list[EventT[bytes]] = []
        for event in events:
            message = event.message
            try:
                record = decode(source, message.key, message.value)
            except ContractError as exc:
                await self._dead_letter(event, str(exc))
                continue
            inputs.append(Input(message.partition, source, record))
            originals.append(event)
            self.checkpoints.note(message.partition, message.topic, message.offset)
        self.checkpoints.restore({item.partition for item in inputs})
        result = await self.engine.process(inputs, wall=time.time())
        for position, reason in result.failed:
            await self._dead_letter(originals[position], reason)
        await self._publish(result)
        topic = self.settings.topics.input_topic(source)
        self.metrics.events.labels(topic).inc(len(events))
        self.metrics.batch_seconds.labels(topic).observe(time.perf_counter() - started)

    async def tick(self) -> None:
        """Fire event-time timers of partitions that went quiet."""
        await self._publish(self.engine.advance(wall=time.time()))

    async def _publish(self, result: BatchResult) -> None:
        for alert in result.alerts:
            topic = self.alert_topics[alert.category]
            await topic.send(key=alert.borrower_id.encode(), value=encode_alert(alert))
            self.metrics.alerts.labels(topic.get_topic_name(), alert.detector).inc()
        for reason in result.degraded:
            log.warning("degraded: %s", reason)
            self.metrics.degraded.labels(reason.split(":", 1)[0]).inc()
        await self.store.persist(result.dirty)

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
    redis = Redis.from_url(settings.redis_url)
    pipeline = Pipeline(app, settings, table, models, redis)

    for source in Source:
        topic = app.topic(
            settings.topics.input_topic(source),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        app.agent(topic, name=f"lendwatch.{source.value}")(_consumer(pipeline, source))

    input_topics = {settings.topics.input_topic(source) for source in Source}

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types receivers narrowly
    async def forget_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Timers of partitions now owned elsewhere must not fire here."""
        revoked: set[TP] = args[0]
        for partition in {tp.partition for tp in revoked if tp.topic in input_topics}:
            pipeline.engine.forget_partition(partition)
            pipeline.checkpoints.forget(partition)

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def fire_quiet_timers() -> None:
        await pipeline.tick()

    @app.timer(settings.checkpoint_seconds)  # type: ignore[untyped-decorator]
    async def checkpoint_models() -> None:
        await pipeline.checkpoints.save()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(pipeline.metrics.registry), content_type="text/plain")

    return app, pipeline


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
