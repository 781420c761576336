"""Sustained inflow lifts beyond the borrower's own baseline and its sector's, scored online."""

from __future__ import annotations

import math
import pickle
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from detectors import personal
from detectors.base import FALSIFIED_FLOW, Detector, Finding, Output
from detectors.index import Found
from detectors.scenarios import inputs, transaction
from detectors.state import SECONDS_PER_DAY, BorrowerState
from detectors.tunables import Rules, tunable
from topics.names import Source
from topics.records import Transaction

if TYPE_CHECKING:
    from river.anomaly import HalfSpaceTrees

    from detectors.engine import Input

__all__ = ["FlowAnomalyDetector", "FlowAnomalyThresholds"]


@dataclass(frozen=True, slots=True)
class FlowAnomalyThresholds:
    #: Days of the borrower's own history its daily inflow is compared with.
    baseline_days: int = tunable(
        28, 7, 90, "days of the borrower's history its daily inflow is compared with"
    )
    #: Days of history needed before a borrower is scored.
    min_baseline_days: int = tunable(
        14, 1, 90, "days of history needed before a borrower is scored"
    )
    #: A day counts as lifted when inflow, after the sector's own change, is this many times
    #: the borrower's baseline.
    min_lift: float = tunable(
        4.0, 1.0, 100.0, "inflow over the baseline, after the sector's change, that lifts a day"
    )
    #: Lifted days needed within the last ``sustained_window`` days: one big contract is not
    #: fabricated turnover, weeks of it may be.
    sustained_days: int = tunable(6, 1, 60, "lifted days needed within the sustained window")
    sustained_window: int = tunable(7, 1, 60, "days in which lifted days are counted")
    #: Anomaly score (HalfSpaceTrees, 0..1) at or above which a sustained lift alerts.
    min_anomaly_score: float = tunable(
        0.75, 0.0, 1.0, "anomaly score at or above which a sustained lift alerts"
    )
    #: Borrowers of a sector in the partition needed to estimate the sector's daily change.
    min_sector_peers: int = tunable(
        5, 1, 1000, "borrowers of a sector needed to estimate its daily change"
    )
    #: Days on which the sector as a whole moved below this share of its baseline (a B2B
    #: weekend) are not judged: dividing by a near-zero move would inflate every lift.
    min_sector_move: float = tunable(
        0.3, 0.0, 1.0, "sector moves below this share of its baseline are not judged"
    )

    #: Rules across these tunables, each with what a team is told when a change breaks it
    #: (a borrower's inflow history holds 96 days: detectors.state.INFLOW_HISTORY_DAYS).
    CONSTRAINTS: ClassVar[Rules[FlowAnomalyThresholds]] = (
        (
            "flow_anomaly.sustained_days must not exceed flow_anomaly.sustained_window",
            lambda t: t.sustained_days <= t.sustained_window,
        ),
        (
            "flow_anomaly.min_baseline_days must not exceed flow_anomaly.baseline_days",
            lambda t: t.min_baseline_days <= t.baseline_days,
        ),
        (
            "flow_anomaly.baseline_days + sustained_window must fit in the 96 days of inflow "
            "history",
            lambda t: t.baseline_days + t.sustained_window <= 96,
        ),
    )


UNKNOWN_SECTOR = "unknown"
MAX_LIFTED_DAYS = 14
MAX_TOP_DAYS = 8
# log-lifts are mapped from [-LOG_RANGE, LOG_RANGE] onto [0, 1], the space HalfSpaceTrees needs.
LOG_RANGE = 3.0


