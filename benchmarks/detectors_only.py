"""(c) The detectors alone, as replay runs them, and the memory a borrower's state takes.

Run by ``python -m benchmarks`` as child processes (peak RSS of each is its own)::

    python -m benchmarks.detectors_only replay FILE --partitions 8 --result F
    python -m benchmarks.detectors_only memory --borrowers 300 --days 90 --result F
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import peak_rss, write_result
from benchmarks.worker import summary
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from sim import SimulationConfig, simulate_stream
from streams.lab.replay import drive, parse_record
from streams.privacy import Masker
from streams.settings import Settings
from topics import InputRecord, Source, TopicNames
from topics.codec import encode_alert

__all__ = ["memory", "replay"]


def _parsed(records: Iterable[Any]) -> Iterator[tuple[Source, InputRecord]]:
    topics = TopicNames()
    for raw in records:
        yield parse_record(raw, topics)


#: A candidate that changes one tunable of every detector, a little: all ten run in shadow
#: (the most a candidate can cost), and their alerts mostly match the live ones.
EVERY_DETECTOR_IN_SHADOW = {
    "circular_flow.window_hours": 47.0,
    "takeover.min_failures": 6,
    "delinquency.min_alert_score": 0.55,
    "machine_flow.min_signals": 3,
    "revenue_inflation.min_growth": 1.5,
    "wash_trading.min_pair_days": 4,
    "impossible_travel.max_speed_kmh": 1100.0,
    "device_ring.min_borrowers": 4,
    "credential_stuffing.min_borrowers": 9,
    "flow_anomaly.min_lift": 4.5,
}


async def drive_detectors(
    records: Iterable[Any], partitions: int, shadow: bool = False
) -> tuple[Engine, MemoryStateStore, dict[str, Any]]:
    """Replay's loop over ``records``, parsed lazily (parsing is timed apart, as source time)."""
    store = MemoryStateStore()
    engine = Engine(Thresholds(), store, MemoryCrossIndex())
    if shadow:
        engine.set_thresholds(
            Thresholds(), Thresholds().with_changes(EVERY_DETECTOR_IN_SHADOW, "c1")
        )
    started = time.perf_counter()
    stats = await drive(_parsed(records), engine, partitions=partitions)
    wall = time.perf_counter() - started
    # Masked as the workers (b) publish them, with the same environment: ids comparable.
    masker = Masker.from_settings(Settings.from_env())
    figures = {
        "events": stats.events,
        "alerts": len(stats.alerts),
        "alert_ids": {
            masked.alert_id: summary(orjson.loads(encode_alert(masked)))
            for masked in map(masker.alert, stats.alerts)
        },
        # drive() minus reading and parsing: batching, the baseline pass and Engine.process.
        "seconds": wall - stats.source_seconds,
        "detector_seconds": stats.detector_seconds,
        "source_seconds": stats.source_seconds,
        "shadow_alerts": len(stats.shadow_alerts),
    }
    return engine, store, figures


def replay(path: Path, partitions: int, shadow: bool = False) -> dict[str, Any]:
    """Detector throughput over a dataset file written by :func:`benchmarks.common.make_dataset`;
    with ``shadow``, with every detector also running a candidate's thresholds in shadow."""

    def lines() -> Iterator[Any]:
        with path.open("rb") as handle:
            for line in handle:
                yield orjson.loads(line)

    _, _, figures = asyncio.run(drive_detectors(lines(), partitions, shadow))
    return {**figures, "peak_rss": peak_rss()}


def memory(borrowers: int, days: int, seed: int, partitions: int) -> dict[str, Any]:
    """State per borrower after ``days`` of simulated traffic.

    ``changelog_bytes``: the changelog record the worker writes for a borrower
    (:meth:`BorrowerState.to_bytes`); ``json_bytes``: the plain JSON inside it.
    ``rest_bytes``: what a borrower not in use takes in the worker, which keeps it as that
    record under its id (``tracemalloc`` of the records, plus the id strings).
    ``process_bytes``: what a state in use takes decoded, as traced while the states are
    rebuilt from their records; the worker keeps at most ``LW_HOT_STATES`` of them.
    Tracing the whole run instead would slow it several times over.
    """
    _, records = simulate_stream(SimulationConfig(borrowers=borrowers, days=days, seed=seed))
    _, store, figures = asyncio.run(drive_detectors(records, partitions))
    del figures["alert_ids"]
    states = list(store.states.values())
    json_sizes = [len(orjson.dumps(state.to_dict())) for state in states]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    at_rest = {state.borrower_id: state.to_bytes() for state in states}
    gc.collect()
    rest = tracemalloc.get_traced_memory()[0] - before + sum(map(sys.getsizeof, at_rest))
    before = tracemalloc.get_traced_memory()[0]
    rebuilt = [BorrowerState.from_bytes(blob) for blob in at_rest.values()]
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    traced -= rebuilt.__sizeof__()  # the list holding them is not state
    sizes = [len(blob) for blob in at_rest.values()]
    return {
        **figures,
        "borrowers": len(states),
        "changelog_bytes": sum(sizes) / len(states),
        "changelog_max_bytes": max(sizes),
        "json_bytes": sum(json_sizes) / len(states),
        "rest_bytes": rest / len(states),
        "process_bytes": traced / len(rebuilt),
        "peak_rss": peak_rss(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("replay")
    run.add_argument("input", type=Path)
    run.add_argument("--shadow", action="store_true", help="every detector also in shadow")
    mem = commands.add_parser("memory")
    mem.add_argument("--borrowers", type=int, required=True)
    mem.add_argument("--days", type=int, required=True)
    mem.add_argument("--seed", type=int, default=7)
    for sub in (run, mem):
        sub.add_argument("--partitions", type=int, default=8)
        sub.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "replay":
        figures = replay(args.input, args.partitions, args.shadow)
    else:
        figures = memory(args.borrowers, args.days, args.seed, args.partitions)
    write_result(args.result, figures)


if __name__ == "__main__":
    main()
