"""Delinquency early warning: the risk an open installment is not paid by due date + grace."""

from __future__ import annotations

import math
import pickle
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from river import compose, linear_model, optim, preprocessing
from river.optim import losses

from detectors.base import DELINQUENCY_RISK, Detector, Output, severity_for
from detectors.clock import Timer
from detectors.index import Found
from detectors.scenarios import T0, inputs, payment, scheduled
from detectors.state import (
    SECONDS_PER_DAY,
    BorrowerState,
    InflowHistory,
    Installment,
    day_of,
    installment_key,
)
from detectors.tunables import Rules, tunable
from topics.names import Source
from topics.records import Login, Reason, Repayment

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["DelinquencyDetector", "DelinquencyThresholds", "FEATURES", "risk_view"]


@dataclass(frozen=True, slots=True)
class DelinquencyThresholds:
    """Tunables of :class:`~detectors.delinquency.DelinquencyDetector`.

    Signals combine as a noisy-or and an alert needs a score of ``min_alert_score``. The
    strong signals reach it alone (an earlier installment missed, part-paid past due, a long
    silence, a payout change right before the due date, a deep decline); the others need
    company. Precision against warning is set mostly by ``max_inflow_ratio`` and
    ``min_silence_surprise``: a lower ratio or a higher surprise alerts less and earlier.
    """

    #: An installment not fully paid this many days after its due date is missed.
    grace_days: int = tunable(
        3, 0, 30, "days after the due date before an unpaid installment is missed"
    )
    #: Days before the due date at which an unpaid installment's risk is assessed.
    check_days_before_due: tuple[int, ...] = tunable(
        (10, 7, 5, 3), 1, 30, "days before the due date at which risk is assessed"
    )
    #: Recent inflow window (days); the rank test compares twice this with the baseline.
    recent_days: int = tunable(7, 1, 28, "days of recent inflow compared with the baseline")
    #: The baseline ends this many days before a check (a decline under way must not drag
    #: its own baseline down) and covers this many days before that.
    baseline_gap_days: int = tunable(21, 0, 42, "days between the end of the baseline and a check")
    baseline_days: int = tunable(42, 7, 60, "days the inflow baseline covers")
    #: Baseline days needed before an inflow trend is trusted.
    min_baseline_days: int = tunable(
        7, 1, 60, "baseline days needed before an inflow trend is trusted"
    )
    #: Recent trimmed daily inflow at or below this share of the baseline is a decline (it
    #: alerts alone from 0.15 below) ...
    max_inflow_ratio: float = tunable(
        0.65, 0.01, 1.0, "recent inflow at or below this share of the baseline is a decline"
    )
    #: ... when the last two weeks' days also rank below the baseline days (Mann-Whitney z at
    #: or below this): one quiet week of a lumpy business is not a decline.
    max_inflow_rank_z: float = tunable(
        -1.5, -10.0, 0.0, "Mann-Whitney z at or below which recent days rank below the baseline"
    )
    #: A month of inflow at the recent rate covering the installment at most this often is low.
    max_coverage: float = tunable(
        4.0, 0.1, 100.0, "months of inflow covering the installment at most this often is low"
    )
    #: Login silence counts (and alerts alone) from this surprise, -ln P(a silence this long
    #: at the borrower's own login rate): 8 is about one chance in 3,000; its weight grows
    #: until ``full_silence_surprise``.
    min_silence_surprise: float = tunable(
        8.0, 1.0, 100.0, "surprise of a login silence from which it counts"
    )
    full_silence_surprise: float = tunable(
        34.0, 1.0, 200.0, "surprise at which a login silence counts in full"
    )
    #: Days over which the borrower's login rate is measured, and the least history for it.
    login_rate_days: int = tunable(
        42, 7, 180, "days over which the borrower's login rate is measured"
    )
    min_login_history_days: int = tunable(
        7, 1, 90, "days of login history needed before silence is judged"
    )
    #: A payout-account change at most this many days before a check raises the risk ...
    payout_change_days: int = tunable(
        3, 0, 30, "days before a check in which a payout-account change raises risk"
    )
    #: ... with this weight in the noisy-or (from 0.5 it alerts alone).
    payout_change_weight: float = tunable(
        0.5, 0.0, 1.0, "weight of a recent payout-account change in the risk score"
    )
    #: Inflow decline, silence and a payout change count in full this many days or fewer
    #: before the due date, and with this weight at earlier checks (time to recover).
    near_due_days: int = tunable(
        3, 0, 30, "days before the due date from which signals count in full"
    )
    early_signal_weight: float = tunable(0.7, 0.0, 1.0, "weight of signals at earlier checks")
    #: Alert when the risk score reaches this (severity follows the score).
    min_alert_score: float = tunable(
        0.5, 0.05, 1.0, "risk score at which a collections alert is raised"
    )
    #: Outcomes (feature snapshots), and misses among them, the per-partition classifier
    #: must learn before its score is blended in.
    min_labels_for_model: int = tunable(
        300, 10, 100000, "outcomes the classifier learns before it is blended in"
    )
    min_model_misses: int = tunable(10, 1, 10000, "missed installments among them needed as well")
    #: A snapshot of a missed installment weighs this many paid ones in the classifier.
    positive_weight: float = tunable(
        30.0, 1.0, 1000.0, "paid installments a missed one weighs in the classifier"
    )
    #: The classifier adds evidence when its probability is this many times its running mean
    #: over the partition's installments ...
    min_model_lift: float = tunable(
        4.0, 1.0, 100.0, "classifier probability over its running mean that adds evidence"
    )
    #: ... and this much: it ranks, it does not tip a single weak signal into an alert. With
    #: a few dozen misses per partition it adds little (evaluate: 0.1 moves precision by
    #: -0.006 and warned by 0; 0.45 in version 2 gave 70 % warned at precision 0.29).
    max_model_strength: float = tunable(
        0.1, 0.0, 1.0, "most evidence the classifier adds to the score"
    )
    #: Due dates are calendar days in the platform's time zone (hours east of UTC).
    platform_utc_offset_hours: int = tunable(
        8, -12, 14, "hours east of UTC of the platform's calendar days"
    )

    #: Rules across these tunables, each with what a team is told when a change breaks it
    #: (a borrower's inflow history holds 96 days: detectors.state.INFLOW_HISTORY_DAYS).
    CONSTRAINTS: ClassVar[Rules[DelinquencyThresholds]] = (
        (
            "delinquency.min_baseline_days must not exceed delinquency.baseline_days",
            lambda t: t.min_baseline_days <= t.baseline_days,
        ),
        (
            "delinquency.baseline_gap_days + baseline_days + the earliest check day must fit in "
            "the 96 days of inflow history",
            lambda t: t.baseline_gap_days + t.baseline_days + max(t.check_days_before_due) <= 96,
        ),
        (
            "delinquency.min_silence_surprise must not exceed delinquency.full_silence_surprise",
            lambda t: t.min_silence_surprise <= t.full_silence_surprise,
        ),
        (
            "delinquency.min_login_history_days must not exceed delinquency.login_rate_days",
            lambda t: t.min_login_history_days <= t.login_rate_days,
        ),
    )


