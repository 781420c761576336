"""Where each partition stands, as stored with its state: event time, next input offsets and
where its dead letters after them start (no broker: the record as the table keeps it)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP

from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from streams.worker.tables import ModelCheckpoints

LOGINS = "lending.logins"
REPAYMENTS = "lending.repayments"


def _checkpoints(data: dict[str, bytes] | None = None) -> ModelCheckpoints:
    table: Any = SimpleNamespace(data=data if data is not None else {})
    return ModelCheckpoints(table, Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex()))


def test_a_partition_never_written_has_no_stored_offsets() -> None:
    checkpoints = _checkpoints()
    assert checkpoints.stored_offsets(0) == {}
    assert checkpoints.deadletters_from(0) is None


def test_offsets_accumulate_per_topic_and_the_latest_wins() -> None:
    checkpoints = _checkpoints()
    [(key, value, partition)] = checkpoints.positions([], {TP(LOGINS, 2): 10}, {2: 7})
    assert (key, partition) == ("clock:2", 2)
    assert orjson.loads(value) == {"offsets": {LOGINS: 10}, "deadletters_from": 7}

    checkpoints.positions([], {TP(REPAYMENTS, 2): 4})  # dead-letter end unknown this time
    checkpoints.positions([], {TP(LOGINS, 2): 15})

    assert checkpoints.stored_offsets(2) == {LOGINS: 15, REPAYMENTS: 4}
    assert checkpoints.deadletters_from(2) == 7, "an unknown end keeps the earlier one"
    assert checkpoints.stored_offsets(3) == {}


def test_an_event_time_position_written_before_offsets_were_stored_still_reads() -> None:
    """Records of the clock written before issue 13 hold the position alone."""
    old = orjson.dumps({"max_ts": {"logins": 1_700_000_000.0}, "watermark": 1_699_999_000.0})
    checkpoints = _checkpoints({"clock:1": old})
    assert checkpoints.stored_offsets(1) == {}
    [(_, value, _)] = checkpoints.positions([], {TP(LOGINS, 1): 3})
    record = orjson.loads(value)
    assert record["watermark"] == 1_699_999_000.0 and record["offsets"] == {LOGINS: 3}


def test_a_position_names_the_state_records_its_flush_wrote() -> None:
    """Restoring a partition reads them back if the table's recovery stopped short of them
    (a broker reporting less than the log's end: Tansu's last batch)."""
    checkpoints = _checkpoints()
    records = checkpoints.positions([], {TP(LOGINS, 2): 10, TP(LOGINS, 3): 4})
    acks = [SimpleNamespace(partition=2, offset=o) for o in (44, 46, 45)]
    named = {key: orjson.loads(value) for key, value, _ in checkpoints.with_states(records, acks)}
    assert named["clock:2"]["states"] == [44, 46]
    assert "states" not in named["clock:3"]  # no state written there this time
    # The span is stored, and kept by the next position of a flush that wrote no state.
    [(_, value, _)] = checkpoints.with_states(checkpoints.positions([], {TP(LOGINS, 2): 11}), [])
    assert orjson.loads(value)["states"] == [44, 46]


def test_states_written_with_no_position_still_get_one_that_names_them() -> None:
    """A timer round changes states and moves no offset: without a position naming them, a
    successor would read the older states of the last position back over them."""
    checkpoints = _checkpoints()
    checkpoints.with_states(checkpoints.positions([], {TP(LOGINS, 1): 5}), [])
    named = checkpoints.with_states([], [SimpleNamespace(partition=1, offset=9)])
    assert [(key, orjson.loads(value)) for key, value, _ in named] == [
        ("clock:1", {"offsets": {LOGINS: 5}, "states": [9, 9]})
    ]
