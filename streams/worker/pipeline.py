"""What a batch and a timer do: decode, dead-letter, engine, alerts out, states written behind."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust
from faust.types import TP, Message, TableT
from redis.asyncio import Redis

from detectors.base import DELINQUENCY_RISK
from detectors.delinquency import DelinquencyDetector, risk_view
from detectors.engine import BatchResult, Engine, Input
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from streams.control.store import ThresholdStore, ThresholdWatcher
from streams.privacy import Masker
from streams.settings import Settings
from streams.worker.compat import ack, committed_offset, release, seek
from streams.worker.consumer_watch import REFETCH_AFTER_IDLE_SECONDS, DeliveryGaps, describe_stall
from streams.worker.delivery import Breaker, PublishedAlerts
from streams.worker.metrics import Metrics
from streams.worker.redis_index import RedisCrossIndex
from streams.worker.risk import RiskBoard
from streams.worker.tables import ModelCheckpoints, TableStateStore
from topics import ContractError, Source, decode
from topics.codec import dead_letter, encode_alert, encode_dead_letter
from topics.records import Alert

__all__ = ["MAX_UNWRITTEN_STATES", "Pipeline"]

log = logging.getLogger("lendwatch")

#: Changed states written at once when this many wait (bounds memory and a flush's pause).
MAX_UNWRITTEN_STATES = 5_000


class Pipeline:
    """Glue between Faust and the engine: what the input reader and the timers call.

    Delivery is at least once. A batch's alerts are sent at once (latency), and its changed
    models are written and acknowledged with it. Changed states are written behind:
    collected over batches and written together every ``state_flush_ms`` (a borrower
    touched by many batches is written once), and only when the broker has them and the
    alerts before them are the records behind them acknowledged to Faust, which then
    commits their offsets. A crash
    in between redelivers those records; alerts already published are not sent again
    (:class:`PublishedAlerts`) and records a written state already reflects are not applied
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
        self.published = PublishedAlerts(redis, settings.redis_prefix, breaker)
        # Alerts leave masked (streams/privacy.py); inside the worker, ids stay raw.
        self.masker = Masker.from_settings(settings)
        self.risk = RiskBoard(redis, settings.redis_prefix, breaker, self.masker.borrower)
        self.thresholds = ThresholdWatcher(
            ThresholdStore(redis, settings.redis_prefix), self.apply_thresholds
        )
        self.checkpoints = ModelCheckpoints(models, self.engine)
        self.positions: dict[tuple[str, int], int] = {}
        self._redis_down = False
        # Written behind (see the class docstring): states changed since the last flush, the
        # partitions whose event time moved, and the records they reflect, not yet acknowledged.
        self._unwritten: dict[str, BorrowerState] = {}
        self._clocks_moved: set[int] = set()
        self._unacknowledged: list[Message] = []
        self._unconfirmed_alerts: list[Awaitable[Any]] = []
        self._marking: set[asyncio.Future[None]] = set()
        self._confirming: asyncio.Future[None] | None = None
        self._last_flush = time.monotonic()
        # One batch, timer round or flush at a time through the engine and to the producer:
        # a flush must take states, clocks and acknowledgements that belong together.
        self._one_batch = asyncio.Lock()
        self.last_batch_at = time.monotonic()
        self.stall_reported = False
        self.sources = {settings.topics.input_topic(source): source for source in Source}
        self.input_topics = set(self.sources)
        self.app = app
        self.gaps = DeliveryGaps(self.input_topics)
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
        self.shadow_topic = app.topic(
            names.alerts_shadow, key_serializer="raw", value_serializer="raw"
        )

    async def handle(self, messages: Sequence[Message]) -> None:
        """Process one batch of input records; bad records go to the dead-letter topic.

        The records handled are acknowledged to Faust when the states they changed are
        written (:meth:`flush`); those held back behind a gap are not.
        """
        if not self.thresholds.ready.is_set():
            await self.thresholds.ready.wait()  # the first batch runs on the stored version
        async with self._one_batch:
            self._unacknowledged += await self._handle(messages)
            if self._flush_due():
                await self._flush()

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
            await self._flush()
        if self._confirming is not None:
            await self._confirming
        if self._marking:
            await asyncio.gather(*self._marking)  # _mark_published reports its own failures

    def _flush_due(self) -> bool:
        return (
            len(self._unwritten) >= MAX_UNWRITTEN_STATES
            or time.monotonic() - self._last_flush >= self.settings.state_flush_ms / 1000.0
        )

    async def _flush(self) -> None:
        """Hand the changed states and clock positions to the producer; the broker's
        acknowledgements are waited for by :meth:`_confirm`, off the batch path."""
        self._last_flush = time.monotonic()
        unwritten, self._unwritten = self._unwritten, {}
        moved, self._clocks_moved = self._clocks_moved, set()
        handled, self._unacknowledged = self._unacknowledged, []
        sends, self._unconfirmed_alerts = self._unconfirmed_alerts, []
        sends += await self.store.send(self.app.producer, unwritten)
        sends += await self.checkpoints.send_clocks(moved)
        if not sends and not handled:
            return
        confirming = asyncio.ensure_future(self._confirm(self._confirming, sends, handled))
        confirming.add_done_callback(self._on_confirmed)
        self._confirming = confirming

    async def _confirm(
        self,
        previous: asyncio.Future[None] | None,
        sends: list[Awaitable[Any]],
        handled: list[Message],
    ) -> None:
        """Once the broker has every alert, state and clock of a flush (and of the flushes
        before it), let Faust commit the records behind them."""
        if previous is not None:
            await previous
        await asyncio.gather(*sends)
        ack(self.app.consumer, handled)

    async def _mark_published(self, alerts: list[Alert], sends: list[Awaitable[Any]]) -> None:
        """Record a batch's alerts as published as soon as the broker has them, not with the
        flush: another worker (a cross-borrower cycle seen from both ends) or a redelivery
        checks this record before sending the same alert."""
        acknowledged = await asyncio.gather(*sends, return_exceptions=True)
        done = [
            a.alert_id
            for a, r in zip(alerts, acknowledged, strict=True)
            if not isinstance(r, BaseException)
        ]
        try:
            await self.published.mark(done)
        except Exception as exc:
            self._report([f"delivery: could not record published alerts: {exc!r}"])

    def _on_confirmed(self, confirming: asyncio.Future[None]) -> None:
        """A flush the broker refused (no more retries) leaves its records unacknowledged for
        good: stop the worker, whose successor gets them again (at least once)."""
        if self._confirming is confirming:
            self._confirming = None
        if confirming.cancelled() or confirming.exception() is None:
            return
        exc = confirming.exception()
        if self.app.should_stop:
            log.warning("stopping before the broker confirmed a write; delivered again: %r", exc)
            return
        log.error("could not write states or alerts; stopping: %r", exc)
        asyncio.ensure_future(self.app.crash(cast(BaseException, exc)))

    async def _handle(self, messages: Sequence[Message]) -> list[Message]:
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
        self._clocks_moved.update(item.partition for item in inputs)
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
            if self._flush_due():
                await self._flush()

    async def _publish(
        self,
        result: BatchResult,
        topic_name: str,
        sent_at: dict[bytes | None, float],
        repaid: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Alerts handed to the producer at once (their acknowledgement is waited for with the
        states', see :meth:`_confirm`); then new models, acknowledged. The states are written
        behind, except after new models: then at once, so that states never fall behind the
        models checkpointed (see :meth:`Engine.resume`)."""
        # Shadow alerts (a candidate's) go to their own topic, never to the teams'.
        topics = [self.alert_topics[a.category] for a in result.alerts]
        topics += [self.shadow_topic] * len(result.shadow_alerts)
        alerts = result.alerts + result.shadow_alerts
        degraded = list(result.degraded)
        try:
            pending = await self.published.unpublished([a.alert_id for a in alerts])
        except Exception as exc:  # Redis down: send them all (at least once)
            pending = [True] * len(alerts)
            if alerts:
                degraded.append(f"delivery: published alerts unknown, resending: {exc!r}")
        sent: list[Alert] = []
        collections: list[Alert] = []  # as published: the risk view's last alerts
        sends: list[Awaitable[Any]] = []
        for alert, topic, send in zip(alerts, topics, pending, strict=True):
            if not send:
                self.metrics.resends.labels(alert.detector).inc()
                continue
            masked = self.masker.alert(alert)
            sending = await topic.send(key=masked.borrower_id.encode(), value=encode_alert(masked))
            origin = None if topic is self.shadow_topic else sent_at.get(alert.borrower_id.encode())
            cast("asyncio.Future[Any]", sending).add_done_callback(
                partial(self._on_alert_acknowledged, alert, topic, topic_name, origin)
            )
            sent.append(alert)
            sends.append(sending)
            if alert.category == DELINQUENCY_RISK and topic is not self.shadow_topic:
                collections.append(masked)
        if sends:
            self._unconfirmed_alerts += sends
            marking = asyncio.ensure_future(self._mark_published(sent, sends))
            self._marking.add(marking)  # the loop keeps only a weak reference to a task
            marking.add_done_callback(self._marking.discard)
        degraded += await self._update_risk(result, collections, repaid)
        self._report(degraded)
        self._unwritten.update(result.dirty)
        if await self.checkpoints.save(result):
            await self._flush()

    async def _update_risk(
        self, result: BatchResult, collections: list[Alert], repaid: set[str] | frozenset[str]
    ) -> list[str]:
        """Refresh the risk view of borrowers whose installments, assessment or collections
        alerts (``collections``, as published) this batch changed; returns why not, if Redis
        is down."""
        touched = set(repaid)
        for timers in result.fired.values():
            touched.update(t.borrower_id for t in timers if t.detector == DelinquencyDetector.name)
        touched.update(a.borrower_id for a in result.alerts if a.category == DELINQUENCY_RISK)
        views = {}
        for borrower in touched:
            state = self.store.get(borrower)
            if state is not None:
                views[borrower] = risk_view(state)
        try:
            await self.risk.update(views, collections)
        except Exception as exc:
            return [f"risk_view: not updated: {exc!r}"] if views or collections else []
        return []

    def _on_alert_acknowledged(
        self,
        alert: Alert,
        topic: Any,
        topic_name: str,
        origin: float | None,
        sending: asyncio.Future[Any],
    ) -> None:
        if sending.cancelled() or sending.exception() is not None:
            return  # the confirmation fails on it
        self.metrics.alerts.labels(topic.get_topic_name(), alert.detector).inc()
        if topic is self.shadow_topic:
            return
        self.metrics.scores.labels(alert.detector).observe(alert.score)
        if origin is not None:
            self.metrics.latency.labels(topic_name).observe(max(0.0, time.time() - origin))

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