class FlowAnomalyDetector(Detector):
    """Flags weeks of inflow far above the borrower's own baseline *and* its sector's move.

    Once per day of event time and partition (``on_day_close``), each borrower's inflow lift
    over its own baseline is divided by the median lift of its sector's borrowers in the
    partition: a sale day that lifts every e-commerce shop, or a slump that hits every
    restaurant, cancels out. A per-partition River ``HalfSpaceTrees`` scores the adjusted lift
    online; an alert needs a sustained lift as well as a high score, with the features that
    mattered as reasons.
    """

    name = "flow_anomaly"
    category = FALSIFIED_FLOW
    version = "1"
    section = "flow_anomaly"
    thresholds_type = FlowAnomalyThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """Twenty retail borrowers over 45 days (the model needs a full window of 250
        borrower-days before it scores); fa-0's inflows jump sevenfold for the last nine."""
        base = datetime(2024, 3, 2, 3, 0, tzinfo=UTC)
        return inputs(
            Source.TRANSACTIONS,
            [
                transaction(
                    f"fa-{i}-{day}",
                    f"fa-{i}",
                    f"acc-fa-{i}",
                    f"cust-{day}-{i}",
                    "{:.2f}".format(
                        5_000.0
                        + 100 * ((day * 7 + i * 3) % 11)
                        + (40_000.0 if i == 0 and day >= 36 else 0.0)
                    ),
                    base + timedelta(days=day),
                    "in",
                    sector="retail",
                )
                for day in range(45)
                for i in range(20)
            ],
        )

    messages = {
        "sustained_inflow_lift": "inflow was {lift:.1f}× the borrower's own {baseline_days}-day "
        "baseline, after the sector's change, on {lifted} of the last {window} days ({today:,.0f} "
        "vs {average:,.0f} a day)",
        "sector_move": "the borrower's sector moved {move:.2f}× on the same day",
        "anomaly_score": "HalfSpaceTrees anomaly score {score:.2f} of the adjusted lift",
    }
    episodes = {"week": "flow:{year}-W{week:02d}"}

    def __init__(self, thresholds: FlowAnomalyThresholds) -> None:
        self.thresholds = thresholds
        self._models: dict[int, HalfSpaceTrees] = {}

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        memory = self.slot(state, _memory)
        sector = event.sector
        if sector and memory["sector"] != sector:
            memory["sector"] = sector
        if event.direction == "in" and event.counterparty_id not in state.own_accounts:
            # The largest inflow of each recent day: the evidence a lifted day points to.
            # Days are kept until closed: later days' events may arrive before the close.
            day = str(int(event.ts.timestamp() // SECONDS_PER_DAY))
            tops: dict[str, list[Any]] = memory["tops"]
            amount = float(event.amount)
            if day not in tops:
                tops[day] = [amount, event.event_id]
                if len(tops) > MAX_TOP_DAYS:
                    del tops[min(tops, key=int)]
            elif amount > tops[day][0]:
                tops[day] = [amount, event.event_id]
        return []

    def on_day_close(
        self, partition: int, day: int, states: Sequence[BorrowerState]
    ) -> list[Finding]:
        t = self.thresholds
        lifts: dict[str, tuple[float, float, float]] = {}  # borrower -> lift, today, baseline
        by_sector: defaultdict[str, list[float]] = defaultdict(list)
        for state in states:
            # The baseline ends where the sustained window starts: a lift must not raise the
            # bar it is measured against.
            end = day - t.sustained_window + 1
            baseline, days = state.inflows.total(end - t.baseline_days, end)
            if days < t.min_baseline_days or baseline <= 0:
                continue
            today, _ = state.inflows.total(day, day + 1)
            average = baseline / days
            lift = (today + 1.0) / (average + 1.0)
            lifts[state.borrower_id] = (lift, today, average)
            by_sector[self._sector(state)].append(lift)
        sector_move = {
            sector: statistics.median(values) if len(values) >= t.min_sector_peers else 1.0
            for sector, values in by_sector.items()
        }
        model = self._models.get(partition)
        if model is None:
            model = self._models[partition] = _new_trees()
        findings = []
        for state in states:
            if state.borrower_id not in lifts:
                continue
            lift, today, average = lifts[state.borrower_id]
            move = sector_move[self._sector(state)]
            if move < t.min_sector_move:
                continue  # the whole sector is quiet (a B2B weekend): no day to judge
            adjusted = lift / move
            features = {"adjusted_lift": _unit(adjusted), "sector_move": _unit(move)}
            score = float(model.score_one(features))  # type: ignore[no-untyped-call]
            model.learn_one(features)  # type: ignore[no-untyped-call]
            memory = self.slot(state, _memory)
            lifted: list[list[Any]] = memory["lifted"]  # [day, evidence event id]
            top = memory["tops"].pop(str(day), None)
            if adjusted >= t.min_lift:
                # The day's largest inflow is its evidence; when event time lags far behind
                # the transactions it may have been dropped, and the day still counts.
                lifted.append([day, None if top is None else top[1]])
                del lifted[:-MAX_LIFTED_DAYS]
            recent = [entry for entry in lifted if day - t.sustained_window < entry[0] <= day]
            if len(recent) >= t.sustained_days and score >= t.min_anomaly_score:
                findings.append(
                    self._finding(state, day, adjusted, move, today, average, recent, score)
                )
        return findings

    def _finding(
        self,
        state: BorrowerState,
        day: int,
        adjusted: float,
        move: float,
        today: float,
        average: float,
        recent: list[list[Any]],
        score: float,
    ) -> Finding:
        t = self.thresholds
        week = datetime.fromtimestamp(day * SECONDS_PER_DAY, UTC).isocalendar()
        return self.finding(
            state.borrower_id,
            episode=self.episode("week", year=week.year, week=week.week),
            ts=datetime.fromtimestamp((day + 1) * SECONDS_PER_DAY, UTC),
            score=min(1.0, 0.5 + 0.45 * score),
            reasons=[
                self.reason(
                    "sustained_inflow_lift",
                    observed=round(adjusted, 2),
                    threshold=t.min_lift,
                    lift=adjusted,
                    baseline_days=t.baseline_days,
                    lifted=len(recent),
                    window=t.sustained_window,
                    today=today,
                    average=average,
                ),
                self.reason("sector_move", observed=round(move, 3), threshold=1.0, move=move),
                self.reason(
                    "anomaly_score",
                    observed=round(score, 3),
                    threshold=t.min_anomaly_score,
                    score=score,
                ),
            ],
            # With no event id left (see on_day_close), the borrower's inflows are the evidence.
            evidence=[event_id for _, event_id in recent if event_id is not None]
            or [personal.fill("{borrower}:inflows", borrower=personal.borrower(state.borrower_id))],
        )

    def _sector(self, state: BorrowerState) -> str:
        sector: str = self.slot(state, _memory)["sector"]
        return sector

    def snapshot(self, partition: int) -> bytes | None:
        model = self._models.get(partition)
        return None if model is None else pickle.dumps(model)

    def restore(self, partition: int, snapshot: bytes) -> None:
        # Snapshots come from this process's own checkpoints (the worker's changelog).
        self._models[partition] = pickle.loads(snapshot)  # noqa: S301


def _unit(ratio: float) -> float:
    """A ratio's logarithm mapped onto [0, 1]; 0.5 is no change."""
    clipped = max(-LOG_RANGE, min(LOG_RANGE, math.log(max(ratio, 1e-9))))
    return 0.5 + clipped / (2 * LOG_RANGE)


def _memory() -> dict[str, Any]:
    return {"sector": UNKNOWN_SECTOR, "lifted": [], "tops": {}}


def _new_trees() -> HalfSpaceTrees:
    """A partition's model. River is imported here, on first use: importing it (scipy with
    it) takes about 2 s, which a worker starting would otherwise spend before joining its group
    (streams.worker.app imports it meanwhile, in a thread)."""
    from river import anomaly

    return anomaly.HalfSpaceTrees(n_trees=10, height=6, window_size=250, seed=7)
