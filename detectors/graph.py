"""Account-to-account transfer edges across borrowers, and the 3-cycles among them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

__all__ = ["Cycle", "Edge", "Neighbourhood", "find_cycles", "read_neighbourhood"]


@dataclass(frozen=True, slots=True)
class Edge:
    """Money moving from account ``src`` to account ``dst``, as one borrower reported it."""

    src: str
    dst: str
    ts: float
    amount: float
    event_id: str
    borrower_id: str

    def encode(self) -> bytes:
        return orjson.dumps(
            [self.src, self.dst, self.ts, self.amount, self.event_id, self.borrower_id]
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Edge:
        src, dst, ts, amount, event_id, borrower_id = orjson.loads(raw)
        return cls(src, dst, float(ts), float(amount), event_id, borrower_id)

    @property
    def transfer(self) -> tuple[str, str, float, float]:
        """Identity of the money movement: the sender's and receiver's reports share it."""
        return (self.src, self.dst, self.ts, self.amount)


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """What the index knew around a new edge u→v: edges leaving v and edges entering u, and
    (when asked for) edges leaving u, among them the other transfers u→v."""

    out_of_dst: tuple[Edge, ...] = ()
    into_src: tuple[Edge, ...] = ()
    out_of_src: tuple[Edge, ...] = ()


def read_neighbourhood(edge: Edge, found: Sequence[Sequence[bytes]]) -> Neighbourhood:
    """The index's answers to an edge u→v's reads, decoded as far as a 3-cycle can use them.

    Of the edges entering u, only those from an account v sends to can close a cycle u→v→w→u;
    of the edges leaving u, only the other transfers u→v count a ring's closings. A busy
    account's index holds hundreds of edges within reach (every customer's payment into a
    shop), and decoding each was most of the detector's cost; the rest are skipped on their
    encoded prefix, which names the source account (and the destination after it).
    """
    out_of_dst = tuple(Edge.decode(raw) for raw in found[0]) if found else ()
    into_src: tuple[Edge, ...] = ()
    if len(found) > 1 and out_of_dst:
        sources = tuple({_prefix(e.dst) for e in out_of_dst if e.dst not in (edge.src, edge.dst)})
        into_src = tuple(Edge.decode(raw) for raw in found[1] if raw.startswith(sources))
    out_of_src: tuple[Edge, ...] = ()
    if len(found) > 2:
        parallel = _prefix(edge.src, edge.dst)
        out_of_src = tuple(Edge.decode(raw) for raw in found[2] if raw.startswith(parallel))
    return Neighbourhood(out_of_dst, into_src, out_of_src)


def _prefix(*accounts: str) -> bytes:
    """How an encoded edge (:meth:`Edge.encode`) from ``accounts[0]`` (to ``accounts[1]``)
    begins: bytes compare where decoding would cost a list, floats and an object."""
    return b"[" + b"".join(orjson.dumps(account) + b"," for account in accounts)


@dataclass(frozen=True, slots=True)
class Cycle:
    """Three transfers u→v→w→u in time order; ``hops[0]`` is the earliest."""

    hops: tuple[Edge, Edge, Edge]

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(sorted(hop.src for hop in self.hops))

    @property
    def span_seconds(self) -> float:
        return self.hops[-1].ts - self.hops[0].ts

    @property
    def shrink(self) -> float:
        """Share of the first hop's amount lost by the last hop (fees taken along the way);
        negative when the amounts grew on the way round."""
        return 1.0 - self.hops[-1].amount / self.hops[0].amount


def find_cycles(
    edge: Edge,
    around: Neighbourhood,
    *,
    window_seconds: float,
    max_fee_ratio: float,
    min_amount: float,
    max_rise: float = 0.0,
) -> list[Cycle]:
    """Every 3-cycle that ``edge`` closes, in whatever order its hops arrived.

    The new edge may be any hop of the cycle: the hops are tried in each rotation and kept
    when one rotation runs forward in time within the window, each hop at most
    ``max_fee_ratio`` smaller than the one before and at most ``max_rise`` larger.
    """
    u, v = edge.src, edge.dst
    if u == v:
        return []
    into_u: defaultdict[str, list[Edge]] = defaultdict(list)
    for back in around.into_src:
        if back.src not in (u, v):
            into_u[back.src].append(back)
    # Keyed by the reports, not just the transfers: the sender's and the receiver's report of
    # one transfer name different borrowers, and each of them must be alerted.
    found: dict[tuple[str, ...], Cycle] = {}
    for onward in around.out_of_dst:
        w = onward.dst
        for back in into_u.get(w, ()):
            for hops in _rotations(edge, onward, back):
                if _plausible(hops, window_seconds, (max_fee_ratio, max_rise), min_amount):
                    found.setdefault(tuple(h.event_id for h in hops), Cycle(hops))
    return list(found.values())


def _rotations(a: Edge, b: Edge, c: Edge) -> list[tuple[Edge, Edge, Edge]]:
    return [(a, b, c), (b, c, a), (c, a, b)]


def _plausible(
    hops: tuple[Edge, Edge, Edge],
    window: float,
    change: tuple[float, float],
    min_amount: float,
) -> bool:
    fall, rise = change
    if hops[0].amount < min_amount:
        return False
    for before, after in zip(hops, hops[1:], strict=False):
        if not before.ts <= after.ts:
            return False
        if not before.amount * (1.0 - fall) <= after.amount <= before.amount * (1.0 + rise):
            return False
    return hops[-1].ts - hops[0].ts <= window
