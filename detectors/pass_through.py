"""Pass-through turnover (走账): money in and straight out again, or out and back from elsewhere."""

from __future__ import annotations

import base64
import statistics
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.index import Found
from detectors.scenarios import at, inputs, transaction
from detectors.state import BorrowerState, day_of
from detectors.tunables import tunable
from detectors.wash_trading import iso_week
from topics.names import Source
from topics.records import Reason, Transaction

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["PassThroughDetector", "PassThroughThresholds"]


@dataclass(frozen=True, slots=True)
class PassThroughThresholds:
    #: A pass-through completes within this many hours of its first leg: a conduit forwards
    #: money at once, a business pays its suppliers on its own schedule.
    window_hours: float = tunable(
        3.0, 0.25, 72, "hours within which money must leave again (or come back)"
    )
    #: Legs that open a pass-through must be at least this large (major units); small sums
    #: count too, but only as often as they repeat and as much as they weigh in the inflow.
    min_amount: float = tunable(
        200.0, 0, 10000000, "smallest leg that opens a pass-through (major units)"
    )
    #: The money leaving may fall short of the money in by this share (fees, a skim) ...
    max_shortfall: float = tunable(
        0.05, 0, 0.5, "share by which the money leaving may fall short of the money in"
    )
    #: ... and exceed it by this share (hop amounts of a ring vary, not only shrink).
    max_excess: float = tunable(
        0.02, 0, 0.5, "share by which the money leaving may exceed the money in"
    )
    #: Legs of one pass-through at most: a conduit splits into a few, a trading day into many.
    max_legs: int = tunable(6, 2, 50, "legs of one pass-through at most, both sides together")
    #: Alert when pass-throughs happened on at least this many distinct days ...
    min_days: int = tunable(3, 1, 30, "distinct days with a pass-through that alert")
    #: ... within this many days ...
    lookback_days: int = tunable(14, 1, 90, "days over which pass-throughs are counted")
    #: ... and carried at least this share of the borrower's inflow over those days: a few
    #: chance matches in a busy account weigh little, a conduit's turnover is mostly them.
    min_share: float = tunable(
        0.2, 0, 1, "share of the inflow over the lookback that passed straight through"
    )
    #: ... or this share when ``min_network`` accounts both paid money in and took money out in
    #: those pass-throughs: a ring uses the same few accounts again and again on either side,
    #: while a business's clients pay and its suppliers are paid ...
    min_share_network: float = tunable(
        0.1, 0, 1, "share of the inflow that passed through, when the accounts took both sides"
    )
    #: ... (accounts, 0: never).
    min_network: int = tunable(
        2, 0, 8, "accounts on both sides of the pass-throughs that lower the share needed"
    )
    #: ... the money passing on within this many minutes at the median: a conduit forwards at
    #: once, while sums of a trading day meet by chance anywhere in the window ...
    max_median_minutes: float = tunable(
        90.0, 1, 4320, "median minutes from a pass-through's first leg to its last, at most"
    )
    #: ... and were at least this share of the money movements whose two sides came within
    #: reach of each other (half or more): a conduit's meet, a trading business's meet by chance.
    min_hit_rate: float = tunable(
        0.2, 0, 1, "share of the comparable in-and-out movements that met, over the lookback"
    )
    #: Where the same accounts take both sides (``min_network``), the sums are matched more
    #: loosely as well: a ring run by hand lets its hop amounts vary and its money wait, and
    #: its accounts on both sides tell it from the chance matches of a busy account, which
    #: loose sums alone would not (hours, the share short, the share over, median minutes).
    ring_window_hours: float = tunable(
        5.0, 0.25, 72, "hours within which money must leave again, in a ring"
    )
    ring_max_shortfall: float = tunable(
        0.12, 0, 0.5, "share by which the money leaving may fall short of the money in, in a ring"
    )
    ring_max_excess: float = tunable(
        0.05, 0, 0.5, "share by which the money leaving may exceed the money in, in a ring"
    )
    ring_max_median_minutes: float = tunable(
        180.0, 1, 4320, "median minutes from a ring's pass-through's first leg to its last, at most"
    )


