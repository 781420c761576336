"""Revenue inflation: turnover that grows before a loan application, from payers who then vanish."""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from detectors import personal
from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.clock import Timer
from detectors.index import Found
from detectors.scenarios import at, inputs, login, transaction
from detectors.state import INFLOW_HISTORY_DAYS, SECONDS_PER_DAY, BorrowerState, day_of
from detectors.tunables import Rules, tunable
from topics.names import Source
from topics.records import Login, Transaction

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["RevenueInflationDetector", "RevenueInflationThresholds"]


@dataclass(frozen=True, slots=True)
class RevenueInflationThresholds:
    """Tunables of :class:`~detectors.revenue_inflation.RevenueInflationDetector`.

    A ramp is judged over two windows ending at the application's UTC day, ``recent_days``
    and ``ramp_days`` long (a forged ramp runs three to six weeks), each against the
    ``baseline_days`` before it. The verdict comes ``quiet_days`` after the application:
    genuine new clients keep paying after a loan, forged payers stop.
    """

    #: Recent window: this many days before the application's UTC day.
    recent_days: int = tunable(28, 7, 60, "days before the application judged as the recent window")
    #: Longest ramp: a payer first seen this many days before the application is still new,
    #: and a second window this long is judged too.
    ramp_days: int = tunable(
        42, 7, 60, "days before the application a payer first seen is still new"
    )
    #: Baseline window: at most this many days before a window (the inflow ring holds 96).
    baseline_days: int = tunable(56, 7, 56, "days before a window its baseline covers")
    #: Days of history the baseline needs: a shorter history is compared with what it has.
    min_baseline_days: int = tunable(7, 1, 56, "days of history the baseline needs")
    #: A counterparty is tracked from its first single inflow of at least this (major units).
    large_inflow: float = tunable(
        10_000.0,
        0.0,
        10000000.0,
        "single inflow from which a counterparty is tracked (major units)",
    )
    #: Alert when a window's daily turnover is at least this multiple of the baseline's ...
    min_growth: float = tunable(
        1.4, 1.0, 100.0, "window turnover over the baseline at which growth counts"
    )
    #: ... and new payers that then went quiet sent at least this share of the window's
    #: turnover ...
    min_new_share: float = tunable(
        0.45, 0.0, 1.0, "share of the window's turnover from new payers gone quiet"
    )
    #: ... and there are at least this many such payers.
    min_new_counterparties: int = tunable(3, 1, 100, "new payers gone quiet needed")
    #: Days from the application's UTC day in which those payers must have paid nothing.
    quiet_days: int = tunable(
        7, 1, 60, "days after the application in which those payers paid nothing"
    )
    #: A new payer's later inflow of at least this (major units) shows it is still paying.
    min_followup_inflow: float = tunable(
        5_000.0, 0.0, 10000000.0, "later inflow that shows a new payer is still paying"
    )
    #: A counterparty the borrower sent at least this (major units) is a trading partner:
    #: its inflows are not turnover (returned deposits, goods bought and sold back).
    min_two_way_outflow: float = tunable(
        5_000.0, 0.0, 10000000.0, "outflow to a counterparty that makes it a trading partner"
    )

    #: Rules across these tunables, each with what a team is told when a change breaks it.
    CONSTRAINTS: ClassVar[Rules[RevenueInflationThresholds]] = (
        (
            "revenue_inflation.min_baseline_days must not exceed revenue_inflation.baseline_days",
            lambda t: t.min_baseline_days <= t.baseline_days,
        ),
    )


