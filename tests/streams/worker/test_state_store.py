"""The worker's state store: records at rest, a bounded set decoded (no broker needed for
reading; writing is covered by the integration tests)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from detectors.state import BorrowerState
from streams.worker.tables import TableStateStore


def _store(hot_states: int, *states: BorrowerState) -> TableStateStore:
    table: Any = SimpleNamespace(data={s.borrower_id: s.to_bytes() for s in states})
    return TableStateStore(table, hot_states)


def _state(borrower_id: str, partition: int) -> BorrowerState:
    state = BorrowerState(borrower_id=borrower_id, partition=partition)
    state.inflows.add(20_000, 100.0)
    return state


def test_a_state_at_rest_is_decoded_once_and_then_kept() -> None:
    store = _store(4, _state("b-1", 0))
    first = store.get("b-1")
    assert first is not None and first.inflows.total(20_000, 20_001) == (100.0, 1)
    assert store.get("b-1") is first, "changes to it must land on the one object"
    assert store.get("b-unknown") is None


def test_every_state_of_a_partition_is_found_whether_decoded_or_not() -> None:
    store = _store(4, _state("b-1", 0), _state("b-2", 1), _state("b-3", 0))
    decoded = store.get("b-1")
    found = {s.borrower_id: s for s in store.states_in_partition(0)}
    assert set(found) == {"b-1", "b-3"}
    assert found["b-1"] is decoded
    assert store.get("b-3") is found["b-3"]


def test_states_of_a_revoked_partition_are_let_go() -> None:
    store = _store(4, _state("b-1", 0), _state("b-2", 1))
    stale = store.get("b-1")
    store.get("b-2")
    store.forget_partition(0)
    assert store.decoded == 1
    assert store.get("b-1") is not stale, "decoded again from the table, which recovery fills"
