"""Runs every detector over batches of events; the one code path of replay and the live worker."""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import orjson

from detectors.base import Detector, Finding, Output, to_alert
from detectors.clock import EventTimeClock, Timer, TimerQueue
from detectors.index import CrossIndex, Found, Lookups, Read, Write
from detectors.registry import build_detectors
from detectors.state import (
    SECONDS_PER_DAY,
    BorrowerState,
    day_of,
    installments_from_json,
    installments_to_json,
    logins_from_json,
    logins_to_json,
)
from detectors.thresholds import Thresholds
from topics.names import Source
from topics.records import Alert, Login, Repayment, Transaction
from topics.validate import InputRecord

__all__ = [
    "AlertMemory",
    "BatchResult",
    "Engine",
    "Input",
    "MemoryStateStore",
    "StateStore",
    "is_shadow",
    "live_name",
    "shadow_name",
    "split_shadow_name",
]

# Alert ids remembered to suppress re-sends (a cycle found by two of its edges, a replayed batch).
REMEMBERED_ALERT_IDS = 200_000
# Members kept per set of the cross-borrower index (bounds memory on hub accounts and IPs).
INDEX_MAX_MEMBERS = 200
# Event ids remembered per borrower to process a duplicate once: producers retry, platforms
# resend. A duplicate is expected within a few events of the original; 32 ids of 6 base64
# characters (36 bits of a hash) cost about 260 bytes of state.
REMEMBERED_EVENT_IDS = 32
EVENT_ID_WIDTH = 6
# Slot of a borrower's state where the engine keeps what it has applied (see ``_fresh``).
APPLIED_SLOT = "_applied"
#: Phases of ``Engine.process`` in which findings are made (``Engine.placed``): an event's
#: detectors, then each partition's timers and day closes.
EVENT, TIMERS = 0, 1


#: Where a shadow detector keeps its own copy of the state fields it writes besides its slot
#: (``Detector.writes``): in the slot named after it plus this suffix, encoded so.
TWIN_SUFFIX = "/state"
TWIN_CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "logins": (logins_to_json, logins_from_json),
    "installments": (installments_to_json, installments_from_json),
}


def shadow_name(candidate_version: str, detector: str) -> str:
    """A shadow detector's name: its slots, timers and models never meet its live twin's.

    >>> shadow_name("c3", "delinquency"), is_shadow("c3.delinquency"), live_name("c3.delinquency")
    ('c3.delinquency', True, 'delinquency')
    """
    return f"{candidate_version}.{detector}"


def split_shadow_name(name: str) -> tuple[str | None, str]:
    """The candidate version and live detector a name stands for (None: a live one)."""
    version, dot, detector = name.partition(".")
    return (version, detector) if dot else (None, name)


def is_shadow(name: str) -> bool:
    return "." in name  # split_shadow_name's test, cheap: on the per-event path


def live_name(name: str) -> str:
    return split_shadow_name(name)[1]


@dataclass(frozen=True, slots=True)
class Input:
    """One valid event and the partition it came from (the unit of event time).

    ``offset`` is the record's offset in its topic partition when it came from Kafka: the
    engine remembers, per borrower and topic, the last offset it applied, so that records
    re-delivered after a crash (their state already written, their offsets not yet committed)
    are not applied twice.
    """

    partition: int
    source: Source
    record: InputRecord
    offset: int | None = None


@dataclass(slots=True)
class BatchResult:
    alerts: list[Alert] = field(default_factory=list)
    #: Alerts of detectors running a candidate's thresholds in shadow: never to team topics.
    shadow_alerts: list[Alert] = field(default_factory=list)
    #: States changed by this batch, to be written to the changelog.
    dirty: dict[str, BorrowerState] = field(default_factory=dict)
    #: Events a detector failed on, by position in the batch, with the error: dead-lettered.
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: Detectors that ran without a dependency (the index), or whose timer failed, and why.
    degraded: list[str] = field(default_factory=list)
    #: Events not applied: their event id was seen before, or their offset already applied.
    duplicates: int = 0
    redelivered: int = 0
    #: Partitions whose detectors may have learned (a timer fired, a day closed): their models
    #: are to be checkpointed with this batch's state.
    learned: set[int] = field(default_factory=set)
    #: The timers fired, by partition.
    fired: dict[int, list[Timer]] = field(default_factory=dict)


