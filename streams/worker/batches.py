"""Input records in batches straight from Faust's delivery queue, without its per-event stream.

A Faust agent pays about 66 µs of framework per event before any work: an ``Event`` object,
sensors, a context variable, a loop yield and its acknowledgement bookkeeping, one record at a
time. lendwatch handles records in batches anyway, so it takes them from the queue Faust's
conductor fills, as they come in a fetch, and acknowledges a batch when it is done. Faust
still does everything else: group membership, assignment, table recovery, flow control
around rebalances and commits of the acknowledged offsets.

The input topics share one channel, so a batch holds records of every input topic in the
order they were fetched, and all of an input partition's topics move together in event time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import faust
from faust.types import Message
from mode import Service

__all__ = ["InputReader", "InputTopic", "ack", "read_batches", "release"]


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


class InputReader(Service):
    """Hands every input batch to ``handle``; a child service of the app.

    As a child started after table recovery it reads only once state is back; stopping it
    comes before the producer's (children stop in reverse), as an agent's would, after the
    app has waited for the batch in flight. An exception in ``handle`` crashes the worker.
    """

    def __init__(
        self,
        app: faust.App,
        channel: Any,
        max_size: int,
        handle: Callable[[list[Message]], Awaitable[None]],
    ) -> None:
        super().__init__(beacon=app.beacon)
        self.app = app
        self.channel = channel
        self.max_size = max_size
        self.handle = handle

    @Service.task
    async def _read(self) -> None:
        await self.channel.maybe_declare()
        async for messages in read_batches(self.app, self.channel, self.max_size):
            if self.should_stop:
                break
            await self.handle(messages)


async def read_batches(app: faust.App, channel: Any, max_size: int) -> AsyncIterator[list[Message]]:
    """Batches of what the conductor delivered to ``channel``: whatever is queued, up to
    ``max_size``, as soon as there is anything (no waiting to fill a batch: latency).

    Records fetched before a rebalance settled (an older generation, or flow control
    suspended) are not handed out: Faust seeks their partitions back to the committed offset
    and delivers them again. Those handed out are tracked as in flight, so a rebalance waits
    for the batch to be acknowledged (``Consumer.wait_empty``) before it revokes partitions.
    """
    queue = channel.queue
    consumer: Any = app.consumer
    in_flight = consumer._unacked_messages
    flow = app.flow_control
    while True:
        batch = [await queue.get()]
        while len(batch) < max_size and not queue.empty():
            batch.append(queue.get_nowait())
        generation = app.consumer_generation_id
        if not flow.is_active():
            continue
        current = [m for m in batch if m.generation_id == generation]
        for message in current:
            message.tracked = True
            in_flight.add(message)
        if current:
            yield current


def ack(consumer: Any, messages: Iterable[Message]) -> None:
    """Let Faust commit these records (once every earlier offset is acknowledged too).

    Straight to the consumer: a record goes to this one channel, so the reference count
    ``Message.ack`` keeps for records shared by several streams has nothing to count.
    """
    consumer_ack = consumer.ack
    for message in messages:
        consumer_ack(message)


def release(consumer: Any, messages: Iterable[Message]) -> None:
    """Records handed out but not handled (held back behind a gap): no longer in flight, and
    not acknowledged, so they are not committed until they come again and are handled."""
    in_flight = consumer._unacked_messages
    for message in messages:
        in_flight.discard(message)
