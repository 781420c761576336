"""What every detector returns (a Finding) and how a Finding becomes a published Alert."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from detectors.clock import Timer
from detectors.graph import Neighbourhood
from detectors.state import BorrowerState
from topics.records import Alert, Login, Reason, Repayment, Transaction

__all__ = [
    "ABNORMAL_BEHAVIOUR",
    "Detector",
    "CATEGORIES",
    "DELINQUENCY_RISK",
    "FALSIFIED_FLOW",
    "Finding",
    "alert_id",
    "severity_for",
    "to_alert",
]

FALSIFIED_FLOW = "falsified_flow"
ABNORMAL_BEHAVIOUR = "abnormal_behaviour"
DELINQUENCY_RISK = "delinquency_risk"
CATEGORIES = (FALSIFIED_FLOW, ABNORMAL_BEHAVIOUR, DELINQUENCY_RISK)

# Score bands, lowest first: a score at or above the bound gets the severity.
SEVERITY_BANDS = ((0.9, "critical"), (0.75, "high"), (0.5, "medium"), (0.0, "low"))


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's verdict on one episode of one borrower, before it is stamped as an Alert.

    ``episode`` names what the alert is about (a device, a cycle and its day, an installment and
    stage) rather than the event that tipped it, so that any processing order yields the same id.
    """

    detector: str
    detector_version: str
    category: str
    borrower_id: str
    episode: str
    ts: datetime
    score: float
    reasons: tuple[Reason, ...]
    evidence: tuple[str, ...]
    loan_id: str | None = None
    installment: int | None = None
    due_date: date | None = None

    @property
    def alert_id(self) -> str:
        return alert_id(self.detector, self.borrower_id, self.episode)


def alert_id(detector: str, borrower_id: str, episode: str) -> str:
    """A stable id: the same detector, borrower and episode always give the same id.

    >>> first = alert_id("account_takeover", "b-1", "device:d9")
    >>> first == alert_id("account_takeover", "b-1", "device:d9"), len(first)
    (True, 32)
    """
    digest = hashlib.blake2b(
        f"{detector}\x1f{borrower_id}\x1f{episode}".encode(), digest_size=16
    ).hexdigest()
    return digest


def severity_for(score: float) -> str:
    """Severity follows the score.

    >>> [severity_for(s) for s in (0.2, 0.6, 0.8, 0.95)]
    ['low', 'medium', 'high', 'critical']
    """
    for bound, name in SEVERITY_BANDS:
        if score >= bound:
            return name
    return "low"


def to_alert(finding: Finding, *, emitted_at: datetime, thresholds_version: str) -> Alert:
    """Stamp a Finding with its id, severity, emission time and the thresholds in force."""
    score = min(1.0, max(0.0, round(finding.score, 4)))
    return Alert(
        alert_id=finding.alert_id,
        ts=finding.ts,
        emitted_at=emitted_at,
        category=finding.category,
        detector=finding.detector,
        severity=severity_for(score),
        score=score,
        borrower_id=finding.borrower_id,
        reasons=list(finding.reasons),
        evidence=list(finding.evidence),
        detector_version=finding.detector_version,
        thresholds_version=thresholds_version,
        episode=finding.episode,
        loan_id=finding.loan_id,
        installment=finding.installment,
        due_date=finding.due_date,
    )


class Detector:
    """Base of every detector: pure functions of (event, state) to findings.

    A detector overrides the hooks of the streams it reads; each returns the findings the event
    completes. It never does I/O: what it needs from outside the borrower's state (the
    cross-borrower edge neighbourhood) is handed in, and thresholds come in as data.
    """

    name: str = ""
    category: str = ""
    version: str = "1"

    def on_transaction(
        self, event: Transaction, state: BorrowerState, around: Neighbourhood | None
    ) -> list[Finding]:
        return []

    def on_login(self, event: Login, state: BorrowerState) -> list[Finding]:
        return []

    def on_repayment(self, event: Repayment, state: BorrowerState) -> list[Finding]:
        return []

    def pending_timers(self, state: BorrowerState) -> list[Timer]:
        """Event-time callbacks this borrower's state needs (asked after repayment events)."""
        return []

    def on_timer(self, timer: Timer, state: BorrowerState) -> list[Finding]:
        return []

    def finding(
        self,
        state: BorrowerState,
        *,
        episode: str,
        ts: datetime,
        score: float,
        reasons: list[Reason],
        evidence: list[str],
        **delinquency: Any,
    ) -> Finding:
        return Finding(
            detector=self.name,
            detector_version=self.version,
            category=self.category,
            borrower_id=state.borrower_id,
            episode=episode,
            ts=ts,
            score=score,
            reasons=tuple(reasons),
            evidence=tuple(evidence),
            **delinquency,
        )