#: Large-inflow counterparties remembered per borrower; the least recently seen goes first.
MAX_COUNTERPARTIES = 64
#: Of which, at most this many recently first seen ones, with their daily sums. Beyond that
#: one is settled early (it then counts as old, which can only lower a new share): one too old
#: to matter if any, else the one that sent least, so that the many one-off payers of a busy
#: business do not push a ramp's payers out.
MAX_YOUNG = 16
#: Days of inflow kept per young counterparty: the latest ones (dropping the earliest can
#: only lower its share, and keeps what it paid after an application).
MAX_DAYS_PER_COUNTERPARTY = 8
#: A counterparty first seen more than ``ramp_days + quiet_days`` plus this many days before
#: the latest large inflow can no longer be new to an application still to be judged: it is
#: settled, kept as a short hash only. This is also how far the transactions topic may run
#: ahead of the logins topic without changing a verdict.
SETTLE_AFTER_DAYS = 14
#: Width of a settled counterparty's hash in the ``old`` string (base64 characters, 36 bits).
HASH_WIDTH = 6
#: Applications (and quiet weeks) waiting for their timer, and applications judged, per borrower.
MAX_PENDING = 4
MAX_DONE = 4
#: Counterparties the borrower paid, remembered to tell trading partners from customers.
MAX_PAYEES = 16
#: Key prefix of the timer that ends an application's quiet week.
QUIET = "quiet:"

# Memory of a borrower: "young" maps a counterparty first seen lately to [first day, first
# event id, [[day, sum of its large inflows (0.0: only smaller ones, which show it still
# pays)], ...]]; "old" concatenates the hashes of settled
# counterparties, least recently seen first; "sw" is the latest day seen; "apps" holds
# applications waiting for their timer as [epoch, event id]; "watch" holds ramps waiting for
# their quiet week as [due epoch, application, its day, [[window, growth, baseline days,
# turnover, short history], ...], [new payers]]; "pay" lists recent payees, least recent
# first; "net" holds [day, sum] of inflows from payees (not turnover), oldest first.
# Memory written by version 1 lacks "watch", "pay" and "net": they are created on first use.


def _empty() -> dict[str, Any]:
    return {"young": {}, "old": "", "sw": 0, "apps": [], "done": []}


#: Hashes of counterparties seen lately by this process (they pay again): hashing is the
#: dearest step of a large inflow. Cleared when full; it holds no state of a borrower.
_HASHES: dict[str, str] = {}
_MAX_HASHES = 100_000
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _hash(counterparty: str) -> str:
    """The first 36 bits of the counterparty's BLAKE2b digest, in URL-safe base64."""
    key = _HASHES.get(counterparty)
    if key is None:
        digest = hashlib.blake2b(counterparty.encode(), digest_size=6).digest()
        key = binascii.b2a_base64(digest, newline=False)[:HASH_WIDTH].translate(_URLSAFE).decode()
        if len(_HASHES) >= _MAX_HASHES:
            _HASHES.clear()
        _HASHES[counterparty] = key
    return key


def _find(old: str, key: str) -> int:
    """Position of ``key`` in the string of fixed-width hashes, or -1."""
    at = old.find(key)
    while at >= 0 and at % HASH_WIDTH:
        at = old.find(key, at + 1)
    return at


def _add_day(days: list[list[Any]], day: int, amount: float, keep: int) -> None:
    """Add an inflow to daily sums kept in day order; beyond ``keep`` days the earliest goes."""
    for known in days:
        if known[0] == day:
            known[1] += amount
            return
    days.append([day, amount])
    if len(days) > 1 and days[-2][0] > day:  # a late arrival
        days.sort(key=lambda known: known[0])
    if len(days) > keep:
        del days[0]


def _between(pairs: list[list[Any]], start: int, end: int) -> float:
    return float(sum(amount for day, amount in pairs if start <= day < end))


