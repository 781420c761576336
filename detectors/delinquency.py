"""Delinquency early warning: declining inflows before a due date, and installments missed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from detectors.base import DELINQUENCY_RISK, Detector, Finding, Output
from detectors.clock import Timer
from detectors.index import Found
from detectors.state import SECONDS_PER_DAY, BorrowerState, Installment, day_of, installment_key
from detectors.thresholds import DelinquencyThresholds
from topics.records import Reason, Repayment

__all__ = ["DelinquencyDetector"]

WARNING, DEADLINE = "warning", "deadline"
COVERAGE_DAYS = 30


class DelinquencyDetector(Detector):
    """Warns before a due date when inflows collapse against the installment; flags misses.

    Every decision is taken at an event-time timer (``warn_days_before_due`` before the due
    date, and at the end of the grace period) from data stamped no later than that time, so
    the order in which the three topics arrive cannot change it.
    """

    name = "delinquency"
    category = DELINQUENCY_RISK
    version = "1"

    def __init__(self, thresholds: DelinquencyThresholds) -> None:
        self.thresholds = thresholds
        self._zone = timezone(timedelta(hours=thresholds.platform_utc_offset_hours))

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
        return [
            self.finding(
                state,
                episode=f"{key}:reversal:{event.event_id}",
                ts=event.ts,
                score=0.7,
                reasons=[
                    Reason(
                        code="payment_reversed",
                        message=f"a payment of {event.amount} on installment {key} was reversed",
                        observed=str(event.amount),
                        threshold="0",
                    )
                ],
                evidence=installment.evidence_until(epoch),
                loan_id=event.loan_id,
                installment=event.installment,
                due_date=installment.due_date,
            )
        ]

    def pending_timers(self, state: BorrowerState, only: str | None = None) -> list[Timer]:
        timers = []
        for key, installment in state.installments.items():
            if installment.due_date is None or (only is not None and key != only):
                continue
            for stage, at in (
                (WARNING, self._warning_time(installment.due_date)),
                (DEADLINE, self._deadline(installment.due_date)),
            ):
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
        if installment.paid_by(timer.due) >= installment.amount_due:
            return []
        if stage == WARNING:
            return self._warning(timer.due, installment, state)
        return self._missed(timer.due, installment, state)

    def _warning(self, at: float, installment: Installment, state: BorrowerState) -> Output:
        t = self.thresholds
        assert installment.amount_due is not None and installment.due_date is not None
        decline = self._decline(at, installment, state)
        if decline is None:
            return []
        ratio, coverage, reasons = decline
        if ratio > t.max_inflow_ratio or coverage > t.max_coverage:
            return []
        score = (
            0.5
            + 0.25 * (1.0 - ratio / t.max_inflow_ratio)
            + 0.2 * (1.0 - coverage / t.max_coverage)
        )
        return [self._finding(state, installment, WARNING, at, min(score, 0.89), list(reasons))]

    def _missed(self, at: float, installment: Installment, state: BorrowerState) -> Output:
        assert installment.amount_due is not None
        paid = installment.paid_by(at)
        code, score = ("partial_payment", 0.8) if paid > 0 else ("installment_missed", 0.9)
        reasons = [
            Reason(
                code=code,
                message=f"{paid} of {installment.amount_due} paid by the end of the "
                f"{self.thresholds.grace_days}-day grace period",
                observed=str(paid),
                threshold=str(installment.amount_due),
            )
        ]
        decline = self._decline(at, installment, state)
        if decline is not None:
            ratio, coverage, (decline_reason, coverage_reason) = decline
            # Only conditions that hold are reasons: each one is a fact the team can act on.
            if ratio <= self.thresholds.max_inflow_ratio:
                reasons.append(decline_reason)
                score += 0.05
            if coverage <= self.thresholds.max_coverage:
                reasons.append(coverage_reason)
        return [self._finding(state, installment, DEADLINE, at, score, reasons)]

    def _decline(
        self, at: float, installment: Installment, state: BorrowerState
    ) -> tuple[float, float, tuple[Reason, Reason]] | None:
        """Recent daily inflow against the borrower's own baseline, and installment coverage."""
        t = self.thresholds
        assert installment.amount_due is not None
        today = day_of(at)
        recent, recent_days = state.inflows.total(today - t.recent_days, today)
        baseline, baseline_days = state.inflows.total(
            today - t.recent_days - t.baseline_days, today - t.recent_days
        )
        if baseline_days < t.min_baseline_days or recent_days == 0 or baseline <= 0:
            return None
        ratio = (recent / recent_days) / (baseline / baseline_days)
        month, _ = state.inflows.total(today - COVERAGE_DAYS, today)
        coverage = month / float(installment.amount_due) if installment.amount_due else 0.0
        reasons = (
            Reason(
                code="inflow_decline",
                message=f"daily inflow over the last {t.recent_days} days is {ratio:.0%} of the "
                f"{t.baseline_days} days before",
                observed=round(ratio, 3),
                threshold=t.max_inflow_ratio,
            ),
            Reason(
                code="low_installment_coverage",
                message=f"inflows of the last {COVERAGE_DAYS} days cover the installment "
                f"{coverage:.1f} times",
                observed=round(coverage, 2),
                threshold=t.max_coverage,
            ),
        )
        return ratio, coverage, reasons

    def _finding(
        self,
        state: BorrowerState,
        installment: Installment,
        stage: str,
        at: float,
        score: float,
        reasons: list[Reason],
    ) -> Finding:
        return self.finding(
            state,
            episode=f"{installment_key(installment.loan_id, installment.number)}:{stage}",
            ts=datetime.fromtimestamp(at, UTC),
            score=score,
            reasons=reasons,
            evidence=installment.evidence_until(at),
            loan_id=installment.loan_id,
            installment=installment.number,
            due_date=installment.due_date,
        )

    def _midnight(self, day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=self._zone).timestamp()

    def _warning_time(self, due: date) -> float:
        return self._midnight(due) - self.thresholds.warn_days_before_due * SECONDS_PER_DAY

    def _deadline(self, due: date) -> float:
        """End of the grace period: midnight after ``due + grace_days`` in platform time."""
        return self._midnight(due + timedelta(days=1 + self.thresholds.grace_days))
