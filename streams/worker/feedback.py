"""The verdict models in the worker: every worker reads the whole feedback topic, learns the
same models in the same order, and holds back the alerts they say the teams would dismiss.

- :meth:`VerdictFollower.gate` runs on each batch's alerts before they are published: it
  stores what each alert said (its features, under its published id) in Redis, where every
  worker finds it when the verdict comes, and moves the alerts the models hold back to the
  shadow topic with the model's reason.
- :meth:`VerdictFollower.run` reads ``lending.feedback`` with its own consumer, without a
  group, from every partition: each verdict is checked (bad ones dead-lettered, once, with
  the reason), its alert's features read from Redis, and learnt (``detectors.verdicts``).
  Records are applied in (partition, offset) order per fetch; with one partition (as
  ``create-topics`` makes it) that is the topic's order, the same on every worker.
- The models are checkpointed in Redis with the offsets they reflect and restored from
  there at start; each worker publishes its models' version, labels and last update for
  ``lendwatch models``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis

from detectors.engine import BatchResult
from detectors.verdicts import Remembered, VerdictModels
from streams.privacy import Masker
from streams.settings import Settings
from topics.codec import dead_letter, encode_dead_letter
from topics.records import Alert, Feedback
from topics.validate import ContractError, decode_feedback

__all__ = [
    "FEATURES_TTL_SECONDS",
    "DeadLetters",
    "VerdictFollower",
    "feedback_dead_letters",
    "status_key",
]

log = logging.getLogger("lendwatch")

#: How long an alert's features wait in Redis for its verdict.
FEATURES_TTL_SECONDS = 400 * 86_400
#: Pause before reading Redis again when it failed: a verdict is never learnt without them.
RETRY_SECONDS = 1.0

#: Sends refused feedback records to the dead-letter topic: (partition, offset, key, value,
#: reason) each.
DeadLetters = Callable[[list[tuple[int, int, bytes | None, bytes | None, str]]], Awaitable[None]]


def features_key(prefix: str, alert_id: str) -> str:
    return f"{prefix}:verdicts:alert:{alert_id}"


def checkpoint_key(prefix: str) -> str:
    return f"{prefix}:verdicts:checkpoint"


def status_key(prefix: str) -> str:
    """The hash of each worker's models (field: the worker's instance name)."""
    return f"{prefix}:verdicts:workers"


def feedback_dead_letters(pipeline: Any) -> DeadLetters:
    """Refused verdicts to the dead-letter topic through ``pipeline``'s publisher: once
    across workers (every worker reads them; the first one letters them, by their origin)."""
    topic = pipeline.settings.topics.feedback

    async def send(bad: list[tuple[int, int, bytes | None, bytes | None, str]]) -> None:
        received_at = datetime.now(UTC)
        letters = []
        for partition, offset, key, value, reason in bad:
            letter = dead_letter(
                source_topic=topic, partition=partition, offset=offset, key=key, value=value,
                reason=reason, received_at=received_at,
            )  # fmt: skip
            letter_id = f"deadletter:{topic}:{partition}:{offset}"
            target = pipeline.deadletters.partition_for(partition)
            letters.append((letter_id, key, encode_dead_letter(letter), target))
            log.info("dead-lettered %s[%d]@%d: %s", topic, partition, offset, reason)
        acks, degraded = await pipeline.publisher.send_once(pipeline.deadletter_topic, letters)
        await asyncio.gather(*acks)
        pipeline.degraded.report(degraded)
        pipeline.metrics.deadletters.labels(topic).inc(len(bad))

    return send


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts = Counter(
            "lendwatch_verdicts",
            "Verdicts read from lending.feedback, by what became of them",
            ["outcome"],
            registry=registry,
        )
        self.held = Counter(
            "lendwatch_alerts_held",
            "Alerts the verdict models held back (sent to alerts.shadow)",
            ["category"],
            registry=registry,
        )
        self.labels = Gauge(
            "lendwatch_verdict_labels", "Labels the verdict models learnt", registry=registry
        )


class VerdictFollower:
    """The verdict models of one worker, fed from the whole feedback topic."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        registry: CollectorRegistry,
        dead_letters: DeadLetters,
    ) -> None:
        self.settings, self.redis = settings, redis
        self.prefix = settings.redis_prefix
        self.topic = settings.topics.feedback
        self.masker = Masker.from_settings(settings)
        self.models = VerdictModels()
        self.metrics = _Metrics(registry)
        self.dead_letters = dead_letters
        self.instance = settings.group_instance_id or f"{socket.gethostname()}-{os.getpid()}"
        #: Next offset to read of each feedback partition: what the models reflect.
        self.offsets: dict[int, int] = {}
        self.ready = asyncio.Event()

    # --- alerts ------------------------------------------------------------------------

    async def gate(self, result: BatchResult) -> None:
        """Remember the batch's alerts for their verdicts, and move those the models hold
        back to ``result.shadow_alerts`` with the model's reason."""
        if not result.alerts:
            return
        kept: list[Alert] = []
        features: dict[str, bytes] = {}
        for alert in result.alerts:
            masked = self.masker.alert(alert)
            remembered = self.models.describe(masked)
            features[masked.alert_id] = orjson.dumps(remembered.to_json())
            judgement = self.models.judge(masked, remembered)
            if judgement.hold and judgement.reason is not None:
                held = copy.copy(alert)
                held.reasons = [*alert.reasons, judgement.reason]
                result.shadow_alerts.append(held)
                self.metrics.held.labels(alert.category).inc()
                log.info("held back %s: %s", masked.alert_id, judgement.reason.message)
            else:
                kept.append(alert)
        result.alerts = kept
        try:  # before the alerts are published: no verdict can come before its features
            async with self.redis.pipeline(transaction=False) as pipe:
                for alert_id, value in features.items():
                    pipe.set(features_key(self.prefix, alert_id), value, ex=FEATURES_TTL_SECONDS)
                await pipe.execute()
        except Exception as exc:  # their verdicts will count as unknown on every worker
            result.degraded.append(f"verdicts: alert features not stored: {exc!r}")

    # --- verdicts ----------------------------------------------------------------------

    async def follow(self) -> None:
        """:meth:`run` for ever, started again after a failure (the broker away at start)."""
        while True:
            try:
                await self.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("verdicts: the feedback reader failed; starting it again")
                await asyncio.sleep(RETRY_SECONDS)

    async def run(self) -> None:
        """Read the whole feedback topic until cancelled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            await self._restore()
            await self._assign(consumer)
            await self._publish_status()
            self.ready.set()
            while True:
                fetched = await consumer.getmany(timeout_ms=500, max_records=500)
                records = sorted(
                    (record for batch in fetched.values() for record in batch),
                    key=lambda record: (record.partition, record.offset),
                )
                if records:
                    await self.apply(records)
        finally:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        """Every partition of the feedback topic, from the checkpoint's offsets."""
        partitions: set[int] | None = None
        while not partitions:
            await consumer.topics()  # refreshes the metadata
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                await asyncio.sleep(RETRY_SECONDS)
        if len(partitions) > 1:
            log.warning(
                "%s has %d partitions: workers may learn verdicts of different partitions in "
                "a different order; create it with one (lendwatch create-topics does)",
                self.topic,
                len(partitions),
            )
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if tp.partition in self.offsets:
                consumer.seek(tp, self.offsets[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)

    async def apply(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Check and learn ``records`` in order; bad ones dead-lettered; then checkpoint."""
        verdicts: list[Feedback] = []
        bad = []
        for record in records:
            try:
                verdicts.append(decode_feedback(record.key, record.value))
            except ContractError as exc:
                bad.append((record.partition, record.offset, record.key, record.value, str(exc)))
        remembered = await self._features([verdict.alert_id for verdict in verdicts])
        for verdict in verdicts:
            outcome = self.models.learn(verdict, remembered.get(verdict.alert_id))
            self.metrics.verdicts.labels(outcome).inc()
        if bad:
            mine = await self._claim(bad)
            if mine:
                await self.dead_letters(mine)
            self.metrics.verdicts.labels("dead_lettered").inc(len(bad))
        for record in records:
            self.offsets[record.partition] = record.offset + 1
        self.metrics.labels.set(self.models.labels)
        await self._checkpoint()
        await self._publish_status()

    async def _claim(
        self, bad: list[tuple[int, int, bytes | None, bytes | None, str]]
    ) -> list[tuple[int, int, bytes | None, bytes | None, str]]:
        """The refused records this worker letters: every worker reads them, the first to
        claim one in Redis letters it (all of them when Redis is away: at least once)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for partition, offset, *_ in bad:
                    key = f"{self.prefix}:verdicts:lettered:{partition}:{offset}"
                    pipe.set(key, self.instance, nx=True, ex=FEATURES_TTL_SECONDS)
                claimed = await pipe.execute()
        except Exception as exc:
            log.warning("verdicts: dead letters not claimed, sending them: %r", exc)
            return bad
        return [record for record, won in zip(bad, claimed, strict=True) if won]

    async def _features(self, alert_ids: list[str]) -> dict[str, Remembered]:
        """The stored features of these alerts; waits out a Redis outage (learning without
        them would make this worker's models differ from the others')."""
        if not alert_ids:
            return {}
        keys = [features_key(self.prefix, alert_id) for alert_id in alert_ids]
        while True:
            try:
                values = await self.redis.mget(keys)
                break
            except Exception as exc:
                log.warning("verdicts: alert features not read, retrying: %r", exc)
                await asyncio.sleep(RETRY_SECONDS)
        return {
            alert_id: Remembered.from_json(orjson.loads(value))
            for alert_id, value in zip(alert_ids, values, strict=True)
            if value is not None
        }

    # --- checkpoints and status ----------------------------------------------------------

    async def _restore(self) -> None:
        """The last checkpoint any worker stored: models and the offsets they reflect."""
        stored = await self.redis.hgetall(checkpoint_key(self.prefix))
        if not stored:
            return
        self.models = VerdictModels.restore(cast(bytes, stored[b"snapshot"]))
        self.offsets = {int(p): int(o) for p, o in orjson.loads(stored[b"offsets"]).items()}
        log.info("verdict models %s restored at offsets %s", self.models.version, self.offsets)

    async def _checkpoint(self) -> None:
        """Store the models with their offsets, unless a checkpoint further on is stored (any
        worker's is as good: they learn the same models from the same verdicts)."""
        key = checkpoint_key(self.prefix)
        try:
            stored = await self.redis.hget(key, "offsets")
            if stored is not None and sum(orjson.loads(stored).values()) >= sum(
                self.offsets.values()
            ):
                return
            await self.redis.hset(
                key,
                mapping={
                    "snapshot": self.models.snapshot(with_alerts=False),
                    "offsets": orjson.dumps({str(p): o for p, o in self.offsets.items()}),
                    "version": self.models.version,
                },
            )
        except Exception as exc:  # the next batch of verdicts tries again
            log.warning("verdicts: checkpoint not stored: %r", exc)

    def status(self) -> dict[str, Any]:
        """What ``lendwatch models`` shows of this worker's models."""
        last = self.models.last_update
        return {
            "instance": self.instance,
            "version": self.models.version,
            "state": self.models.state_digest(),
            "labels": self.models.labels,
            "last_update": None if last is None else last.isoformat(),
            "published_at": time.time(),
            "offsets": {str(p): o for p, o in self.offsets.items()},
            "verdicts": dict(self.models.counts),
            "categories": self.models.describe_models(),
        }

    async def _publish_status(self) -> None:
        try:
            await self.redis.hset(
                status_key(self.prefix), self.instance, orjson.dumps(self.status())
            )
        except Exception as exc:
            log.warning("verdicts: status not published: %r", exc)
