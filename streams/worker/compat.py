"""Faust's Kafka transport with two costs taken out of the consumer's hot path.

- **Delivery without four tasks per record.** Faust's fetch loop hands each record to the
  conductor through ``Service.wait_first(callback(message), suspend_flow.wait())``, which
  wraps the delivery, the suspend event and the service's stopped and crashed events in four
  asyncio tasks and an ``asyncio.wait``, for every record: about 12 % of the worker's main
  thread in a py-spy profile of the benchmark. Delivery nearly always completes without
  waiting (the record goes into a queue), so it is run one step eagerly; only a delivery that
  has to wait (flow control, a full queue) goes the ``wait_first`` way, unchanged.
- **A fetch wait that is a setting.** Faust creates the consumer with ``fetch_max_wait_ms=1500``
  whatever the app says. A broker answers an empty fetch after at most that long; Apache Kafka
  answers as soon as a record arrives, Tansu only after about half the wait, which put most
  of a second of latency on every quiet-time event. ``LW_FETCH_MAX_WAIT_MS`` sets it, and
  ``LW_FETCH_MIN_BYTES`` how much a fetch waits for.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["App", "deliver_eagerly"]


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
    """Faust's aiokafka consumer with the eager fetch loop and the configured fetch wait."""

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

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover
        """Faust's ``Consumer._drain_messages`` (faust-streaming 0.15) with the delivery run
        eagerly; every other step as it is there."""
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
                        r_offset = get_read_offset(tp)
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


class App(faust.App):
    """The lendwatch worker's Faust app: Faust's, on the transport above."""

    def __init__(
        self, *args: Any, fetch_max_wait_ms: int = 1500, fetch_min_bytes: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        #: Work to finish before Faust waits for records in flight (see Consumer.wait_empty).
        self.finish_in_flight: Callable[[], Awaitable[None]] | None = None

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        consumer.fetch_max_wait_ms = self.fetch_max_wait_ms
        consumer.fetch_min_bytes = self.fetch_min_bytes
        return consumer
