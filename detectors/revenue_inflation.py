"""Revenue inflation: turnover that grows before a loan application, from payers who then vanish."""

from __future__ import annotations

import binascii
import hashlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from detectors import personal
from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.clock import Timer
from detectors.index import Found
from detectors.inflow_windows import ALL_PEERS
from detectors.scenarios import at, inputs, login, transaction
from detectors.state import INFLOW_HISTORY_DAYS, SECONDS_PER_DAY, BorrowerState, day_of
from detectors.tunables import Rules, tunable
from topics.names import Source
from topics.records import Login, Reason, Transaction

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
    #: ... and payers first seen in the ramp sent at least this share of the window's
    #: turnover ...
    min_new_share: float = tunable(
        0.45, 0.0, 1.0, "share of the window's turnover from payers first seen in the ramp"
    )
    #: ... and there are at least this many of them (one new big client is a contract).
    min_new_counterparties: int = tunable(2, 1, 100, "new payers a ramp needs")
    #: A counterparty first seen (paying, or paid) in a borrower's first days on the platform
    #: is not new: its regular clients, landlord and staff all show up once in the first weeks.
    #: Only one first seen at least this many days into the history counts as new.
    new_after_days: int = tunable(
        14, 0, 60, "days into a borrower's history before a counterparty first seen is new"
    )
    #: Days from the application's UTC day in which those payers must have paid nothing for
    #: the confirmation that raises the alert's severity (or alerts, late, a ramp with no
    #: other tell).
    quiet_days: int = tunable(
        7, 1, 60, "days after the application in which the new payers paid nothing"
    )
    #: The verdict comes sooner when the new payers' silence since their last payment is
    #: already unlikely at their own pace: when the chance that payers paying as often as they
    #: did (repeat payments a day with inflows) all paid nothing since is 10 to the minus this.
    min_silence_surprise: float = tunable(
        2.0, 0.5, 10.0, "surprise (-log10 chance) of the new payers' silence at their own pace"
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
    #: Tell 1, the money sent on: outflows to payees first paid in the window, within
    #: ``forward_days`` of a new payer's inflow, to its ``max_forward_payees`` largest such
    #: payees, of at least this share of what the new payers sent. Borrowed turnover has to
    #: go back; a business spends on the suppliers and staff it already pays, and one that
    #: buys a new client's goods from a new supplier keeps its margin and pays over weeks.
    min_forwarded_share: float = tunable(
        0.5, 0.0, 1.0, "share of the new payers' money sent on soon to a few new payees"
    )
    forward_days: int = tunable(
        3, 0, 14, "days after a new payer's inflow in which an outflow sends it on"
    )
    max_forward_payees: int = tunable(
        3, 1, 16, "largest new payees counted as receiving the money sent on"
    )
    #: Tell 2, the ramp already over: new payers carrying the share above paid nothing in
    #: this many days before the application (a business's new clients go on paying).
    min_silent_days: int = tunable(
        5, 1, 30, "days before the application in which the new payers paid nothing"
    )
    #: Tell 3, the money left idle: of the window's extra inflow over the baseline, at least
    #: this share was not matched by extra outflows. A business that grows buys more and
    #: pays more staff; turnover parked to be shown is not spent.
    min_unspent_share: float = tunable(
        0.95, 0.0, 1.0, "share of the extra inflow not matched by extra outflows"
    )
    #: A seasonal peak lifts a whole sector: a window's growth is divided by the median lift
    #: of its sector's borrowers in the partition over the same days (of every borrower of
    #: the partition when the sector is unknown or has fewer than this many).
    min_sector_peers: int = tunable(
        5, 1, 100000, "borrowers of a sector (else of the partition) whose median lift damps"
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
#: Days of inflow kept per young counterparty: the first and the latest ones, the days between
#: added to the first (dating a sum earlier can only lower a window's share, and a payer that
#: pays on many days keeps its whole sum; the latest days say what it paid after an
#: application). A new payee keeps its latest receipts only: they are matched by day with the
#: inflows they may send on.
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
#: Key prefix of the timer at a drawdown days after an application: what was sent on since.
DRAW = "draw:"
#: Payment days a payer needs before the application for a pace: fewer are a first invoice
#: and its follow-ups, a burst that says nothing of how often it pays.
MIN_PACE_DAYS = 4
#: Key prefix of the timer at the start of the day the new payers' silence becomes unlikely.
PACE = "pace:"
#: Day closes of peers' lifts kept per partition: an application reads the latest before it.
PEER_DAYS = 4
#: Payees first paid lately (whose receipts, by day, may be the new money sent on).
MAX_FRESH = 8
#: Hashes of payees paid before, least recently paid first: they are not new.
MAX_PAID = 24
#: Whole weeks of a window the money-left-idle tell reads: two weeks of a short ramp may hold
#: no rent and no payroll, which come monthly; a four-week window always holds three.
MIN_SPEND_WINDOW_WEEKS = 3
#: Whole weeks of outflows before the window that the money-left-idle tell needs from the
#: borrower's own history; a younger borrower is read against its peers' spending.
MIN_SPEND_BASELINE_WEEKS = 4
#: Whole weeks over which a peer's spending (outflows over inflows) is measured at a day close:
#: a month, so that rent and payroll count once.
SPEND_PEER_WEEKS = 4
#: Weeks of outflow sums kept (the baseline and the longest window, in whole weeks).
MAX_WEEKS = 16
#: Days the new payers' own span needs to be judged as a window of its own: a ramp is built
#: over weeks, while a few deals of a week are no trend.
MIN_RAMP_DAYS = 7
#: ... and payments of theirs on at least this many days: one or two days of payments are a
#: deal or two, not a ramp.
MIN_RAMP_PAYMENT_DAYS = 3

# Memory of a borrower: "young" maps a counterparty first seen lately to [first day, first event
# id, [[day, sum of its large inflows (0.0: only smaller ones, which show it still pays)], ...]];
# "old" concatenates the hashes of settled counterparties, least recently seen first; "sw" is the
# latest day seen; "apps" holds applications waiting for their timer as [epoch, event id]; "watch"
# holds ramps waiting for their quiet week as [due epoch, application, its day, [[window, growth,
# baseline days, turnover, short history, baseline a day, peers' lift, days from its end to the
# application's day (since version 6; before, 0)], ...], [new payers],
# alerted (0/1), drawdown epoch or None, pace timer's epoch or None]; "pay" lists recent payees,
# least recent first; "net" holds [day, sum] of inflows from payees (not turnover), oldest first.
# Since version 3: "ow" the outflows by week [[week, sum], ...] from week "ow0"; "paid" the hashes
# of payees paid any sum, least recently paid first; "fresh" maps a payee first paid lately to
# [first day, [[day, sum], ...]]; "draws" the latest drawdowns' epochs; "sec" the sector. Memory
# written by versions 1 and 2 lacks some of these: they are created on first use (a watch of
# version 2 has five entries: neither alerted nor a drawdown; one of versions 3 and 4 seven: no
# pace timer). Since version 5 a young counterparty's days beyond the kept number are added to
# its first day rather than dropped.


#: What :meth:`RevenueInflationDetector._gone` finds: the share of the window's turnover the
#: payers gone carried, the window, and those payers (first day, counterparty, first event, sum).
Gone = tuple[float, list[Any], list[tuple[int, str, str, float]]]


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


def _add_day(days: list[list[Any]], day: int, amount: float, keep: int, fold: bool = False) -> None:
    """Add an inflow to daily sums kept in day order; beyond ``keep`` days the earliest goes,
    or with ``fold`` the second earliest is added to it (the sum is kept, dated earlier)."""
    for known in days:
        if known[0] == day:
            known[1] += amount
            return
    days.append([day, amount])
    if len(days) > 1 and days[-2][0] > day:  # a late arrival
        days.sort(key=lambda known: known[0])
    if len(days) > keep:
        if fold:
            days[0][1] += days[1][1]
            del days[1]
        else:
            del days[0]


def _between(pairs: list[list[Any]], start: int, end: int) -> float:
    return float(sum(amount for day, amount in pairs if start <= day < end))


def _weekend(day: int) -> bool:
    """Whether a day (days since the epoch, a Thursday) is a Saturday or a Sunday."""
    return (day + 3) % 7 >= 5


def _window_gap(window: list[Any]) -> int:
    """Days from a window's end to the application's day (0 for a window of version 5 and
    earlier, which ends at it)."""
    return int(window[7]) if len(window) > 7 else 0


def _window_start(window: list[Any], today: int) -> int:
    """A window's first day, ``today`` being the application's day."""
    return today - _window_gap(window) - int(window[0])


class RevenueInflationDetector(Detector):
    """Flags a loan application preceded by turnover that grew against the borrower's own
    history, carried by payers first seen in the ramp-up, when the ramp shows a tell of
    forged turnover; a week later, the new payers' silence confirms it, critical.

    The alert is worth most between the application and the drawdown, while the lender can
    still hold the money, so it comes at the application. A ramp alone is not enough there
    (a business that grows gets new clients too); one of three tells is: the new money went
    out again within days to a few payees never paid before (borrowed turnover has to go
    back), the new payers already stopped before the application (the ramp was staged for
    it), or the money was not spent at all (a business that sells more buys more). The
    quiet week from the application then reads what a genuine growth cannot fake: its
    clients keep paying. It raises an alert sent at the application (its own alert id,
    ``inflation:{application}:confirmed``), or alerts, late, a ramp that had no tell. That
    verdict comes sooner, at the start of a day of the quiet week, when the silence of the new
    payers gone since the application is already unlikely at the pace each paid before it
    (``min_silence_surprise``; days without any inflow, a weekend or a holiday, do not count):
    payers that paid every day or two and stopped at the application tell within days what
    weekly ones need the week for.

    The ramp is measured at an event-time timer at the application, from flows of the days
    before its day; the quiet week is read at a second timer at the start of the day it ends,
    from inflows of its days only: the interleaving of the topics cannot change a verdict.
    Turnover leaves out inflows from accounts the borrower also pays (a trading partner that
    buys and sells, a returned deposit). A history shorter than the baseline is compared with
    what there is, down to ``min_baseline_days``, and the alert says so; a borrower whose
    history leaves less than that before the recent window (one new to the platform) is also
    judged over the later half of its history against the earlier.
    """

    name = "revenue_inflation"
    category = FALSIFIED_FLOW
    version = "7"  # 7: spending read over the history's days; 6: the new payers' own span
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
        "inflow_growth": "daily turnover over the {days} days {until} is {growth:.1f} times "
        "that of the {baseline_days} days before",
        "new_payer_share": "{share:.0%} of it ({lift:.0%} of the rise) came from {count} "
        "counterparties first seen in the {ramp_days} days before the application",
        "new_counterparty_share": "{share:.0%} of it came from counterparties first seen in the "
        "{ramp_days} days before the application that sent nothing in the {quiet_days} days "
        "from it",
        "new_counterparties": "{count} such counterparties first sent {large:,.0f} or more in the "
        "ramp{then}: {counterparties:, }{more}",
        "forwarded": "{share:.0%} of what they sent went out again within {days} days to "
        "{payees} payee(s) first paid in the window: {counterparties:, }",
        "stopped_before": "{share:.0%} of the window's turnover came from {count} of them that "
        "paid nothing in the {days} days before the application",
        "unspent": "outflows {moved} by {spent:,.0f} a day against inflows' {extra:,.0f} over the "
        "{weeks} weeks before the application: {share:.0%} of the rise was not spent",
        "unspent_young": "outflows {moved} by {spent:,.0f} a day against inflows' {extra:,.0f} "
        "over the {weeks} weeks before the application, against what its peers spend of theirs "
        "(its history is too short to say what it spent): {share:.0%} of the rise was not spent",
        "silent_at_pace": "they paid on {paid} days in all before the application and nothing in "
        "the {silent} days with inflows since each one's last payment: at the pace each paid, a "
        "chance of {chance:.2%}",
        "peer_lift": "its peers' turnover rose {lift:.2f}× over the same days: the growth above "
        "is beyond theirs",
        "short_history": "a short history: the {days}-day window is compared with the only "
        "{baseline_days} days before it (at least {min_baseline_days} needed)",
    }
    episodes = {
        "application": "inflation:{application}",
        "confirmed": "inflation:{application}:confirmed",
    }

    def __init__(self, thresholds: RevenueInflationThresholds) -> None:
        self.thresholds = thresholds
        #: partition -> [[day, {group: [median lift, borrowers]}], ...], oldest first.
        self._peers: dict[int, list[list[Any]]] = {}
        # Amounts are compared as Decimals: cheaper than a float conversion of every event.
        self._large = Decimal(str(thresholds.large_inflow))
        self._followup = Decimal(str(thresholds.min_followup_inflow))
        self._two_way = Decimal(str(thresholds.min_two_way_outflow))

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        amount = event.amount
        if event.sector:
            known = state.slots.get(self.name)
            if known is None or known.get("sec") != event.sector:
                self.slot(state, _empty)["sec"] = event.sector
        if event.direction != "in":
            if event.counterparty_id not in state.own_accounts:
                self._outflow(event, state)
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
            _add_day(
                entry[2], day, float(amount) if large else 0.0, MAX_DAYS_PER_COUNTERPARTY, True
            )
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

    def _outflow(self, event: Transaction, state: BorrowerState) -> None:
        """Outflows by week (what the business spends), and large ones: the payee remembered,
        and a payee first paid lately with its receipts (where new money may be sent on)."""
        memory: dict[str, Any] = self.slot(state, _empty)
        day = day_of(event.ts.timestamp())
        week = day // 7
        # Whole units: these sums are read as ratios, and cents would cost the changelog.
        amount = round(event.amount)
        weeks: list[list[Any]] | None = memory.get("ow")
        if weeks is None:
            weeks = memory["ow"] = []
            memory["ow0"] = week
        if weeks and weeks[-1][0] == week:
            weeks[-1][1] += amount
        else:
            _add_day(weeks, week, amount, MAX_WEEKS)
            memory["ow0"] = min(memory["ow0"], week)
        counterparty = event.counterparty_id
        fresh: dict[str, list[Any]] = memory.setdefault("fresh", {})
        entry = fresh.get(counterparty)
        known = entry is not None or self._known_payee(memory, counterparty)
        if event.amount < self._two_way:
            return
        self._paid(state, counterparty)
        if entry is None:
            if known:
                return  # paid before, any sum: a supplier, the landlord, the payroll
            recent = day - self.thresholds.ramp_days
            if not any(young[0] >= recent for young in memory["young"].values()):
                return  # no new payer lately: no new money to send on
            entry = fresh[counterparty] = [day, []]
        _add_day(entry[1], day, amount, MAX_DAYS_PER_COUNTERPARTY)
        if len(fresh) > MAX_FRESH:
            del fresh[self._least_received(fresh, day)]

    @staticmethod
    def _known_payee(memory: dict[str, Any], counterparty: str) -> bool:
        """Whether the borrower paid ``counterparty`` before; it is now the latest paid."""
        key = _hash(counterparty)
        paid: str = memory.get("paid", "")
        at = _find(paid, key)
        if at >= 0:
            paid = paid[:at] + paid[at + HASH_WIDTH :]
        memory["paid"] = (paid + key)[-MAX_PAID * HASH_WIDTH :]
        return at >= 0

    def _least_received(self, fresh: dict[str, list[Any]], day: int) -> str:
        """The new payee to forget first: one first paid too long ago to be in a window still
        to be judged, else the one that received least (forgetting it can only lower a share
        sent on, and a busy business's many small new payees do not push a large one out)."""
        t = self.thresholds
        recent = day - t.ramp_days - t.quiet_days

        def need(payee: str) -> tuple[bool, float, int, str]:
            first, days = fresh[payee]
            return (first >= recent, sum(s for _, s in days), first, payee)

        return min(fresh, key=need)

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
        if event.action == "drawdown" and event.success:
            return self._drawdown(event.ts.timestamp(), state)
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

    def on_day_close(
        self, partition: int, day: int, states: Sequence[BorrowerState]
    ) -> list[Finding]:
        """The peers' lift over the ``recent_days`` to the end of ``day`` against the baseline
        before: per sector, and for the whole partition, the median of the borrowers'."""
        t = self.thresholds
        end = day + 1
        start = end - t.recent_days
        groups: dict[str, list[float]] = {ALL_PEERS: []}
        for state in states:
            baseline, days = state.inflows.total(start - t.baseline_days, start)
            if days < t.min_baseline_days or baseline <= 0.0:
                continue
            recent, recent_days = state.inflows.total(start, end)
            lift = (recent / recent_days) / (baseline / days)
            groups[ALL_PEERS].append(lift)
            sector = (state.slots.get(self.name) or {}).get("sec")
            if sector:
                groups.setdefault(sector, []).append(lift)
        closes = self._peers.setdefault(partition, [])
        lifts = {g: [statistics.median(v), len(v)] for g, v in groups.items() if v}
        spending = self._peer_spending(end, states)
        spends = {g: [statistics.median(v), len(v)] for g, v in spending.items()}
        closes.append([day, lifts, spends])
        del closes[:-PEER_DAYS]
        return []

    def _peer_spending(self, end: int, states: Sequence[BorrowerState]) -> dict[str, list[float]]:
        """Per sector and for the whole partition, what each borrower with a month of
        history spends of what it takes in, over the last whole weeks before the day ``end``:
        the baseline of a borrower too young to have its own."""
        hi = end // 7
        lo = hi - SPEND_PEER_WEEKS
        groups: dict[str, list[float]] = {}
        for state in states:
            memory = state.slots.get(self.name)
            if not memory or memory.get("ow0", hi) > lo:
                continue
            inflow, days = state.inflows.total(lo * 7, hi * 7)
            inflow -= _between(memory.get("net", []), lo * 7, hi * 7)
            if days < SPEND_PEER_WEEKS * 7 or inflow <= 0.0:
                continue
            ratio = _between(memory["ow"], lo, hi) / inflow
            groups.setdefault(ALL_PEERS, []).append(ratio)
            sector = memory.get("sec")
            if sector:
                groups.setdefault(sector, []).append(ratio)
        return groups

    def _peer_lift(self, state: BorrowerState, memory: dict[str, Any], today: int) -> float:
        """The peers' median lift at the latest close before ``today`` (1: none known); only
        a lift damps, never a slump."""
        lift = self._peer_median(state, memory, today, 1)
        return 1.0 if lift is None else max(1.0, lift)

    def _peer_median(
        self, state: BorrowerState, memory: dict[str, Any], today: int, which: int
    ) -> float | None:
        """A peers' median at the latest close before ``today`` (``which``: 1 the lift, 2 the
        share of inflows spent), of the borrower's sector or else of the partition."""
        closes = [c for c in self._peers.get(state.partition, ()) if c[0] < today]
        if not closes or len(closes[-1]) <= which:
            return None
        groups: dict[str, list[Any]] = closes[-1][which]
        need = self.thresholds.min_sector_peers
        for group in (memory.get("sec"), ALL_PEERS):
            # The borrower itself may be among them: its peers are the others.
            if group is not None and group in groups and groups[group][1] > need:
                return float(groups[group][0])
        return None

    def snapshot(self, partition: int) -> bytes | None:
        closes = self._peers.get(partition)
        return None if not closes else orjson.dumps(closes)

    def restore(self, partition: int, snapshot: bytes) -> None:
        self._peers[partition] = orjson.loads(snapshot)

    def _drawdown(self, epoch: float, state: BorrowerState) -> Output:
        """Remember a drawdown; one days after a ramp with no tell at its application gets
        a second look at its time (money sent on since), before the money leaves."""
        memory: dict[str, Any] | None = state.slots.get(self.name)
        if memory is None:
            return []
        draws: list[float] = memory.setdefault("draws", [])
        if epoch in draws:
            return []
        draws.append(epoch)
        draws.sort()
        del draws[:-MAX_PENDING]
        return [timer for w in memory.get("watch", ()) if (timer := self._second_look(w, state))]

    def _second_look(self, watch: list[Any], state: BorrowerState) -> Timer | None:
        """Arm the drawdown's timer for a watched ramp that did not alert: the first drawdown
        on a later day than its application, within its quiet week."""
        if len(watch) < 7 or watch[5] or watch[6] is not None:
            return None
        today = watch[2]
        memory: dict[str, Any] = state.slots[self.name]
        later = [
            d
            for d in memory.get("draws", ())
            if today < day_of(d) < today + self.thresholds.quiet_days
        ]
        if not later:
            return None
        first = min(later)
        watch[6] = first
        return Timer(first, state.borrower_id, self.name, DRAW + watch[1])

    def pending_timers(self, state: BorrowerState) -> list[Timer]:
        memory = state.slots.get(self.name)
        if not memory:
            return []
        timers = [Timer(epoch, state.borrower_id, self.name, key) for epoch, key in memory["apps"]]
        for watch in memory.get("watch", ()):
            timers.append(Timer(watch[0], state.borrower_id, self.name, QUIET + watch[1]))
            if len(watch) > 6 and watch[6] is not None and not watch[5]:
                timers.append(Timer(watch[6], state.borrower_id, self.name, DRAW + watch[1]))
            if len(watch) > 7 and watch[7] is not None and not watch[5]:
                timers.append(Timer(watch[7], state.borrower_id, self.name, PACE + watch[1]))
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
        if timer.key.startswith(DRAW):
            return self._at_drawdown(timer, memory, state)
        if timer.key.startswith(PACE):
            return self._at_pace(timer, memory, state)
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
        """At the application: did turnover ramp up, carried by new payers? If so, alert now
        when a tell shows the ramp is not a business growing, and watch the payers a week."""
        t = self.thresholds
        today = day_of(at)
        young: dict[str, list[Any]] = memory["young"]
        since = max(today - t.ramp_days, self._new_from(state))
        payers = sorted(cp for cp, entry in young.items() if since <= entry[0] < today)
        if len(payers) < t.min_new_counterparties:
            return []
        windows = self._windows(state, memory, payers, today)
        if not windows:
            return []
        due = float((today + t.quiet_days) * SECONDS_PER_DAY)
        outputs: Output = []
        judged = [(self._tells(state, memory, payers, today, w), w) for w in windows]
        tells, window = max(judged, key=lambda j: (len(j[0]), j[1][3]))
        if tells:
            outputs.append(self._alert(state, at, application, today, window, payers, tells))
        watches: list[list[Any]] = memory.setdefault("watch", [])
        watch = [due, application, today, windows, payers, int(bool(tells)), None, None]
        watches.append(watch)
        del watches[:-MAX_PENDING]
        outputs.append(Timer(due, state.borrower_id, self.name, QUIET + application))
        second = self._second_look(watch, state)  # the drawdown came first
        if second is not None:
            outputs.append(second)
        if not tells:
            outputs += self._arm_pace(watch, memory, state, today)
        return outputs

    def _at_drawdown(self, timer: Timer, memory: dict[str, Any], state: BorrowerState) -> Output:
        """At a drawdown days after the application: alert, at the latest now, when what the
        new payers sent went on meanwhile (the ramp and the other tells as at the
        application)."""
        application = timer.key[len(DRAW) :]
        watch = next((w for w in memory.get("watch", ()) if w[1] == application), None)
        if watch is None or len(watch) < 7 or watch[5] or watch[6] != timer.due:
            return []
        _, _, today, windows, payers = watch[:5]
        payers = [cp for cp in payers if cp in memory["young"]]
        until = day_of(timer.due)
        judged = [(self._tells(state, memory, payers, today, w, until), w) for w in windows]
        tells, window = max(judged, key=lambda j: (len(j[0]), j[1][3]))
        if not tells or len(payers) < self.thresholds.min_new_counterparties:
            return []
        watch[5] = 1
        return [self._alert(state, timer.due, application, today, window, payers, tells)]

    def _windows(
        self, state: BorrowerState, memory: dict[str, Any], payers: list[str], today: int
    ) -> list[list[Any]]:
        """Each window in which turnover grew beyond its peers' lift and the new payers
        carried enough of it: [days, growth after the peers' lift, baseline days, turnover,
        short history, baseline a day, the peers' lift, days from its end to the application's
        day] (the peers' over ``recent_days``)."""
        t = self.thresholds
        young: dict[str, list[Any]] = memory["young"]
        net: list[list[Any]] = memory.get("net", [])
        peers = self._peer_lift(state, memory, today)
        windows: list[list[Any]] = []
        for start, end in self._spans(state, memory, payers, today):
            length = end - start
            recent, recent_days = state.inflows.total(start, end)
            baseline, baseline_days = state.inflows.total(start - t.baseline_days, start)
            recent -= _between(net, start, end)
            baseline -= _between(net, start - t.baseline_days, start)
            if baseline_days < t.min_baseline_days or baseline <= 0.0 or recent <= 0.0:
                continue
            growth = (recent / recent_days) / (baseline / baseline_days) / peers
            if growth < t.min_growth:
                continue
            sums = [_between(young[cp][2], start, end) for cp in payers]
            if sum(1 for s in sums if s > 0) < t.min_new_counterparties:
                continue
            if sum(sums) < t.min_new_share * recent:
                continue
            # Less history before the window than the window itself: said in the alert.
            short = baseline_days < min(length, t.baseline_days)
            rate = baseline / baseline_days
            windows.append([length, growth, baseline_days, recent, short, rate, peers, today - end])
        return windows

    def _spans(
        self, state: BorrowerState, memory: dict[str, Any], payers: list[str], today: int
    ) -> list[tuple[int, int]]:
        """The windows' days, [start, end): the ``recent_days`` and ``ramp_days`` before the
        application's day; the ramp's own days, from the new payers' first large inflow to
        their last (a ramp of two weeks, or one that stopped before the application, is
        diluted in a fixed window by the days without it); and when the history before the
        recent window is shorter than ``min_baseline_days`` (a borrower new to the platform),
        its later half, judged against the earlier."""
        t = self.thresholds
        lengths = {t.recent_days, t.ramp_days}
        history = today - state.inflows.first_day if state.inflows.first_day >= 0 else 0
        if history - t.recent_days < t.min_baseline_days and history // 2 >= t.min_baseline_days:
            lengths.add(history // 2)
        spans = {(today - length, today) for length in lengths}
        young: dict[str, list[Any]] = memory["young"]
        paid = {day for cp in payers for day, amount in young[cp][2] if amount > 0 and day < today}
        if len(paid) >= MIN_RAMP_PAYMENT_DAYS and max(paid) + 1 - min(paid) >= MIN_RAMP_DAYS:
            spans.add((min(paid), max(paid) + 1))
        return sorted(spans)

    def _tells(
        self,
        state: BorrowerState,
        memory: dict[str, Any],
        payers: list[str],
        today: int,
        window: list[Any],
        until: int | None = None,
    ) -> list[Reason]:
        """What tells the ramp from a business that grows, as reasons (none: no tell); money
        sent on is counted until the day ``until`` (the application's by default)."""
        t = self.thresholds
        young: dict[str, list[Any]] = memory["young"]
        start = _window_start(window, today)
        sent = {cp: _between(young[cp][2], start, today) for cp in payers}
        sent = {cp: amount for cp, amount in sent.items() if amount > 0}
        reasons = []
        forwarded = self._forwarded(
            memory, sent, start, today, until or today, self._new_from(state)
        )
        if forwarded is not None:
            reasons.append(forwarded)
        silent = [
            cp
            for cp in sent
            if not any(day >= today - t.min_silent_days for day, _ in young[cp][2])
        ]
        silent_sum = sum(sent[cp] for cp in silent)
        enough = len(silent) >= max(1, t.min_new_counterparties)
        if enough and silent_sum >= t.min_new_share * window[3]:
            share = silent_sum / window[3]
            reasons.append(
                self.reason(
                    "stopped_before",
                    observed=round(share, 3),
                    threshold=t.min_new_share,
                    share=share,
                    count=len(silent),
                    days=t.min_silent_days,
                )
            )
        unspent = self._unspent(state, memory, start, today)
        if unspent is not None:
            reasons.append(unspent)
        return reasons

    def _forwarded(
        self,
        memory: dict[str, Any],
        sent: dict[str, float],
        start: int,
        today: int,
        until: int,
        new_from: int,
    ) -> Reason | None:
        """The new money sent on: outflows soon after a new payer's inflow to the few largest
        payees first paid in the window (and from the day ``new_from``), against what the new
        payers sent; outflows of days before ``until``.

        Money that came in the last ``forward_days`` before ``until`` may not have gone on
        yet (a ramp's largest sums come last): the share is also read over the inflows whose
        days to go on have all passed, when they carry a third of the new money or more
        (fewer would make a chance payment to a new supplier weigh)."""
        t = self.thresholds
        young: dict[str, list[Any]] = memory["young"]
        by_day: dict[int, float] = {}
        for cp in sent:
            for day, amount in young[cp][2]:
                if amount > 0 and start <= day < today:
                    by_day[day] = by_day.get(day, 0.0) + amount
        total = sum(sent.values())
        new_from = max(start, new_from)
        share, top = self._sent_on_share(memory, by_day, total, new_from, until)
        passed = {day: amount for day, amount in by_day.items() if day + t.forward_days < until}
        if sum(passed.values()) >= total / 3 and len(passed) < len(by_day):
            settled = self._sent_on_share(memory, passed, sum(passed.values()), new_from, until)
            share, top = max((share, top), settled)
        if not top or share < t.min_forwarded_share:
            return None
        return self.reason(
            "forwarded",
            observed=round(share, 3),
            threshold=t.min_forwarded_share,
            share=share,
            days=t.forward_days,
            payees=len(top),
            counterparties=personal.account(sorted(top)),
        )

    def _sent_on_share(
        self,
        memory: dict[str, Any],
        arrivals: dict[int, float],
        sent: float,
        start: int,
        until: int,
    ) -> tuple[float, list[str]]:
        """What the few largest new payees received within ``forward_days`` of the arrivals'
        days, over ``sent``; and those payees."""
        t = self.thresholds
        fresh: dict[str, list[Any]] = memory.get("fresh", {})
        received: dict[str, float] = {}
        for payee, (first, days) in fresh.items():
            if first < start:
                continue
            for day, amount in days:
                if start <= day < until and any(
                    0 <= day - arrival <= t.forward_days for arrival in arrivals
                ):
                    received[payee] = received.get(payee, 0.0) + amount
        top = sorted(received, key=lambda p: (-received[p], p))[: t.max_forward_payees]
        if not top or sent <= 0.0:
            return 0.0, []
        return min(1.0, sum(received[p] for p in top) / sent), top

    def _unspent(
        self, state: BorrowerState, memory: dict[str, Any], start: int, today: int
    ) -> Reason | None:
        """The money left idle: over the whole weeks of the window, how much of the inflow's
        rise over the baseline weeks was matched by a rise of outflows."""
        t = self.thresholds
        weeks: list[list[Any]] | None = memory.get("ow")
        first, last = -(-start // 7), today // 7  # whole weeks inside the window
        base = max(first - t.baseline_days // 7, memory.get("ow0", last))
        if (
            weeks is None
            or last - first < MIN_SPEND_WINDOW_WEEKS
            or memory.get("ow0", last) > first
        ):
            return None
        net: list[list[Any]] = memory.get("net", [])
        rates = []
        for lo, hi in ((base, first), (first, last)):
            inflow, days = state.inflows.total(lo * 7, hi * 7)
            inflow -= _between(net, lo * 7, hi * 7)
            outflow = _between(weeks, lo, hi)
            # Both a day of the history in those weeks: a history that began in their middle
            # spent over its own days, not over the whole weeks.
            rates.append((inflow / max(1, days), outflow / max(1, days)))
        (in_before, out_before), (in_now, out_now) = rates
        # A month of baseline at least: rent and payroll come monthly, and a baseline of a
        # week or two that holds them (or misses them) says nothing of what is usually spent.
        # A younger borrower is taken to have spent, before the window, the share of its
        # inflows its peers spend: the population is the baseline its history cannot give.
        young = first - base < MIN_SPEND_BASELINE_WEEKS
        if young:
            spends = self._peer_median(state, memory, today, 2)
            inflow, days = state.inflows.total(start - t.baseline_days, start)
            inflow -= _between(net, start - t.baseline_days, start)
            if spends is None or days < t.min_baseline_days or inflow <= 0.0:
                return None
            in_before = inflow / days
            out_before = spends * in_before
        extra = in_now - in_before
        if extra <= 0.0:
            return None
        spent = out_now - out_before
        share = 1.0 - max(0.0, spent) / extra
        if share < t.min_unspent_share:
            return None
        return self.reason(
            "unspent_young" if young else "unspent",
            observed=round(share, 3),
            threshold=t.min_unspent_share,
            moved="rose" if spent >= 0.0 else "fell",
            spent=abs(spent),
            extra=extra,
            weeks=last - first,
            share=share,
        )

    def _alert(
        self,
        state: BorrowerState,
        at: float,
        application: str,
        today: int,
        window: list[Any],
        payers: list[str],
        tells: list[Reason],
    ) -> Finding:
        """The alert at the application: the ramp, its new payers and the tells."""
        t = self.thresholds
        length, growth, baseline_days, recent, short, base_rate = window[:6]
        young: dict[str, list[Any]] = self._young(state)
        start = _window_start(window, today)
        new = sorted(
            (young[cp][0], cp, young[cp][1], amount)
            for cp in payers
            if (amount := _between(young[cp][2], start, today)) > 0
        )
        total = sum(n[3] for n in new)
        share = min(1.0, total / recent)
        rise = recent - base_rate * length
        lift = min(1.0, total / rise) if rise > 0 else 1.0
        reasons = [
            self._growth_reason(window),
            self.reason(
                "new_payer_share",
                observed=round(share, 3),
                threshold=t.min_new_share,
                share=share,
                lift=lift,
                count=len(new),
                ramp_days=t.ramp_days,
            ),
            self._parties_reason(new, ""),
            *tells,
        ]
        if short:
            reasons.append(self._short_reason(length, baseline_days))
        if len(window) > 6 and window[6] > 1.0:
            reasons.append(
                self.reason(
                    "peer_lift", observed=round(window[6], 3), threshold=1.0, lift=window[6]
                )
            )
        more = (
            min(1.0, growth / max(1e-9, t.min_growth) - 1.0) * 0.05
            + min(1.0, (share - t.min_new_share) / max(1e-9, 1.0 - t.min_new_share)) * 0.05
        )
        return self.finding(
            state.borrower_id,
            episode=self.episode("application", application=application),
            ts=datetime.fromtimestamp(at, UTC),
            score=min(0.85, 0.6 + 0.1 * len(tells) + more),
            reasons=reasons,
            evidence=[application] + [n[2] for n in new],
        )

    def _new_from(self, state: BorrowerState) -> int:
        """The first day on which a counterparty first seen is new to the borrower."""
        first = state.inflows.first_day
        return first + self.thresholds.new_after_days if first >= 0 else 0

    def _young(self, state: BorrowerState) -> dict[str, list[Any]]:
        young: dict[str, list[Any]] = state.slots[self.name]["young"]
        return young

    def _quiet_week(self, watch: list[Any], memory: dict[str, Any], state: BorrowerState) -> Output:
        """A week after: the ramp's new payers paid nothing since the application. It confirms
        an alert sent at the application (a second one, critical), or alerts a ramp that had no
        other tell."""
        due, application, today = watch[:3]
        alerted = len(watch) > 5 and bool(watch[5])
        best = self._gone(watch, memory, today + self.thresholds.quiet_days)
        if best is None:
            return []
        share, window, stopped = best
        return [self._finding(state, due, application, window, share, stopped, alerted)]

    def _gone(self, watch: list[Any], memory: dict[str, Any], end: int) -> Gone | None:
        """The window in which the new payers that paid nothing from the application's day to
        the day ``end`` carried the largest share, if enough: (share, window, [(first day,
        counterparty, first event, sum in the window), ...] in order)."""
        t = self.thresholds
        _, _, today, windows, payers = watch[:5]
        young: dict[str, list[Any]] = memory["young"]
        gone = []  # first day, counterparty, first event, its days: payers that stopped
        for cp in payers:
            entry = young.get(cp)
            # Forgotten meanwhile: whether it paid is unknown, so it does not count.
            if entry is None:
                continue
            if any(today <= day < end for day, _ in entry[2]):
                continue
            gone.append((entry[0], cp, entry[1], entry[2]))
        best: Gone | None = None
        for window in windows:
            recent = window[3]
            start = _window_start(window, today)
            stopped = [
                (first, cp, event, amount)
                for first, cp, event, days in gone
                if (amount := _between(days, start, today)) > 0
            ]
            share = min(1.0, sum(s[3] for s in stopped) / recent)
            if len(stopped) < t.min_new_counterparties or share < t.min_new_share:
                continue
            if best is None or share > best[0]:
                best = (share, window, stopped)
        if best is not None:
            best[2].sort()
        return best

    def _arm_pace(
        self, watch: list[Any], memory: dict[str, Any], state: BorrowerState, after: int
    ) -> Output:
        """Arm the pace timer at the first day from ``after`` on which the silence of the new
        payers gone by then would be unlikely at their pace, were it to go on (days not yet
        seen taken as days with inflows), before the quiet week ends; none if no such day."""
        today = watch[2]
        watch[7] = None
        best = self._gone(watch, memory, after)
        if best is None:
            return []
        young: dict[str, list[Any]] = memory["young"]
        days = [young[s[1]][2] for s in best[2]]
        for end in range(after + 1, today + self.thresholds.quiet_days):
            if (
                self._surprise(state, days, today, end, after)[0]
                >= self.thresholds.min_silence_surprise
            ):
                watch[7] = float(end * SECONDS_PER_DAY)
                return [Timer(watch[7], state.borrower_id, self.name, PACE + watch[1])]
        return []

    def _surprise(
        self, state: BorrowerState, payers: list[list[list[Any]]], today: int, end: int, seen: int
    ) -> tuple[float, int, int]:
        """How unlikely it is that payers paying at their pace before ``today`` all paid nothing
        from their last payment to the day ``end`` (-log10 of the chance); their days paid and
        their days of silence. A payer's pace is its repeat payments over the days with inflows
        to the borrower since its first (a holiday and a quiet account slow it); one that paid
        on fewer than ``MIN_PACE_DAYS`` days has none. A payer that never paid on a weekend is
        not expected to: a shop open on Sundays takes money then, its corporate clients do not
        pay. Days from ``seen`` on count as days with inflows."""

        def open_days(lo: int, hi: int, weekends: bool) -> int:
            return sum(
                1
                for d in range(lo, hi)
                if (weekends or not _weekend(d)) and (d >= seen or state.inflows.total(d, d + 1)[0])
            )

        surprise, paid_days, silent_days = 0.0, 0, 0
        for days in payers:
            paid = [day for day, _ in days if day < today]
            paid_days += len(paid)
            if len(paid) < MIN_PACE_DAYS:
                continue
            weekends = any(_weekend(day) for day in paid)
            pace = (len(paid) - 1) / (open_days(paid[0] + 1, today, weekends) + 1)
            silent = open_days(paid[-1] + 1, end, weekends)
            silent_days += silent
            surprise -= silent * math.log10(1.0 - pace)
        return surprise, paid_days, silent_days

    def _at_pace(self, timer: Timer, memory: dict[str, Any], state: BorrowerState) -> Output:
        """At the start of a day within the quiet week: alert a ramp with no tell when its new
        payers gone since the application are already unlikely to be silent at their pace;
        else look again when they would be."""
        application = timer.key[len(PACE) :]
        watch = next((w for w in memory.get("watch", ()) if w[1] == application), None)
        if watch is None or len(watch) < 8 or watch[5] or watch[7] != timer.due:
            return []
        today, end = watch[2], day_of(timer.due)
        best = self._gone(watch, memory, end)
        if best is not None:
            share, window, stopped = best
            young: dict[str, list[Any]] = memory["young"]
            days = [young[s[1]][2] for s in stopped]
            surprise, paid, silent = self._surprise(state, days, today, end, end)
            if surprise >= self.thresholds.min_silence_surprise:
                watch[5], watch[7] = 1, None
                pace = self.reason(
                    "silent_at_pace",
                    observed=round(surprise, 3),
                    threshold=self.thresholds.min_silence_surprise,
                    paid=paid,
                    silent=silent,
                    chance=10.0**-surprise,
                )
                days_from = end - today
                return [
                    self._finding(
                        state,
                        timer.due,
                        application,
                        window,
                        share,
                        stopped,
                        False,
                        days_from,
                        pace,
                    )
                ]
        return self._arm_pace(watch, memory, state, end)

    def _finding(
        self,
        state: BorrowerState,
        at: float,
        application: str,
        window: list[Any],
        share: float,
        stopped: list[tuple[int, str, str, float]],
        alerted: bool,
        days: int | None = None,
        pace: Reason | None = None,
    ) -> Finding:
        """The quiet week's verdict (or, ``days`` after the application, the pace's): the
        confirmation of an alert, or an alert of its own."""
        t = self.thresholds
        length, growth, baseline_days, _, short = window[:5]
        reasons = [
            self._growth_reason(window),
            self.reason(
                "new_counterparty_share",
                observed=round(share, 3),
                threshold=t.min_new_share,
                share=share,
                ramp_days=t.ramp_days,
                quiet_days=t.quiet_days if days is None else days,
            ),
            self._parties_reason(stopped, ", then stopped"),
        ]
        if pace is not None:
            reasons.append(pace)
        if short:
            reasons.append(self._short_reason(length, baseline_days))
        score = self._score(growth, share, len(stopped))
        name = "confirmed" if alerted else "application"
        return self.finding(
            state.borrower_id,
            episode=self.episode(name, application=application),
            ts=datetime.fromtimestamp(at, UTC),
            # A confirmation is critical: the money is out and its payers are gone.
            score=min(1.0, 0.9 + (score - 0.6) / 4) if alerted else score,
            reasons=reasons,
            evidence=[application] + [s[2] for s in stopped],
        )

    def _growth_reason(self, window: list[Any]) -> Reason:
        length, growth, baseline_days = window[:3]
        gap = _window_gap(window)
        return self.reason(
            "inflow_growth",
            observed=round(growth, 3),
            threshold=self.thresholds.min_growth,
            days=length,
            growth=growth,
            baseline_days=baseline_days,
            # The window's last day is ``gap + 1`` days before the application's.
            until=f"to {gap + 1} days before the application" if gap else "before the application",
        )

    def _parties_reason(self, payers: list[tuple[int, str, str, float]], then: str) -> Reason:
        t = self.thresholds
        return self.reason(
            "new_counterparties",
            observed=len(payers),
            threshold=t.min_new_counterparties,
            count=len(payers),
            large=t.large_inflow,
            then=then,
            counterparties=personal.account([s[1] for s in payers[:5]]),
            more=", ..." if len(payers) > 5 else "",
        )

    def _short_reason(self, length: int, baseline_days: int) -> Reason:
        t = self.thresholds
        return self.reason(
            "short_history",
            observed=baseline_days,
            threshold=t.min_baseline_days,
            days=length,
            baseline_days=baseline_days,
            min_baseline_days=t.min_baseline_days,
        )

    def _score(self, growth: float, share: float, counterparties: int) -> float:
        """0.6, and up to 0.4 more as growth, share and counterparties pass their thresholds."""
        t = self.thresholds
        more_growth = min(1.0, growth / max(1e-9, t.min_growth) - 1.0)
        more_share = min(1.0, (share - t.min_new_share) / max(1e-9, 1.0 - t.min_new_share))
        more_parties = min(1.0, (counterparties - t.min_new_counterparties) / 3.0)
        return min(1.0, 0.6 + 0.15 * more_growth + 0.15 * more_share + 0.1 * more_parties)