@dataclass(frozen=True, slots=True)
class _Matching:
    """How loosely one matcher meets the two sides, and whether it needs a ring to alert."""

    window_hours: float
    max_shortfall: float
    max_excess: float
    max_median_minutes: float
    #: The slot's key of this matcher's open and found pass-throughs (None: the slot itself).
    key: str | None
    ring_only: bool


#: Days of pass-throughs kept per borrower (the oldest go first), a day's merged into one.
MAX_HITS = 8
#: A leg on the far side smaller than this share of the near side is an expense or a small
#: sale beside the pass-through, not a part of it.
MIN_LEG_SHARE = 0.1
#: Counterparties of the near side remembered per pass-through (to tell a refund apart), and
#: of the far side (to tell accounts that take both sides of the pass-throughs).
MAX_NEAR_PARTIES = 4
#: Counterparties of each side remembered per day of pass-throughs.
MAX_DAY_PARTIES = 6
#: The money leaving (or coming back) reached this share of the money in (or out): the two
#: sides are comparable, and chance alone makes some of those meet; a conduit makes most.
COMPARABLE = 0.5
#: Pass-throughs open at once: money in a busy account meets other money on its way.
MAX_OPEN = 3
#: Recent payees and payers remembered, and accounts seen both paid and paying, per borrower:
#: an account the borrower pays and is paid back by (its own savings elsewhere, a trading
#: partner) moves money to and fro, it does not pass it on.
MAX_PARTIES = 4
MAX_TWO_WAY = 4
#: Payees are remembered by generations of this many days, each a Bloom filter of
#: ``PAYEE_BITS`` bits (``PAYEE_HASHES`` a payee). One paid in the generation two before the
#: current one (14 to 42 days ago) is settled: a supplier, the rent, the payroll. Money that
#: meets on its way out to settled payees only is a business paying its bills as takings come
#: in; a conduit's money leaves for accounts it has not paid for weeks, if ever. A filter
#: more than a third full (a business paying about 18 accounts a fortnight) would read over
#: 3.5 % of new accounts as settled, a mule among them now and then: it is ignored.
PAYEE_GENERATION_DAYS = 14
PAYEE_GENERATIONS = 3
PAYEE_BITS = 128
PAYEE_HASHES = 3

# An open pass-through (of "s"): [side (+1 in first, -1 out first), first epoch, near sum,
# far sum, legs, first event id, [24 bits of crc32 of the near side's counterparties], far
# legs not to or from a sweep account, [the same of the far side's counterparties]].
# Comparable and completed pass-throughs ("n"): [day, comparable, completed, the epoch of the
# last leg counted comparable], decayed by day.
# The ring's matcher keeps its own open pass-throughs, comparable and days ("x": {"s", "n",
# "h"}).
# The day of the last alert ("a"), and its week ("w").
# Payees by generation ("g"): [generation number, its filter, the one before's and the one
# two before's, one after the other in URL-safe base64].
# The pass-throughs of a day ("h"): [epoch of the last one's last leg, amount in, mean seconds
# from first to last leg, side of the first, its first event id, the last one's last event
# id, how many, [counterparties that paid in], [counterparties paid]] (a slot of version 2
# lacks the last two).


def _empty() -> dict[str, Any]:
    return {"s": [], "h": [], "w": "", "p": [], "r": [], "t": [], "n": [0, 0.0, 0.0, 0], "a": -1}


def _party(counterparty: str) -> int:
    """A counterparty as a small number: the state keeps which ones, not their names."""
    return zlib.crc32(counterparty.encode()) & 0xFFFFFF