CHECK, PAST_DUE, DEADLINE = "check", "past_due", "deadline"
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
#: Login days remembered: enough for the login-rate window of any sensible threshold.
MAX_REMEMBERED_DAYS = 60
#: Days an inflow projection covers when set against one monthly installment.
MONTH_DAYS = 30
#: Weight of each new prediction in a partition's running mean of predicted risk.
TYPICAL_WEIGHT = 0.01

#: What the classifier sees of an installment at a check, in this order.
FEATURES = (
    "inflow_drop",
    "inflow_rank_low",
    "installment_share",
    "silence_log",
    "payout_change",
    "prior_missed",
    "prior_late",
    "past_due",
    "paid_share",
    "days_to_due",
    "reversals",
)


def _new_model(positive_weight: float) -> compose.Pipeline:
    """Scaled features into a logistic regression; a miss weighs ``positive_weight`` times a
    paid installment, since misses are about one in fifty open installments."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(
            optimizer=optim.SGD(0.005), loss=losses.Log(weight_pos=positive_weight)
        ),
    )


@dataclass(frozen=True, slots=True)
class _Inflow:
    """The borrower's recent inflow against its own earlier days (None: too little history)."""

    ratio: float | None  # trimmed daily mean of the recent window / of the baseline
    rank_z: float | None  # rank-sum z of the last two weeks' days against the baseline days
    coverage: float | None  # a month of inflow at the recent rate / the installment
    recent: float  # trimmed daily mean of the recent window
    baseline: float  # trimmed daily mean of the baseline


@dataclass(frozen=True, slots=True)
class _Silence:
    days: int  # whole days since the last successful login
    rate: float  # the borrower's own share of days with a login before the silence
    surprise: float  # -ln P(a silence this long at that rate); 0 when unknown


