"""Runs every detector over batches of events; the one code path of replay and the live worker."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from detectors.base import Detector, Finding, to_alert
from detectors.circular import CircularFlowDetector
from detectors.clock import EventTimeClock, TimerQueue
from detectors.delinquency import DelinquencyDetector
from detectors.graph import Edge, EdgeIndex, Neighbourhood
from detectors.state import BorrowerState, day_of
from detectors.takeover import AccountTakeoverDetector
from detectors.thresholds import Thresholds
from topics.names import Source
from topics.records import Alert, Login, Repayment, Transaction
from topics.validate import InputRecord

__all__ = ["BatchResult", "Engine", "Input", "MemoryStateStore", "StateStore"]

# Alert ids remembered to suppress re-sends (a cycle found by two of its edges, a replayed batch).
REMEMBERED_ALERT_IDS = 200_000


@dataclass(frozen=True, slots=True)
class Input:
    """One valid event and the partition it came from (the unit of event time)."""

    partition: int
    source: Source
    record: InputRecord


@dataclass(slots=True)
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    #: States changed by this batch, to be written to the changelog.
    dirty: dict[str, BorrowerState] = field(default_factory=dict)
    #: Events a detector failed on, by position in the batch, with the error: dead-lettered.
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: Detectors that ran without a dependency (the edge index), and why.
    degraded: list[str] = field(default_factory=list)


class StateStore(Protocol):
    """Where per-borrower state lives: a Faust table in the worker, a dict in replay."""

    def get(self, borrower_id: str) -> BorrowerState | None: ...

    def put(self, borrower_id: str, state: BorrowerState) -> None: ...

    def states_in_partition(self, partition: int) -> Iterable[BorrowerState]: ...


class MemoryStateStore:
    """Plain dictionary state for replay, backtests and tests."""

    def __init__(self) -> None:
        self.states: dict[str, BorrowerState] = {}

    def get(self, borrower_id: str) -> BorrowerState | None:
        return self.states.get(borrower_id)

    def put(self, borrower_id: str, state: BorrowerState) -> None:
        self.states[borrower_id] = state

    def states_in_partition(self, partition: int) -> Iterable[BorrowerState]:
        return [s for s in self.states.values() if s.partition == partition]


class Engine:
    """Turns batches of validated events into alerts, keeping per-borrower state and timers.

    The caller owns I/O: it decodes events, passes a :class:`StateStore` and an
    :class:`~detectors.graph.EdgeIndex`, publishes the alerts and persists ``dirty`` states.
    ``now`` stamps ``emitted_at``; without it (replay) ``emitted_at`` is the event time, so
    replay output depends on its input only.
    """

    def __init__(
        self,
        thresholds: Thresholds,
        states: StateStore,
        edges: EdgeIndex,
        *,
        idle_after: float | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.states = states
        self.edges = edges
        self.clock = EventTimeClock([s.value for s in Source], idle_after=idle_after)
        self.timers = TimerQueue()
        self._now = now
        self._loaded_partitions: set[int] = set()
        self._emitted: OrderedDict[str, None] = OrderedDict()
        self.set_thresholds(thresholds)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Swap in new thresholds; state and timers carry over."""
        self.thresholds = thresholds
        self.circular = CircularFlowDetector(thresholds.circular_flow)
        self.detectors: list[Detector] = [
            self.circular,
            AccountTakeoverDetector(thresholds.takeover),
            DelinquencyDetector(thresholds.delinquency),
        ]
        self._by_name = {d.name: d for d in self.detectors}

    async def process(self, batch: Sequence[Input], wall: float | None = None) -> BatchResult:
        """Run the detectors over ``batch`` (in order), then fire timers event time has passed."""
        result = BatchResult()
        findings: list[Finding] = []
        for partition in {item.partition for item in batch} - self._loaded_partitions:
            self._load_timers(partition)
        states = [self._state(item, result) for item in batch]
        own_transfers, around = await self._cross_borrower_context(batch, states, result)
        for position, (item, state) in enumerate(zip(batch, states, strict=True)):
            try:
                findings += self._detect(item, state, own_transfers[position], around.get(position))
            except Exception as exc:  # a detector bug must not stop the stream
                result.failed.append((position, f"detector error: {exc!r}"))
            self.clock.observe(item.partition, item.source.value, item.record.ts.timestamp(), wall)
        findings += self._fire_timers({item.partition for item in batch}, wall, result)
        result.alerts = self._alerts(findings)
        return result

    def _detect(
        self, item: Input, state: BorrowerState, own_transfer: bool, links: Neighbourhood | None
    ) -> list[Finding]:
        findings: list[Finding] = []
        record = item.record
        if isinstance(record, Transaction):
            if record.direction == "in" and not own_transfer:
                state.inflows.add(day_of(record.ts.timestamp()), float(record.amount))
            for detector in self.detectors:
                findings += detector.on_transaction(record, state, links)
        elif isinstance(record, Login):
            for detector in self.detectors:
                findings += detector.on_login(record, state)
        elif isinstance(record, Repayment):
            for detector in self.detectors:
                findings += detector.on_repayment(record, state)
                for timer in detector.pending_timers(state):
                    self.timers.schedule(state.partition, timer)
        return findings

    def advance(self, wall: float | None = None) -> BatchResult:
        """Fire timers without new events (a partition gone quiet still reaches due dates)."""
        result = BatchResult()
        result.alerts = self._alerts(self._fire_timers(set(self.clock.partitions()), wall, result))
        return result

    def forget_partition(self, partition: int) -> None:
        """Drop timers and event time of a partition this process no longer owns."""
        self.timers.forget(partition)
        self.clock.forget(partition)
        self._loaded_partitions.discard(partition)

    def _state(self, item: Input, result: BatchResult) -> BorrowerState:
        borrower_id = item.record.borrower_id
        state = self.states.get(borrower_id)
        if state is None:
            state = BorrowerState(borrower_id=borrower_id, partition=item.partition)
            self.states.put(borrower_id, state)
        state.partition = item.partition
        result.dirty[borrower_id] = state
        return state

    async def _cross_borrower_context(
        self, batch: Sequence[Input], states: list[BorrowerState], result: BatchResult
    ) -> tuple[list[bool], dict[int, Neighbourhood]]:
        """Learn own accounts in event order; fetch edge neighbourhoods in one round trip."""
        own_transfers = [False] * len(batch)
        edges: list[tuple[int, Edge]] = []
        for position, (item, state) in enumerate(zip(batch, states, strict=True)):
            record = item.record
            if not isinstance(record, Transaction):
                continue
            state.note_own_account(record.account_id)
            own_transfers[position] = record.counterparty_id in state.own_accounts
            edge = self.circular.edge_for(record, state)
            if edge is not None:
                edges.append((position, edge))
        if not edges:
            return own_transfers, {}
        t = self.thresholds.circular_flow
        try:
            neighbourhoods = await self.edges.add_and_fetch(
                [edge for _, edge in edges], t.window_hours * 3600.0, t.max_edges_per_account
            )
        except Exception as exc:  # the index (Redis) is down: other detectors go on
            result.degraded.append(f"{self.circular.name}: edge index unavailable: {exc!r}")
            return own_transfers, {}
        return own_transfers, {
            position: links for (position, _), links in zip(edges, neighbourhoods, strict=True)
        }

    def _load_timers(self, partition: int) -> None:
        """Re-arm timers of states this process has just taken over (restart or rebalance)."""
        self._loaded_partitions.add(partition)
        for state in self.states.states_in_partition(partition):
            for detector in self.detectors:
                for timer in detector.pending_timers(state):
                    self.timers.schedule(partition, timer)

    def _fire_timers(
        self, partitions: Iterable[int], wall: float | None, result: BatchResult
    ) -> list[Finding]:
        findings: list[Finding] = []
        for partition in sorted(partitions):
            watermark = self.clock.watermark(partition, wall)
            if watermark is None:
                continue
            for timer in self.timers.pop_due(partition, watermark):
                state = self.states.get(timer.borrower_id)
                detector = self._by_name.get(timer.detector)
                if state is None or detector is None:
                    continue
                try:
                    findings += detector.on_timer(timer, state)
                except Exception as exc:  # as for events: one bad state must not stop the rest
                    where = f"timer {timer.key} of {timer.borrower_id}"
                    result.degraded.append(f"{timer.detector}: {where} failed: {exc!r}")
                result.dirty[state.borrower_id] = state
        return findings

    def _alerts(self, findings: list[Finding]) -> list[Alert]:
        alerts = []
        for finding in findings:
            alert_id = finding.alert_id
            if alert_id in self._emitted:
                continue
            self._emitted[alert_id] = None
            if len(self._emitted) > REMEMBERED_ALERT_IDS:
                self._emitted.popitem(last=False)
            emitted_at = self._now() if self._now is not None else finding.ts
            alerts.append(
                to_alert(finding, emitted_at=emitted_at, thresholds_version=self.thresholds.version)
            )
        return alerts