class PassThroughDetector(Detector):
    """Flags money that passes straight through a borrower's account, on several days.

    A pass-through is either money in that leaves again within hours to other accounts, or
    money out that comes back within hours from another account (a round trip through
    accounts outside the platform), the two sides nearly equal and the balance back where it
    was. One of them is a coincidence; on several days, carrying a good share of the inflow,
    they are turnover without business. Money back from the same counterparty (a refund, a
    deposit, a sweep to the owner's savings) is not a pass-through; transfers between the
    borrower's own accounts are not turnover; a trading day splits into many legs whose sums
    do not meet; takings that meet bills paid to settled payees (paid 14 to 42 days before:
    suppliers, rent, payroll) are a business paying its way, while a conduit's money leaves
    for accounts new to it. A history too young to tell settled payees from new asks for a
    day more than ``min_days`` (or accounts on both sides).

    A second matcher meets the sums more loosely, and is heard only where the same accounts
    took both sides: a ring run by hand lets its hop amounts vary and its money wait, each hop
    passing one payment on, while loose sums alone would match a busy account's takings and
    bills by chance.

    >>> from decimal import Decimal
    >>> detector = PassThroughDetector(PassThroughThresholds())
    >>> state = BorrowerState(borrower_id="b")
    >>> def tx(i: str, cp: str, direction: str, amount: int, day: int, hour: float) -> Transaction:
    ...     ts = datetime.fromtimestamp(86400 * (19783 + day) + hour * 3600, UTC)
    ...     return Transaction(event_id=i, borrower_id="b", account_id="a", counterparty_id=cp,
    ...                        direction=direction, amount=Decimal(amount), ts=ts)
    >>> found = []
    >>> for day in (0, 1, 2, 4):  # a young history: one day more than min_days
    ...     state.inflows.add(19783 + day, 30000.0)
    ...     found += detector.on_transaction(tx(f"i{day}", "p", "in", 30000, day, 1), state, ())
    ...     found += detector.on_transaction(tx(f"o{day}", "q", "out", 29700, day, 1.2), state, ())
    >>> [(f.episode, [r.code for r in f.reasons]) for f in found]
    [('pass:2024-W10', ['pass_through_days', 'pass_through_share', 'pass_through_rate'])]
    """

    name = "pass_through"
    category = FALSIFIED_FLOW
    version = "6"
    section = "pass_through"
    thresholds_type = PassThroughThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """Money in from one account and out to another within the hour, on four days (a
        young history asks a day more than ``min_days``)."""
        return inputs(
            Source.TRANSACTIONS,
            [
                leg
                for day in (1, 3, 4, 5)
                for leg in (
                    transaction(
                        f"p-in-{day}", "p-1", "pa-1", "px", "20000", at(days=day, hours=1), "in"
                    ),
                    transaction(
                        f"p-out-{day}", "p-1", "pa-1", "py", "19800", at(days=day, hours=2), "out"
                    ),
                )
            ],
        )

    messages = {
        "pass_through_days": "money {first} and {then} within {hours:g} h, {sums}, "
        "{count} times on {days} days within {lookback} days (median {minutes:.0f} min)",
        "pass_through_share": "{moved:,.2f} passed through: {share:.0%} of the inflow of those "
        "days",
        "pass_through_rate": "{rate:.0%} of the sums that came within reach of each other met",
        "pass_through_network": "{count} accounts both paid money in and took money out in these "
        "pass-throughs: the same accounts on either side, as a ring's are",
    }
    episodes = {"week": "pass:{week}"}

    def __init__(self, thresholds: PassThroughThresholds) -> None:
        self.thresholds = t = thresholds
        tight = _Matching(
            t.window_hours, t.max_shortfall, t.max_excess, t.max_median_minutes, None, False
        )
        ring = _Matching(
            t.ring_window_hours,
            t.ring_max_shortfall,
            t.ring_max_excess,
            t.ring_max_median_minutes,
            "x",
            True,
        )
        # Sums met loosely alert only through accounts on both sides: none needed, none run.
        self.matchings = (tight, ring) if t.min_network > 0 else (tight,)

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        counterparty = event.counterparty_id
        if counterparty in state.own_accounts or counterparty == event.account_id:
            return []
        memory: dict[str, Any] = self.slot(state, _empty)
        amount = float(event.amount)
        side = 1 if event.direction == "in" else -1
        # Money to and fro with an account that pays back, in round sums: a sweep to the
        # owner's savings and back, not money passed on.
        sweep = self._two_way(memory, _party(counterparty), side, amount) and amount % 100 == 0
        leg = (event.ts.timestamp(), side, amount, counterparty, event.event_id, sweep)
        parts = [(matching, _part(memory, matching)) for matching in self.matchings]
        completed = [
            (matching, part, done)
            for matching, part in parts
            if (done := self._step(memory, part, leg, matching)) is not None
        ]
        if side < 0 and amount >= self.thresholds.min_amount:
            if _note_payee(memory, _party(counterparty), day_of(leg[0])):
                self._forget(memory, leg[0])
        # Each matcher keeps its days; one alert a week, whichever alerts first.
        judged = [self._judge(memory, part, done, state, m) for m, part, done in completed]
        return next((findings for findings in judged if findings), [])

    def _forget(self, memory: dict[str, Any], epoch: float) -> None:
        """At a new fortnight, the days of pass-throughs past the lookback and the open ones
        past the window, which serve nothing (they are otherwise dropped only when a new
        pass-through is judged, or a new leg comes)."""
        t = self.thresholds
        today = day_of(epoch)
        for matching in self.matchings:
            part = _part(memory, matching)
            part["h"] = [h for h in part["h"] if day_of(h[0]) > today - t.lookback_days]
            window = matching.window_hours * 3600.0
            part["s"] = [c for c in part["s"] if epoch - c[1] <= window]

    def _two_way(self, memory: dict[str, Any], party: int, side: int, amount: float) -> bool:
        """Whether the counterparty is one the borrower both pays and is paid by."""
        two_way: list[int] = memory["t"]
        if party in two_way:
            return True
        same, other = (memory["r"], memory["p"]) if side > 0 else (memory["p"], memory["r"])
        if party in other:
            two_way.append(party)
            del two_way[:-MAX_TWO_WAY]
            return True
        if amount >= self.thresholds.min_amount:
            if party in same:
                same.remove(party)
            same.append(party)
            del same[:-MAX_PARTIES]
        return False

    def _count(self, part: dict[str, Any], day: int, opened: int, completed: int) -> float:
        """Count a comparable or a completed pass-through; the share completed, decayed by day."""
        last, opened_before, completed_before, leg = part["n"]
        decay = 0.5 ** (max(0, day - last) / (self.thresholds.lookback_days / 2))
        comparable = round(opened_before * decay + opened, 2)
        done = round(completed_before * decay + completed, 2)
        part["n"] = [day, comparable, done, leg]
        return min(1.0, done / comparable) if comparable else 0.0

    def _step(
        self,
        memory: dict[str, Any],
        part: dict[str, Any],
        leg: tuple[Any, ...],
        matching: _Matching,
    ) -> list[Any] | None:
        """Move the open pass-throughs on by one leg; the pass-through it completes, if any.

        Every leg large enough opens one (it may be where money starts to pass through) and
        moves on those already open: a leg on their side adds to what came in (or went out),
        a leg on the other side to what left again (or came back).
        """
        t = self.thresholds
        epoch, side, amount, counterparty, event_id, _ = leg
        party = _party(counterparty)
        window = matching.window_hours * 3600.0
        candidates: list[list[Any]] = [c for c in part["s"] if epoch - c[1] <= window]
        for candidate in list(candidates):
            outcome = self._join(candidate, leg, party, part, matching)
            if outcome is None:
                continue
            if outcome == "done" and self._to_settled_payees(memory, candidate, epoch):
                outcome = "drop"
            if outcome == "drop" or candidate[4] > t.max_legs:
                candidates.remove(candidate)
            elif outcome == "done":
                part["s"] = []
                amount_in = candidate[2] if candidate[0] > 0 else candidate[3]
                gap = int(epoch) - candidate[1]
                near, far = candidate[6], candidate[8] if len(candidate) > 8 else []
                paid_in, paid_out = (near, far) if candidate[0] > 0 else (far, near)
                done = [int(epoch), round(amount_in), gap, candidate[0], candidate[5], event_id]
                return [*done, paid_in, paid_out]
        if amount >= t.min_amount:
            candidates.append([side, int(epoch), amount, 0.0, 1, event_id, [party], 0, []])
        part["s"] = candidates[-MAX_OPEN:]
        return None

    @staticmethod
    def _to_settled_payees(memory: dict[str, Any], candidate: list[Any], epoch: float) -> bool:
        """Whether the money left (or went out first) for settled payees only."""
        payees = candidate[6] if candidate[0] < 0 else (candidate[8] if len(candidate) > 8 else [])
        settled = _settled_payees(memory, day_of(epoch)) if payees else None
        return settled is not None and all(_holds(settled, p) for p in payees)

    def _join(
        self,
        candidate: list[Any],
        leg: tuple[Any, ...],
        party: int,
        part: dict[str, Any],
        matching: _Matching,
    ) -> str | None:
        """Add a leg to an open pass-through: None when it takes no part, else "added",
        "drop" (it cannot be one any more) or "done" (the two sides met)."""
        t = self.thresholds
        epoch, side, amount, _, _, sweep = leg
        if side == candidate[0]:
            if matching.ring_only or amount < max(t.min_amount, MIN_LEG_SHARE * candidate[2]):
                return None  # a ring's hop passes one payment on: later ones open their own
            candidate[2] = round(candidate[2] + amount, 2)
            candidate[4] += 1
            if party not in candidate[6] and len(candidate[6]) < MAX_NEAR_PARTIES:
                candidate[6].append(party)
            return "added"
        if amount < MIN_LEG_SHARE * candidate[2]:
            return None
        if party in candidate[6]:
            return "drop"  # money back to or from the same account: a refund, a deposit
        before = candidate[3] / candidate[2]
        candidate[3] = round(candidate[3] + amount, 2)
        candidate[4] += 1
        candidate[7] += 0 if sweep else 1
        if len(candidate) > 8 and party not in candidate[8]:
            candidate[8] = [*candidate[8], party][:MAX_NEAR_PARTIES]
        ratio = candidate[3] / candidate[2]
        if before < COMPARABLE <= ratio and part["n"][3] != int(epoch):
            # The two sides came within reach of each other: a pass-through could be judged
            # (once for a leg, however many open pass-throughs it reaches).
            self._count(part, day_of(epoch), 1, 0)
            part["n"][3] = int(epoch)
        if ratio > 1.0 + matching.max_excess:
            return "drop"
        if ratio < 1.0 - matching.max_shortfall:
            return "added"
        return "done" if candidate[7] else "drop"

    def _judge(
        self,
        memory: dict[str, Any],
        part: dict[str, Any],
        done: list[Any],
        state: BorrowerState,
        matching: _Matching,
    ) -> Output:
        """Keep the pass-through; alert once a week when they repeat and weigh in the inflow."""
        t = self.thresholds
        hits: list[list[Any]] = part["h"]
        newest = day_of(done[0])
        if hits and day_of(hits[-1][0]) == newest:
            # The day's pass-throughs as one: their sum, a middling hand-on, how many.
            last = hits[-1]
            count = last[6] + 1
            gap = (last[2] * last[6] + done[2]) // count
            paid_in, paid_out = _parties(last, 7, done[6]), _parties(last, 8, done[7])
            merged = [done[0], last[1] + done[1], gap, last[3], last[4], done[5], count]
            hits[-1] = [*merged, paid_in, paid_out]
        else:
            hits.append([*done[:6], 1, done[6], done[7]])
        rate = self._count(part, newest, 0, 1)
        hits[:] = [h for h in hits if day_of(h[0]) > newest - t.lookback_days][-MAX_HITS:]
        # After an alert, what it told is told: a new one stands on days, a share of the
        # inflow and a hit rate of its own (a conduit that goes on has them; the chance
        # matches of a busy account after it stopped would otherwise borrow its figures).
        since = max(newest - t.lookback_days, memory["a"]) + 1
        fresh = [h for h in hits if day_of(h[0]) >= since]
        days = len({day_of(h[0]) for h in fresh})
        if days < t.min_days:
            return []
        inflow, _ = state.inflows.total(since, newest + 1)
        moved = sum(h[1] for h in fresh)
        share = min(1.0, moved / inflow) if inflow > 0 else 1.0
        minutes = statistics.median(h[2] for h in fresh) / 60.0
        accounts = _network(fresh)
        network = len(accounts)
        ring = t.min_network > 0 and network >= t.min_network
        if matching.ring_only and not (ring and accounts & {*done[6], *done[7]}):
            # Loose sums stand on the ring: the pass-through that alerts went through one of
            # its accounts (a chance match after a ring stopped would otherwise borrow it).
            return []
        needed = min(t.min_share, t.min_share_network) if ring else t.min_share
        if share < needed or rate < t.min_hit_rate or minutes > matching.max_median_minutes:
            return []
        if days == t.min_days and not ring and _generation_two_back(memory, newest) is None:
            # A young history: no payee old enough to tell settled from new, so the fewest
            # days are as likely a business's first takings meeting its first bills by
            # chance as a conduit; one day more tells (or accounts on both sides).
            return []
        week = iso_week(newest)
        if memory["w"] == week:
            return []
        memory["w"], memory["a"] = week, newest
        # The hit rate starts afresh too (the last leg's mark is kept: it was counted).
        part["n"] = [newest, 0.0, 0.0, part["n"][3]]
        figures = (days, (share, needed), moved, rate, network)
        return [self._finding(state, fresh, figures, matching)]

    def _network_reason(self, network: int, needed: float, matching: _Matching) -> list[Reason]:
        """Why a share under ``min_share``, or sums met loosely, were enough, if they were."""
        t = self.thresholds
        if needed >= t.min_share and not matching.ring_only:
            return []
        return [
            self.reason(
                "pass_through_network", observed=network, threshold=t.min_network, count=network
            )
        ]

    def _finding(
        self,
        state: BorrowerState,
        hits: list[list[Any]],
        figures: tuple[int, tuple[float, float], float, float, int],
        matching: _Matching,
    ) -> Finding:
        t = self.thresholds
        days, (share, needed), moved, rate, network = figures
        minutes = statistics.median(h[2] for h in hits) / 60.0
        forward = sum(1 for h in hits if h[3] > 0) * 2 >= len(hits)
        # More days, a larger share and a faster hand-on are each harder to explain by business.
        speed = 1.0 - min(1.0, minutes / (matching.window_hours * 60.0))
        score = 0.55 + 0.05 * min(3, days - t.min_days) + 0.15 * speed + 0.15 * share
        last = hits[-1]
        return self.finding(
            state.borrower_id,
            episode=self.episode("week", week=iso_week(day_of(last[0]))),
            ts=datetime.fromtimestamp(last[0], UTC),
            score=min(1.0, score),
            reasons=[
                self.reason(
                    "pass_through_days",
                    observed=days,
                    threshold=t.min_days,
                    first="came in" if forward else "went out",
                    then="left again" if forward else "came back from another account",
                    hours=matching.window_hours,
                    sums=_sums(matching),
                    count=sum(h[6] for h in hits),
                    days=days,
                    lookback=t.lookback_days,
                    minutes=minutes,
                ),
                self.reason(
                    "pass_through_share",
                    observed=round(share, 4),
                    threshold=needed,
                    moved=moved,
                    share=share,
                ),
                *self._network_reason(network, needed, matching),
                self.reason(
                    "pass_through_rate",
                    observed=round(rate, 4),
                    threshold=t.min_hit_rate,
                    rate=rate,
                ),
            ],
            evidence=[event_id for h in hits for event_id in dict.fromkeys((h[4], h[5]))],
        )


