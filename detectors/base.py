"""What every detector returns (a Finding) and how a Finding becomes a published Alert."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from detectors.clock import Timer
from detectors.index import Found, Lookups
from detectors.state import BorrowerState
from topics.names import ABNORMAL_BEHAVIOUR, CATEGORIES, DELINQUENCY_RISK, FALSIFIED_FLOW
from topics.records import Alert, Login, Reason, Repayment, Transaction
from topics.validate import InputRecord

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = [
    "ABNORMAL_BEHAVIOUR",
    "Detector",
    "CATEGORIES",
    "DELINQUENCY_RISK",
    "FALSIFIED_FLOW",
    "Finding",
    "Output",
    "alert_id",
    "severity_for",
    "to_alert",
]

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


def to_alert(
    finding: Finding, *, emitted_at: datetime, thresholds_version: str, detector: str | None = None
) -> Alert:
    """Stamp a Finding with its id, severity, emission time and the thresholds in force
    (``detector`` names the live detector a shadow finding stands for)."""
    score = min(1.0, max(0.0, round(finding.score, 4)))
    return Alert(
        alert_id=finding.alert_id,
        ts=finding.ts,
        emitted_at=emitted_at,
        category=finding.category,
        detector=detector or finding.detector,
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


#: What a hook returns: findings, and event-time timers to arm for the borrower.
Output = list[Finding | Timer]


class Detector:
    """Base of every detector: pure functions of (event, state) to findings.

    A detector overrides the hooks of the streams it reads. It never does I/O: what it needs
    from other borrowers comes from the cross-borrower index, asked for in :meth:`lookups` and
    handed to the hook as ``found``; thresholds come in as data. Per-borrower memory lives in
    ``state.slots[self.name]`` as JSON-compatible values, so it is changelogged with the rest.
    """

    name: str = ""
    category: str = ""
    version: str = "1"
    #: Fields of :class:`BorrowerState` the detector writes besides its slot (the login
    #: history, the installments): a shadow of it gets its own copy of these.
    writes: tuple[str, ...] = ()
    #: Its section of :class:`~detectors.thresholds.Thresholds` (``takeover``: the tunables
    #: ``takeover.*``) and the frozen dataclass of those tunables, declared beside it: a
    #: registered detector is built from that section (``detectors.registry``).
    section: str = ""
    thresholds_type: type[Any] | None = None

    @classmethod
    def contract_events(cls) -> list[Input]:
        """Events that give this detector something to find in the shared contract test
        (``tests/detectors/test_detector_contract.py``), which runs every registered detector
        over all of them, sorted by time: as River's estimators supply ``_unit_test_params``."""
        return []

    def lookups(self, event: InputRecord, state: BorrowerState) -> Lookups | None:
        """Index writes and reads this event needs; answered in one round trip per batch."""
        return None

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        return []

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        return []

    def on_repayment(self, event: Repayment, state: BorrowerState, found: Found) -> Output:
        return []

    def pending_timers(self, state: BorrowerState) -> list[Timer]:
        """Timers this state still needs: re-armed after a restart or a rebalance."""
        return []

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        return []

    def on_day_close(
        self, partition: int, day: int, states: Sequence[BorrowerState]
    ) -> list[Finding]:
        """Event time of ``partition`` has passed the end of UTC ``day``; ``states`` are the
        partition's borrowers, by id. For per-partition models of daily aggregates."""
        return []

    def snapshot(self, partition: int) -> bytes | None:
        """The detector's own per-partition memory (a model), to checkpoint; None if none."""
        return None

    def restore(self, partition: int, snapshot: bytes) -> None:
        """Take back what :meth:`snapshot` gave."""

    def slot(self, state: BorrowerState, default: Callable[[], Any]) -> Any:
        """This detector's JSON-compatible memory of one borrower, created on first use."""
        value = state.slots.get(self.name)
        if value is None:
            value = state.slots[self.name] = default()
        return value

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