@dataclass(frozen=True, slots=True)
class _Observed:
    """What an assessment reads of a borrower at one time, for one installment."""

    inflow: _Inflow
    silence: _Silence
    payout_ago: int | None  # days since the latest payout-account change (None: none seen)
    payout_change: bool  # ... within ``payout_change_days``
    missed: int  # earlier installments not paid in full by the end of their grace
    late: int  # earlier installments paid in full, but after the day after their due date
    paid: float  # paid of this installment by then


#: The message of an installment not paid in full by the end of its grace, paid in part or not.
_UNPAID = "{paid} of {due} paid by the end of the {grace}-day grace period"


class DelinquencyDetector(Detector):
    """Ranks open installments by the risk of not being paid by due date + grace.

    At each check (``check_days_before_due``), the day after the due date and at the end of
    the grace period, an event-time timer assesses an unpaid installment from data stamped no
    later than that time. Each signal compares the borrower with its own history, so that a
    small business with lumpy flows or a rarely used app is not read as a failing one:

    - inflow decline: the last week's trimmed daily inflow against the borrower's own
      baseline, *and* a rank test that the last two weeks sit consistently below the baseline
      days (one quiet week of a lumpy B2B business is not a decline);
    - coverage: a month of inflow at the recent rate against the installment;
    - silence: days without a login, priced by the borrower's own login rate
      (``-ln P``: eleven silent days are routine for a weekly user, not for a daily one);
    - a payout-account change in the few days before a check, the installment unpaid;
    - earlier installments missed (not paid by the end of their grace);
    - past due: part-paid is a strong sign, unpaid is weak, and for a borrower who habitually
      pays a day or two late within grace it is no sign at all.

    Rules combine the signals as a noisy-or. The strong ones alert alone (an earlier miss, a
    part-paid installment past due, a long silence of a habitually active borrower, a payout
    change or a deep decline in the last days before the due date); the others need company.
    Decline, silence and a payout change weigh less at the early checks, when there is still
    time to recover. Once a per-partition River classifier has learnt ``min_labels_for_model``
    outcomes, its lift over its own running mean for the partition is one more, capped,
    signal. It learns each feature snapshot when the installment's outcome becomes known
    (delayed labels, nothing from the future). One alert per installment and severity: a new
    one only when the severity rises.
    """

    name = "delinquency"
    category = DELINQUENCY_RISK
    version = "3"
    writes = ("installments",)
    section = "delinquency"
    thresholds_type = DelinquencyThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """b-1's installments due on 10 April: a large one missed, a small one paid then
        reversed (the contract test gives b-1 an inflow history that collapses in March)."""
        due = date(2024, 4, 10)
        day_before, day_after = datetime(2024, 4, 9, tzinfo=UTC), datetime(2024, 4, 11, tzinfo=UTC)
        return inputs(
            Source.REPAYMENTS,
            [
                scheduled("rp-s1", T0, due, "70000"),
                scheduled("rp-s2", T0, due, "3000", installment=2),
                payment("rp-p1", day_before, "3000", installment=2),
                payment("rp-p2", day_before, "100"),
                payment("rp-r1", day_after, "3000", kind="reversal", installment=2),
            ],
        )

    messages = {
        "payment_reversed": "a payment of {amount} on installment {installment} was reversed",
        "partial_payment": _UNPAID,
        "installment_missed": _UNPAID,
        "past_due": "{paid} of {due} paid after the due date {due_date}",
        "past_due/late": "{paid} of {due} paid after the due date {due_date}; {late} earlier "
        "installment(s) paid late within grace",
        "earlier_installments_unpaid": "{missed} earlier installment(s) not paid in full by the "
        "end of their grace period",
        "login_silence": "no login for {days} days by a borrower who logs in on {rate:.0%} of "
        "days: a chance of {chance:.1g} at that rate (observed: -ln of it)",
        "payout_account_changed": "payout account changed {days} day(s) before, with the "
        "installment unpaid",
        "inflow_decline": "daily inflow over the last {days} days is {ratio:.0%} of the "
        "borrower's own baseline ({recent:,.0f} against {baseline:,.0f}); its last two weeks "
        "rank below the baseline days (z = {z:.1f})",
        "low_installment_coverage": "a month of inflow at the recent rate covers the "
        "installment {coverage:.1f} times",
        "model_probability": "classifier: {lift:.1f}× the risk it gives the partition's open "
        "installments on average ({probability:.1%} against {typical:.1%}); raised most by "
        "{top}",
    }
    episodes = {"installment": "{installment}:{severity}"}

    def __init__(self, thresholds: DelinquencyThresholds) -> None:
        self.thresholds = thresholds
        self._zone = timezone(timedelta(hours=thresholds.platform_utc_offset_hours))
        self._models: dict[int, compose.Pipeline] = {}
        self._labels: dict[int, int] = {}
        self._positives: dict[int, int] = {}
        #: Running mean of the risk the classifier predicted for the partition's installments.
        self._typical: dict[int, float] = {}

    # Hooks -----------------------------------------------------------------------------

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if not event.success or event.action == "logout":
            return []
        # The hot path of this detector (one call per login): no helper calls.
        memory = state.slots.get(self.name) or self.slot(state, _memory)
        day = int(event.ts.timestamp() // SECONDS_PER_DAY)
        days: list[int] = memory["payouts" if event.action == "payout_account_change" else "logins"]
        # Events come in time order: appending is the common case, an insert the rare one.
        if not days or day > days[-1]:
            days.append(day)
            if len(days) > MAX_REMEMBERED_DAYS:
                del days[0]
        elif day not in days:
            insort(days, day)
            del days[:-MAX_REMEMBERED_DAYS]
        return []

    def on_repayment(self, event: Repayment, state: BorrowerState, found: Found) -> Output:
        key = installment_key(event.loan_id, event.installment)
        installment = state.installments.get(key)
        if installment is None:
            installment = state.installments[key] = Installment(event.loan_id, event.installment)
        epoch = event.ts.timestamp()
        if event.kind == "scheduled":
            installment.due_date = event.due_date
            installment.amount_due = event.amount_due
            installment.scheduled_event = event.event_id
            return list(self.pending_timers(state, only=key))
        assert event.amount is not None  # the contract requires it on payments and reversals
        if event.kind == "payment":
            installment.payments.append((epoch, event.amount, event.event_id))
            return []
        installment.reversals.append((epoch, event.amount, event.event_id))
        reason = self.reason(
            "payment_reversed",
            observed=str(event.amount),
            threshold="0",
            amount=event.amount,
            installment=key,
        )
        return self._escalate(state, installment, epoch, 0.7, [reason])

    def pending_timers(self, state: BorrowerState, only: str | None = None) -> list[Timer]:
        timers = []
        for key, installment in state.installments.items():
            if installment.due_date is None or (only is not None and key != only):
                continue
            for stage, at in self._stages(installment.due_date):
                if stage not in installment.stages_done:
                    timers.append(Timer(at, state.borrower_id, self.name, f"{stage}|{key}"))
        return timers

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        stage, key = timer.key.split("|", 1)
        installment = state.installments.get(key)
        if installment is None or installment.due_date is None or installment.amount_due is None:
            return []
        if stage in installment.stages_done:
            return []
        installment.stages_done.append(stage)
        if stage == DEADLINE:
            return self._deadline(timer.due, installment, state)
        if installment.paid_in_full_by(timer.due):
            self._note_risk(state, timer.due, 0.0, key)
            return []
        features, reasons, rule = self._assess(timer.due, installment, state, stage == PAST_DUE)
        installment.snapshots.append([features[name] for name in FEATURES])
        score, reasons = self._blend(state.partition, features, rule, reasons)
        self._note_risk(state, timer.due, score, key)
        return self._escalate(state, installment, timer.due, score, reasons)

    def _note_risk(self, state: BorrowerState, at: float, score: float, key: str) -> None:
        """The latest assessment, for the borrower's risk view (:func:`risk_view`)."""
        self.slot(state, _memory)["risk"] = [at, round(min(1.0, max(0.0, score)), 4), key]

    def snapshot(self, partition: int) -> bytes | None:
        if partition not in self._models:
            return None
        return pickle.dumps(
            (
                self._models[partition],
                self._labels.get(partition, 0),
                self._positives.get(partition, 0),
                self._typical.get(partition),
            )
        )

    def restore(self, partition: int, snapshot: bytes) -> None:
        # Snapshots come from this process's own checkpoints (the worker's changelog).
        model, labels, positives, *rest = pickle.loads(snapshot)  # noqa: S301
        self._models[partition] = model
        self._labels[partition] = labels
        self._positives[partition] = positives
        typical = rest[0] if rest else None  # checkpoints of version 2 had no running mean
        if typical is not None:
            self._typical[partition] = typical

    # Decisions ---------------------------------------------------------------------------

    def _deadline(self, at: float, installment: Installment, state: BorrowerState) -> Output:
        """The outcome is known: learn every snapshot taken, then flag a miss."""
        assert installment.amount_due is not None
        missed = not installment.paid_in_full_by(at)
        model = self._models.get(state.partition)
        if model is None:
            model = self._models[state.partition] = _new_model(self.thresholds.positive_weight)
        for vector in installment.snapshots:
            # Snapshots of an older version (fewer features) are dropped, not misread.
            if len(vector) == len(FEATURES):
                model.learn_one(dict(zip(FEATURES, vector, strict=True)), missed)
                self._labels[state.partition] = self._labels.get(state.partition, 0) + 1
                self._positives[state.partition] = self._positives.get(state.partition, 0) + missed
        installment.snapshots.clear()
        key = installment_key(installment.loan_id, installment.number)
        if not missed:
            self._note_risk(state, at, 0.0, key)
            return []
        paid = installment.paid_by(at)
        code, score = ("partial_payment", 0.9) if paid > 0 else ("installment_missed", 0.95)
        self._note_risk(state, at, score, key)
        reasons = [
            self.reason(
                code,
                observed=str(paid),
                threshold=str(installment.amount_due),
                paid=paid,
                due=installment.amount_due,
                grace=self.thresholds.grace_days,
            )
        ]
        _, signals, _ = self._assess(at, installment, state, past_due=False)
        return self._escalate(state, installment, at, score, reasons + signals)

    def _assess(
        self, at: float, installment: Installment, state: BorrowerState, past_due: bool
    ) -> tuple[dict[str, float], list[Reason], float]:
        """Features at ``at``, the reasons among them that hold, and the rules' score."""
        t = self.thresholds
        seen = self._observe(at, installment, state)
        features = self._features(at, installment, seen, past_due)
        # A sign well before the due date leaves time to recover; in the last days before it, it
        # is money or attention missing for this installment. Earlier checks weigh it less.
        urgency = 1.0 if features["days_to_due"] <= t.near_due_days else t.early_signal_weight
        signals: list[tuple[float, Reason]] = []
        if past_due:
            signals.append(
                self._past_due_signal(at, installment, seen.paid, seen.late, seen.missed)
            )
        signals += self._conduct_signals(seen, urgency)
        signals += self._inflow_signals(seen.inflow, urgency)
        # Independent signals combine as a noisy-or.
        rule = 1.0 - math.prod(1.0 - strength for strength, _ in signals)
        ranked = sorted(signals, key=lambda signal: -signal[0])
        return features, [reason for _, reason in ranked], rule

    def _observe(self, at: float, installment: Installment, state: BorrowerState) -> _Observed:
        """What the borrower's history shows at ``at``, from data stamped no later."""
        t = self.thresholds
        assert installment.amount_due is not None
        today = day_of(at)
        memory = self.slot(state, _memory)
        payout_days = [today - d for d in memory["payouts"] if d <= today]
        payout_ago = payout_days[-1] if payout_days else None
        missed, late = self._history(at, installment, state)
        return _Observed(
            inflow=self._inflow(state.inflows, today, float(installment.amount_due) or 1.0),
            silence=self._silence(memory["logins"], state.inflows, today),
            payout_ago=payout_ago,
            payout_change=payout_ago is not None and payout_ago <= t.payout_change_days,
            missed=missed,
            late=late,
            paid=float(installment.paid_by(at)),
        )

    def _features(
        self, at: float, installment: Installment, seen: _Observed, past_due: bool
    ) -> dict[str, float]:
        """What the classifier sees (see :data:`FEATURES`).

        Each feature grows with the risk it stands for and is 0 when unknown or benign, which
        keeps a linear model's weights readable and its contributions comparable.
        """
        assert installment.amount_due is not None and installment.due_date is not None
        inflow = seen.inflow
        drop = rank_low = share = 0.0
        if inflow.ratio is not None:
            drop = min(3.0, max(0.0, -math.log(max(inflow.ratio, 0.05))))
        if inflow.rank_z is not None:
            rank_low = min(6.0, max(0.0, -inflow.rank_z))
        if inflow.coverage is not None:
            # The installment as a share of a month's inflow at the recent rate.
            share = min(1.0, 1.0 / max(inflow.coverage, 1.0))
        return {
            "inflow_drop": drop,
            "inflow_rank_low": rank_low,
            "installment_share": share,
            "silence_log": math.log1p(seen.silence.surprise),
            "payout_change": 1.0 if seen.payout_change else 0.0,
            "prior_missed": float(min(seen.missed, 3)),
            "prior_late": float(min(seen.late, 3)),
            "past_due": 1.0 if past_due else 0.0,
            "paid_share": seen.paid / (float(installment.amount_due) or 1.0),
            "days_to_due": (self._midnight(installment.due_date) - at) / SECONDS_PER_DAY,
            "reversals": float(len([r for r in installment.reversals if r[0] <= at])),
        }

    def _conduct_signals(self, seen: _Observed, urgency: float) -> list[tuple[float, Reason]]:
        """Earlier installments missed, a silence, a payout change: with their strengths."""
        t = self.thresholds
        signals: list[tuple[float, Reason]] = []
        if seen.missed:
            signals.append(
                (
                    0.6,
                    self.reason(
                        "earlier_installments_unpaid",
                        observed=seen.missed,
                        threshold=0,
                        missed=seen.missed,
                    ),
                )
            )
        silence = seen.silence
        if silence.surprise >= t.min_silence_surprise:
            span = max(1.0, t.full_silence_surprise - t.min_silence_surprise)
            strength = 0.5 + 0.1 * min(1.0, (silence.surprise - t.min_silence_surprise) / span)
            signals.append(
                (
                    strength * urgency,
                    self.reason(
                        "login_silence",
                        observed=round(silence.surprise, 1),
                        threshold=t.min_silence_surprise,
                        days=silence.days,
                        rate=silence.rate,
                        chance=math.exp(-silence.surprise),
                    ),
                )
            )
        if seen.payout_change:
            signals.append(
                (
                    t.payout_change_weight * urgency,
                    self.reason(
                        "payout_account_changed",
                        observed=seen.payout_ago,
                        threshold=t.payout_change_days,
                        days=seen.payout_ago,
                    ),
                )
            )
        return signals

    def _inflow_signals(self, inflow: _Inflow, urgency: float) -> list[tuple[float, Reason]]:
        """A decline against the borrower's own baseline, a low coverage: with their strengths."""
        t = self.thresholds
        signals: list[tuple[float, Reason]] = []
        if (
            inflow.ratio is not None
            and inflow.rank_z is not None
            and inflow.ratio <= t.max_inflow_ratio
            and inflow.rank_z <= t.max_inflow_rank_z
        ):
            depth = min(1.0, (t.max_inflow_ratio - inflow.ratio) / 0.3)
            signals.append(
                (
                    (0.4 + 0.2 * depth) * urgency,
                    self.reason(
                        "inflow_decline",
                        observed=round(inflow.ratio, 3),
                        threshold=t.max_inflow_ratio,
                        days=t.recent_days,
                        ratio=inflow.ratio,
                        recent=inflow.recent,
                        baseline=inflow.baseline,
                        z=inflow.rank_z,
                    ),
                )
            )
        if inflow.coverage is not None and inflow.coverage <= t.max_coverage:
            signals.append(
                (
                    0.1,
                    self.reason(
                        "low_installment_coverage",
                        observed=round(inflow.coverage, 2),
                        threshold=t.max_coverage,
                        coverage=inflow.coverage,
                    ),
                )
            )
        return signals

    def _past_due_signal(
        self, at: float, installment: Installment, paid: float, late: int, missed: int
    ) -> tuple[float, Reason]:
        """Past due weighs by what was paid and by the borrower's own habit.

        Part of the installment paid, then nothing by the due date, is a borrower who tried and
        ran short: that alerts alone. Nothing paid is weak, since many pay a day or two late
        within grace; a borrower who always did so, and never missed, is simply on schedule.
        """
        if paid > 0:
            strength = 0.6
        elif late and not missed:
            strength = 0.0
        else:
            strength = 0.2
        reason = self.reason(
            "past_due/late" if late else "past_due",
            observed=str(installment.paid_by(at)),
            threshold=str(installment.amount_due),
            paid=installment.paid_by(at),
            due=installment.amount_due,
            due_date=installment.due_date,
            late=late,
        )
        return strength, reason

    def _inflow(self, inflows: InflowHistory, today: int, amount_due: float) -> _Inflow:
        """The recent week against the borrower's baseline, both from whole days before today.

        Means are trimmed (the largest day of the week, the largest seventh of the baseline)
        so that one big contract payment neither hides a decline nor fakes one. The rank test
        (Mann-Whitney) asks whether the last two weeks' days sit below the baseline days as a
        whole; it is blind to the size of single payments, which makes lumpy B2B flows
        comparable with a shop's.
        """
        t = self.thresholds
        # Every day the windows need, the latest first; one read of the ring.
        history = _days(inflows, today - t.baseline_gap_days - t.baseline_days, today)
        recent = history[: t.recent_days]
        fortnight = history[: 2 * t.recent_days]
        baseline = history[t.baseline_gap_days :]
        if len(recent) < t.recent_days:
            return _Inflow(None, None, None, 0.0, 0.0)
        recent_mean = _trimmed_mean(recent, 1)
        coverage = recent_mean * MONTH_DAYS / amount_due
        if len(baseline) < t.min_baseline_days:
            return _Inflow(None, None, coverage, recent_mean, 0.0)
        baseline_mean = _trimmed_mean(baseline, max(1, len(baseline) // 7))
        ratio = recent_mean / baseline_mean if baseline_mean > 0 else None
        # Whole weeks of baseline, the most recent first: weekdays weigh as in the fortnight.
        weeks = baseline[: len(baseline) // 7 * 7]
        return _Inflow(ratio, _rank_z(fortnight, weeks), coverage, recent_mean, baseline_mean)

    def _silence(self, logins: list[int], inflows: InflowHistory, today: int) -> _Silence:
        """Days without a login, and how unlikely that is at the borrower's own login rate.

        The rate is the share of days with a login over ``login_rate_days`` before the last
        one (since the borrower was first seen, whichever is shorter), smoothed by half a day
        either way so that a short history does not claim certainty.
        """
        t = self.thresholds
        seen = [d for d in logins if d <= today]
        if not seen:
            return _Silence(0, 0.0, 0.0)
        last = seen[-1]
        first = min(seen[0], inflows.first_day) if inflows.first_day >= 0 else seen[0]
        span = min(t.login_rate_days, last - first + 1)
        quiet = today - last - 1
        if span < t.min_login_history_days or quiet <= 0:
            return _Silence(max(quiet, 0), 0.0, 0.0)
        active = sum(1 for d in seen if d > last - t.login_rate_days)
        rate = min((active + 0.5) / (span + 1), 0.99)
        return _Silence(quiet, rate, -quiet * math.log(1.0 - rate))

    def _history(self, at: float, current: Installment, state: BorrowerState) -> tuple[int, int]:
        """Earlier installments settled by ``at``: how many went unpaid, how many were late."""
        bad = late = 0
        for installment in state.installments.values():
            if installment is current or installment.due_date is None:
                continue
            deadline = self._deadline_time(installment.due_date)
            if deadline > at or installment.amount_due is None:
                continue
            if not installment.paid_in_full_by(deadline):
                bad += 1
            elif not installment.paid_in_full_by(
                self._midnight(installment.due_date) + SECONDS_PER_DAY
            ):
                late += 1
        return bad, late

    def _blend(
        self, partition: int, features: dict[str, float], rule: float, reasons: list[Reason]
    ) -> tuple[float, list[Reason]]:
        """Rules alone until the classifier has learnt enough; then its evidence is added.

        An online model trained on a few dozen misses is not calibrated, and its scale drifts
        as it learns: what carries information is how far an installment stands above the
        risk the same model gives the partition's installments in general (a running mean of
        its predictions). That lift is one more signal in the noisy-or, capped: the model
        ranks, the rules decide.
        """
        t = self.thresholds
        model = self._models.get(partition)
        labels = self._labels.get(partition, 0)
        positives = self._positives.get(partition, 0)
        if model is None or labels < t.min_labels_for_model or positives < t.min_model_misses:
            return rule, reasons
        probability = float(model.predict_proba_one(features).get(True, 0.0))
        typical = self._typical.get(partition, probability)
        typical += TYPICAL_WEIGHT * (probability - typical)
        self._typical[partition] = typical
        lift = probability / max(typical, 1e-9)
        if lift < t.min_model_lift or t.max_model_strength <= 0:
            return rule, reasons
        strength = t.max_model_strength
        scaled = model["StandardScaler"].transform_one(features)
        weights = model["LogisticRegression"].weights
        contributions = sorted(
            ((weights.get(name, 0.0) * scaled.get(name, 0.0), name) for name in FEATURES),
            reverse=True,
        )
        top = ", ".join(f"{name} ({value:+.2f})" for value, name in contributions[:3] if value > 0)
        model_reason = self.reason(
            "model_probability",
            observed=round(lift, 2),
            threshold=t.min_model_lift,
            lift=lift,
            probability=probability,
            typical=typical,
            top=top or "nothing",
        )
        return 1.0 - (1.0 - rule) * (1.0 - strength), [*reasons, model_reason]

    def _escalate(
        self,
        state: BorrowerState,
        installment: Installment,
        at: float,
        score: float,
        reasons: list[Reason],
    ) -> Output:
        """Alert only when the installment's severity rises above what was already sent."""
        score = min(1.0, max(0.0, score))
        if score < self.thresholds.min_alert_score or not reasons:
            return []
        severity = severity_for(score)
        rank = SEVERITY_RANK[severity]
        if rank <= installment.alerted:
            return []
        installment.alerted = rank
        key = installment_key(installment.loan_id, installment.number)
        return [
            self.finding(
                state.borrower_id,
                episode=self.episode("installment", installment=key, severity=severity),
                ts=datetime.fromtimestamp(at, UTC),
                score=score,
                reasons=reasons,
                evidence=installment.evidence_until(at) or [key],
                loan_id=installment.loan_id,
                installment=installment.number,
                due_date=installment.due_date,
            )
        ]

    # Event time of the stages ----------------------------------------------------------------

    def _stages(self, due: date) -> list[tuple[str, float]]:
        midnight = self._midnight(due)
        stages = [
            (f"{CHECK}{days}", midnight - days * SECONDS_PER_DAY)
            for days in self.thresholds.check_days_before_due
        ]
        return stages + [
            (PAST_DUE, midnight + SECONDS_PER_DAY),
            (DEADLINE, self._deadline_time(due)),
        ]

    def _midnight(self, day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=self._zone).timestamp()

    def _deadline_time(self, due: date) -> float:
        """End of the grace period: midnight after ``due + grace_days`` in platform time."""
        return self._midnight(due + timedelta(days=1 + self.thresholds.grace_days))


def risk_view(state: BorrowerState) -> dict[str, Any]:
    """What a collections team ranks a borrower by: the latest risk assessment (score, when,
    of which installment) and the installments not yet paid in full, by every payment and
    reversal received so far.

    >>> risk_view(BorrowerState("b-1"))
    {'score': 0.0, 'scored_at': None, 'scored_installment': None, 'open_installments': []}
    """
    memory = state.slots.get(DelinquencyDetector.name) or {}
    scored_at, score, scored = memory.get("risk") or (None, 0.0, None)
    still_open = [
        {
            "loan_id": i.loan_id,
            "installment": i.number,
            "due_date": i.due_date.isoformat(),
            "amount_due": str(i.amount_due),
            "paid": str(i.paid_by(math.inf)),
        }
        for i in sorted(state.installments.values(), key=lambda i: (i.due_date, i.loan_id))
        if i.due_date is not None and i.amount_due is not None and not i.paid_in_full_by(math.inf)
    ]
    return {
        "score": score,
        "scored_at": None
        if scored_at is None
        else datetime.fromtimestamp(scored_at, UTC).isoformat(),
        "scored_installment": scored,
        "open_installments": still_open,
    }


def _memory() -> dict[str, Any]:
    """Days of successful logins and of payout-account changes (event time), newest last."""
    return {"logins": [], "payouts": []}


def _days(inflows: InflowHistory, start: int, end: int) -> list[float]:
    """Daily inflow of each day in ``[start, end)`` the history covers, the latest first.

    As :meth:`InflowHistory.total` counts them: from the first inflow on, within the ring,
    and days after the last inflow as zero.
    """
    if inflows.first_day < 0:
        return []
    sums, last = inflows.sums, inflows.last_day
    first = max(start, inflows.first_day, last - len(sums) + 1)
    return [sums[day % len(sums)] if day <= last else 0.0 for day in range(end - 1, first - 1, -1)]


def _trimmed_mean(values: list[float], drop: int) -> float:
    """Mean without the ``drop`` largest values (never all of them).

    >>> _trimmed_mean([1.0, 2.0, 3.0, 100.0], 1)
    2.0
    """
    kept = sorted(values)[: max(1, len(values) - drop)]
    return sum(kept) / len(kept)


def _rank_z(sample: list[float], reference: list[float]) -> float | None:
    """Mann-Whitney z of ``sample`` against ``reference``: negative when it ranks lower.

    >>> round(_rank_z([1.0, 1.0, 1.0], [5.0, 6.0, 7.0, 8.0]), 2)
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
