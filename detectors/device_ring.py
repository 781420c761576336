"""Device rings: one device used by several borrowers, as an agent applying in their names."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from detectors import personal
from detectors.base import ABNORMAL_BEHAVIOUR, Detector, Finding, Output
from detectors.index import Found, Lookups, Read, Write
from detectors.scenarios import at, inputs, login
from detectors.state import SECONDS_PER_DAY, BorrowerState
from detectors.tunables import Rules, tunable
from topics.names import Source
from topics.records import Login
from topics.validate import InputRecord

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["DeviceRingDetector", "DeviceRingThresholds", "crowded"]


@dataclass(frozen=True, slots=True)
class DeviceRingThresholds:
    #: The borrowers must all have used the device within a span of this many days.
    window_days: float = tunable(
        30.0, 1.0, 365.0, "days within which the borrowers used the device"
    )
    #: This many distinct borrowers on one device within the span is a ring (count) ...
    min_borrowers: int = tunable(3, 2, 1000, "distinct borrowers on one device that make a ring")
    #: ... when this many of them applied for a loan, drew one down or changed the payout account
    #: from it: an agent acts in the members' names, while a family's tablet or an accountant's
    #: computer is used to look at accounts.
    min_applicants: int = tunable(
        2, 0, 1000, "borrowers of a ring who applied, drew down or changed payout from the device"
    )
    #: Distinct borrowers on one device within the span that make a ring without applications
    #: from it (an account farm), more than related businesses share one computer.
    min_borrowers_logins_only: int = tunable(
        5, 2, 1000, "distinct borrowers on one device that make a ring without applications"
    )

    #: Rules across these tunables, each with what a team is told when a change breaks it.
    CONSTRAINTS: ClassVar[Rules[DeviceRingThresholds]] = (
        (
            "device_ring.min_applicants must not exceed device_ring.min_borrowers",
            lambda t: t.min_applicants <= t.min_borrowers,
        ),
        (
            "device_ring.min_borrowers must not exceed device_ring.min_borrowers_logins_only",
            lambda t: t.min_borrowers <= t.min_borrowers_logins_only,
        ),
    )


DAY = 86_400.0
#: Actions that show who holds a device: a successful login, and the actions that move a
#: borrower's money, which an agent running a ring performs for its members while a family
#: tablet or an accountant's computer is used to look at accounts.
CONTROL_ACTIONS = frozenset({"loan_application", "drawdown", "payout_account_change"})
RING_ACTIONS = frozenset({"login"}) | CONTROL_ACTIONS
#: (device, day, action) marks a borrower remembers, to write each to the index once a day.
MAX_WRITTEN = 4
#: Event ids listed per finding (the borrower's own first, then the others').
MAX_EVIDENCE = 24


def crowded(
    points: Sequence[tuple[float, str]],
    span: float,
    min_distinct: int,
    marked: Sequence[bool] = (),
    min_marked: int = 0,
) -> list[tuple[int, int]]:
    """Stretches of the points (sorted by time) covered by spans of at most ``span`` seconds
    that each hold at least ``min_distinct`` distinct owners, and at least ``min_marked``
    distinct owners of points ``marked`` (one flag per point), as (first, last) positions.

    The answer for a set of points does not depend on the order they were learnt in, and every
    point of a crowded span is within ``span`` of every other: whoever reads ``±span`` around
    the last point of a crowded span to arrive sees all of it.

    >>> crowded([(0.0, "a"), (5.0, "b"), (9.0, "c"), (30.0, "d"), (35.0, "e")], 10.0, 3)
    [(0, 2)]
    >>> crowded([(0.0, "a"), (5.0, "a"), (9.0, "b"), (30.0, "c")], 10.0, 3)
    []
    >>> crowded([(0.0, "a"), (5.0, "b"), (9.0, "c"), (12.0, "d"), (30.0, "e")], 10.0, 3)
    [(0, 3)]
    >>> crowded([(0.0, "a"), (5.0, "b"), (9.0, "c")], 10.0, 3, [True, False, False], 2)
    []
    """
    counts: dict[str, int] = {}
    marks: dict[str, int] = {}
    stretches: list[tuple[int, int]] = []
    left = 0
    for right, (ts, owner) in enumerate(points):
        counts[owner] = counts.get(owner, 0) + 1
        if marked and marked[right]:
            marks[owner] = marks.get(owner, 0) + 1
        while ts - points[left][0] > span:
            gone = points[left][1]
            counts[gone] -= 1
            if not counts[gone]:
                del counts[gone]
            if marked and marked[left]:
                marks[gone] -= 1
                if not marks[gone]:
                    del marks[gone]
            left += 1
        if len(counts) >= min_distinct and len(marks) >= min_marked:
            if stretches and stretches[-1][1] >= left:  # shares points with the one before
                stretches[-1] = (stretches[-1][0], right)
            else:
                stretches.append((left, right))
    return stretches


class DeviceRingDetector(Detector):
    """Flags every borrower of a device that ``min_borrowers`` distinct borrowers used within
    ``window_days`` (successful logins and loan applications), ``min_applicants`` of them
    applying for a loan from it; or that ``min_borrowers_logins_only`` used, applying or not.

    Each borrower writes, once a day per device and action, ``[borrower, event, applied, ts]``
    to ``device:{device}`` scored by event time, and reads ``±window_days`` around it. The
    alert is whether a crowded span exists in the set, which only grows: whatever the arrival
    order, the last member of a crowded span to arrive sees the whole span and names all its
    borrowers, and nothing else is named, so the set of alert ids is the same. A family tablet
    or an accountant's computer shared by two borrowers, or a borrower with several devices,
    is not a ring; nor the tablet of a family that runs three small businesses, or the
    computer of their accountant, used to look at their accounts: an agent's device is for
    applying in the members' names. Several of them applying from it within the window is an
    agent-run application, whoever the agent.
    """

    name = "device_ring"
    category = ABNORMAL_BEHAVIOUR
    version = "2"
    section = "device_ring"
    thresholds_type = DeviceRingThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """Three borrowers logging in and applying for loans from one tablet over two days."""
        return inputs(
            Source.LOGINS,
            [
                login(
                    f"{borrower}-{step}",
                    at(days=day, minutes=minutes),
                    device="dr-tablet",
                    ip="10.0.0.9",
                    action=action,
                    borrower_id=borrower,
                )
                for borrower, day in (("dr-1", 4.0), ("dr-2", 4.5), ("dr-3", 5.0))
                for step, minutes, action in (("in", 0, "login"), ("apply", 8, "loan_application"))
            ],
        )

    messages = {
        "shared_device": "device {device} was used by {count} borrowers within {days:.1f} days: "
        "{borrowers:, }",
        "loan_applications_from_shared_device": "{applicants} of them applied for a loan, "
        "drew one down or changed the payout account from it",
    }
    episodes = {"device": "device:{device}"}

    def __init__(self, thresholds: DeviceRingThresholds) -> None:
        self.thresholds = thresholds

    def lookups(self, event: InputRecord, state: BorrowerState) -> Lookups | None:
        """Write and read only for the first use of a device by the borrower in a UTC day.

        The engine asks every event's lookups, in order, before any hook of the batch runs, so
        the borrower's memory of what it wrote is kept here: whatever the batch sizes, the same
        events are written.
        """
        if not isinstance(event, Login) or not event.success:
            return None
        action = event.action
        if action not in RING_ACTIONS:
            return None
        applied = 1 if action in CONTROL_ACTIONS else 0
        epoch = event.ts.timestamp()
        device = event.device_id
        mark = [zlib.crc32(device.encode()), int(epoch // SECONDS_PER_DAY), applied]
        written: list[list[int]] = self.slot(state, list)
        if mark in written:
            return None
        written.append(mark)
        del written[:-MAX_WRITTEN]
        span = self.thresholds.window_days * DAY
        key = f"device:{device}"
        member = orjson.dumps([event.borrower_id, event.event_id, applied, epoch])
        return Lookups(
            (Write(key, member, epoch),),
            (Read(key, epoch - span, epoch + span),),
            undo=partial(_forget, written, mark),
        )

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if not found:  # not a first use of the day, or the index is down (then not marked)
            return []
        [members] = found
        t = self.thresholds
        if len(members) < t.min_borrowers:
            return []
        # The common case, a device only its borrower uses, without decoding the members.
        own = b"\n[" + orjson.dumps(event.borrower_id) + b","
        if len(members) - (b"\n" + b"\n".join(members)).count(own) < t.min_borrowers - 1:
            return []
        return list(self.close(event.device_id, [orjson.loads(m) for m in members]))

    def close(self, device_id: str, members: list[list[Any]]) -> list[Finding]:
        """Findings for every borrower of a crowded span among ``members`` of one device.

        >>> detector = DeviceRingDetector(DeviceRingThresholds())
        >>> uses = [["A", "e1", 1, 0.0], ["B", "e2", 1, 3600.0], ["C", "e3", 0, 7200.0]]
        >>> [(f.borrower_id, f.episode) for f in detector.close("dev-9", uses)]
        [('A', 'device:dev-9'), ('B', 'device:dev-9'), ('C', 'device:dev-9')]
        """
        t = self.thresholds
        members = sorted(members, key=lambda m: (m[3], m[0], m[1]))
        points = [(m[3], m[0]) for m in members]
        span = t.window_days * DAY
        applied = [bool(m[2]) for m in members]
        applying = crowded(points, span, t.min_borrowers, applied, t.min_applicants)
        stretches = applying + crowded(points, span, t.min_borrowers_logins_only)
        if not stretches:
            return []
        marked = [m for i, m in enumerate(members) if any(a <= i <= b for a, b in stretches)]
        minimum = t.min_borrowers if applying else t.min_borrowers_logins_only
        borrowers = sorted({m[0] for m in marked})
        applicants = sorted({m[0] for m in marked if m[2]})
        days = max(members[last][3] - members[first][3] for first, last in stretches) / DAY
        score = 0.6 + 0.05 * min(3, len(borrowers) - minimum) + (0.2 if applicants else 0)
        reasons = [
            self.reason(
                "shared_device",
                observed=len(borrowers),
                threshold=minimum,
                device=personal.device(device_id),
                count=len(borrowers),
                days=days,
                borrowers=personal.borrower(borrowers[:10]),
            )
        ]
        if applicants:
            reasons.append(
                self.reason(
                    "loan_applications_from_shared_device",
                    observed=len(applicants),
                    threshold=t.min_applicants,
                    applicants=len(applicants),
                )
            )
        ts = datetime.fromtimestamp(marked[-1][3], UTC)
        return [
            self.finding(
                borrower,
                episode=self.episode("device", device=personal.device(device_id)),
                ts=ts,
                score=min(0.95, score),
                reasons=reasons,
                evidence=(
                    [m[1] for m in marked if m[0] == borrower]
                    + [m[1] for m in marked if m[0] != borrower]
                )[:MAX_EVIDENCE],
            )
            for borrower in borrowers
        ]


def _forget(written: list[list[int]], mark: list[int]) -> None:
    """The exchange that was to write ``mark``'s member failed: write it next time."""
    if mark in written:
        written.remove(mark)
