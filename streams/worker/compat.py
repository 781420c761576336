"""Every use of Faust, mode and aiokafka internals, checked against the versions named below."""

# Checked against faust-streaming 0.15.3, mode-streaming 0.7.1 and aiokafka 0.14.0 (CHECKED):
# importing this module with any other version installed raises IncompatibleFramework. Before
# adding a version to CHECKED, read each use below against that version's source. Nothing
# outside this module touches a private name of these packages (tests/test_layout.py).

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Mapping,
)
from importlib.metadata import PackageNotFoundError, version
from typing import Any, cast

import faust
from faust.tables import TableManager as FaustTableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

__all__ = [
    "CHECKED",
    "App",
    "IncompatibleFramework",
    "InputTopic",
    "QuietWorker",
    "TableManager",
    "check_versions",
    "commit",
    "deliver_eagerly",
    "fetch_positions",
    "held_back_partitions",
    "log_starts",
    "paused_partitions",
    "read_batches",
    "seek",
]

#: Installed distributions whose internals this module uses, and the versions it was checked
#: against.
CHECKED: dict[str, tuple[str, ...]] = {
    "faust-streaming": ("0.15.3",),
    "mode-streaming": ("0.7.1",),
    "aiokafka": ("0.14.0",),
}


class IncompatibleFramework(RuntimeError):
    """An installed Faust, mode or aiokafka this module was not checked against."""


def check_versions(installed: Mapping[str, str | None] | None = None) -> None:
    """Refuse versions not in :data:`CHECKED`: their internals may differ, and a worker whose
    seeks or fetch loop misread them loses or repeats records silently.

    ``installed`` overrides what is found installed (a test's fake versions).
    """
    found: dict[str, str | None] = {name: _installed(name) for name in CHECKED}
    found.update(installed or {})
    wrong = [
        f"{name} {found[name] or '(not installed)'} (checked: {', '.join(checked)})"
        for name, checked in CHECKED.items()
        if found[name] not in checked
    ]
    if wrong:
        raise IncompatibleFramework(
            f"{__name__} uses internals of Faust, mode and aiokafka and was not checked "
            f"against {'; '.join(wrong)}. Install the checked versions, or read every use in "
            f"{__file__} against the installed ones and add them to CHECKED."
        )


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


check_versions()


# --- The app and its transport -----------------------------------------------------------


class App(faust.App):
    """Faust's app on a transport whose consumer delivers eagerly and fetches as configured,
    and seeks the input partitions where the app says (``position_inputs``).

    Faust creates the consumer with ``fetch_max_wait_ms=1500`` whatever the app says. A broker
    answers an empty fetch after at most that long; Apache Kafka answers as soon as a record
    arrives, Tansu only after about half the wait, which put most of a second of latency on
    every quiet-time event. ``LW_FETCH_MAX_WAIT_MS`` sets it, and ``LW_FETCH_MIN_BYTES`` how
    much a fetch waits for.
    """

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int = 1500, fetch_min_bytes: int = 1, **kwargs: Any
    ) -> None:
        kwargs.setdefault("TableManager", TableManager)
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        #: Work to finish before Faust waits for records in flight (see Consumer.wait_empty).
        self.finish_in_flight: Callable[[], Awaitable[None]] | None = None
        #: Seeks the assigned input partitions after table recovery (see Consumer.perform_seek).
        self.position_inputs: Callable[[set[TP]], Awaitable[None]] | None = None
        #: Topics read in order by the app itself: Faust's fetch loop drops none of their records.
        self.input_topics: frozenset[str] = frozenset()

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        consumer.fetch_max_wait_ms = self.fetch_max_wait_ms
        consumer.fetch_min_bytes = self.fetch_min_bytes
        return consumer


