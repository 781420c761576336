"""Runs every detector over batches of events; the one code path of replay and the live worker."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from detectors.base import Detector, Finding, Output, to_alert
from detectors.clock import EventTimeClock, Timer, TimerQueue
from detectors.index import CrossIndex, Found, Read, Write
from detectors.registry import build_detectors
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from topics.names import Source
from topics.records import Alert, Login, Repayment, Transaction
from topics.validate import InputRecord

__all__ = ["BatchResult", "Engine", "Input", "MemoryStateStore", "StateStore"]

# Alert ids remembered to suppress re-sends (a cycle found by two of its edges, a replayed batch).
REMEMBERED_ALERT_IDS = 200_000
# Members kept per set of the cross-borrower index (bounds memory on hub accounts and IPs).
INDEX_MAX_MEMBERS = 200


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
    #: Detectors that ran without a dependency (the index), or whose timer failed, and why.
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

    The caller owns I/O: it decodes events, passes a :class:`StateStore` and a
    :class:`~detectors.index.CrossIndex`, publishes the alerts and persists ``dirty`` states.
    ``now`` stamps ``emitted_at``; without it (replay) ``emitted_at`` is the event time, so
    replay output depends on its input only.
    """

    def __init__(
        self,
        thresholds: Thresholds,
        states: StateStore,
        index: CrossIndex,
        *,
        idle_after: float | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.states = states
        self.index = index
        self.clock = EventTimeClock([s.value for s in Source], idle_after=idle_after)
        self.timers = TimerQueue()
        self._now = now
        self._loaded_partitions: set[int] = set()
        self._closed_day: dict[int, int] = {}
        self._emitted: OrderedDict[str, None] = OrderedDict()
        self.detectors: list[Detector] = []
        self.set_thresholds(thresholds)

    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Swap in new thresholds; state, timers and models carry over."""
        snapshots = self.snapshots()
        self.thresholds = thresholds
        self.detectors = build_detectors(thresholds)
        self._index_hooks()
        for (name, partition), blob in snapshots.items():
            self.restore(name, partition, blob)

    def use(self, detectors: list[Detector]) -> None:
        """Run exactly these detectors (one detector's tests and backtests)."""
        self.detectors = detectors
        self._index_hooks()

    def _index_hooks(self) -> None:
        """Which detectors implement which hook: most events concern a few detectors only."""
        self._by_name = {d.name: d for d in self.detectors}

        def implementing(hook: str) -> list[Detector]:
            return [
                d for d in self.detectors if getattr(type(d), hook) is not getattr(Detector, hook)
            ]

        self._hooks = {
            Source.TRANSACTIONS: implementing("on_transaction"),
            Source.LOGINS: implementing("on_login"),
            Source.REPAYMENTS: implementing("on_repayment"),
        }
        self._asking = implementing("lookups")

    async def process(self, batch: Sequence[Input], wall: float | None = None) -> BatchResult:
        """Run the detectors over ``batch`` (in order), then fire what event time has passed."""
        result = BatchResult()
        findings: list[Finding] = []
        for partition in {item.partition for item in batch} - self._loaded_partitions:
            self._load_timers(partition)
        states = [self._state(item, result) for item in batch]
        own_transfers, found = await self._cross_borrower_context(batch, states, result)
        for position, (item, state) in enumerate(zip(batch, states, strict=True)):
            try:
                outputs = self._detect(item, state, own_transfers[position], found, position)
            except Exception as exc:  # a detector bug must not stop the stream
                result.failed.append((position, f"detector error: {exc!r}"))
            else:
                findings += self._arm(outputs, state)
            self.clock.observe(item.partition, item.source, item.record.ts.timestamp(), wall)
        findings += self._fire({item.partition for item in batch}, wall, result)
        result.alerts = self._alerts(findings)
        return result

    def advance(self, wall: float | None = None) -> BatchResult:
        """Fire timers without new events (a partition gone quiet still reaches due dates)."""
        result = BatchResult()
        result.alerts = self._alerts(self._fire(set(self.clock.partitions()), wall, result))
        return result

    def forget_partition(self, partition: int) -> None:
        """Drop timers and event time of a partition this process no longer owns."""
        self.timers.forget(partition)
        self.clock.forget(partition)
        self._loaded_partitions.discard(partition)
        self._closed_day.pop(partition, None)

    def snapshots(self) -> dict[tuple[str, int], bytes]:
        """Every detector's per-partition memory (models), to checkpoint."""
        return {
            (d.name, p): blob
            for d in self.detectors
            for p in self.clock.partitions()
            if (blob := d.snapshot(p)) is not None
        }

    def restore(self, detector: str, partition: int, snapshot: bytes) -> None:
        if detector in self._by_name:
            self._by_name[detector].restore(partition, snapshot)

    def _detect(
        self,
        item: Input,
        state: BorrowerState,
        own_transfer: bool,
        found: dict[tuple[int, str], Found],
        position: int,
    ) -> Output:
        outputs: Output = []
        record = item.record
        detectors = self._hooks[item.source]
        if isinstance(record, Transaction):
            if record.direction == "in" and not own_transfer:
                state.inflows.add(day_of(record.ts.timestamp()), float(record.amount))
            for detector in detectors:
                outputs += detector.on_transaction(
                    record, state, found.get((position, detector.name), ())
                )
        elif isinstance(record, Login):
            for detector in detectors:
                outputs += detector.on_login(
                    record, state, found.get((position, detector.name), ())
                )
        elif isinstance(record, Repayment):
            for detector in detectors:
                outputs += detector.on_repayment(
                    record, state, found.get((position, detector.name), ())
                )
        return outputs

    def _arm(self, outputs: Output, state: BorrowerState) -> list[Finding]:
        findings = []
        for output in outputs:
            if isinstance(output, Timer):
                self.timers.schedule(state.partition, output)
            else:
                findings.append(output)
        return findings

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
    ) -> tuple[list[bool], dict[tuple[int, str], Found]]:
        """Learn own accounts in event order; answer every detector's lookups in one exchange."""
        own_transfers = [False] * len(batch)
        writes: list[Write] = []
        reads: list[Read] = []
        asked: list[tuple[int, str, int, int]] = []  # position, detector, first read, count
        for position, (item, state) in enumerate(zip(batch, states, strict=True)):
            record = item.record
            if isinstance(record, Transaction):
                state.note_own_account(record.account_id)
                own_transfers[position] = record.counterparty_id in state.own_accounts
            for detector in self._asking:
                lookups = detector.lookups(record, state)
                if lookups is None:
                    continue
                writes += lookups.writes
                asked.append((position, detector.name, len(reads), len(lookups.reads)))
                reads += lookups.reads
        if not asked:
            return own_transfers, {}
        try:
            answers = await self.index.exchange(writes, reads, INDEX_MAX_MEMBERS)
        except Exception as exc:  # the index (Redis) is down: other detectors go on
            names = sorted({name for _, name, _, _ in asked})
            result.degraded += [
                f"{name}: cross-borrower index unavailable: {exc!r}" for name in names
            ]
            return own_transfers, {(position, name): None for position, name, _, _ in asked}
        return own_transfers, {
            (position, name): answers[first : first + count]
            for position, name, first, count in asked
        }

    def _load_timers(self, partition: int) -> None:
        """Re-arm timers of states this process has just taken over (restart or rebalance)."""
        self._loaded_partitions.add(partition)
        for state in self.states.states_in_partition(partition):
            for detector in self.detectors:
                for timer in detector.pending_timers(state):
                    self.timers.schedule(partition, timer)

    def _fire(
        self, partitions: Iterable[int], wall: float | None, result: BatchResult
    ) -> list[Finding]:
        """Timers and day closes that each partition's event time has passed, in time order."""
        findings: list[Finding] = []
        for partition in sorted(partitions):
            watermark = self.clock.watermark(partition, wall)
            if watermark is None:
                continue
            findings += self._fire_timers(partition, watermark, result)
            findings += self._close_days(partition, day_of(watermark), result)
        return findings

    def _fire_timers(self, partition: int, watermark: float, result: BatchResult) -> list[Finding]:
        findings: list[Finding] = []
        for timer in self.timers.pop_due(partition, watermark):
            state = self.states.get(timer.borrower_id)
            detector = self._by_name.get(timer.detector)
            if state is None or detector is None:
                continue
            try:
                findings += self._arm(detector.on_timer(timer, state), state)
            except Exception as exc:  # as for events: one bad state must not stop the rest
                where = f"timer {timer.key} of {timer.borrower_id}"
                result.degraded.append(f"{timer.detector}: {where} failed: {exc!r}")
            result.dirty[state.borrower_id] = state
        return findings

    def _close_days(self, partition: int, today: int, result: BatchResult) -> list[Finding]:
        """Call ``on_day_close`` once per UTC day the partition's event time has left behind."""
        last = self._closed_day.get(partition)
        if last is None:
            self._closed_day[partition] = today - 1
            return []
        if today - 1 <= last:
            return []
        findings: list[Finding] = []
        states = sorted(self.states.states_in_partition(partition), key=lambda s: s.borrower_id)
        for day in range(last + 1, today):
            for detector in self.detectors:
                try:
                    findings += detector.on_day_close(partition, day, states)
                except Exception as exc:
                    result.degraded.append(f"{detector.name}: day close {day} failed: {exc!r}")
        self._closed_day[partition] = today - 1
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
