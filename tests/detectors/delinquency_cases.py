"""What the delinquency tests share: a due date, its checks, and hand-made borrowers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from detectors.base import Finding
from detectors.clock import Timer
from detectors.delinquency import DelinquencyDetector, DelinquencyThresholds
from detectors.state import SECONDS_PER_DAY, BorrowerState, day_of
from tests.detectors.factories import login, scheduled
from topics.records import Login, Repayment, Transaction

__all__ = [
    "CHECK3",
    "CHECK5",
    "CHECK7",
    "CHECK10",
    "DEADLINE",
    "DEADLINE_TIMER",
    "DUE",
    "KEY",
    "LUMPY_WEEK",
    "MIDNIGHT",
    "PAST_DUE",
    "codes",
    "collapse",
    "flows",
    "logins",
    "run",
    "schedule",
    "steady",
    "timer",
]

DUE = date(2024, 4, 10)
MIDNIGHT = datetime(2024, 4, 9, 16, 0, tzinfo=UTC)  # 2024-04-10 00:00+08:00
DEADLINE = MIDNIGHT + timedelta(days=4)  # the end of the 3-day grace period
KEY = "loan-1#1"
#: A business whose takings vary by weekday, as B2B flows do: lumpy, with quiet days.
LUMPY_WEEK = [30_000.0, 5_000.0, 25_000.0, 0.0, 15_000.0, 0.0, 20_000.0]


def timer(stage: str, at: datetime, key: str = KEY, borrower: str = "b-1") -> Timer:
    return Timer(at.timestamp(), borrower, "delinquency", f"{stage}|{key}")


CHECK10 = timer("check10", MIDNIGHT - timedelta(days=10))
CHECK7 = timer("check7", MIDNIGHT - timedelta(days=7))
CHECK5 = timer("check5", MIDNIGHT - timedelta(days=5))
CHECK3 = timer("check3", MIDNIGHT - timedelta(days=3))
PAST_DUE = timer("past_due", MIDNIGHT + timedelta(days=1))
DEADLINE_TIMER = timer("deadline", DEADLINE)


def schedule(
    amount_due: str = "3000",
    detector: DelinquencyDetector | None = None,
    borrower: str = "b-1",
    partition: int = 0,
) -> tuple[DelinquencyDetector, BorrowerState]:
    detector = detector or DelinquencyDetector(DelinquencyThresholds())
    state = BorrowerState(borrower_id=borrower, partition=partition)
    timers = detector.on_repayment(
        scheduled("s-1", datetime(2024, 3, 1, tzinfo=UTC), DUE, amount_due, borrower_id=borrower),
        state,
        (),
    )
    assert [t.key.split("|")[0] for t in timers] == [
        "check10",
        "check7",
        "check5",
        "check3",
        "past_due",
        "deadline",
    ]
    return detector, state


def flows(state: BorrowerState, days_before_due: list[float], *, after: float = 0.0) -> None:
    """Daily inflows, the day before the due date first, going back; ``after`` from then on."""
    due_day = day_of(MIDNIGHT.timestamp())
    for back, amount in enumerate(days_before_due):
        state.inflows.add(due_day - 1 - back, amount)
    for day in range(due_day, due_day + 10):
        state.inflows.add(day, after)


def steady(state: BorrowerState, per_day: float = 10_000.0) -> None:
    flows(state, [per_day] * 80, after=per_day)


def collapse(state: BorrowerState, recent_per_day: float = 2_000.0) -> None:
    """10 000 a day, then ``recent_per_day`` over the last two weeks before the due date."""
    flows(state, [recent_per_day] * 14 + [10_000.0] * 66, after=recent_per_day)


def logins(
    detector: DelinquencyDetector, state: BorrowerState, days_before_due: range, **kw: str
) -> None:
    for back in days_before_due:
        at = MIDNIGHT - timedelta(days=back, hours=6)
        detector.on_login(login(f"l-{back}", at, device="d", ip="1", **kw), state, ())


def codes(findings: list[object]) -> list[list[str]]:
    return [[r.code for r in f.reasons] for f in findings if isinstance(f, Finding)]


def run(
    detector: DelinquencyDetector,
    state: BorrowerState,
    events: Sequence[Repayment | Login | Transaction] = (),
    *,
    until: datetime = DEADLINE,
    peers: Sequence[BorrowerState] = (),
) -> list[Finding]:
    """``events`` in time order (inflows kept as the engine keeps them), and every timer of
    ``state`` when event time passes it, up to ``until``, as the engine's clock runs them;
    with ``peers`` (the partition, ``state`` among them), each day closes at its end. The
    findings, in order."""
    found: list[Finding] = []
    # The next day to close: the first of the partition's history.
    closing = [min((s.inflows.first_day for s in peers if s.inflows.first_day >= 0), default=0)]

    def advance(to: float) -> None:
        while True:
            due = sorted(
                (t for t in detector.pending_timers(state) if t.due <= to), key=lambda t: t.due
            )
            day_end = (closing[0] + 1) * SECONDS_PER_DAY
            if peers and day_end <= to and (not due or day_end <= due[0].due):
                detector.on_day_close(state.partition, closing[0], peers)
                closing[0] += 1
            elif due:
                found.extend(f for f in detector.on_timer(due[0], state) if isinstance(f, Finding))
            else:
                return

    for event in sorted(events, key=lambda e: e.ts):
        advance(event.ts.timestamp())
        if isinstance(event, Transaction):
            if event.direction == "in":  # as the engine keeps the inflow history
                state.inflows.add(day_of(event.ts.timestamp()), float(event.amount))
            out = detector.on_transaction(event, state, ())
        elif isinstance(event, Login):
            out = detector.on_login(event, state, ())
        else:
            out = detector.on_repayment(event, state, ())
        found.extend(f for f in out if isinstance(f, Finding))
    advance(until.timestamp())
    return found
