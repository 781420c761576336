"""The input reader: batches of input records straight from Faust's delivery queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import Message
from mode import Service

from streams.worker.compat import read_batches

__all__ = ["InputReader"]


class InputReader(Service):
    """Hands every input batch to ``handle``; a child service of the app.

    A Faust agent pays about 66 µs of framework per event before any work: an ``Event``
    object, sensors, a context variable, a loop yield and its acknowledgement bookkeeping, one
    record at a time. lendwatch handles records in batches anyway, so it takes them from the
    queue Faust's conductor fills, as they come in a fetch
    (:func:`~streams.worker.compat.read_batches`); the offsets after a batch are stored once
    the states it changed are written (:class:`~streams.worker.writer.WriteBehind`). Faust
    still does group membership, assignment, table recovery and flow control around
    rebalances; where each input partition is read from is the pipeline's
    (:class:`~streams.worker.offsets.InputOffsets`).

    The input topics share one channel (:class:`~streams.worker.compat.InputTopic`), so a
    batch holds records of every input topic in the order they were fetched, and all of an
    input partition's topics move together in event time.

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