def _part(memory: dict[str, Any], matching: _Matching) -> dict[str, Any]:
    """The open pass-throughs, comparable and days of one matcher (of a slot of version 5,
    the ring's start empty)."""
    if matching.key is None:
        return memory
    part: dict[str, Any] | None = memory.get(matching.key)
    if part is None:
        part = memory[matching.key] = {"s": [], "h": [], "n": [0, 0.0, 0.0, 0]}
    return part


def _sums(matching: _Matching) -> str:
    """How near the two sides came, in words.

    >>> _sums(_Matching(5, 0.12, 0.05, 180, "x", True))
    'the second sum 12% under to 5% over the first'
    """
    if not matching.ring_only:
        return "nearly the same sum"
    return (
        f"the second sum {matching.max_shortfall:.0%} under to {matching.max_excess:.0%} over "
        "the first"
    )


def _parties(hit: list[Any], index: int, more: list[int]) -> list[int]:
    """A day's counterparties of one side with ``more`` (a slot of version 2 has none)."""
    kept: list[int] = hit[index] if len(hit) > index else []
    return [*kept, *(p for p in more if p not in kept)][:MAX_DAY_PARTIES]


def _payee_bits(party: int) -> int:
    """A payee's bits in a generation's filter."""
    return sum(1 << ((party * 0x9E3779B1 >> (9 * i)) % PAYEE_BITS) for i in range(PAYEE_HASHES))


