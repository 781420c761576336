"""Simulations as JSON lines: events and labels written to files that replay and diff."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from sim.config import SimulationConfig
from sim.simulation import Simulation, simulate_stream
from topics.labels import CaseLabel, write_labels


def write_jsonl(
    source: Simulation | SimulationConfig | tuple[list[CaseLabel], Iterable[dict[str, Any]]],
    events_path: Path,
    labels_path: Path | None,
) -> int:
    """Write one JSON object per line, in the simulation's order, so files replay and diff.

    Given a config, the events are generated and written day by day, never all in memory.
    Returns the number of events written.
    """
    if isinstance(source, SimulationConfig):
        labels, records = simulate_stream(source)
    elif isinstance(source, Simulation):
        labels, records = source.labels, iter(source.records)
    else:
        labels, records = source[0], iter(source[1])
    events_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with events_path.open("wb") as out:
        for record in records:
            out.write(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
            written += 1
    if labels_path is not None:
        write_labels(labels_path, labels)
    return written


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Read a file written by :func:`write_jsonl` back, one object per line."""
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)