class RevenueInflationDetector(Detector):
    """Flags a loan application preceded by turnover that grew against the borrower's own
    history, carried by several payers first seen in the ramp-up who then paid nothing in
    the week from the application.

    Forged turnover needs money to cycle in from accounts the fraudster controls; it stops
    once the loan is paid out. Genuine new clients (a business that grew, a big new
    contract) keep paying, so the verdict waits ``quiet_days`` after the application: it
    costs a week of detection time and buys the one signal a genuine growth cannot fake.

    The ramp is measured at an event-time timer at the application, from inflows of the days
    before its day; the quiet week is read at a second timer at the start of the day it ends,
    from inflows of its days only: the interleaving of the topics cannot change a verdict.
    Turnover leaves out inflows from accounts the borrower also pays (a trading partner that
    buys and sells, a returned deposit). A history shorter than the baseline is compared with
    what there is, down to ``min_baseline_days``, and the alert says so.
    """

    name = "revenue_inflation"
    category = FALSIFIED_FLOW
    version = "2"
    section = "revenue_inflation"
    thresholds_type = RevenueInflationThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """A small weekly inflow since December, three new payers in February, an
        application on 3 March, and nothing from those payers in the week after it."""
        weekly = [
            transaction(f"r-w{d}", "r-1", "ra-1", "r-shop", "7000", at(days=d, hours=1), "in")
            for d in range(-80, 2, 7)
        ]
        new_payers = [
            transaction(
                f"r-{name}-{d}", "r-1", "ra-1", f"r-{name}", "30000", at(days=d, hours=3), "in"
            )
            for name in ("p1", "p2", "p3")
            for d in (-20, -10)
        ]
        application = login(
            "r-app",
            at(days=2),
            device="r-phone",
            ip="10.9.0.1",
            action="loan_application",
            borrower_id="r-1",
        )
        return [
            *inputs(Source.TRANSACTIONS, [*weekly, *new_payers]),
            *inputs(Source.LOGINS, [application]),
        ]

    messages = {
        "inflow_growth": "daily turnover over the {days} days before the application is "
        "{growth:.1f} times that of the {baseline_days} days before",
        "new_counterparty_share": "{share:.0%} of it came from counterparties first seen in the "
        "{ramp_days} days before the application that sent nothing in the {quiet_days} days "
        "from it",
        "new_counterparties": "{count} such counterparties first sent {large:,.0f} or more in the "
        "ramp, then stopped: {counterparties:, }{more}",
        "short_history": "a short history: the {days}-day window is compared with the only "
        "{baseline_days} days before it (at least {min_baseline_days} needed)",
    }
    episodes = {"application": "inflation:{application}"}

    def __init__(self, thresholds: RevenueInflationThresholds) -> None:
        self.thresholds = thresholds
        # Amounts are compared as Decimals: cheaper than a float conversion of every event.
        self._large = Decimal(str(thresholds.large_inflow))
        self._followup = Decimal(str(thresholds.min_followup_inflow))
        self._two_way = Decimal(str(thresholds.min_two_way_outflow))

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        amount = event.amount
        if event.direction != "in":
            if amount >= self._two_way:
                self._paid(state, event.counterparty_id)
            return []
        if amount < self._followup:
            return []
        counterparty = event.counterparty_id
        if counterparty in state.own_accounts:
            return []
        large = amount >= self._large
        memory: dict[str, Any] | None = state.slots.get(self.name)
        if memory is None:
            if not large:
                return []
            memory = state.slots[self.name] = _empty()
        young: dict[str, list[Any]] = memory["young"]
        entry = young.get(counterparty)
        payees: list[str] | None = memory.get("pay")
        two_way = entry is None and payees is not None and counterparty in payees
        if not (large or entry is not None or two_way):
            return []
        day = day_of(event.ts.timestamp())
        if day > memory["sw"]:
            self._new_day(memory, day)
        if entry is not None:
            if day < entry[0]:  # an earlier inflow arrived late: it is the first one
                entry[0], entry[1] = day, event.event_id
            # A smaller inflow shows the payer still pays; only large ones make up the share.
            _add_day(entry[2], day, float(amount) if large else 0.0, MAX_DAYS_PER_COUNTERPARTY)
            return []
        if two_way:
            _add_day(memory.setdefault("net", []), day, float(amount), INFLOW_HISTORY_DAYS)
            return []
        key = _hash(counterparty)
        old: str = memory["old"]
        at = _find(old, key)
        if at >= 0:  # seen before: now the most recently seen
            memory["old"] = old[:at] + old[at + HASH_WIDTH :] + key
            return []
        young[counterparty] = [day, event.event_id, [[day, float(amount)]]]
        if len(young) > MAX_YOUNG:
            self._settle(memory, self._least_needed(memory, day))
        excess = len(memory["old"]) // HASH_WIDTH + len(young) - MAX_COUNTERPARTIES
        if excess > 0:
            memory["old"] = memory["old"][excess * HASH_WIDTH :]
        return []

    def _least_needed(self, memory: dict[str, Any], day: int) -> str:
        """The young counterparty to settle first: one too old to be new to an application to
        come and not watched, else the one that sent least (settling it can only lower a new
        share, so a big payer is kept over the many one-off payers of a busy business)."""
        young: dict[str, list[Any]] = memory["young"]
        watched = {cp for watch in memory.get("watch", ()) for cp in watch[4]}
        recent = day - self.thresholds.ramp_days

        def need(cp: str) -> tuple[bool, float, int, str]:
            first, _, days = young[cp]
            return (first >= recent or cp in watched, sum(s for _, s in days), first, cp)

        return min(young, key=need)

    def _new_day(self, memory: dict[str, Any], day: int) -> None:
        """Settle counterparties too old to be new to any application still to be judged."""
        memory["sw"] = day
        t = self.thresholds
        horizon = day - t.ramp_days - t.quiet_days - SETTLE_AFTER_DAYS
        young: dict[str, list[Any]] = memory["young"]
        for aged in [cp for cp, entry in young.items() if entry[0] < horizon]:
            self._settle(memory, aged)
        net: list[list[Any]] | None = memory.get("net")
        if net and net[0][0] <= day - INFLOW_HISTORY_DAYS:
            net[:] = [pair for pair in net if pair[0] > day - INFLOW_HISTORY_DAYS]

    def _paid(self, state: BorrowerState, counterparty: str) -> None:
        """Remember a payee: its later inflows are not turnover."""
        memory: dict[str, Any] | None = state.slots.get(self.name)
        if memory is None:
            memory = state.slots[self.name] = _empty()
        payees: list[str] | None = memory.get("pay")
        if payees is None:
            payees = memory["pay"] = []
        elif payees and payees[-1] == counterparty:
            return  # the usual case: the same supplier paid again
        if counterparty in state.own_accounts:
            return
        if counterparty in payees:
            payees.remove(counterparty)
        payees.append(counterparty)
        del payees[:-MAX_PAYEES]

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
        timers = [Timer(epoch, state.borrower_id, self.name, key) for epoch, key in memory["apps"]]
        for watch in memory.get("watch", ()):
            timers.append(Timer(watch[0], state.borrower_id, self.name, QUIET + watch[1]))
        return timers

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        memory = state.slots.get(self.name)
        if not memory:
            return []
        if timer.key.startswith(QUIET):
            application = timer.key[len(QUIET) :]
            watches: list[list[Any]] = memory.get("watch", [])
            watch = next((w for w in watches if w[1] == application), None)
            if watch is None:
                return []
            watches.remove(watch)
            return self._quiet_week(watch, memory, state)
        apps: list[list[Any]] = memory["apps"]
        if not any(app[1] == timer.key for app in apps):
            return []
        apps[:] = [app for app in apps if app[1] != timer.key]
        memory["done"].append(timer.key)
        del memory["done"][:-MAX_DONE]
        return self._ramp(timer.due, timer.key, memory, state)

    def _ramp(
        self, at: float, application: str, memory: dict[str, Any], state: BorrowerState
    ) -> Output:
        """At the application: did turnover ramp up, carried by new payers? If so, watch them."""
        t = self.thresholds
        today = day_of(at)
        young: dict[str, list[Any]] = memory["young"]
        payers = sorted(
            cp for cp, entry in young.items() if today - t.ramp_days <= entry[0] < today
        )
        if len(payers) < t.min_new_counterparties:
            return []
        net: list[list[Any]] = memory.get("net", [])
        windows: list[list[Any]] = []
        for length in sorted({t.recent_days, t.ramp_days}):
            start = today - length
            recent, recent_days = state.inflows.total(start, today)
            baseline, baseline_days = state.inflows.total(start - t.baseline_days, start)
            recent -= _between(net, start, today)
            baseline -= _between(net, start - t.baseline_days, start)
            if baseline_days < t.min_baseline_days or baseline <= 0.0 or recent <= 0.0:
                continue
            growth = (recent / recent_days) / (baseline / baseline_days)
            if growth < t.min_growth:
                continue
            sums = [_between(young[cp][2], start, today) for cp in payers]
            if sum(1 for s in sums if s > 0) < t.min_new_counterparties:
                continue
            if sum(sums) < t.min_new_share * recent:
                continue
            # Less history before the window than the window itself: said in the alert.
            short = baseline_days < min(length, t.baseline_days)
            windows.append([length, growth, baseline_days, recent, short])
        if not windows:
            return []
        due = float((today + t.quiet_days) * SECONDS_PER_DAY)
        watches: list[list[Any]] = memory.setdefault("watch", [])
        watches.append([due, application, today, windows, payers])
        del watches[:-MAX_PENDING]
        return [Timer(due, state.borrower_id, self.name, QUIET + application)]

    def _quiet_week(self, watch: list[Any], memory: dict[str, Any], state: BorrowerState) -> Output:
        """A week after: alert if the ramp's new payers that paid nothing since still carry it."""
        t = self.thresholds
        due, application, today, windows, payers = watch
        young: dict[str, list[Any]] = memory["young"]
        end = today + t.quiet_days
        gone = []  # first day, counterparty, first event, its days: payers that stopped
        for cp in payers:
            entry = young.get(cp)
            # Forgotten meanwhile: whether it paid is unknown, so it does not count.
            if entry is None:
                continue
            if any(today <= day < end for day, _ in entry[2]):
                continue
            gone.append((entry[0], cp, entry[1], entry[2]))
        best: tuple[float, list[Any], list[tuple[int, str, str, float]]] | None = None
        for length, growth, baseline_days, recent, short in windows:
            start = today - length
            stopped = [
                (first, cp, event, amount)
                for first, cp, event, days in gone
                if (amount := _between(days, start, today)) > 0
            ]
            share = min(1.0, sum(s[3] for s in stopped) / recent)
            if len(stopped) < t.min_new_counterparties or share < t.min_new_share:
                continue
            if best is None or share > best[0]:
                best = (share, [length, growth, baseline_days, short], stopped)
        if best is None:
            return []
        share, (length, growth, baseline_days, short), stopped = best
        stopped.sort()
        return [
            self._finding(
                state, due, application, length, growth, baseline_days, short, share, stopped
            )
        ]

    def _finding(
        self,
        state: BorrowerState,
        at: float,
        application: str,
        length: int,
        growth: float,
        baseline_days: int,
        short: bool,
        share: float,
        stopped: list[tuple[int, str, str, float]],
    ) -> Finding:
        t = self.thresholds
        reasons = [
            self.reason(
                "inflow_growth",
                observed=round(growth, 3),
                threshold=t.min_growth,
                days=length,
                growth=growth,
                baseline_days=baseline_days,
            ),
            self.reason(
                "new_counterparty_share",
                observed=round(share, 3),
                threshold=t.min_new_share,
                share=share,
                ramp_days=t.ramp_days,
                quiet_days=t.quiet_days,
            ),
            self.reason(
                "new_counterparties",
                observed=len(stopped),
                threshold=t.min_new_counterparties,
                count=len(stopped),
                large=t.large_inflow,
                counterparties=personal.account([s[1] for s in stopped[:5]]),
                more=", ..." if len(stopped) > 5 else "",
            ),
        ]
        if short:
            reasons.append(
                self.reason(
                    "short_history",
                    observed=baseline_days,
                    threshold=t.min_baseline_days,
                    days=length,
                    baseline_days=baseline_days,
                    min_baseline_days=t.min_baseline_days,
                )
            )
        return self.finding(
            state.borrower_id,
            episode=self.episode("application", application=application),
            ts=datetime.fromtimestamp(at, UTC),
            score=self._score(growth, share, len(stopped)),
            reasons=reasons,
            evidence=[application] + [s[2] for s in stopped],
        )

    def _score(self, growth: float, share: float, counterparties: int) -> float:
        """0.6, and up to 0.4 more as growth, share and counterparties pass their thresholds."""
        t = self.thresholds
        more_growth = min(1.0, growth / max(1e-9, t.min_growth) - 1.0)
        more_share = min(1.0, (share - t.min_new_share) / max(1e-9, 1.0 - t.min_new_share))
        more_parties = min(1.0, (counterparties - t.min_new_counterparties) / 3.0)
        return min(1.0, 0.6 + 0.15 * more_growth + 0.15 * more_share + 0.1 * more_parties)
