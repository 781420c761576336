"""A borrower's inflow windows against its own baseline, and its peers' move over the same days."""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from detectors.state import InflowHistory

__all__ = [
    "ALL_PEERS",
    "PeerMove",
    "PeerMoves",
    "Windows",
    "days",
    "mean_z",
    "rank_z",
    "slope",
    "trimmed_mean",
    "windows",
]

#: The group of every borrower of a partition, whatever its sector (a sector is never empty).
ALL_PEERS = ""
#: Day closes remembered per group: a check reads the close of the day before it, or, when
#: event time jumped and that day is not closed yet, one of the few before.
PEER_DAYS = 4


@dataclass(frozen=True, slots=True)
class Windows:
    """A borrower's daily inflow on the days before ``today``, by window.

    ``recent`` is the trimmed daily mean of the latest ``recent_days`` (the largest day
    dropped), ``older`` the same of the ``recent_days`` before them, ``latest`` the plain
    mean of the latest ``recovery_days``; ``baseline`` the trimmed mean of the baseline days
    (the largest seventh dropped; None when too few or all zero), ``fortnight`` the days of
    both recent windows and ``weeks`` the whole weeks of the baseline, for the rank test.
    """

    recent: float
    older: float | None
    latest: float
    baseline: float | None
    fortnight: list[float]
    weeks: list[float]

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.recent / self.baseline

    @property
    def older_ratio(self) -> float | None:
        return None if not self.baseline or self.older is None else self.older / self.baseline


