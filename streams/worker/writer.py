"""Write-behind of borrower states, and when the input records behind them are acknowledged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any, cast

import faust
from faust.types import Message

from detectors.state import BorrowerState
from streams.worker.compat import ack
from streams.worker.tables import ModelCheckpoints, TableStateStore

__all__ = ["MAX_UNWRITTEN_STATES", "WriteBehind"]

log = logging.getLogger("lendwatch")

#: Changed states written at once when this many wait (bounds memory and a flush's pause).
MAX_UNWRITTEN_STATES = 5_000


class WriteBehind:
    """Changed states written behind the batches, and the input records they let Faust commit.

    The way of an input offset to its commit: the pipeline handles the record's batch and
    hands the records it handled here (:meth:`records_handled`) with the states, clock
    positions and alerts the batch changed. States are collected over batches and written
    together every ``flush_every`` seconds (a borrower touched by many batches is written
    once): :meth:`flush` hands them to the producer, and :meth:`_confirm`, off the batch path,
    waits until the broker has them, the alerts before them and every earlier flush, then
    acknowledges the records to Faust (:func:`~streams.worker.compat.ack`). Faust commits
    acknowledged offsets on its own timer, in order; ``CommitWatch``
    (:mod:`streams.worker.consumer_watch`) repairs a partition whose commit cannot catch up.

    A crash in between redelivers those records: alerts already published are not sent again
    and records a written state already reflects are not applied twice (the engine's
    per-borrower offsets). The caller runs one batch, timer round or flush at a time.
    """

    def __init__(
        self,
        app: faust.App,
        store: TableStateStore,
        checkpoints: ModelCheckpoints,
        flush_every: float,
    ) -> None:
        self.app = app
        self.store = store
        self.checkpoints = checkpoints
        self.flush_every = flush_every
        # States changed since the last flush, the partitions whose event time moved, the
        # records they reflect and the alerts sent before them, none yet acknowledged.
        self._unwritten: dict[str, BorrowerState] = {}
        self._clocks_moved: set[int] = set()
        self._unacknowledged: list[Message] = []
        self._unconfirmed_alerts: list[Awaitable[Any]] = []
        self._confirming: asyncio.Future[None] | None = None
        self._last_flush = time.monotonic()

    def states_changed(self, states: dict[str, BorrowerState]) -> None:
        self._unwritten.update(states)

    def clocks_moved(self, partitions: Iterable[int]) -> None:
        self._clocks_moved.update(partitions)

    def alerts_sent(self, sends: list[Awaitable[Any]]) -> None:
        """Alerts handed to the producer: their records are acknowledged only after them."""
        self._unconfirmed_alerts += sends

    def records_handled(self, messages: list[Message]) -> None:
        self._unacknowledged += messages

    def due(self) -> bool:
        return (
            len(self._unwritten) >= MAX_UNWRITTEN_STATES
            or time.monotonic() - self._last_flush >= self.flush_every
        )

    async def flush(self) -> None:
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

    async def confirmed(self) -> None:
        """Wait until every flush so far is confirmed and its records acknowledged."""
        if self._confirming is not None:
            await self._confirming

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
