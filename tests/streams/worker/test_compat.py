"""The one module that uses Faust, mode and aiokafka internals: the versions it accepts, and the
eager delivery step of the worker's fetch loop (no broker: plain coroutines)."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import Awaitable
from pathlib import Path

import pytest

from streams.worker.compat import (
    CHECKED,
    IncompatibleFramework,
    check_versions,
    deliver_eagerly,
)


def test_the_installed_versions_are_the_ones_checked() -> None:
    check_versions()  # what importing the module did


@pytest.mark.parametrize(
    ("package", "fake"),
    [("faust-streaming", "0.16.0"), ("mode-streaming", "0.7.2"), ("aiokafka", "0.15.0")],
)
def test_a_version_not_checked_is_refused_naming_the_module(package: str, fake: str) -> None:
    with pytest.raises(IncompatibleFramework) as refused:
        check_versions({package: fake})
    message = str(refused.value)
    assert "streams.worker.compat" in message
    assert f"{package} {fake}" in message
    others = [f"{name} {CHECKED[name][0]}" for name in CHECKED if name != package]
    assert not any(other in message for other in others), "only the wrong one is named"


def test_a_missing_package_is_refused() -> None:
    with pytest.raises(IncompatibleFramework, match="aiokafka \\(not installed\\)"):
        check_versions({"aiokafka": None})


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


def test_the_project_pins_what_compat_was_checked_against() -> None:
    """A fresh install must get versions the worker accepts: pyproject pins exactly those."""
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = dict(d.split("==", 1) for d in dependencies if "==" in d)
    for package, versions in CHECKED.items():
        assert pins.get(package) in versions, f"pyproject.toml must pin {package} to {versions}"