class TableManager(FaustTableManager):
    """Faust's table manager, without the second it sleeps at start before finalising the
    tables (TableManager.on_start: ``sleep(1.0)``, "wait for tables to be registered").

    The worker declares its tables in ``create_app``, before the app starts: there is nothing
    to wait for, and the second was a tenth of a worker's start to its first batch. The setting
    ``TableManager`` is Faust's documented way to replace the class.
    """

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def deliver_eagerly(delivery: Awaitable[None]) -> Awaitable[None] | None:
    """Run ``delivery`` up to its first wait. None if it finished; otherwise an awaitable
    that finishes it (for ``wait_first``, which may cancel it when flow is suspended)."""
    if not isinstance(delivery, Coroutine):
        return delivery
    try:
        waiting_on = delivery.send(None)
    except StopIteration:
        return None
    return _finish(delivery, waiting_on)


async def _finish(delivery: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _resume(delivery, waiting_on)


@types.coroutine
def _resume(delivery: Coroutine[Any, Any, None], waiting_on: Any) -> Generator[Any, None, None]:
    """Drive a coroutine already started by :func:`deliver_eagerly`, as a task would: yield
    what it waits on to the task running this, then resume it (or throw into it)."""
    while True:
        try:
            yield waiting_on
        except BaseException as exc:  # cancellation or an error thrown in: pass it on
            try:
                waiting_on = delivery.throw(exc)
            except StopIteration:
                return
            continue
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the eager fetch loop and the configured fetch wait.

    Faust's fetch loop hands each record to the conductor through
    ``Service.wait_first(callback(message), suspend_flow.wait())``, which wraps the delivery,
    the suspend event and the service's stopped and crashed events in four asyncio tasks and an
    ``asyncio.wait``, for every record: about 12 % of the worker's main thread in a py-spy
    profile of the benchmark. Delivery nearly always completes without waiting (the record goes
    into a queue), so it is run one step eagerly (:func:`deliver_eagerly`); only a delivery
    that has to wait (flow control, a full queue) goes the ``wait_first`` way, unchanged.
    """

    fetch_max_wait_ms = 1500
    fetch_min_bytes = 1

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_empty(self) -> None:
        """Faust waits here, before a rebalance or a stop, for every record in flight to be
        acknowledged; the app's work that acknowledges records (``App.finish_in_flight``) is
        finished first rather than waited for."""
        finish = cast(App, self.app).finish_in_flight
        if finish is not None:
            try:
                await finish()
            except Exception:  # unacknowledged records are delivered again: at least once
                self.log.exception("could not finish the work in flight")
        await super().wait_empty()

    async def perform_seek(self) -> None:
        """After table recovery, at every assignment: Faust seeks every partition to its
        committed offset (aiokafka skips one never committed), then the app seeks the input
        partitions to the offsets stored with their state (``App.position_inputs``)."""
        await super().perform_seek()
        position = cast(App, self.app).position_inputs
        if position is not None:
            await position(set(self.assignment()))

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        """Faust's ``Consumer._drain_messages`` (faust-streaming 0.15) with the delivery run
        eagerly, and every record of the app's input topics delivered: Faust drops a record
        below its read offset, which a seek racing this loop leaves wrong, and the app reads
        those topics in order itself (``App.input_topics``). Every other step as it is there."""
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        in_order = cast(App, self.app).input_topics
        suspend_flow = self.suspend_flow
        yield_every = 100
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                records = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in records:
                        since_yield += 1
                        if since_yield > yield_every:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        r_offset = None if tp.topic in in_order else get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if suspend_flow.is_set():
                                await self.wait_first(callback(message), suspend_flow.wait())
                            else:
                                rest = deliver_eagerly(callback(message))
                                if rest is not None:
                                    await self.wait_first(rest, suspend_flow.wait())
                            set_read_offset(tp, offset)
                    unset_flag(flag_consumer_fetching)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka when the consumer starts and builds its fetcher.
        settings = cast(Consumer, self.consumer)
        consumer._fetch_max_wait_ms = settings.fetch_max_wait_ms
        consumer._fetch_min_bytes = settings.fetch_min_bytes
        return consumer


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class QuietWorker(faust.Worker):
    """A worker that does not turn the root logger to DEBUG for its spinner (20–38 µs/event)."""

    def _setup_spinner_handler(self, logger: logging.Logger, level: int) -> None:
        return None


# --- Input records from the conductor's queue --------------------------------------------


class InputTopic(faust.Topic):
    """A topic whose channel queues Faust's :class:`Message` itself, not an ``Event``.

    The conductor calls the channel's ``decode`` for every record; keys and values stay
    bytes here and are decoded by the pipeline, which dead-letters what it cannot read.
    """

    def _compile_decode(self) -> None:
        # The conductor queues what decode returns; the reader expects Messages.
        self.decode = self._message_itself  # type: ignore[method-assign, assignment]

    async def _message_itself(self, message: Message, *, propagate: bool = False) -> Message:
        return message


async def read_batches(app: faust.App, channel: Any, max_size: int) -> AsyncIterator[list[Message]]:
    """Batches of what the conductor delivered to ``channel``: whatever is queued, up to
    ``max_size``, as soon as there is anything (no waiting to fill a batch: latency).

    Records fetched before a rebalance settled (an older generation, or flow control
    suspended) are not handed out: the partition's new owner seeks it to the offsets stored
    with its state, and the app's in-order check fetches again whatever was dropped. Nothing
    is tracked as in flight: a rebalance first finishes the app's work (``Consumer.wait_empty``
    runs ``App.finish_in_flight``), which stores the offsets of what it applied.
    """
    queue = channel.queue
    flow = app.flow_control
    while True:
        batch = [await queue.get()]
        while len(batch) < max_size and not queue.empty():
            batch.append(queue.get_nowait())
        generation = app.consumer_generation_id
        if not flow.is_active():
            continue
        current = [m for m in batch if m.generation_id == generation]
        if current:
            yield current


# --- Flow control, read ---------------------------------------------------------------------


def paused_partitions(consumer: Any) -> set[TP]:
    """Partitions the consumer does not fetch (paused around a rebalance or by the app)."""
    return set(consumer._paused_partitions)


def held_back_partitions(consumer: Any) -> set[TP]:
    """Partitions flow control stopped fetching until a stream's buffer drains."""
    return set(getattr(consumer, "_buffered_partitions", ()))


