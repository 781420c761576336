"""How delinquency judges a borrower's inflow: against its own past and its peers' move."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detectors.inflow_windows import (
    PeerMove,
    PeerMoves,
    Windows,
    mean_z,
    rank_z,
    slope,
    windows,
)
from detectors.state import InflowHistory

if TYPE_CHECKING:
    from detectors.delinquency import DelinquencyThresholds

__all__ = ["Decline", "Inflow", "InflowJudge"]

#: Days an inflow projection covers when set against one monthly installment.
MONTH_DAYS = 30
#: Strength of a decline at ``max_inflow_ratio``, and what its depth adds by 0.3 below it.
DECLINE_BASE, DECLINE_DEPTH, DEPTH_SPAN = 0.4, 0.2, 0.3
#: A baseline of fewer whole days than this (two weeks) is short: the borrower's first weeks.
#: Its days are too few for the rank test against the fortnight to say anything of a lumpy
#: business (one quiet and one busy week rank alike), so the money must say it instead.
SHORT_BASELINE_DAYS = 14


@dataclass(frozen=True, slots=True)
class Decline:
    """The recent week against the baseline, once the baseline is moved as the peers moved
    (unmoved: the borrower against its own past alone)."""

    ratio: float  # trimmed daily mean of the recent window / of the moved baseline
    projected: float  # ... at its trend by the due date, when sustained and falling; or ratio
    rank_z: float | None  # rank-sum z of the last two weeks' days against the moved baseline
    mean_z: float | None  # their mean against the moved baseline's, in standard errors
    sustained: bool  # the week before the recent one was already down
    recovered: bool  # the latest days are back near the moved baseline
    short: bool = False  # the baseline has fewer than SHORT_BASELINE_DAYS whole days


@dataclass(frozen=True, slots=True)
class Inflow:
    """The borrower's recent inflow against its own earlier days and its peers' move."""

    own: Decline | None  # None: too little history
    relative: Decline | None  # against the peers' move; None when no peers are known
    peer: PeerMove | None
    coverage: float | None  # a month of inflow at the recent rate / the installment
    recent: float  # trimmed daily mean of the recent window
    baseline: float  # trimmed daily mean of the baseline


class InflowJudge:
    """The inflow side of :class:`~detectors.delinquency.DelinquencyDetector`: each
    borrower's windows against its baseline, the peers' move per partition (kept from the
    day closes), and how much a decline weighs.

    >>> from detectors.delinquency import DelinquencyThresholds
    >>> judge = InflowJudge(DelinquencyThresholds())
    >>> round(judge.cover_weight(3.0), 2), round(judge.cover_weight(40.0), 2)
    (1.0, 0.6)
    """

    def __init__(self, thresholds: DelinquencyThresholds) -> None:
        self.thresholds = thresholds
        self.peers = PeerMoves()

    def close_day(
        self, partition: int, day: int, borrowers: Iterable[tuple[InflowHistory, str | None]]
    ) -> None:
        """Record how the partition's borrowers (inflows and sector) moved over the windows
        of a check the day after ``day``: per sector and for the whole partition, the median
        ratio of each one's recent and older week to its own baseline, and how many fell to
        ``max_inflow_ratio`` of that median."""
        ratios: list[tuple[str | None, float, float]] = []
        for inflows, sector in borrowers:
            seen = self.windows(inflows, day + 1)
            if seen is None or seen.baseline is None:
                continue
            older = seen.recent if seen.older is None else seen.older
            ratios.append((sector, seen.recent / seen.baseline, older / seen.baseline))
        self.peers.close(partition, day, ratios, self.thresholds.max_inflow_ratio)

    def windows(self, inflows: InflowHistory, today: int) -> Windows | None:
        t = self.thresholds
        return windows(
            inflows,
            today,
            recent_days=t.recent_days,
            gap_days=t.baseline_gap_days,
            baseline_days=t.baseline_days,
            min_baseline_days=t.min_baseline_days,
            recovery_days=t.recovery_days,
        )

    def inflow(
        self,
        inflows: InflowHistory,
        partition: int,
        sector: str | None,
        today: int,
        amount_due: float,
        ahead: float = 0.0,
    ) -> Inflow:
        """The recent week against the borrower's baseline, both from whole days before today,
        on its own and after its peers' move over the same days; ``ahead``: days from then to
        the due date, as far as a falling trend is projected.

        The rank test (Mann-Whitney) asks whether the last two weeks' days sit below the
        baseline days as a whole. Against the peers, the baseline is first scaled by their
        median move (a slump only, never a boom), so that a borrower that fell with its sector
        ranks as if the sector had not fallen.
        """
        t = self.thresholds
        seen = self.windows(inflows, today)
        if seen is None:
            return Inflow(None, None, None, None, 0.0, 0.0)
        coverage = seen.recent * MONTH_DAYS / amount_due
        if seen.baseline is None:
            return Inflow(None, None, None, coverage, seen.recent, 0.0)
        own = self.decline(seen, ahead, 1.0, 1.0, 1.0)
        peer = self.peers.move(partition, sector, today, t.min_sector_peers)
        relative = None
        if peer is not None and not peer.stopped:
            relative = self.decline(
                seen, ahead, peer.week_move, min(1.0, peer.older), peer.fortnight_move
            )
        return Inflow(own, relative, peer, coverage, seen.recent, seen.baseline)

    def decline(
        self, seen: Windows, ahead: float, week: float, older: float, fortnight: float
    ) -> Decline:
        """The windows against a baseline moved by the peers' moves over each (1: unmoved),
        ``ahead`` days before the due date."""
        t = self.thresholds
        assert seen.baseline is not None
        baseline = seen.baseline * week
        weeks = seen.weeks if fortnight == 1.0 else [day * fortnight for day in seen.weeks]
        ratio = seen.recent / baseline
        before = None if seen.older_ratio is None else seen.older_ratio / older
        sustained = before is None or before <= t.sustained_ratio
        projected = ratio
        trend = slope(seen.fortnight) if sustained and t.trend_days > 0 else None
        if trend is not None and trend < 0:
            # The fortnight's own trend, carried on from the recent window's middle.
            horizon = min(t.trend_days, t.recent_days / 2 + max(0.0, ahead))
            projected = max(0.0, ratio + trend / baseline * horizon)
        return Decline(
            ratio=ratio,
            projected=projected,
            rank_z=rank_z(seen.fortnight, weeks),
            mean_z=mean_z(seen.fortnight, weeks),
            sustained=sustained,
            recovered=seen.latest >= t.recovered_ratio * baseline,
            short=len(seen.weeks) < SHORT_BASELINE_DAYS,
        )

    def declined(self, decline: Decline, coverage: float | None = None) -> bool:
        """Down at its trend, the last two weeks ranking and averaging below the baseline,
        and the latest days not recovered.

        On a short baseline (a borrower's first weeks) neither test can tell a lumpy
        business's quiet week from a decline: a week of baseline days is too few to rank
        against, or to measure the days' spread by. They are waived for a decline that is
        under way (the recent week down, not only its trend), sustained (the week before was
        down too) and leaves the installment uncovered (a month at the recent rate pays it at
        most ``young_uncovered_coverage`` times, ``coverage``): the money for the installment
        is visibly missing, which a quiet week of a business whose takings cover it does not
        show.
        """
        t = self.thresholds
        if decline.projected > t.max_inflow_ratio or decline.recovered:
            return False
        if (
            decline.rank_z is not None
            and decline.rank_z <= t.max_inflow_rank_z
            and decline.mean_z is not None
            and decline.mean_z <= t.max_inflow_mean_z
        ):
            return True
        return (
            decline.short
            and decline.sustained
            and decline.ratio <= t.max_inflow_ratio
            and coverage is not None
            and coverage <= t.young_uncovered_coverage
        )

    def strength(self, decline: Decline) -> float:
        """Deeper (at its trend by the due date) weighs more; a decline of the last week
        alone weighs less."""
        t = self.thresholds
        depth = min(1.0, (t.max_inflow_ratio - decline.projected) / DEPTH_SPAN)
        strength = DECLINE_BASE + DECLINE_DEPTH * depth
        return strength if decline.sustained else strength * t.brief_decline_weight

    def cover_weight(self, coverage: float | None) -> float:
        """1 up to ``max_coverage``, falling (in log of the coverage) to
        ``ample_coverage_weight`` at ``ample_coverage``: a business whose inflow still pays
        the installment many times over is at little risk of missing it."""
        t = self.thresholds
        if coverage is None or coverage <= t.max_coverage:
            return 1.0
        if coverage >= t.ample_coverage:
            return t.ample_coverage_weight
        along = math.log(coverage / t.max_coverage) / math.log(t.ample_coverage / t.max_coverage)
        return 1.0 - (1.0 - t.ample_coverage_weight) * along

    def shared_weight(self, peer: PeerMove, others: int) -> float:
        """Other peers falling as far at once, beyond the share that do in ordinary times,
        are a shared slump the median did not show (a third of a partition without sectors
        in a lockdown): the decline weighs the ordinary count over theirs."""
        t = self.thresholds
        ordinary = t.typical_decline_share * max(0, peer.peers - 1)
        if others < t.min_shared_decliners or others <= ordinary:
            return 1.0
        return ordinary / others
