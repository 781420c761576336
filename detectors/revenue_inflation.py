"""Revenue inflation: inflows that grow before a loan application, from counterparties new to it."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.clock import Timer
from detectors.index import Found
from detectors.state import BorrowerState, day_of
from detectors.thresholds import RevenueInflationThresholds
from topics.records import Login, Reason, Transaction

__all__ = ["RevenueInflationDetector", "RevenueInflationThresholds"]

#: Large-inflow counterparties remembered per borrower; the least recently seen goes first.
MAX_COUNTERPARTIES = 48
#: Of which, at most this many recently first seen ones, with their daily sums (the one first
#: seen earliest is settled early: it then counts as old, which can only lower the new share).
MAX_YOUNG = 8
#: Days of inflow kept per young counterparty (later days are not counted).
MAX_DAYS_PER_COUNTERPARTY = 6
#: A counterparty first seen more than ``recent_days`` plus this many days before the latest
#: large inflow can no longer be new to an application still to be judged: it is settled, kept
#: as a short hash only. This is also how far the transactions topic may run ahead of the
#: logins topic without changing a verdict.
SETTLE_AFTER_DAYS = 14
#: Width of a settled counterparty's hash in the ``old`` string (base64 characters, 36 bits).
HASH_WIDTH = 6
#: Applications waiting for their timer, and applications already judged, kept per borrower.
MAX_PENDING = 4
MAX_DONE = 4

# Memory of a borrower: "young" maps a counterparty first seen lately to [first day, first
# event id, [[day, sum of its large inflows], ...]]; "old" concatenates the hashes of settled
# counterparties, least recently seen first; "sw" is the latest day seen.


def _empty() -> dict[str, Any]:
    return {"young": {}, "old": "", "sw": 0, "apps": [], "done": []}


def _hash(counterparty: str) -> str:
    digest = hashlib.blake2b(counterparty.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()[:HASH_WIDTH]


def _find(old: str, key: str) -> int:
    """Position of ``key`` in the string of fixed-width hashes, or -1."""
    at = old.find(key)
    while at >= 0 and at % HASH_WIDTH:
        at = old.find(key, at + 1)
    return at


class RevenueInflationDetector(Detector):
    """Flags a loan application preceded by inflows that grew against the borrower's own
    baseline, mostly from several counterparties that first paid in during that ramp-up.

    The verdict is taken at an event-time timer at the application's time, from inflows of
    the days before its day only, so the interleaving of the logins and transactions topics
    cannot change it. Growth from many small customers (a sale season), from one big new
    contract, or from clients who started before the recent window, is not flagged.
    """

    name = "revenue_inflation"
    category = FALSIFIED_FLOW
    version = "1"

    def __init__(self, thresholds: RevenueInflationThresholds) -> None:
        self.thresholds = thresholds

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        if event.direction != "in":
            return []
        amount = float(event.amount)
        counterparty = event.counterparty_id
        if amount < self.thresholds.large_inflow or counterparty in state.own_accounts:
            return []
        memory: dict[str, Any] = self.slot(state, _empty)
        day = day_of(event.ts.timestamp())
        young: dict[str, list[Any]] = memory["young"]
        if day > memory["sw"]:
            memory["sw"] = day
            horizon = day - self.thresholds.recent_days - SETTLE_AFTER_DAYS
            for aged in [cp for cp, entry in young.items() if entry[0] < horizon]:
                self._settle(memory, aged)
        entry = young.get(counterparty)
        if entry is not None:
            if day < entry[0]:  # an earlier inflow arrived late: it is the first one
                entry[0], entry[1] = day, event.event_id
            days: list[list[Any]] = entry[2]
            for known in days:
                if known[0] == day:
                    known[1] += amount
                    break
            else:
                if len(days) < MAX_DAYS_PER_COUNTERPARTY:
                    days.append([day, amount])
            return []
        key = _hash(counterparty)
        old: str = memory["old"]
        at = _find(old, key)
        if at >= 0:  # seen before: now the most recently seen
            memory["old"] = old[:at] + old[at + HASH_WIDTH :] + key
            return []
        young[counterparty] = [day, event.event_id, [[day, amount]]]
        if len(young) > MAX_YOUNG:
            self._settle(memory, min(young, key=lambda cp: (young[cp][0], cp)))
        excess = len(memory["old"]) // HASH_WIDTH + len(young) - MAX_COUNTERPARTIES
        if excess > 0:
            memory["old"] = memory["old"][excess * HASH_WIDTH :]
        return []

    @staticmethod
    def _settle(memory: dict[str, Any], counterparty: str) -> None:
        del memory["young"][counterparty]
        memory["old"] += _hash(counterparty)

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if event.action != "loan_application" or not event.success:
            return []
        memory: dict[str, Any] = self.slot(state, _empty)
        if event.event_id in memory["done"]:
            return []
        epoch = event.ts.timestamp()
        apps: list[list[Any]] = memory["apps"]
        if not any(app[1] == event.event_id for app in apps):
            apps.append([epoch, event.event_id])
            apps.sort(key=lambda app: (app[0], app[1]))
            del apps[:-MAX_PENDING]
        return [Timer(epoch, state.borrower_id, self.name, event.event_id)]

    def pending_timers(self, state: BorrowerState) -> list[Timer]:
        memory = state.slots.get(self.name)
        if not memory:
            return []
        return [Timer(epoch, state.borrower_id, self.name, key) for epoch, key in memory["apps"]]

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        memory = state.slots.get(self.name)
        if not memory:
            return []
        apps: list[list[Any]] = memory["apps"]
        if not any(app[1] == timer.key for app in apps):
            return []
        apps[:] = [app for app in apps if app[1] != timer.key]
        memory["done"].append(timer.key)
        del memory["done"][:-MAX_DONE]
        return self._judge(timer.due, timer.key, memory["young"], state)

    def _judge(
        self, at: float, application: str, young: dict[str, list[Any]], state: BorrowerState
    ) -> Output:
        t = self.thresholds
        today = day_of(at)
        start = today - t.recent_days
        recent, recent_days = state.inflows.total(start, today)
        baseline, baseline_days = state.inflows.total(start - t.baseline_days, start)
        if baseline_days < t.min_baseline_days or baseline <= 0.0 or recent <= 0.0:
            return []
        growth = (recent / recent_days) / (baseline / baseline_days)
        if growth < t.min_growth:
            return []
        new: list[tuple[int, str, str, float]] = []  # first day, counterparty, event, amount
        for counterparty, (first_day, first_event, days) in young.items():
            if start <= first_day < today:
                amount = sum(s for day, s in days if start <= day < today)
                new.append((first_day, counterparty, first_event, amount))
        share = min(1.0, sum(n[3] for n in new) / recent)
        if len(new) < t.min_new_counterparties or share < t.min_new_share:
            return []
        new.sort()
        return [self._finding(state, at, application, growth, share, new)]

    def _finding(
        self,
        state: BorrowerState,
        at: float,
        application: str,
        growth: float,
        share: float,
        new: list[tuple[int, str, str, float]],
    ) -> Finding:
        t = self.thresholds
        more_growth = min(1.0, growth / max(1e-9, t.min_growth) - 1.0)
        more_share = min(1.0, (share - t.min_new_share) / max(1e-9, 1.0 - t.min_new_share))
        more_parties = min(1.0, (len(new) - t.min_new_counterparties) / 3.0)
        score = min(1.0, 0.6 + 0.15 * more_growth + 0.15 * more_share + 0.1 * more_parties)
        names = ", ".join(n[1] for n in new[:5]) + (", ..." if len(new) > 5 else "")
        return self.finding(
            state,
            episode=f"inflation:{application}",
            ts=datetime.fromtimestamp(at, UTC),
            score=score,
            reasons=[
                Reason(
                    code="inflow_growth",
                    message=f"daily inflow over the {t.recent_days} days before the application "
                    f"is {growth:.1f} times that of the {t.baseline_days} days before",
                    observed=round(growth, 3),
                    threshold=t.min_growth,
                ),
                Reason(
                    code="new_counterparty_share",
                    message=f"{share:.0%} of it came in large amounts from counterparties first "
                    f"seen in those {t.recent_days} days",
                    observed=round(share, 3),
                    threshold=t.min_new_share,
                ),
                Reason(
                    code="new_counterparties",
                    message=f"{len(new)} counterparties first sent {t.large_inflow:,.0f} or more "
                    f"in the window: {names}",
                    observed=len(new),
                    threshold=t.min_new_counterparties,
                ),
            ],
            evidence=[application] + [n[2] for n in new],
        )
