"""Wash trading: the same amount in from and back out to one counterparty, day after day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors import personal
from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.index import Found
from detectors.scenarios import at, inputs, transaction
from detectors.state import SECONDS_PER_DAY, BorrowerState, day_of
from detectors.tunables import tunable
from topics.names import Source
from topics.records import Transaction

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["WashTradingDetector", "WashTradingThresholds"]


@dataclass(frozen=True, slots=True)
class WashTradingThresholds:
    #: In and out legs match when they differ by at most this share of the larger one.
    amount_tolerance: float = tunable(
        0.005, 0.0, 0.5, "share by which in and out legs may differ and still match"
    )
    #: ... and are at most this many hours apart.
    pair_window_hours: float = tunable(24.0, 1, 720, "hours within which in and out legs match")
    #: Legs smaller than this (major units) are ignored.
    min_amount: float = tunable(
        10_000.0, 0.0, 10000000.0, "legs smaller than this are ignored (major units)"
    )
    #: Alert when round trips with one counterparty happen on at least this many distinct days
    min_pair_days: int = tunable(
        3, 1, 60, "distinct days of round trips with one counterparty that alert"
    )
    #: ... within this many days (first to last round-trip day, inclusive).
    lookback_days: int = tunable(21, 1, 90, "days from first to last round-trip day")


#: Unmatched large legs kept per borrower (a sale day's surplus evicts the oldest).
MAX_LEGS = 12
#: Counterparties with round trips kept per borrower (the least recently active goes first).
MAX_COUNTERPARTIES = 4
#: Round-trip days kept per counterparty beyond ``min_pair_days`` (they raise the score).
EXTRA_DAYS_KEPT = 2

# A leg: [epoch in whole seconds, signed amount (+ in, - out), counterparty, event id].
# A pair: [day it started, in event id, out event id, relative difference, amount in].


def _empty() -> dict[str, Any]:
    return {"legs": [], "cps": {}}


def iso_week(day: int) -> str:
    """``2024-W09`` for a UTC day number.

    >>> iso_week(19783)  # 2024-03-01
    '2024-W09'
    """
    year, week, _ = datetime.fromtimestamp(day * SECONDS_PER_DAY, UTC).isocalendar()
    return f"{year}-W{week:02d}"


class WashTradingDetector(Detector):
    """Flags a counterparty that sends the borrower money and gets (nearly) the same amount
    back within a day, on several days within a few weeks: turnover made of the same money.

    A refund or a returned deposit is one round trip, not a habit; trading with a supplier
    moves different amounts each way; transfers between the borrower's own accounts are not
    turnover. Only the borrower's own transactions, in arrival order, decide.

    >>> from decimal import Decimal
    >>> from topics.records import Transaction
    >>> detector = WashTradingDetector(WashTradingThresholds())
    >>> state = BorrowerState(borrower_id="b")
    >>> def tx(i: int, direction: str, hours: float) -> Transaction:
    ...     return Transaction(event_id=f"{direction}{i}", borrower_id="b", account_id="a",
    ...                        counterparty_id="x", direction=direction,
    ...                        amount=Decimal(50000 if direction == "in" else 49900),
    ...                        ts=datetime.fromtimestamp(86400 * (19783 + i) + hours * 3600, UTC))
    >>> found = [f for i in range(3) for d, h in (("in", 1), ("out", 5))
    ...          for f in detector.on_transaction(tx(i, d, h), state, ())]
    >>> [(f.episode, [r.code for r in f.reasons]) for f in found]
    [('wash:x:2024-W09', ['wash_pairs', 'round_trip_amount'])]
    """

    name = "wash_trading"
    category = FALSIFIED_FLOW
    version = "1"
    section = "wash_trading"
    thresholds_type = WashTradingThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """Nearly the same sum in from one counterparty and back out to it the same day, on
        three days of one week."""
        return inputs(
            Source.TRANSACTIONS,
            [
                leg
                for day in (1, 3, 6)
                for leg in (
                    transaction(
                        f"w-in-{day}", "w-1", "wa-1", "wx", "40000", at(days=day, hours=2), "in"
                    ),
                    transaction(
                        f"w-out-{day}", "w-1", "wa-1", "wx", "39900", at(days=day, hours=9), "out"
                    ),
                )
            ],
        )

    messages = {
        "wash_pairs": "money went in from and back out to {counterparty} within {hours:g} h on "
        "{days} days out of {span}",
        "round_trip_amount": "{smallest:,.2f} to {largest:,.2f} each time, the two legs at most "
        "{widest:.2%} apart",
    }
    episodes = {"week": "wash:{counterparty}:{week}"}

    def __init__(self, thresholds: WashTradingThresholds) -> None:
        self.thresholds = thresholds

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        t = self.thresholds
        amount = float(event.amount)
        if amount < t.min_amount:
            return []
        counterparty = event.counterparty_id
        if counterparty in state.own_accounts or counterparty == event.account_id:
            return []
        memory: dict[str, Any] = self.slot(state, _empty)
        epoch = event.ts.timestamp()
        signed = amount if event.direction == "in" else -amount
        match = self._take_match(memory["legs"], epoch, signed, counterparty)
        if match is None:
            self._keep_leg(memory["legs"], [int(epoch), signed, counterparty, event.event_id])
            return []
        other_epoch, other_signed, _, other_id = match
        relative = abs(amount - abs(other_signed)) / max(amount, abs(other_signed))
        in_id, out_id = (event.event_id, other_id) if signed > 0 else (other_id, event.event_id)
        in_amount = amount if signed > 0 else abs(other_signed)
        pair = [day_of(min(epoch, other_epoch)), in_id, out_id, round(relative, 6), in_amount]
        return self._add_pair(memory["cps"], counterparty, pair, max(epoch, other_epoch), state)

    def _take_match(
        self, legs: list[list[Any]], epoch: float, signed: float, counterparty: str
    ) -> list[Any] | None:
        """Remove and return the closest-in-time opposite leg that matches, if any."""
        t = self.thresholds
        window = t.pair_window_hours * 3600.0
        best, best_gap = -1, 0.0
        for position, (leg_epoch, leg_signed, leg_cp, _) in enumerate(legs):
            if leg_cp != counterparty or (leg_signed > 0) == (signed > 0):
                continue
            gap = abs(epoch - leg_epoch)
            if gap > window:
                continue
            larger = max(abs(leg_signed), abs(signed))
            if abs(abs(leg_signed) - abs(signed)) > t.amount_tolerance * larger:
                continue
            if best < 0 or gap < best_gap:
                best, best_gap = position, gap
        return None if best < 0 else legs.pop(best)

    def _keep_leg(self, legs: list[list[Any]], leg: list[Any]) -> None:
        window = self.thresholds.pair_window_hours * 3600.0
        legs[:] = [old for old in legs if old[0] >= leg[0] - window]
        legs.append(leg)
        while len(legs) > MAX_LEGS:
            legs.remove(min(legs, key=lambda old: old[0]))

    def _add_pair(
        self,
        cps: dict[str, list[Any]],
        counterparty: str,
        pair: list[Any],
        completed: float,
        state: BorrowerState,
    ) -> Output:
        t = self.thresholds
        entry = cps.get(counterparty)
        if entry is None:
            entry = cps[counterparty] = ["", []]  # [week alerted, pairs by day]
        pairs: list[list[Any]] = entry[1]
        if any(old[0] == pair[0] for old in pairs):
            return []  # that day already has its round trip
        pairs.append(pair)
        pairs.sort(key=lambda p: p[0])
        del pairs[: -max(1, t.min_pair_days + EXTRA_DAYS_KEPT)]
        newest = pairs[-1][0]
        # Counterparties whose last round trip fell out of the lookback are forgotten first.
        for stale in [cp for cp, (_, ps) in cps.items() if ps[-1][0] <= newest - t.lookback_days]:
            if stale != counterparty:
                del cps[stale]
        while len(cps) > MAX_COUNTERPARTIES:
            del cps[min(cps, key=lambda cp: cps[cp][1][-1][0])]
        if counterparty not in cps:
            return []
        recent = [p for p in pairs if p[0] > newest - t.lookback_days]
        if len(recent) < t.min_pair_days:
            return []
        week = iso_week(newest)
        if entry[0] == week:
            return []
        entry[0] = week
        return [self._finding(state, counterparty, recent, week, completed)]

    def _finding(
        self,
        state: BorrowerState,
        counterparty: str,
        pairs: list[list[Any]],
        week: str,
        completed: float,
    ) -> Finding:
        t = self.thresholds
        widest = max(p[3] for p in pairs)
        smallest, largest = min(p[4] for p in pairs), max(p[4] for p in pairs)
        tightness = 1.0 - min(1.0, widest / t.amount_tolerance) if t.amount_tolerance > 0 else 1.0
        extra = min(2, len(pairs) - t.min_pair_days)
        score = min(1.0, 0.6 + 0.1 * extra + 0.15 * tightness)
        span = pairs[-1][0] - pairs[0][0] + 1
        return self.finding(
            state.borrower_id,
            episode=self.episode("week", counterparty=personal.account(counterparty), week=week),
            ts=datetime.fromtimestamp(completed, UTC),
            score=score,
            reasons=[
                self.reason(
                    "wash_pairs",
                    observed=len(pairs),
                    threshold=t.min_pair_days,
                    counterparty=personal.account(counterparty),
                    hours=t.pair_window_hours,
                    days=len(pairs),
                    span=span,
                ),
                self.reason(
                    "round_trip_amount",
                    observed=round(widest, 6),
                    threshold=t.amount_tolerance,
                    smallest=smallest,
                    largest=largest,
                    widest=widest,
                ),
            ],
            evidence=[event_id for p in pairs for event_id in (p[1], p[2])],
        )
