"""The cross-borrower index: what spans partitions (edges, devices, IPs), as scored sets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CrossIndex", "Found", "Lookups", "MemoryCrossIndex", "Read", "Write"]

#: Per read of a detector for one event, the members found; None when the index is down.
Found = Sequence[Sequence[bytes]] | None


@dataclass(frozen=True, slots=True)
class Write:
    """Add ``member`` to the set ``key`` with ``score`` (event time); a member keeps its
    highest score, so arrival order does not matter."""

    key: str
    member: bytes
    score: float


@dataclass(frozen=True, slots=True)
class Read:
    """Members of ``key`` scored within ``[low, high]``, by score then member."""

    key: str
    low: float
    high: float


@dataclass(frozen=True, slots=True)
class Lookups:
    """What a detector needs from the index for one event.

    A detector that remembers in the borrower's state that it wrote a member (to write it
    once) gives ``undo``: called when the exchange failed, it takes that memory back, so the
    member is written again on the next occasion instead of being missing for good.
    """

    writes: tuple[Write, ...] = ()
    reads: tuple[Read, ...] = ()
    undo: Callable[[], None] | None = field(default=None, compare=False)
    #: Given the answers to ``reads``, more reads (none: nothing more): a wide read that
    #: only matters when a narrow one found something is asked in a second exchange of the
    #: batch, after the same writes, and its answers follow the first ones.
    then: Callable[[Sequence[Sequence[bytes]]], tuple[Read, ...]] | None = field(
        default=None, compare=False
    )


class CrossIndex(Protocol):
    """Redis sorted sets in the worker, dictionaries in replay: the same semantics."""

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        """Apply every write, then answer every read (one result per read, in order).

        All writes happen before any read, so of two workers adding the last two pieces of a
        pattern at the same moment, at least one sees the other's. Each written set keeps its
        ``max_members`` highest-scored members.
        """
        ...


class MemoryCrossIndex:
    """The in-process index replay uses."""

    def __init__(self) -> None:
        self._sets: defaultdict[str, dict[bytes, float]] = defaultdict(dict)

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        touched: set[str] = set()
        for write in writes:
            members = self._sets[write.key]
            if write.score > members.get(write.member, float("-inf")):
                members[write.member] = write.score
            touched.add(write.key)
        for key in touched:
            members = self._sets[key]
            if len(members) > max_members:
                # Like ZREMRANGEBYRANK 0 -(max+1): drop the lowest scores, ties by member.
                for stale in sorted(members, key=lambda m: (members[m], m))[
                    : len(members) - max_members
                ]:
                    del members[stale]
        results = []
        for read in reads:
            members = self._sets.get(read.key, {})
            low, high = read.low, read.high
            # The members in range, then sorted: a read's range holds few of a set's members.
            inside = sorted(
                (score, member) for member, score in members.items() if low <= score <= high
            )
            results.append([member for _, member in inside])
        return results
