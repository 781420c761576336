"""Write-behind of borrower states, then where each input partition stands, then the commit."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, cast

import faust
from faust.types import TP

from detectors.state import BorrowerState
from streams.worker.compat import commit
from streams.worker.deadletters import DeadLetterLog
from streams.worker.tables import ModelCheckpoints, TableStateStore

__all__ = ["MAX_UNWRITTEN_STATES", "WriteBehind"]

log = logging.getLogger("lendwatch")

#: Changed states written at once when this many wait (bounds memory and a flush's pause).
MAX_UNWRITTEN_STATES = 5_000


class WriteBehind:
    """Changed states written behind the batches, and the input offsets stored with them.

    The way of an input offset to storage: the pipeline applies the record's batch and hands
    the next offset of each partition here (:meth:`records_handled`) with the states, clock
    positions and alerts the batch changed. States are collected over batches and written
    together every ``flush_every`` seconds (a borrower touched by many batches is written
    once). :meth:`flush` takes them as they are; :meth:`_confirm`, off the batch path and one
    flush after another, waits until the broker has the alerts, then sends the states and
    waits for them, then the partitions' records (event-time position and next offsets, in the
    changelogged model table, :meth:`ModelCheckpoints.positions`) and waits for them, and only
    then commits the same offsets to the consumer group, which lag tooling reads.

    So the stored offsets never pass a record whose state or alerts the broker does not have:
    a crash anywhere in between makes the next owner read from the offsets stored before, the
    engine skips what a written state already reflects, and alerts already published are not
    sent again. The caller runs one batch, timer round or flush at a time.
    """

    def __init__(
        self,
        app: faust.App,
        store: TableStateStore,
        checkpoints: ModelCheckpoints,
        flush_every: float,
        deadletters: DeadLetterLog | None = None,
    ) -> None:
        self.app = app
        self.deadletters = deadletters
        self.store = store
        self.checkpoints = checkpoints
        self.flush_every = flush_every
        # States changed since the last flush, the partitions whose event time moved, the
        # next offsets to apply and the alerts sent before them, none yet written.
        self._unwritten: dict[str, BorrowerState] = {}
        self._clocks_moved: set[int] = set()
        self._offsets: dict[TP, int] = {}
        self._unconfirmed_alerts: list[Awaitable[Any]] = []
        self._confirming: asyncio.Future[None] | None = None
        self._last_flush = time.monotonic()

    def states_changed(self, states: dict[str, BorrowerState]) -> None:
        self._unwritten.update(states)

    def clocks_moved(self, partitions: Iterable[int]) -> None:
        self._clocks_moved.update(partitions)

    def alerts_sent(self, sends: list[Awaitable[Any]]) -> None:
        """Alerts handed to the producer: the states of their flush are sent after them."""
        self._unconfirmed_alerts += sends

    def records_handled(self, offsets: Mapping[TP, int]) -> None:
        """The next offset to apply of each partition, after a batch."""
        self._offsets.update(offsets)

    def due(self) -> bool:
        return (
            len(self._unwritten) >= MAX_UNWRITTEN_STATES
            or time.monotonic() - self._last_flush >= self.flush_every
        )

    async def flush(self) -> None:
        """Take the changed states, clock positions and offsets as they are now; they are
        sent and acknowledged in order by :meth:`_confirm`, off the batch path."""
        self._last_flush = time.monotonic()
        unwritten, self._unwritten = self._unwritten, {}
        moved, self._clocks_moved = self._clocks_moved, set()
        offsets, self._offsets = self._offsets, {}
        alerts, self._unconfirmed_alerts = self._unconfirmed_alerts, []
        states = self.store.encode(unwritten)
        ends = await self._deadletter_ends(moved | {tp.partition for tp in offsets})
        positions = self.checkpoints.positions(moved, offsets, ends)
        if not states and not positions and not alerts:
            return
        confirming = asyncio.ensure_future(
            self._confirm(self._confirming, alerts, states, positions, offsets)
        )
        confirming.add_done_callback(self._on_confirmed)
        self._confirming = confirming

    async def _deadletter_ends(self, partitions: set[int]) -> dict[int, int]:
        """The dead-letter partitions' ends now, before any later batch letters a record: a
        restart reads from there. Unknown (the broker away) keeps the ends stored before,
        which are earlier: a longer read, still exact."""
        if self.deadletters is None or not partitions:
            return {}
        try:
            return await self.deadletters.ends(partitions)
        except Exception as exc:
            log.warning("dead-letter ends unknown, the stored ones kept: %r", exc)
            return {}

    async def confirmed(self) -> None:
        """Wait until every flush so far is written, its offsets stored and committed."""
        if self._confirming is not None:
            await self._confirming

    async def _confirm(
        self,
        previous: asyncio.Future[None] | None,
        alerts: list[Awaitable[Any]],
        states: list[tuple[bytes, bytes, int]],
        positions: list[tuple[str, bytes, int]],
        offsets: dict[TP, int],
    ) -> None:
        """After the flushes before it: alerts acknowledged, then states sent and acknowledged,
        then the partitions' offsets stored and acknowledged, then committed."""
        if previous is not None:
            await previous
        await asyncio.gather(*alerts)
        acks = await asyncio.gather(*await self.store.send(self.app.producer, states))
        positions = self.checkpoints.with_states(positions, acks)
        await asyncio.gather(*await self.checkpoints.send(positions))
        if offsets:
            await commit(self.app.consumer, offsets)

    def _on_confirmed(self, confirming: asyncio.Future[None]) -> None:
        """A flush the broker refused (no more retries) leaves its offsets unstored for good:
        stop the worker, whose successor reads those records again (at least once)."""
        if self._confirming is confirming:
            self._confirming = None
        if confirming.cancelled() or confirming.exception() is None:
            return
        exc = confirming.exception()
        if self.app.should_stop:
            log.warning("stopping before the broker confirmed a write; read again: %r", exc)
            return
        log.error("could not write states or alerts; stopping: %r", exc)
        asyncio.ensure_future(self.app.crash(cast(BaseException, exc)))