def windows(
    inflows: InflowHistory,
    today: int,
    *,
    recent_days: int,
    gap_days: int,
    baseline_days: int,
    min_baseline_days: int,
    recovery_days: int,
) -> Windows | None:
    """The windows of whole days before ``today`` (None: not a full recent window yet).

    The baseline ends ``gap_days`` before today, so that a decline under way does not drag
    its own baseline down. Means are trimmed so that one big contract payment neither hides
    a decline nor fakes one.
    """
    # Every day the windows need, the latest first; one read of the ring.
    history = days(inflows, today - gap_days - baseline_days, today)
    if len(history) < recent_days:
        return None
    recent = history[:recent_days]
    older = history[recent_days : 2 * recent_days]
    latest = history[:recovery_days]
    baseline = history[gap_days:]
    base = None
    if len(baseline) >= min_baseline_days:
        base = trimmed_mean(baseline, max(1, len(baseline) // 7)) or None
    return Windows(
        recent=trimmed_mean(recent, 1),
        older=trimmed_mean(older, 1) if len(older) == recent_days else None,
        latest=sum(latest) / len(latest),
        baseline=base,
        fortnight=history[: 2 * recent_days],
        # Whole weeks of baseline, the most recent first: weekdays weigh as in the fortnight.
        weeks=baseline[: len(baseline) // 7 * 7],
    )


#: A median peer move under this (a twentieth of the peers' usual takings) is a group that
#: stopped trading, not a slump to measure a borrower against.
STOPPED_MOVE = 0.05


@dataclass(frozen=True, slots=True)
class PeerMove:
    """How a borrower's peers moved over the windows of one check.

    ``week`` and ``older`` are the median ratios of the peers' recent and older windows to
    their own baselines; ``decliners`` counts the peers whose recent window fell to
    ``max_inflow_ratio`` of the median move or below (the borrower itself among them when it
    did). ``scope`` is ``"sector"`` or ``"partition"``.
    """

    scope: str
    peers: int
    week: float
    older: float
    decliners: int

    @property
    def stopped(self) -> bool:
        """The peers took almost nothing over a window (a sector closed for a holiday, a
        lockdown): a decline beyond a move to nothing cannot be measured."""
        return min(self.week, self.older) < STOPPED_MOVE

    @property
    def week_move(self) -> float:
        """The peers' move over the recent window, as a divisor: a slump, never a boom (a
        borrower flat while its sector booms is not in decline)."""
        return min(1.0, self.week)

    @property
    def fortnight_move(self) -> float:
        return min(1.0, (self.week + self.older) / 2.0)


class PeerMoves:
    """Per partition and group of peers (a sector, or every borrower of the partition), the
    peers' move over each closed day's windows: a few numbers per group and day.

    Plain data, so that a detector checkpoints it with its models.
    """

    def __init__(self) -> None:
        #: partition -> group -> [[day, peers, week, older, decliners], ...], oldest first.
        self.closes: dict[int, dict[str, list[list[float]]]] = {}

    def close(
        self,
        partition: int,
        day: int,
        ratios: Iterable[tuple[str | None, float, float]],
        max_ratio: float,
    ) -> None:
        """Record the day's peer moves from each borrower's (sector, recent ratio, older
        ratio); every borrower counts in the partition's group as well as its sector's."""
        groups: dict[str, list[tuple[float, float]]] = {ALL_PEERS: []}
        for sector, week, older in ratios:
            groups[ALL_PEERS].append((week, older))
            if sector:
                groups.setdefault(sector, []).append((week, older))
        memory = self.closes.setdefault(partition, {})
        for group, members in groups.items():
            if not members:
                continue
            week = statistics.median(w for w, _ in members)
            older = statistics.median(o for _, o in members)
            bar = max_ratio * min(1.0, week)
            decliners = sum(1 for w, _ in members if w <= bar)
            kept = memory.setdefault(group, [])
            kept[:] = [entry for entry in kept if entry[0] < day][-(PEER_DAYS - 1) :]
            kept.append([day, len(members), week, older, decliners])

    def move(
        self, partition: int, sector: str | None, today: int, min_peers: int
    ) -> PeerMove | None:
        """The peers' move over the windows of a check on ``today``, from the latest close
        before it: the sector's when it has ``min_peers`` borrowers, else the partition's."""
        memory = self.closes.get(partition)
        if not memory:
            return None
        for group, scope in ((sector, "sector"), (ALL_PEERS, "partition")):
            if group is None:
                continue
            for day, peers, week, older, decliners in reversed(memory.get(group, ())):
                if day >= today:
                    continue  # a later close: the future of this check
                if day < today - PEER_DAYS or peers < min_peers:
                    break
                return PeerMove(scope, int(peers), week, older, int(decliners))
        return None


def days(inflows: InflowHistory, start: int, end: int) -> list[float]:
    """Daily inflow of each day in ``[start, end)`` the history covers, the latest first.

    As :meth:`InflowHistory.total` counts them: from the first inflow on, within the ring,
    and days after the last inflow as zero.
    """
    if inflows.first_day < 0:
        return []
    sums, last = inflows.sums, inflows.last_day
    size = len(sums)
    first = max(start, inflows.first_day, last - size + 1)
    if end <= first:
        return []
    stop = min(end, last + 1)
    recorded: list[float] = []
    if stop > first:
        # The ring holds [first, stop) in at most two slices (a day close reads every
        # borrower's: slices, not a loop over days).
        begin, count = first % size, stop - first
        recorded = sums[begin : begin + count].tolist()
        if begin + count > size:
            recorded += sums[: begin + count - size].tolist()
        recorded.reverse()
    return [0.0] * (end - max(stop, first)) + recorded


def trimmed_mean(values: list[float], drop: int) -> float:
    """Mean without the ``drop`` largest values (never all of them).

    >>> trimmed_mean([1.0, 2.0, 3.0, 100.0], 1)
    2.0
    """
    kept = sorted(values)[: max(1, len(values) - drop)]
    return sum(kept) / len(kept)


def rank_z(sample: list[float], reference: list[float]) -> float | None:
    """Mann-Whitney z of ``sample`` against ``reference``: negative when it ranks lower.

    It is blind to the size of single payments, which makes lumpy B2B flows comparable with
    a shop's.

    >>> round(rank_z([1.0, 1.0, 1.0], [5.0, 6.0, 7.0, 8.0]), 2)
    -2.12
    """
    n1, n2 = len(sample), len(reference)
    if not n1 or not n2:
        return None
    ordered = sorted(reference)
    wins = 0.0
    for x in sample:
        below = bisect_left(ordered, x)
        wins += below + 0.5 * (bisect_right(ordered, x) - below)
    spread = math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12.0)
    return (wins - n1 * n2 / 2.0) / spread


def mean_z(sample: list[float], reference: list[float]) -> float | None:
    """How far the mean of ``sample`` lies below that of ``reference``, in standard errors
    of a mean of as many days drawn as the reference's days vary: negative when lower.

    Where the rank test counts days, this weighs money: a fortnight of a lumpy business
    with one invoice fewer than usual ranks low (its zero days tie) but is within what its
    own days vary by.

    >>> round(mean_z([5.0, 5.0, 5.0, 5.0], [10.0, 0.0, 10.0, 0.0]), 2)
    0.0
    >>> round(mean_z([1.0, 1.0, 1.0, 1.0], [10.0, 0.0, 10.0, 0.0]), 2)
    -1.39
    >>> mean_z([1.0], [2.0, 2.0])  # reference days that never vary: any fall is certain
    -inf
    """
    n = len(reference)
    if not sample or n < 2:
        return None
    centre = sum(reference) / n
    spread = math.sqrt(sum((x - centre) ** 2 for x in reference) / (n - 1))
    gap = sum(sample) / len(sample) - centre
    if spread <= 0:
        return 0.0 if gap == 0 else math.copysign(math.inf, gap)
    return gap / (spread / math.sqrt(len(sample)))


def slope(latest_first: list[float]) -> float | None:
    """The trend of daily values, the latest first, per day (negative: falling): the median
    of the slopes between every two days (Theil-Sen).

    A median ignores the few pairs that straddle a single step, so a fall that happened
    once and stopped has no trend, while a steady slide has its own; a lumpy business whose
    days are mostly alike has none either.

    >>> slope([3.0, 4.0, 5.0, 6.0])  # one less each day
    -1.0
    >>> slope([2.0, 2.0, 2.0, 2.0, 2.0, 10.0, 10.0])  # one step down, then flat
    0.0
    """
    n = len(latest_first)
    if n < 3:
        return None
    pairs = sorted(
        (latest_first[i] - latest_first[j]) / (j - i) for i in range(n) for j in range(i + 1, n)
    )
    middle = len(pairs) // 2
    return pairs[middle] if len(pairs) % 2 else (pairs[middle - 1] + pairs[middle]) / 2