# --- aiokafka's own thread ---------------------------------------------------------------


def fetch_positions(consumer: Any, tps: set[TP]) -> dict[TP, int | None]:
    """The offset aiokafka fetches next for each partition (None: not known)."""
    subscription = consumer._thread._ensure_consumer()._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    positions: dict[TP, int | None] = {}
    for tp in tps:
        state = assignment.state_value(tp) if assignment is not None else None
        positions[tp] = state.position if state is not None else None
    return positions


async def log_starts(consumer: Any, tps: list[TP]) -> dict[TP, int]:
    """The first offset each partition still holds (asked of the broker, in aiokafka's
    thread as :func:`seek` is)."""
    fetcher = consumer._thread
    starts = await fetcher.call_thread(fetcher._ensure_consumer().beginning_offsets, tps)
    return {TP(tp.topic, tp.partition): offset for tp, offset in starts.items()}


async def seek(consumer: Any, tp: TP, offset: int) -> None:
    """Fetch ``tp`` from ``offset`` next, as Faust's ``Consumer.seek`` means to.

    Faust's seek calls aiokafka from the worker's thread while aiokafka runs in a thread of
    its own; during fetching that corrupts aiokafka's fetched-records map (``KeyError`` in
    ``Fetcher.fetched_records``, the fetcher crashes). The seek is made in aiokafka's thread.
    """
    fetcher = consumer._thread
    await fetcher.call_thread(fetcher._ensure_consumer().seek, tp, offset)
    consumer._read_offset[tp] = offset


async def commit(consumer: Any, offsets: Mapping[TP, int]) -> bool:
    """Commit ``offsets`` (the next offset to read) for the consumer group, in aiokafka's
    thread, as Faust commits; partitions no longer assigned are left out. Only lag tooling
    reads them: the worker reads where the offsets stored with its state say."""
    committed: bool = await consumer._thread.commit(offsets)
    return committed
