"""Alerts out: masked, sent once, recorded as published; the collections risk view kept current."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import faust
from redis.asyncio import Redis

from detectors.base import DELINQUENCY_RISK
from detectors.delinquency import DelinquencyDetector, risk_view
from detectors.engine import BatchResult
from streams.privacy import Masker
from streams.settings import Settings
from streams.worker.delivery import Breaker, PublishedAlerts
from streams.worker.metrics import DegradedBatches, Metrics
from streams.worker.risk import RiskBoard
from streams.worker.tables import TableStateStore
from topics.codec import encode_alert
from topics.records import Alert

__all__ = ["AlertPublisher", "SentAlerts"]


@dataclass
class SentAlerts:
    """What :meth:`AlertPublisher.send` handed to the producer."""

    #: The broker's acknowledgements, to wait for before the records behind them are.
    acks: list[Awaitable[Any]] = field(default_factory=list)
    #: The collections alerts as published (masked): the risk view's last alerts.
    collections: list[Alert] = field(default_factory=list)
    #: Why delivery ran degraded (Redis down), if it did.
    degraded: list[str] = field(default_factory=list)


class AlertPublisher:
    """Sends a batch's alerts at once (latency), each at most once in the normal case.

    Alerts leave masked (streams/privacy.py); inside the worker, ids stay raw. An alert id
    already recorded as published (:class:`PublishedAlerts`: a redelivery, a rebalance, the
    same cross-borrower cycle seen by another worker) is not sent again; with Redis down every
    alert is sent (at least once). Shadow alerts (a candidate's) go to their own topic, never
    to the teams'.
    """

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        redis: Redis,
        breaker: Breaker,
        store: TableStateStore,
        metrics: Metrics,
        degraded: DegradedBatches,
    ) -> None:
        names = settings.topics
        self.alert_topics = {
            category: app.topic(
                names.alert_topic(category), key_serializer="raw", value_serializer="raw"
            )
            for category in ("falsified_flow", "abnormal_behaviour", "delinquency_risk")
        }
        self.shadow_topic = app.topic(
            names.alerts_shadow, key_serializer="raw", value_serializer="raw"
        )
        self.published = PublishedAlerts(redis, settings.redis_prefix, breaker)
        self.masker = Masker.from_settings(settings)
        self.risk = RiskBoard(redis, settings.redis_prefix, breaker, self.masker.borrower)
        self.store = store
        self.metrics = metrics
        self.degraded = degraded
        self._marking: set[asyncio.Future[None]] = set()

    async def send(
        self, result: BatchResult, topic_name: str, sent_at: dict[bytes | None, float]
    ) -> SentAlerts:
        """Hand the alerts not yet published to the producer; each is recorded as published
        once the broker has it (:meth:`_mark_published`), off the batch path."""
        topics = [self.alert_topics[a.category] for a in result.alerts]
        topics += [self.shadow_topic] * len(result.shadow_alerts)
        alerts = result.alerts + result.shadow_alerts
        out = SentAlerts()
        try:
            pending = await self.published.unpublished([a.alert_id for a in alerts])
        except Exception as exc:  # Redis down: send them all (at least once)
            pending = [True] * len(alerts)
            if alerts:
                out.degraded.append(f"delivery: published alerts unknown, resending: {exc!r}")
        sent: list[Alert] = []
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
            out.acks.append(sending)
            if alert.category == DELINQUENCY_RISK and topic is not self.shadow_topic:
                out.collections.append(masked)
        self._mark_when_acknowledged([a.alert_id for a in sent], out.acks)
        return out

    async def send_once(
        self, topic: Any, records: list[tuple[str, bytes | None, bytes, int]]
    ) -> tuple[list[Awaitable[Any]], list[str]]:
        """Send ``(id, key, value, partition)`` records not yet recorded as published under their id
        (dead letters: their id names the input record), and record each once the broker has
        it. Returns the acknowledgements to wait for, and why delivery ran degraded."""
        degraded = []
        try:
            pending = await self.published.unpublished([record[0] for record in records])
        except Exception as exc:  # Redis down: send them all (at least once)
            pending = [True] * len(records)
            degraded.append(f"delivery: published records unknown, resending: {exc!r}")
        acks = []
        sent = []
        for (record_id, key, value, partition), send in zip(records, pending, strict=True):
            if send:
                acks.append(await topic.send(key=key, value=value, partition=partition))
                sent.append(record_id)
        self._mark_when_acknowledged(sent, acks)
        return acks, degraded

    def _mark_when_acknowledged(self, ids: list[str], acks: list[Awaitable[Any]]) -> None:
        if acks:
            marking = asyncio.ensure_future(self._mark_published(ids, acks))
            self._marking.add(marking)  # the loop keeps only a weak reference to a task
            marking.add_done_callback(self._marking.discard)

    async def recorded(self) -> None:
        """Wait until every alert sent so far is recorded as published (or failed to be)."""
        if self._marking:
            await asyncio.gather(*self._marking)  # _mark_published reports its own failures

    async def update_risk(
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

    async def _mark_published(self, ids: list[str], sends: list[Awaitable[Any]]) -> None:
        """Record a batch's alerts (or dead letters) as published as soon as the broker has
        them, not with the flush: another worker (a cross-borrower cycle seen from both ends)
        or a redelivery checks this record before sending the same one."""
        acknowledged = await asyncio.gather(*sends, return_exceptions=True)
        done = [
            i for i, r in zip(ids, acknowledged, strict=True) if not isinstance(r, BaseException)
        ]
        try:
            await self.published.mark(done)
        except Exception as exc:
            self.degraded.report([f"delivery: could not record published alerts: {exc!r}"])

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
