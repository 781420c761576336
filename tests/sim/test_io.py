"""JSON lines: written from a simulation, a config or a stream, the same bytes, read back."""

from __future__ import annotations

from pathlib import Path

from sim import iter_jsonl, simulate, simulate_stream, write_jsonl
from tests.sim.helpers import TINY
from topics.labels import read_labels


def test_write_and_read_jsonl_round_trip_byte_for_byte(tmp_path: Path) -> None:
    tiny = simulate(TINY)
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    assert write_jsonl(tiny, events, labels) == len(tiny.records)
    first = events.read_bytes(), labels.read_bytes()
    # Straight from the config, streamed day by day: the same bytes.
    assert write_jsonl(TINY, events, labels) == len(tiny.records)
    assert (events.read_bytes(), labels.read_bytes()) == first
    write_jsonl(simulate_stream(TINY), events, labels)
    assert (events.read_bytes(), labels.read_bytes()) == first
    assert list(iter_jsonl(events)) == tiny.records
    assert read_labels(labels) == tiny.labels
    assert first[0].count(b"\n") == len(tiny.records)
