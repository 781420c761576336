"""Replay over processes (``streams.lab.parallel``): the single process's output, byte for byte."""

from __future__ import annotations

import asyncio
import queue
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.index import Read, Write
from sim import SimulationConfig, simulate, write_jsonl
from streams.lab import parallel
from streams.lab.replay import ReplayReport, replay_file
from streams.privacy import DEVELOPMENT_KEY, Masker

#: Detectors whose alerts depend on what other partitions wrote to the cross-borrower index.
CROSS_PARTITION = {"circular_flow", "device_ring", "credential_stuffing"}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small history with alerts of the cross-borrower detectors, and lines to reject."""
    path = tmp_path_factory.mktemp("parallel") / "events.jsonl"
    simulation = simulate(SimulationConfig(borrowers=120, days=40, seed=5))
    write_jsonl(simulation, path, None)
    with path.open("ab") as handle:
        handle.write(b"{broken\n\n")
        handle.write(orjson.dumps({"topic": "lending.unknown", "key": "b", "value": {}}) + b"\n")
        handle.write(b'{"topic":"lending.logins","key":"b-00001","value":7}')  # no newline
    return path


def _replay(history: Path, out: Path, processes: int) -> tuple[ReplayReport, bytes]:
    masker = Masker(DEVELOPMENT_KEY, True)
    report = replay_file(history, out, masker=masker, processes=processes)
    return report, out.read_bytes()


@pytest.mark.parametrize("processes", [2, 3])
def test_replay_in_processes_is_byte_identical_to_one_process(
    history: Path, tmp_path: Path, processes: int
) -> None:
    one, expected = _replay(history, tmp_path / "one.jsonl", 1)
    many, output = _replay(history, tmp_path / "many.jsonl", processes)

    assert output == expected
    assert (many.events, many.alerts, many.rejected) == (one.events, one.alerts, one.rejected)
    assert dict(many.alerts_by_topic) == dict(one.alerts_by_topic)
    assert len(one.rejected) == 3
    detectors = {orjson.loads(line)["detector"] for line in expected.splitlines()}
    assert detectors & CROSS_PARTITION  # the index shared between processes was exercised


def test_each_process_reads_every_process_writes_of_the_batch_and_before_only() -> None:
    """Two processes' copies of the index, in two threads: a read in batch k finds what the
    other wrote in batches up to k (before the read, as one engine applies writes first),
    never what it wrote later."""
    inboxes: list[queue.Queue[Any]] = [queue.Queue(), queue.Queue()]
    reader, writer = parallel._SharedIndex(0, inboxes), parallel._SharedIndex(1, inboxes)

    async def write() -> None:
        for batch, member in ((0, b"early"), (2, b"late")):
            writer.batch = batch
            await writer.exchange([Write("device:d", member, float(batch))], [], 200)
            writer.passed(batch)
        writer.close()

    thread = threading.Thread(target=asyncio.run, args=(write(),))
    thread.start()
    found = []
    for batch in range(3):
        reader.batch = batch
        found += await_(reader.exchange([], [Read("device:d", 0.0, 9.0)], 200))
        reader.passed(batch)
    reader.close()
    thread.join(timeout=10)
    assert found == [[b"early"], [b"early"], [b"early", b"late"]]


def await_(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_line_with_two_keys_falls_back_to_one_process(history: Path, tmp_path: Path) -> None:
    """The route reads the first key, JSON the last: the process that got it refuses it, and
    the replay runs in one process, still with the same output."""
    lines = history.read_bytes().splitlines(keepends=True)
    value = orjson.loads(lines[0])
    borrower = value["key"]
    other = next(
        key
        for key in (f"b-{i:05d}" for i in range(1000))
        if parallel._route([f'{{"topic":"t","key":"{key}"'.encode()], 8, 2)
        != parallel._route([f'{{"topic":"t","key":"{borrower}"'.encode()], 8, 2)
    )
    twice = lines[0].replace(b'"key":', f'"key":"{other}","key":'.encode(), 1)
    path = tmp_path / "twice.jsonl"
    path.write_bytes(b"".join([twice, *lines[1:]]))

    with pytest.raises(parallel.Misrouted):
        parallel.replay_parallel(path, tmp_path / "x.jsonl", processes=2)
    one, expected = _replay(path, tmp_path / "one.jsonl", 1)
    many, output = _replay(path, tmp_path / "many.jsonl", 2)
    assert output == expected and many.rejected == one.rejected
