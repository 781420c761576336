"""Circular transfers: money sent round a ring of accounts and back, shrinking only by fees."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from detectors import personal
from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.graph import Cycle, Edge, Neighbourhood, find_cycles, read_neighbourhood
from detectors.index import Found, Lookups, Read, Write
from detectors.scenarios import at, inputs, transaction
from detectors.state import SECONDS_PER_DAY, BorrowerState, day_of
from detectors.tunables import tunable
from topics.names import Source
from topics.records import Transaction
from topics.validate import InputRecord

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["CircularFlowDetector", "CircularFlowThresholds"]


#: The change on the way round (first hop to last) at which a cycle's tightness, a part of its
#: score, reaches nothing: two hops of 5 % each.
LOOSE_CYCLE_SHRINK = 0.1


@dataclass(frozen=True, slots=True)
class CircularFlowThresholds:
    #: A cycle's hops must all fall within this many hours.
    window_hours: float = tunable(48.0, 1, 720, "hours within which all hops of a cycle must fall")
    #: Each hop may be smaller than the one before by at most this share (fees, skimming) ...
    max_fee_ratio: float = tunable(
        0.1, 0, 0.5, "share by which a hop may be smaller than the one before"
    )
    #: ... and larger than the one before by at most this share: a ring's hop amounts vary
    #: (a hop topped up, another skimmed), they do not only shrink. A cycle's evidence is its
    #: accounts, three borrowers' money back where it started within the window; the amounts
    #: only say it is the same money. At 5 % each way, rings whose hops strayed by up to 7.5 %
    #: closed a cycle now and then, and three small rings of 2,000 borrowers were missed.
    max_hop_rise: float = tunable(
        0.1, 0, 0.5, "share by which a hop may be larger than the one before"
    )
    #: A cycle whose first hop moves at least this (major units) alerts on its own ...
    min_amount: float = tunable(
        5000.0, 0, 10000000, "smallest first hop of a cycle that alerts on its own (major units)"
    )
    #: ... a smaller one, from this size, only when the same ring closes again and again:
    small_amount: float = tunable(
        400.0, 0, 10000000, "smallest first hop of a cycle that counts at all (major units)"
    )
    #: on at least this many distinct days ...
    small_cycle_days: int = tunable(
        3, 1, 30, "distinct days a ring of small cycles must close on to alert"
    )
    #: ... within this many days.
    small_lookback_days: int = tunable(
        21, 1, 90, "days within which a ring of small cycles is counted"
    )
    #: Edges kept per account in the cross-borrower index (bounds memory on hub accounts).
    max_edges_per_account: int = tunable(
        200, 10, 10000, "edges kept per account in the cross-borrower index"
    )


class CircularFlowDetector(Detector):
    """Flags every borrower whose account is a hop of a 3-cycle A→B→C→A within the window.

    Round-tripping inflates each member's turnover with the same money. A two-party
    round trip (a refund) is not a cycle here; transfers between a borrower's own accounts
    are not turnover and never become edges.

    >>> from detectors.graph import Edge, Neighbourhood
    >>> detector = CircularFlowDetector(CircularFlowThresholds())
    >>> ab = Edge("a", "b", 0.0, 100_000.0, "e1", "A")
    >>> bc = Edge("b", "c", 3600.0, 99_000.0, "e2", "B")
    >>> ca = Edge("c", "a", 7200.0, 98_500.0, "e3", "C")
    >>> [f.borrower_id for f in detector.close(ca, Neighbourhood((ab,), (bc,)))]
    ['A', 'B', 'C']
    """

    name = "circular_flow"
    category = FALSIFIED_FLOW
    version = "1"
    section = "circular_flow"
    thresholds_type = CircularFlowThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """A ring a → b → c → a reported by A, B and b-1 (who owns c), and a small payment
        of b-1's between the hops."""
        return inputs(
            Source.TRANSACTIONS,
            [
                transaction("A-1", "A", "a", "b", "100000", at()),
                transaction("B-1", "B", "b", "c", "99000", at(hours=2)),
                transaction("tx-small", "b-1", "c", "shop", "120.50", at(hours=3)),
                transaction("tx-close", "b-1", "c", "a", "98500", at(hours=5)),
            ],
        )

    messages = {
        "circular_transfer": "{amount:,.2f} went {ring:→} in {hours:.1f} h",
        "amount_shrink": "the amount came back changed only by fees",
    }
    episodes = {"cycle": "cycle:{accounts:|}:day:{day}"}

    def __init__(self, thresholds: CircularFlowThresholds) -> None:
        self.thresholds = thresholds

    def edge_for(self, event: Transaction, state: BorrowerState) -> Edge | None:
        """The account-to-account edge a transaction adds to the index, if it can matter."""
        if event.counterparty_id in state.own_accounts or event.counterparty_id == event.account_id:
            return None
        amount = float(event.amount)
        smallest = min(self.thresholds.min_amount, self.thresholds.small_amount)
        smallest_hop = smallest * (1.0 - self.thresholds.max_fee_ratio) ** 2
        if amount < smallest_hop:
            return None
        if event.direction == "out":
            src, dst = event.account_id, event.counterparty_id
        else:
            src, dst = event.counterparty_id, event.account_id
        return Edge(src, dst, event.ts.timestamp(), amount, event.event_id, event.borrower_id)

    def lookups(self, event: InputRecord, state: BorrowerState) -> Lookups | None:
        if not isinstance(event, Transaction):
            return None
        edge = self.edge_for(event, state)
        return None if edge is None else self.edge_lookups(edge)

    def edge_lookups(self, edge: Edge) -> Lookups:
        """Add the edge u→v; read the edges leaving v and entering u within the window of
        it. When the edge may be a hop of a small cycle and one closes in that window, read
        again as far as a ring's lookback reaches, with the edges leaving u: among them the
        ring's other transfers u→v, whose closings :meth:`_ring_days` counts. Most edges are
        small (a customer's payment to a shop) and few close a cycle: the wide read, hundreds
        of a busy account's edges, is asked only for those (``Lookups.then``)."""
        member = edge.encode()
        window = self.thresholds.window_hours * 3600.0
        reads = (
            Read(f"edges:out:{edge.dst}", edge.ts - window, edge.ts + window),
            Read(f"edges:in:{edge.src}", edge.ts - window, edge.ts + window),
        )
        return Lookups(
            writes=(
                Write(f"edges:out:{edge.src}", member, edge.ts),
                Write(f"edges:in:{edge.dst}", member, edge.ts),
            ),
            reads=reads,
            then=self._ring_reads(edge) if self._may_be_small(edge) else None,
        )

    def _may_be_small(self, edge: Edge) -> bool:
        """Whether ``edge`` may be a hop of a small cycle: a small cycle's first hop is under
        ``min_amount``, and a later hop rises at most twice."""
        t = self.thresholds
        largest_small_hop = t.min_amount * (1.0 + t.max_hop_rise) ** 2
        return t.small_amount < t.min_amount and edge.amount < largest_small_hop

    def _ring_reads(self, edge: Edge) -> Callable[[Sequence[Sequence[bytes]]], tuple[Read, ...]]:
        """Given the window's answers, the reads of a ring's lookback when a small cycle
        closed in the window (none otherwise)."""
        t = self.thresholds
        reach = t.window_hours * 3600.0 + (t.small_lookback_days + 1) * SECONDS_PER_DAY
        low, high = edge.ts - reach, edge.ts + reach

        def then(window: Sequence[Sequence[bytes]]) -> tuple[Read, ...]:
            cycles = self._cycles(edge, self.neighbourhood(edge, window))
            if not any(cycle.hops[0].amount < t.min_amount for cycle in cycles):
                return ()
            return (
                Read(f"edges:out:{edge.dst}", low, high),
                Read(f"edges:in:{edge.src}", low, high),
                Read(f"edges:out:{edge.src}", low, high),
            )

        return then

    @staticmethod
    def neighbourhood(edge: Edge, found: Sequence[Sequence[bytes]]) -> Neighbourhood:
        """The edges around ``edge`` from its answers: the window's two reads, or, when the
        ring's lookback was read after them (:meth:`edge_lookups`), its three."""
        return read_neighbourhood(edge, found[2:] if len(found) > 2 else found)

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        if not found:  # no edge for this event, or the index is down
            return []
        edge = self.edge_for(event, state)
        if edge is None:
            return []
        return list(self.close(edge, self.neighbourhood(edge, found)))

    def close(self, edge: Edge, around: Neighbourhood) -> list[Finding]:
        """Findings for every borrower who reported a hop of a cycle this edge completes: a
        large cycle at once; a small one's ring on each day it has closed on enough days
        (:meth:`_ring_days`)."""
        t = self.thresholds
        findings: dict[str, Finding] = {}
        small: dict[tuple[str, ...], list[Cycle]] = {}
        for cycle in self._cycles(edge, around):
            if cycle.hops[0].amount < t.min_amount:
                small.setdefault(cycle.accounts, []).append(cycle)
            else:
                self._add(findings, cycle)
        for closed in small.values():
            for cycle in self._ring_days(closed, edge, around):
                self._add(findings, cycle)
        return sorted(findings.values(), key=lambda f: (f.borrower_id, f.episode))

    def _cycles(self, edge: Edge, around: Neighbourhood) -> list[Cycle]:
        t = self.thresholds
        return find_cycles(
            edge,
            around,
            window_seconds=t.window_hours * 3600.0,
            max_fee_ratio=t.max_fee_ratio,
            min_amount=min(t.min_amount, t.small_amount),
            max_rise=t.max_hop_rise,
        )

    def _add(self, findings: dict[str, Finding], cycle: Cycle) -> None:
        for borrower_id in sorted({hop.borrower_id for hop in cycle.hops}):
            finding = self._finding(borrower_id, cycle)
            findings.setdefault(finding.alert_id, finding)

    def _ring_days(self, closed: list[Cycle], edge: Edge, around: Neighbourhood) -> list[Cycle]:
        """The small cycles to alert on now that ``closed`` (small cycles of one ring through
        ``edge``) are known: those of each day on which the ring closed, if it closed on at
        least ``small_cycle_days`` distinct days within ``small_lookback_days`` up to that day.

        Counted again from the index each time, not remembered by the borrower whose report
        happened to close a cycle: every closing of the ring within reach is found from its
        edges, so the count does not depend on which report came last nor on the order in
        which partitions are read (a worker resuming some partitions behind others after a
        restart, replay). A closing found late (its last report read behind the others)
        completes the count of the later days too, which are alerted then.
        """
        t = self.thresholds
        ring = set(closed[0].accounts)
        parallel = {e.event_id: e for e in around.out_of_src if e.dst == edge.dst}
        parallel[edge.event_id] = edge
        others = Neighbourhood(
            tuple(e for e in around.out_of_dst if e.dst in ring),
            tuple(e for e in around.into_src if e.src in ring),
        )
        by_day: dict[int, dict[tuple[str, ...], Cycle]] = {}
        for hop in parallel.values():
            for cycle in self._cycles(hop, others):
                if cycle.hops[0].amount < t.min_amount and set(cycle.accounts) == ring:
                    of_day = by_day.setdefault(day_of(cycle.hops[0].ts), {})
                    of_day.setdefault(tuple(h.event_id for h in cycle.hops), cycle)
        days = sorted(by_day)
        new = {day_of(cycle.hops[0].ts) for cycle in closed}
        alerted: list[Cycle] = []
        for day in days:
            if not any(first <= day < first + t.small_lookback_days for first in new):
                continue  # this edge's closings do not change that day's count
            if sum(day - t.small_lookback_days < d <= day for d in days) >= t.small_cycle_days:
                alerted += sorted(by_day[day].values(), key=_order)
        return alerted

    def _finding(self, borrower_id: str, cycle: Cycle) -> Finding:
        t = self.thresholds
        hours = cycle.span_seconds / 3600.0
        # The less the money changed on the way round, the more deliberate: the score's scale
        # is fixed, so that accepting looser hops (max_fee_ratio) adds cycles without raising
        # the score of those already found.
        tightness = 1.0 - min(1.0, abs(cycle.shrink) / LOOSE_CYCLE_SHRINK)
        score = min(1.0, 0.7 + 0.25 * tightness + (0.05 if hours <= 24 else 0.0))
        first = cycle.hops[0]
        return self.finding(
            borrower_id,
            episode=self.episode(
                "cycle", accounts=personal.account(cycle.accounts), day=day_of(first.ts)
            ),
            ts=datetime.fromtimestamp(cycle.hops[-1].ts, UTC),
            score=score,
            reasons=(
                self.reason(
                    "circular_transfer",
                    observed=round(hours, 2),
                    threshold=t.window_hours,
                    amount=first.amount,
                    ring=personal.account([hop.src for hop in cycle.hops] + [first.src]),
                    hours=hours,
                ),
                self.reason(
                    "amount_shrink",
                    observed=round(cycle.shrink, 4),
                    threshold=round(1 - (1 - t.max_fee_ratio) ** 2, 4),
                ),
            ),
            evidence=sorted({hop.event_id for hop in cycle.hops}),
        )


def _order(cycle: Cycle) -> list[tuple[float, str]]:
    """Cycles of one day in a fixed order: the first one alerted for a borrower is the same
    whichever order they were found in."""
    return [(hop.ts, hop.event_id) for hop in cycle.hops]
