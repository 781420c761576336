"""`lendwatch replay`: deterministic output, every line accounted for."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from sim import SimulationConfig, simulate, write_jsonl
from streams.lab.replay import drive, parse_record, partition_for
from streams.ops.cli import main
from topics import Source, TopicNames


def test_replay_twice_is_byte_identical_and_reports_bad_lines(tmp_path, capsys) -> None:
    # Small, and with alerts of all three categories (4 of delinquency).
    simulation = simulate(SimulationConfig(borrowers=30, days=50, seed=3))
    events = tmp_path / "events.jsonl"
    write_jsonl(simulation, events, None)
    with events.open("ab") as handle:
        handle.write(b"{broken\n")
        handle.write(orjson.dumps({"topic": "lending.unknown", "key": "b", "value": {}}) + b"\n")

    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["replay", "--input", str(events), "--output", str(first)]) == 0
    assert main(["replay", "--input", str(events), "--output", str(second)]) == 0

    output = first.read_bytes()
    assert output == second.read_bytes()
    alerts = [orjson.loads(line) for line in output.splitlines()]
    assert {alert["category"] for alert in alerts} == {
        "falsified_flow",
        "abnormal_behaviour",
        "delinquency_risk",
    }
    # Replay has no wall clock: emitted_at is the trigger's event time.
    assert all(alert["emitted_at"] == alert["ts"] for alert in alerts)
    assert len({alert["alert_id"] for alert in alerts}) == len(alerts)
    summary = capsys.readouterr().err
    records = len(simulation.records)
    assert f"replayed {records:,} events" in summary
    assert "2 records rejected" in summary
    assert "line is not JSON" in summary and "unknown topic 'lending.unknown'" in summary


def test_partition_for_matches_the_producers_default_partitioner() -> None:
    # Replay must put each borrower on the partition a keyed producer sends it to.
    partitioner = DefaultPartitioner()
    for i in range(500):
        key = f"b-{i:05d}"
        expected = partitioner(key.encode(), list(range(8)), list(range(8)))
        assert partition_for(key, 8) == expected, key
    assert {partition_for(f"b-{i:05d}", 8) for i in range(200)} == set(range(8))


def test_drive_refuses_records_out_of_event_time_order() -> None:
    def record(event_id: str, ts: str) -> dict[str, Any]:
        value = {
            "event_id": event_id,
            "ts": ts,
            "borrower_id": "b-1",
            "action": "login",
            "device_id": "d-1",
            "ip": "10.0.0.1",
        }
        return {"topic": TopicNames().input_topic(Source.LOGINS), "key": "b-1", "value": value}

    records = [
        record("lg-1", "2026-01-05T10:00:00+08:00"),
        record("lg-2", "2026-01-05T09:00:00+08:00"),
    ]
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    with pytest.raises(ValueError, match="event-time order"):
        asyncio.run(drive([parse_record(r, TopicNames()) for r in records], engine, partitions=8))


def test_replay_reads_verdicts_from_the_same_file_and_rejects_bad_ones(tmp_path, capsys) -> None:
    simulation = simulate(SimulationConfig(borrowers=10, days=20, seed=3))
    events = tmp_path / "events.jsonl"
    write_jsonl(simulation, events, None)
    good = {
        "event_id": "fb-1",
        "ts": "2026-01-20T10:00:00+08:00",
        "alert_id": "never-published",
        "verdict": "dismissed",
        "author": "ana",
    }
    lines = [
        {"topic": "lending.feedback", "key": "b-00001", "value": good},
        {"topic": "lending.feedback", "key": "b-00001", "value": {**good, "verdict": "maybe"}},
        {"topic": "lending.feedback", "key": "b-00001", "value": {**good, "ts": "2026-01-20"}},
        {"topic": "lending.feedback", "key": None, "value": good},
    ]
    with events.open("ab") as handle:
        handle.writelines(orjson.dumps(line) + b"\n" for line in lines)
    output = tmp_path / "alerts.jsonl"
    assert main(["replay", "--input", str(events), "--output", str(output)]) == 0
    summary = capsys.readouterr().err
    assert "3 records rejected; 1 verdicts read, 0 alerts held back" in summary
    assert "field 'verdict' must be one of" in summary and "no UTC offset" in summary
    assert "verdict has no key" in summary
