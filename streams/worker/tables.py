"""Borrower states and detector models in the worker: the Faust tables and their changelogs."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP, TableT

from detectors.engine import BatchResult, Engine
from detectors.state import BorrowerState
from streams.settings import Settings

__all__ = [
    "CLOCK_KEY",
    "MODEL_TABLE",
    "STATE_TABLE",
    "ModelCheckpoints",
    "TableStateStore",
    "changelogged_table",
]

log = logging.getLogger("lendwatch")

STATE_TABLE = "borrower-state"
MODEL_TABLE = "model-checkpoints"
#: Key prefix of the event-time clock positions in the model table.
CLOCK_KEY = "clock"


class TableStateStore:
    """Borrower states in the worker: every one in the table as its changelog record (about
    2 KB, :meth:`BorrowerState.to_bytes`), the ones in use decoded in a bounded cache.

    Decoded, a state takes about ten times its record (every number and string is a Python
    object), so only the ``hot_states`` most recently used stay decoded; the others are
    decoded again when an event or a timer needs them. A state changed since the last write
    stays decoded until it is written (:meth:`send`), so no change is ever dropped.
    """

    def __init__(self, table: TableT[str, bytes], hot_states: int) -> None:
        self.table = table
        self.hot_states = hot_states
        self._hot: OrderedDict[str, BorrowerState] = OrderedDict()

    def get(self, borrower_id: str) -> BorrowerState | None:
        state = self._hot.get(borrower_id)
        if state is not None:
            self._hot.move_to_end(borrower_id)
            return state
        record = self.table.data.get(borrower_id)
        if record is None:
            return None
        state = self._hot[borrower_id] = BorrowerState.from_bytes(record)
        return state

    def put(self, borrower_id: str, state: BorrowerState) -> None:
        self._hot[borrower_id] = state

    def states_in_partition(self, partition: int) -> Iterable[BorrowerState]:
        """Every state of ``partition``, decoded (a day close or a takeover reads them all)."""
        hot = self._hot
        found = [state for state in hot.values() if state.partition == partition]
        for borrower_id, record in list(self.table.data.items()):
            if borrower_id not in hot and BorrowerState.partition_of(record) == partition:
                state = hot[borrower_id] = BorrowerState.from_bytes(record)
                found.append(state)
        return found

    def forget_partition(self, partition: int) -> None:
        """A partition now owned elsewhere: its decoded states would go stale here."""
        for borrower_id in [k for k, s in self._hot.items() if s.partition == partition]:
            del self._hot[borrower_id]

    @property
    def decoded(self) -> int:
        return len(self._hot)

    def encode(self, states: dict[str, BorrowerState]) -> list[tuple[bytes, bytes, int]]:
        """One changelog record per borrower (key, value, the partition its events come
        from), as the states are now: sent later (:meth:`send`), once the alerts before them
        are acknowledged. Called with every state changed since the last call, so afterwards
        any decoded state may be let go."""
        data = self.table.data
        records = []
        for borrower_id, state in states.items():
            record = data[borrower_id] = state.to_bytes()
            records.append((borrower_id.encode(), record, state.partition))
        hot = self._hot
        while len(hot) > self.hot_states:
            hot.popitem(last=False)
        return records

    async def send(
        self, producer: Any, records: list[tuple[bytes, bytes, int]]
    ) -> list[Awaitable[Any]]:
        """Hand records of :meth:`encode` to the producer; returns the broker's
        acknowledgements to wait for.

        Straight to the producer: Faust's ``Topic.send`` costs about as much again per record
        in its own bookkeeping.
        """
        topic = self.table.changelog_topic.get_topic_name()
        send = producer.send
        return [
            await send(topic, key, value, partition, None, None)
            for key, value, partition in records
        ]


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
        #: Per partition, the state records of the last flush confirmed here (:meth:`with_states`).
        self._spans: dict[int, list[int]] = {}
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
                    if "watermark" not in position:
                        continue  # offsets of a partition whose event time never moved
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
        self._spans.pop(partition, None)
        for key in [key for key in self._written if key[1] == partition]:
            del self._written[key]

    def stored_offsets(self, partition: int) -> dict[str, int]:
        """The next offset to apply of each input topic of ``partition``, as stored with its
        state (none for a partition never written)."""
        value = self.table.data.get(f"{CLOCK_KEY}:{partition}")
        if value is None:
            return {}
        return dict(orjson.loads(value).get("offsets", {}))

    def deadletters_from(self, partition: int) -> int | None:
        """Where in its dead-letter partition the letters sent after ``partition``'s stored
        offsets start (None: not known, from the first one)."""
        value = self.table.data.get(f"{CLOCK_KEY}:{partition}")
        if value is None:
            return None
        start: int | None = orjson.loads(value).get("deadletters_from")
        return start

    def positions(
        self,
        partitions: Iterable[int],
        offsets: Mapping[TP, int],
        deadletter_ends: Mapping[int, int] | None = None,
    ) -> list[tuple[str, bytes, int]]:
        """The records of where ``partitions`` stand, as they are now: how far each stream has
        come in event time and, per input topic, the next offset to apply (``offsets``, the
        records applied since the last call; the others as stored). Written after the states
        (:meth:`send`): a restarted worker then starts its clock no later than its states
        (see :meth:`EventTimeClock.resume`) and reads on from where its states stop.
        ``deadletter_ends``: each partition's dead-letter partition's end offset before any
        record after these offsets was lettered (see :class:`DeadLetterLog`)."""
        moved: dict[int, dict[str, int]] = {partition: {} for partition in partitions}
        for tp, offset in offsets.items():
            moved.setdefault(tp.partition, {})[tp.topic] = offset
        records = []
        for partition, applied in sorted(moved.items()):
            key = f"{CLOCK_KEY}:{partition}"
            stored = self.table.data.get(key)
            record: dict[str, Any] = orjson.loads(stored) if stored is not None else {}
            record.update(self.engine.clock.position(partition) or {})
            record["offsets"] = {**record.get("offsets", {}), **applied}
            if deadletter_ends and partition in deadletter_ends:
                record["deadletters_from"] = deadletter_ends[partition]
            value = self.table.data[key] = orjson.dumps(record)
            records.append((key, value, partition))
        return records

    def with_states(
        self, records: list[tuple[str, bytes, int]], acks: Iterable[Any]
    ) -> list[tuple[str, bytes, int]]:
        """``records`` of :meth:`positions`, each naming the state records its partition's
        flush wrote (``acks``: the broker's acknowledgements, with partition and offset), as
        ``"states": [first, last]`` offsets of the state changelog partition: restoring the
        partition makes sure the table holds them (:meth:`complete_states`). A partition
        whose flush wrote no state keeps the span stored before."""
        spans: dict[int, list[int]] = {}
        for ack in acks:
            span = spans.setdefault(ack.partition, [ack.offset, ack.offset])
            span[0], span[1] = min(span[0], ack.offset), max(span[1], ack.offset)
        # Flushes are confirmed one after another: the latest span of each partition here is
        # its last flush's, which :meth:`positions` (run when the flush began, maybe before
        # the one before it was confirmed) may not have seen in the table yet.
        self._spans.update(spans)
        # States written with no position of their own (a timer round changes states and
        # moves no offset) get one naming them too, or a successor would read back older
        # ones over them.
        given = {partition: (key, value) for key, value, partition in records}
        for partition in sorted(spans.keys() - given.keys()):
            key = f"{CLOCK_KEY}:{partition}"
            given[partition] = (key, self.table.data.get(key) or b"{}")
        named = []
        for partition, (key, value) in given.items():
            if partition in self._spans:
                record = orjson.loads(value)
                record["states"] = self._spans[partition]
                value = self.table.data[key] = orjson.dumps(record)
            named.append((key, value, partition))
        return named

    async def complete_states(
        self, partitions: Iterable[int], states: TableStateStore, bootstrap_servers: str
    ) -> None:
        """Before a partition is restored: read the state records its stored position names
        (:meth:`with_states`) straight from the changelog into the table. Faust recovers a
        table up to the offset the broker reports as the partition's end; a broker that
        reports less (Tansu reports the last batch's first offset plus one) leaves the tail
        of the previous owner's last states out, while the position written after them is
        read: the partition would go on from offsets whose states it lacks."""
        taken_over = set(partitions) - self._restored
        if not taken_over:
            return  # the usual batch: nothing to restore
        topic = states.table.changelog_topic.get_topic_name()
        for partition in sorted(taken_over):
            stored = self.table.data.get(f"{CLOCK_KEY}:{partition}")
            span = orjson.loads(stored).get("states") if stored is not None else None
            if not span:
                continue
            records = await read_span(bootstrap_servers, TP(topic, partition), *span)
            for key, value in records:
                states.table.data[key.decode()] = value
            if len(records) < span[1] - span[0] + 1:
                log.warning(
                    "partition %d: %d of the state records %s read back",
                    partition,
                    len(records),
                    span,
                )

    async def send(self, records: list[tuple[str, bytes, int]]) -> list[Awaitable[Any]]:
        """Hand records of :meth:`positions` to the producer; returns the broker's
        acknowledgements to wait for."""
        return [
            await self.table.changelog_topic.send(
                key=key,
                value=value,
                partition=partition,
                key_serializer="raw",
                value_serializer="raw",
            )
            for key, value, partition in records
        ]

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


def changelogged_table(app: faust.App, settings: Settings, name: str, value_serializer: str) -> Any:
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


async def read_span(
    bootstrap_servers: str, tp: TP, first: int, last: int, timeout: float = 10.0
) -> list[tuple[bytes, bytes]]:
    """The records of ``tp`` from offset ``first`` to ``last``, keyed, read until ``last``
    is seen (not until the end the broker reports) or ``timeout`` passes."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[tuple[bytes, bytes]] = []
    try:
        partition = TopicPartition(tp.topic, tp.partition)
        consumer.assign([partition])
        consumer.seek(partition, first)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(partition, timeout_ms=500)
            for message in batches.get(partition, []):
                if first <= message.offset <= last and message.key and message.value:
                    records.append((message.key, message.value))
                if message.offset >= last:
                    return records
    finally:
        await consumer.stop()
    return records
