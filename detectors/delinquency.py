"""Delinquency early warning: the risk an open installment is not paid by due date + grace."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from river import compose, linear_model, optim, preprocessing

from detectors.base import DELINQUENCY_RISK, Detector, Output, severity_for
from detectors.clock import Timer
from detectors.index import Found
from detectors.state import (
    SECONDS_PER_DAY,
    BorrowerState,
    Installment,
    day_of,
    installment_key,
)
from detectors.thresholds import DelinquencyThresholds
from topics.records import Login, Reason, Repayment

__all__ = ["FEATURES", "DelinquencyDetector"]

CHECK, PAST_DUE, DEADLINE = "check", "past_due", "deadline"
COVERAGE_DAYS = 30
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
MAX_REMEMBERED_DAYS = 40

#: What the classifier sees of an installment at a check, in this order.
FEATURES = (
    "inflow_ratio",
    "coverage_log",
    "days_to_due",
    "paid_share",
    "silence_days",
    "payout_change",
    "prior_bad",
    "prior_late",
    "reversals",
)


def _new_model() -> compose.Pipeline:
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(0.05)),
    )


class DelinquencyDetector(Detector):
    """Ranks open installments by the risk of not being paid by due date + grace.

    At each check (``check_days_before_due``), the day after the due date and at the end of
    the grace period, an event-time timer assesses an unpaid installment from data stamped no
    later than that time: inflow trend and coverage of the installment, login silence, a recent
    payout-account change, the borrower's earlier partial, missed or late installments. Rules
    score it; once a per-partition River classifier has learnt ``min_labels_for_model``
    outcomes, its probability is blended in. The classifier learns each feature snapshot when
    the installment's outcome becomes known (delayed labels, nothing from the future).
    One alert per installment and severity: a new one only when the severity rises.
    """

    name = "delinquency"
    category = DELINQUENCY_RISK
    version = "2"

    def __init__(self, thresholds: DelinquencyThresholds) -> None:
        self.thresholds = thresholds
        self._zone = timezone(timedelta(hours=thresholds.platform_utc_offset_hours))
        self._models: dict[int, compose.Pipeline] = {}
        self._labels: dict[int, int] = {}
        self._positives: dict[int, int] = {}

    # Hooks -----------------------------------------------------------------------------

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if not event.success or event.action in ("logout",):
            return []
        memory = self.slot(state, _memory)
        day = day_of(event.ts.timestamp())
        key = "payouts" if event.action == "payout_account_change" else "logins"
        days: list[int] = memory[key]
        if day not in days:
            days.append(day)
            days.sort()
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
        reason = Reason(
            code="payment_reversed",
            message=f"a payment of {event.amount} on installment {key} was reversed",
            observed=str(event.amount),
            threshold="0",
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
            return []
        features, reasons, rule = self._assess(timer.due, installment, state)
        installment.snapshots.append([features[name] for name in FEATURES])
        if stage == PAST_DUE:
            # Past due weighs heavily but does not alert alone: many borrowers pay a day or two
            # late within the grace period. With any other signal it does.
            reasons.insert(0, self._past_due_reason(timer.due, installment))
            habitual = features["prior_late"] > 0 and not features["prior_bad"]
            rule = 1.0 - (1.0 - rule) * (1.0 - (0.2 if habitual else 0.45))
        score, reasons = self._blend(state.partition, features, rule, reasons)
        return self._escalate(state, installment, timer.due, score, reasons)

    def snapshot(self, partition: int) -> bytes | None:
        if partition not in self._models:
            return None
        return pickle.dumps(
            (
                self._models[partition],
                self._labels.get(partition, 0),
                self._positives.get(partition, 0),
            )
        )

    def restore(self, partition: int, snapshot: bytes) -> None:
        # Snapshots come from this process's own checkpoints (the worker's changelog).
        model, labels, positives = pickle.loads(snapshot)  # noqa: S301
        self._models[partition] = model
        self._labels[partition] = labels
        self._positives[partition] = positives

    # Decisions ---------------------------------------------------------------------------

    def _deadline(self, at: float, installment: Installment, state: BorrowerState) -> Output:
        """The outcome is known: learn every snapshot taken, then flag a miss."""
        assert installment.amount_due is not None
        missed = not installment.paid_in_full_by(at)
        model = self._models.setdefault(state.partition, _new_model())
        for vector in installment.snapshots:
            model.learn_one(dict(zip(FEATURES, vector, strict=True)), missed)
            self._labels[state.partition] = self._labels.get(state.partition, 0) + 1
            self._positives[state.partition] = self._positives.get(state.partition, 0) + missed
        installment.snapshots.clear()
        if not missed:
            return []
        paid = installment.paid_by(at)
        code, score = ("partial_payment", 0.9) if paid > 0 else ("installment_missed", 0.95)
        reasons = [
            Reason(
                code=code,
                message=f"{paid} of {installment.amount_due} paid by the end of the "
                f"{self.thresholds.grace_days}-day grace period",
                observed=str(paid),
                threshold=str(installment.amount_due),
            )
        ]
        _, signals, _ = self._assess(at, installment, state)
        return self._escalate(state, installment, at, score, reasons + signals)

    def _assess(
        self, at: float, installment: Installment, state: BorrowerState
    ) -> tuple[dict[str, float], list[Reason], float]:
        """Features at ``at``, the reasons among them that hold, and the rules' score."""
        t = self.thresholds
        assert installment.amount_due is not None and installment.due_date is not None
        today = day_of(at)
        amount_due = float(installment.amount_due) or 1.0
        recent, recent_days = state.inflows.total(today - t.recent_days, today)
        baseline, baseline_days = state.inflows.total(
            today - t.recent_days - t.baseline_days, today - t.recent_days
        )
        trusted = baseline_days >= t.min_baseline_days and recent_days > 0 and baseline > 0
        ratio = (recent / recent_days) / (baseline / baseline_days) if trusted else 1.0
        month, _ = state.inflows.total(today - COVERAGE_DAYS, today)
        coverage = month / amount_due
        memory = self.slot(state, _memory)
        logins = [d for d in memory["logins"] if d <= today]
        silence = float(today - logins[-1]) if logins else 0.0
        payout_change = any(today - t.payout_change_days <= d <= today for d in memory["payouts"])
        prior_bad, prior_late = self._history(at, installment, state)
        features = {
            "inflow_ratio": min(ratio, 3.0),
            "coverage_log": math.log1p(min(coverage, 1000.0)),
            "days_to_due": (self._midnight(installment.due_date) - at) / SECONDS_PER_DAY,
            "paid_share": float(installment.paid_by(at)) / amount_due,
            "silence_days": min(silence, 60.0),
            "payout_change": 1.0 if payout_change else 0.0,
            "prior_bad": float(prior_bad),
            "prior_late": float(prior_late),
            "reversals": float(len([r for r in installment.reversals if r[0] <= at])),
        }
        signals: list[tuple[float, Reason]] = []
        if trusted and ratio <= t.max_inflow_ratio:
            strength = 0.25 + 0.2 * (1.0 - ratio / t.max_inflow_ratio)
            signals.append(
                (
                    strength,
                    Reason(
                        code="inflow_decline",
                        message=f"daily inflow over the last {t.recent_days} days is "
                        f"{ratio:.0%} of the {t.baseline_days} days before",
                        observed=round(ratio, 3),
                        threshold=t.max_inflow_ratio,
                    ),
                )
            )
        if month > 0 and coverage <= t.max_coverage:
            strength = 0.35 * (1.0 - coverage / t.max_coverage) + 0.1
            signals.append(
                (
                    strength,
                    Reason(
                        code="low_installment_coverage",
                        message=f"inflows of the last {COVERAGE_DAYS} days cover the installment "
                        f"{coverage:.1f} times",
                        observed=round(coverage, 2),
                        threshold=t.max_coverage,
                    ),
                )
            )
        if silence >= t.silence_from_days:
            span = max(1, t.silence_full_days - t.silence_from_days)
            strength = 0.2 + 0.25 * min(1.0, (silence - t.silence_from_days) / span)
            signals.append(
                (
                    strength,
                    Reason(
                        code="login_silence",
                        message=f"no successful login for {silence:.0f} days",
                        observed=silence,
                        threshold=t.silence_from_days,
                    ),
                )
            )
        if payout_change:
            signals.append(
                (
                    0.3,
                    Reason(
                        code="payout_account_changed",
                        message=f"payout account changed in the {t.payout_change_days} days before",
                        observed=1,
                        threshold=0,
                    ),
                )
            )
        if prior_bad:
            signals.append(
                (
                    0.35,
                    Reason(
                        code="earlier_installments_unpaid",
                        message=f"{prior_bad} earlier installment(s) partly or not paid",
                        observed=prior_bad,
                        threshold=0,
                    ),
                )
            )
        if prior_late >= 2:
            signals.append(
                (
                    0.1,
                    Reason(
                        code="earlier_installments_late",
                        message=f"{prior_late} earlier installment(s) paid after the due date",
                        observed=prior_late,
                        threshold=2,
                    ),
                )
            )
        # Independent signals combine as a noisy-or: each alone stays below an alert.
        rule = 1.0 - math.prod(1.0 - strength for strength, _ in signals)
        ranked = sorted(signals, key=lambda signal: -signal[0])
        return features, [reason for _, reason in ranked], rule

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

        Missed installments are rare (about one in a hundred), so a calibrated probability is
        small even for a risky installment; what carries information is how far it stands
        above the partition's base rate. That lift is one more signal in the noisy-or.
        """
        t = self.thresholds
        model = self._models.get(partition)
        labels = self._labels.get(partition, 0)
        if model is None or labels < t.min_labels_for_model:
            return rule, reasons
        probability = float(model.predict_proba_one(features).get(True, 0.0))
        base_rate = max(self._positives.get(partition, 0) / labels, 0.005)
        lift = probability / base_rate
        if lift < t.min_model_lift:
            return rule, reasons
        strength = min(t.max_model_strength, 0.15 * math.log2(lift))
        scaled = model["StandardScaler"].transform_one(features)
        weights = model["LogisticRegression"].weights
        contributions = sorted(
            ((weights.get(name, 0.0) * scaled.get(name, 0.0), name) for name in FEATURES),
            reverse=True,
        )
        top = ", ".join(f"{name} ({value:+.2f})" for value, name in contributions[:3] if value > 0)
        model_reason = Reason(
            code="model_probability",
            message=f"classifier: {probability:.1%} risk, {lift:.1f}× the partition's base rate "
            f"{base_rate:.1%}; raised most by {top or 'nothing'}",
            observed=round(lift, 2),
            threshold=t.min_model_lift,
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
                state,
                episode=f"{key}:{severity}",
                ts=datetime.fromtimestamp(at, UTC),
                score=score,
                reasons=reasons,
                evidence=installment.evidence_until(at) or [key],
                loan_id=installment.loan_id,
                installment=installment.number,
                due_date=installment.due_date,
            )
        ]

    def _past_due_reason(self, at: float, installment: Installment) -> Reason:
        return Reason(
            code="past_due",
            message=f"{installment.paid_by(at)} of {installment.amount_due} paid after the due "
            f"date {installment.due_date}",
            observed=str(installment.paid_by(at)),
            threshold=str(installment.amount_due),
        )

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


def _memory() -> dict[str, Any]:
    """Days of successful logins and of payout-account changes (event time), newest last."""
    return {"logins": [], "payouts": []}
