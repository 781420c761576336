"""The eager delivery step of the worker's fetch loop (no broker: plain coroutines)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from streams.worker.compat import deliver_eagerly


async def test_a_delivery_that_never_waits_is_done_in_one_step() -> None:
    delivered: list[int] = []

    async def put(record: int) -> None:
        delivered.append(record)

    assert deliver_eagerly(put(1)) is None
    assert delivered == [1]


async def test_a_delivery_that_waits_is_finished_by_awaiting_the_rest() -> None:
    gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    delivered: list[int] = []

    async def put_when_open() -> None:
        delivered.append(await gate)
        await asyncio.sleep(0)  # a bare yield too
        delivered.append(2)

    rest = deliver_eagerly(put_when_open())
    assert isinstance(rest, Awaitable), "what mode's wait_first accepts"
    assert delivered == []
    finishing = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not finishing.done()
    gate.set_result(1)
    await finishing
    assert delivered == [1, 2]


async def test_cancelling_the_rest_cancels_the_delivery() -> None:
    """What ``wait_first`` does to it when flow is suspended."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned_up: list[bool] = []

    async def put_when_open() -> None:
        try:
            await gate
        finally:
            cleaned_up.append(True)

    rest = deliver_eagerly(put_when_open())
    assert rest is not None
    finishing = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    assert cleaned_up == [True]
    assert gate.cancelled(), "the future it waited on is cancelled, as a task would do"


async def test_an_error_in_the_delivery_reaches_the_caller() -> None:
    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("undecodable")

    rest = deliver_eagerly(bad())
    assert rest is not None
    with pytest.raises(ValueError, match="undecodable"):
        await rest