def _filters(memory: dict[str, Any]) -> tuple[int, list[int]]:
    """The generation number of the newest filter, and the filters, newest first."""
    generation, text = memory.get("g") or (0, "")
    width = PAYEE_BITS // 8
    raw = base64.urlsafe_b64decode(text) if text else bytes(PAYEE_GENERATIONS * width)
    filters = [int.from_bytes(raw[i : i + width], "big") for i in range(0, len(raw), width)]
    return generation, filters


def _note_payee(memory: dict[str, Any], party: int, day: int) -> bool:
    """Remember a payee in the current generation, moving the older ones on; whether a new
    generation began."""
    generation = day // PAYEE_GENERATION_DAYS
    kept, filters = _filters(memory)
    if "g" in memory and generation < kept:
        return False  # a late event of an older generation: its payees are there or not
    moved = generation > kept
    if not moved and "g" in memory and _holds(filters[0], party):
        return False  # paid before in this generation: the filter holds it already
    if moved:
        filters = ([0] * min(generation - kept, PAYEE_GENERATIONS) + filters)[:PAYEE_GENERATIONS]
    filters[0] |= _payee_bits(party)
    raw = b"".join(f.to_bytes(PAYEE_BITS // 8, "big") for f in filters)
    memory["g"] = [generation, base64.urlsafe_b64encode(raw).decode()]
    return moved


def _settled_payees(memory: dict[str, Any], day: int) -> int | None:
    """The filter of the payees paid in the generation two before ``day``'s: None when that
    generation's payees are unknown (no payment then, or too many to tell apart).

    >>> memory = {}
    >>> _note_payee(memory, 12345, 0)
    False
    >>> [_settled_payees(memory, day) is not None for day in (0, 14, 28, 42, 56)]
    [False, False, True, False, False]
    >>> settled = _settled_payees(memory, 28)
    >>> _holds(settled, 12345), _holds(settled, 54321)
    (True, False)
    """
    older = _generation_two_back(memory, day)
    return None if older is None or older.bit_count() > PAYEE_BITS // 3 else older


def _holds(payees: int, party: int) -> bool:
    """Whether a generation's filter holds the payee."""
    bits = _payee_bits(party)
    return payees & bits == bits


def _generation_two_back(memory: dict[str, Any], day: int) -> int | None:
    """The filter of the payees of the generation two before ``day``'s: None when the
    borrower paid no one then (a young history, or one that moved no money)."""
    if "g" not in memory:
        return None
    kept, filters = _filters(memory)
    behind = day // PAYEE_GENERATION_DAYS - kept
    if not 0 <= behind <= PAYEE_GENERATIONS - 1:
        return None
    return filters[PAYEE_GENERATIONS - 1 - behind] or None


def _network(hits: list[list[Any]]) -> set[int]:
    """Accounts that both paid money in and took money out in these pass-throughs.

    >>> _network([[0, 0, 0, 1, "a", "b", 1, [1], [2]], [0, 0, 0, -1, "c", "d", 1, [2], [3]]])
    {2}
    """
    paid_in = {p for h in hits if len(h) > 8 for p in h[7]}
    paid_out = {p for h in hits if len(h) > 8 for p in h[8]}
    return paid_in & paid_out