class StateStore(Protocol):
    """Where per-borrower state lives: a Faust table in the worker, a dict in replay."""

    def get(self, borrower_id: str) -> BorrowerState | None: ...

    def put(self, borrower_id: str, state: BorrowerState) -> None: ...

    def states_in_partition(self, partition: int) -> Iterable[BorrowerState]: ...


class AlertMemory:
    """The latest alert ids emitted (at most ``REMEMBERED_ALERT_IDS``): a re-send is dropped.

    Its own object so that a replay run in several processes drops exactly what one engine
    would, in the order one engine would have met them (``streams.lab.parallel``).
    """

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first(self, alert_id: str) -> bool:
        """Whether ``alert_id`` is new; remember it (forgetting the oldest beyond the bound)."""
        if alert_id in self._ids:
            return False
        self._ids[alert_id] = None
        if len(self._ids) > REMEMBERED_ALERT_IDS:
            self._ids.popitem(last=False)
        return True


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
        self._learned: dict[tuple[int, str], set[Timer]] = {}
        self._resumed_day: dict[tuple[int, str], int] = {}
        self._emitted = AlertMemory()
        self.detectors: list[Detector] = []
        self._live: dict[str, Detector] = {}
        self._prune_shadow_slots = False
        self.shadow_thresholds: Thresholds | None = None
        self.set_thresholds(thresholds)

    def set_thresholds(self, thresholds: Thresholds, shadow: Thresholds | None = None) -> None:
        """Swap in new thresholds; state, timers and models carry over.

        With ``shadow`` (a candidate), every detector whose thresholds differ in it also runs
        a second time with them, beside the live one: see :meth:`_start_shadows`.
        """
        snapshots = self.snapshots()
        same_candidate = shadow is not None and shadow.version == self._shadow_version()
        self.thresholds = thresholds
        self.shadow_thresholds = shadow
        live = build_detectors(thresholds)
        shadows: list[Detector] = []
        if shadow is not None:
            for mine, theirs in zip(live, build_detectors(shadow), strict=True):
                if getattr(theirs, "thresholds", None) != getattr(mine, "thresholds", None):
                    theirs.name = shadow_name(shadow.version, mine.name)
                    shadows.append(theirs)
        had = {d.name for d in self.detectors if is_shadow(d.name)}
        self.detectors = live + shadows
        self._live = {d.name: d for d in live}
        self._index_hooks()
        for (name, partition), blob in snapshots.items():
            if same_candidate or not is_shadow(name):
                self.restore(name, partition, blob)
        self._start_shadows([d for d in shadows if d.name not in had])
        if had - {d.name for d in shadows}:
            self._prune_shadow_slots = True

    def _shadow_version(self) -> str | None:
        candidate = self.shadow_thresholds
        return candidate.version if candidate is not None else None

    def _start_shadows(self, shadows: list[Detector]) -> None:
        """A new shadow detector starts where its live twin is, not from nothing: it takes
        a copy of the live model of every partition, and of each borrower's memory when it
        first meets the borrower (:meth:`_view`: an event, a day close, or a timer of its
        twin), with the timers that memory implies. So a candidate's alerts compare with the
        live ones at once, not after weeks of warm-up; and starting one decodes no state."""
        for detector in shadows:
            twin = self._live[live_name(detector.name)]
            for partition in self.clock.partitions():
                blob = twin.snapshot(partition)
                if blob is not None:
                    detector.restore(partition, blob)

    def _view(self, detector: Detector, state: BorrowerState) -> BorrowerState:
        """The borrower as a shadow detector sees it: the state itself, but for the fields
        it writes besides its slot (``Detector.writes``: login history, installments), which
        are its own copies, so that a shadow never changes what its live twin reads.

        First met, a shadow takes a copy of its twin's memory of the borrower and of those
        fields, and arms the timers they imply.
        """
        key = detector.name + TWIN_SUFFIX
        kept: dict[str, Any] | None = state.slots.get(key)
        first = kept is None
        if kept is None:
            memory = state.slots.get(live_name(detector.name))
            if memory is not None:
                state.slots[detector.name] = orjson.loads(orjson.dumps(memory))
            kept = state.slots[key] = orjson.loads(
                orjson.dumps(
                    {name: TWIN_CODECS[name][0](getattr(state, name)) for name in detector.writes}
                )
            )
        view = state
        if detector.writes:
            view = replace(
                state, **{name: TWIN_CODECS[name][1](kept[name]) for name in detector.writes}
            )
        if first:
            for timer in detector.pending_timers(view):
                self.timers.schedule(state.partition, timer)
        return view

    @staticmethod
    def _keep(detector: Detector, state: BorrowerState, view: BorrowerState) -> None:
        """Store what a shadow detector changed in its own copies, with the borrower's state."""
        if detector.writes:
            kept = state.slots[detector.name + TWIN_SUFFIX]
            for name in detector.writes:
                kept[name] = TWIN_CODECS[name][0](getattr(view, name))

    def use(self, detectors: list[Detector]) -> None:
        """Run exactly these detectors (one detector's tests and backtests)."""
        self.detectors = detectors
        self._live = {d.name: d for d in detectors}
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
        self._shadows = [d for d in self.detectors if is_shadow(d.name)]
        # The hot path runs live detectors on the state itself, shadows on their views.
        self._shadow_hooks = {
            source: [d for d in hooked if is_shadow(d.name)]
            for source, hooked in self._hooks.items()
        }
        for source, hooked in self._hooks.items():
            self._hooks[source] = [d for d in hooked if not is_shadow(d.name)]

    async def process(self, batch: Sequence[Input], wall: float | None = None) -> BatchResult:
        """Run the detectors over ``batch`` (in order), then fire what event time has passed."""
        result = BatchResult()
        findings: list[Finding] = []
        for partition in {item.partition for item in batch} - self._loaded_partitions:
            self._load_timers(partition)
        states = [self._state(item, result) for item in batch]
        fresh = [self._fresh(item, s, result) for item, s in zip(batch, states, strict=True)]
        own_transfers, found = await self._cross_borrower_context(batch, states, fresh, result)
        for position, (item, state) in enumerate(zip(batch, states, strict=True)):
            if fresh[position]:
                try:
                    outputs = self._detect(item, state, own_transfers[position], found, position)
                except Exception as exc:  # a detector bug must not stop the stream
                    result.failed.append((position, f"detector error: {exc!r}"))
                else:
                    armed = self._arm(outputs, state)
                    self.placed(armed, EVENT, position)
                    findings += armed
            self.clock.observe(item.partition, item.source, item.record.ts.timestamp(), wall)
            if self._passed(item.partition, wall):
                # Right after the event that moved event time past them, not at the batch's
                # end: what a timer reads then does not depend on where a batch ends.
                fired = self._fire([item.partition], wall, result)
                self.placed(fired, EVENT, position)
                findings += fired
        for partition in sorted({item.partition for item in batch}):
            fired = self._fire([partition], wall, result)
            self.placed(fired, TIMERS, partition)
            findings += fired
        result.alerts, result.shadow_alerts = self._alerts(findings)
        return result

    def placed(self, findings: list[Finding], phase: int, where: int) -> None:
        """Where ``process`` found ``findings``, in its order: the batch's event at position
        ``where`` (``EVENT``), or the timers and day closes of partition ``where`` (``TIMERS``).
        Nothing here; a replay over processes records it to merge their alerts in this
        engine's order (``streams.lab.parallel``)."""

    def advance(self, wall: float | None = None) -> BatchResult:
        """Fire timers without new events (a partition gone quiet still reaches due dates)."""
        result = BatchResult()
        fired = self._fire(set(self.clock.partitions()), wall, result)
        result.alerts, result.shadow_alerts = self._alerts(fired)
        return result

    def forget_partition(self, partition: int) -> None:
        """Drop timers and event time of a partition this process no longer owns."""
        self.timers.forget(partition)
        self.clock.forget(partition)
        self._loaded_partitions.discard(partition)
        self._closed_day.pop(partition, None)
        for resumed in (self._learned, self._resumed_day):
            for key in [key for key in resumed if key[0] == partition]:
                del resumed[key]

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

    def progress(self, partition: int, result: BatchResult) -> dict[str, Any]:
        """How far a partition's models have learned, as of ``result``: checkpointed with them.

        Models learn only in day closes and timers: the last day closed, and the timers this
        batch fired (those the states written after the checkpoint may not show yet).
        """
        return {
            "closed_day": self._closed_day.get(partition),
            "fired": [list(astuple(timer)) for timer in result.fired.get(partition, [])],
        }

    def resume(self, detector: str, partition: int, progress: dict[str, Any]) -> None:
        """Continue a detector's partition model, restored from a checkpoint at ``progress``.

        The checkpoint is written before the batch's states, so after a crash the model may
        be ahead of the states by that batch: its timers come back with the states. They run
        again for their alerts and state, but what they teach the model is undone; and days
        the model has closed are not closed again for it.
        """
        closed = progress.get("closed_day")
        if closed is not None:
            self._resumed_day[(partition, detector)] = closed
            current = self._closed_day.get(partition)
            self._closed_day[partition] = closed if current is None else min(current, closed)
        self._learned[(partition, detector)] = {
            timer
            for timer in (Timer(*fields) for fields in progress.get("fired", []))
            if timer.detector == detector
        }

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
        # Shadows first meet a borrower before the live detectors apply the event: a copy
        # taken after would already hold it.
        shadows = [
            (shadow, self._view(shadow, state)) for shadow in self._shadow_hooks[item.source]
        ]
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
        for shadow, view in shadows:
            seen = found.get((position, shadow.name), ())
            if isinstance(record, Transaction):
                outputs += shadow.on_transaction(record, view, seen)
            elif isinstance(record, Login):
                outputs += shadow.on_login(record, view, seen)
            elif isinstance(record, Repayment):
                outputs += shadow.on_repayment(record, view, seen)
            self._keep(shadow, state, view)
        return outputs

    def _arm(self, outputs: Output, state: BorrowerState) -> list[Finding]:
        findings = []
        for output in outputs:
            if isinstance(output, Timer):
                self.timers.schedule(state.partition, output)
            else:
                findings.append(output)
        return findings

    @staticmethod
    def _fresh(item: Input, state: BorrowerState, result: BatchResult) -> bool:
        """Whether to apply the event: not a redelivery, not a duplicate event id.

        Both are remembered in the borrower's state, so they survive restarts and rebalances
        with it: a redelivered record has an offset at or below the last one applied from its
        topic partition; a duplicate has an event id among the borrower's latest ones.
        """
        applied: dict[str, Any] | None = state.slots.get(APPLIED_SLOT)
        if applied is None:
            applied = state.slots[APPLIED_SLOT] = {"ids": ""}
        source = item.source.value
        if item.offset is not None:
            if item.offset <= applied.get(source, -1):
                result.redelivered += 1
                return False
            applied[source] = item.offset
        digest = hashlib.blake2b(item.record.event_id.encode(), digest_size=6).digest()
        key = base64.urlsafe_b64encode(digest).decode()[:EVENT_ID_WIDTH]
        ids: str = applied["ids"]
        at = ids.find(key)
        while at >= 0 and at % EVENT_ID_WIDTH:
            at = ids.find(key, at + 1)
        if at >= 0:
            result.duplicates += 1
            return False
        applied["ids"] = (ids + key)[-REMEMBERED_EVENT_IDS * EVENT_ID_WIDTH :]
        return True

    def _state(self, item: Input, result: BatchResult) -> BorrowerState:
        borrower_id = item.record.borrower_id
        state = self.states.get(borrower_id)
        if state is None:
            state = BorrowerState(borrower_id=borrower_id, partition=item.partition)
            self.states.put(borrower_id, state)
        state.partition = item.partition
        if self._prune_shadow_slots:
            self._prune(state)
        result.dirty[borrower_id] = state
        return state

    def _prune(self, state: BorrowerState) -> None:
        """Drop the memory of shadow detectors no longer running (a candidate promoted or
        discarded): it would ride along in every write of the state."""
        running = self._by_name
        for name in [n for n in state.slots if is_shadow(n) and n.split("/")[0] not in running]:
            del state.slots[name]

    async def _cross_borrower_context(
        self,
        batch: Sequence[Input],
        states: list[BorrowerState],
        fresh: list[bool],
        result: BatchResult,
    ) -> tuple[list[bool], dict[tuple[int, str], Found]]:
        """Learn own accounts in event order; answer every detector's lookups in one exchange."""
        own_transfers = [False] * len(batch)
        writes: list[Write] = []
        reads: list[Read] = []
        asked: list[_Asked] = []
        undo: list[Callable[[], None]] = []  # detectors' memories of writing, if it fails
        for position, (item, state) in enumerate(zip(batch, states, strict=True)):
            if not fresh[position]:
                continue
            record = item.record
            if isinstance(record, Transaction):
                state.note_own_account(record.account_id)
                own_transfers[position] = record.counterparty_id in state.own_accounts
            for detector in self._asking:
                seen_by = self._view(detector, state) if is_shadow(detector.name) else state
                lookups = detector.lookups(record, seen_by)
                if lookups is None:
                    continue
                writes += lookups.writes
                asked.append(_Asked(position, detector.name, len(reads), lookups))
                reads += lookups.reads
                if lookups.undo is not None:
                    undo.append(lookups.undo)
        if not asked:
            return own_transfers, {}
        try:
            answers = await self.index.exchange(writes, reads, INDEX_MAX_MEMBERS)
        except Exception as exc:  # the index (Redis) is down: other detectors go on
            for forget in reversed(undo):  # nothing was written: write it next time
                forget()
            _unavailable(result, asked, exc)
            return own_transfers, {(a.position, a.detector): None for a in asked}
        found: dict[tuple[int, str], Found] = {
            (a.position, a.detector): answers[a.first : a.first + len(a.lookups.reads)]
            for a in asked
        }
        await self._follow_up(asked, found, result)
        return own_transfers, found

    async def _follow_up(
        self, asked: list[_Asked], found: dict[tuple[int, str], Found], result: BatchResult
    ) -> None:
        """The reads detectors ask for once their first answers are in (``Lookups.then``),
        in one more exchange; their answers follow the first ones."""
        more: list[Read] = []
        following: list[tuple[_Asked, int, int]] = []
        for a in asked:
            first = found[(a.position, a.detector)]
            reads = a.lookups.then(first) if a.lookups.then is not None and first else ()
            if reads:
                following.append((a, len(more), len(reads)))
                more += reads
        if not following:
            return
        try:
            answers = await self.index.exchange((), more, INDEX_MAX_MEMBERS)
        except Exception as exc:  # written already: only these reads are missing
            _unavailable(result, [a for a, _, _ in following], exc)
            for a, _, _ in following:
                found[(a.position, a.detector)] = None
            return
        for a, start, count in following:
            key = (a.position, a.detector)
            found[key] = [*(found[key] or ()), *answers[start : start + count]]

    def _load_timers(self, partition: int) -> None:
        """Re-arm timers of states this process has just taken over (restart or rebalance)."""
        self._loaded_partitions.add(partition)
        for state in self.states.states_in_partition(partition):
            for detector in self.detectors:
                seen_by = self._view(detector, state) if is_shadow(detector.name) else state
                for timer in detector.pending_timers(seen_by):
                    self.timers.schedule(partition, timer)

    def _passed(self, partition: int, wall: float | None) -> bool:
        """Whether ``partition``'s event time has passed a timer or a day not yet closed."""
        watermark = self.clock.watermark(partition, wall)
        if watermark is None:
            return False
        last = self._closed_day.get(partition)
        if last is None or day_of(watermark) - 1 > last:
            return True
        due = self.timers.next_due(partition)
        return due is not None and due <= watermark

    def _fire(
        self, partitions: Iterable[int], wall: float | None, result: BatchResult
    ) -> list[Finding]:
        """Timers and day closes that each partition's event time has passed, in time order.

        When event time jumps over whole days, each day's timers fire before its close and
        the later days' timers after it: a timer reads the day closes before its own time,
        as it would have had event time moved smoothly.
        """
        findings: list[Finding] = []
        for partition in sorted(partitions):
            watermark = self.clock.watermark(partition, wall)
            if watermark is None:
                continue
            last = self._closed_day.get(partition)
            if last is not None:
                for day in range(last + 1, day_of(watermark)):
                    findings += self._fire_timers(partition, (day + 1) * SECONDS_PER_DAY, result)
                    findings += self._close_days(partition, day + 1, result)
            findings += self._fire_timers(partition, watermark, result)
            findings += self._close_days(partition, day_of(watermark), result)
        return findings

    def _fire_timers(self, partition: int, watermark: float, result: BatchResult) -> list[Finding]:
        findings: list[Finding] = []
        due = self.timers.pop_due(partition, watermark)
        while due:
            findings += self._fire_due(partition, due, result)
            # A shadow meeting a borrower through its twin's timer arms its own, maybe due.
            due = self.timers.pop_due(partition, watermark) if self._shadows else []
        return findings

    def _fire_due(self, partition: int, due: list[Timer], result: BatchResult) -> list[Finding]:
        findings: list[Finding] = []
        for timer in due:
            state = self.states.get(timer.borrower_id)
            detector = self._by_name.get(timer.detector)
            if state is None or detector is None:
                continue
            for shadow in self._shadows:
                if live_name(shadow.name) == timer.detector:
                    self._keep(shadow, state, self._view(shadow, state))  # before the twin
            result.learned.add(partition)
            result.fired.setdefault(partition, []).append(timer)
            learned = self._learned.get((partition, detector.name))
            model = None
            if learned and timer in learned:
                learned.discard(timer)
                model = detector.snapshot(partition)
            try:
                if is_shadow(detector.name):
                    view = self._view(detector, state)
                    findings += self._arm(detector.on_timer(timer, view), state)
                    self._keep(detector, state, view)
                else:
                    findings += self._arm(detector.on_timer(timer, state), state)
            except Exception as exc:  # as for events: one bad state must not stop the rest
                where = f"timer {timer.key} of {timer.borrower_id}"
                result.degraded.append(f"{timer.detector}: {where} failed: {exc!r}")
            if model is not None:
                detector.restore(partition, model)  # already learned before the crash
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
        result.learned.add(partition)
        states = sorted(self.states.states_in_partition(partition), key=lambda s: s.borrower_id)
        views = {d.name: [self._view(d, state) for state in states] for d in self._shadows}
        for day in range(last + 1, today):
            for detector in self.detectors:
                if day <= self._resumed_day.get((partition, detector.name), day - 1):
                    continue  # its restored model has seen this day
                try:
                    findings += detector.on_day_close(
                        partition, day, views.get(detector.name, states)
                    )
                except Exception as exc:
                    result.degraded.append(f"{detector.name}: day close {day} failed: {exc!r}")
        for detector in self._shadows:
            for state, view in zip(states, views[detector.name], strict=True):
                self._keep(detector, state, view)
        # A day close may change any of them (a detector's memory of the day): written too.
        result.dirty.update((state.borrower_id, state) for state in states)
        self._closed_day[partition] = today - 1
        return findings

    def _alerts(self, findings: list[Finding]) -> tuple[list[Alert], list[Alert]]:
        """Live alerts, and shadow alerts: those carry the live detector's name and the
        candidate's version (their ids differ from the live ones: another episode owner)."""
        alerts: list[Alert] = []
        shadow_alerts: list[Alert] = []
        for finding in findings:
            if not self._emitted.first(finding.alert_id):
                continue
            emitted_at = self._now() if self._now is not None else finding.ts
            version, detector = split_shadow_name(finding.detector)
            if version is not None:
                shadow_alerts.append(
                    to_alert(
                        finding,
                        emitted_at=emitted_at,
                        thresholds_version=version,
                        detector=detector,
                    )
                )
            else:
                alerts.append(
                    to_alert(
                        finding, emitted_at=emitted_at, thresholds_version=self.thresholds.version
                    )
                )
        return alerts, shadow_alerts


@dataclass(frozen=True, slots=True)
class _Asked:
    """A detector's lookups for the event at ``position`` of a batch; its reads' answers
    start at ``first`` in the exchange's."""

    position: int
    detector: str
    first: int
    lookups: Lookups


def _unavailable(result: BatchResult, asked: Sequence[_Asked], exc: Exception) -> None:
    names = sorted({a.detector for a in asked})
    result.degraded += [f"{name}: cross-borrower index unavailable: {exc!r}" for name in names]
