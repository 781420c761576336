"""Running the simulator: plan the whole period, then generate it day by day."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sim.benign.flows import inflows, outflows
from sim.benign.sessions import sessions
from sim.config import SimulationConfig
from sim.plan import plan
from sim.world import World
from topics.labels import CaseLabel


@dataclass(frozen=True)
class Simulation:
    """The events to replay or produce, and the ground truth to score the alerts against."""

    records: list[dict[str, Any]]  # {"topic", "key", "value"}, sorted by (ts, topic, event_id)
    labels: list[CaseLabel]


def simulate_stream(config: SimulationConfig) -> tuple[list[CaseLabel], Iterator[dict[str, Any]]]:
    """Plan the whole period, then generate it day by day: the labels, and a lazy event stream.

    Memory stays about two days of events whatever the length; the records are those of
    :func:`simulate` in the same order, sorted by (instant, topic, event_id).
    """
    world = World(config)
    plan(world)
    return world.sorted_labels(), _days(world)


def simulate(config: SimulationConfig) -> Simulation:
    """Generate the whole period; the same config always gives the same records and labels."""
    labels, records = simulate_stream(config)
    # Records are acyclic: the cyclic collector would only rescan the growing list, ~40 % extra.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return Simulation(list(records), labels)
    finally:
        if collecting:
            gc.enable()


def _days(world: World) -> Iterator[dict[str, Any]]:
    """Generate one day for everyone, then emit the day before: late events still fit."""
    for d in range(world.days):
        for b in world.borrowers:
            inflows(world, b, d)
            outflows(world, b, d)
            sessions(world, b, d)
        if d:
            yield from world.flush(d - 1)
    yield from world.flush(world.days - 1)
