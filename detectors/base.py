"""What every detector returns (a Finding) and how a Finding becomes a published Alert."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from detectors.clock import Timer
from detectors.index import Found, Lookups
from detectors.personal import fill, unwrap
from detectors.state import BorrowerState
from topics.names import ABNORMAL_BEHAVIOUR, CATEGORIES, DELINQUENCY_RISK, FALSIFIED_FLOW
from topics.records import Alert, Login, Reason, Repayment, Transaction, Wording
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
    ``episode_wording`` and ``evidence_wording`` are what the masker needs (see
    :class:`topics.records.Alert`): the episode as its template and slots, and the wording of
    each evidence entry that names someone (None when none does).
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
    episode_wording: Wording | None = None
    evidence_wording: tuple[Wording | None, ...] | None = None

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
        episode_wording=finding.episode_wording,
        evidence_wording=None
        if finding.evidence_wording is None
        else list(finding.evidence_wording),
    )


#: What a hook returns: findings, and event-time timers to arm for the borrower.
Output = list[Finding | Timer]


class Detector:
    """Base of every detector: pure functions of (event, state) to findings.

    A detector overrides the hooks of the streams it reads. It never does I/O: what it needs
    from other borrowers comes from the cross-borrower index, asked for in :meth:`lookups` and
    handed to the hook as ``found``; thresholds come in as data. Per-borrower memory lives in
    ``state.slots[self.name]`` as JSON-compatible values, so it is changelogged with the rest.

    What it says is data too: ``messages`` and ``episodes`` hold its templates, and it builds
    reasons, episodes and findings only through :meth:`reason`, :meth:`episode` and
    :meth:`finding`, with every personal value wrapped by kind (``detectors.personal``). The
    masker then masks those values wherever a template puts them: a new detector, or a
    reworded message, needs nothing else to keep raw ids out of published alerts.
    """

    name: str = ""
    category: str = ""
    version: str = "1"
    #: Message templates by reason code (Python format syntax, see
    #: :class:`topics.records.Wording`). A code worded two ways has a key per wording:
    #: the code, then a slash and a variant (``"regular_intervals/clock"``).
    messages: ClassVar[Mapping[str, str]] = {}
    #: Episode templates by name: what an alert is about, and so its id.
    episodes: ClassVar[Mapping[str, str]] = {}
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

    def reason(
        self, key: str, *, observed: Any = None, threshold: Any = None, **slots: Any
    ) -> Reason:
        """The reason of ``messages[key]`` with its slots filled; ``observed``, ``threshold``
        and any slot may be a personal value (``detectors.personal``).

        The code is ``key`` up to a slash (see :attr:`messages`); the message is rendered raw,
        as published unmasked.
        """
        wording = fill(self.messages[key], **slots)
        observed, observed_kind = unwrap(observed)
        threshold, threshold_kind = unwrap(threshold)
        return Reason(
            code=key.partition("/")[0],
            message=wording.render(),
            observed=observed,
            threshold=threshold,
            wording=wording,
            observed_kind=observed_kind,
            threshold_kind=threshold_kind,
        )

    def episode(self, name: str, **slots: Any) -> Wording:
        """The episode of ``episodes[name]`` with its slots filled, personal ones wrapped."""
        return fill(self.episodes[name], **slots)

    def finding(
        self,
        borrower_id: str,
        *,
        episode: Wording,
        ts: datetime,
        score: float,
        reasons: Sequence[Reason],
        evidence: Sequence[str | Wording],
        **delinquency: Any,
    ) -> Finding:
        """A finding about ``borrower_id``; an evidence entry is an event id, or a wording
        when it names someone."""
        wordings = tuple(None if isinstance(entry, str) else entry for entry in evidence)
        return Finding(
            detector=self.name,
            detector_version=self.version,
            category=self.category,
            borrower_id=borrower_id,
            episode=episode.render(),
            ts=ts,
            score=score,
            reasons=tuple(reasons),
            evidence=tuple(
                entry if isinstance(entry, str) else entry.render() for entry in evidence
            ),
            episode_wording=episode,
            evidence_wording=None if all(w is None for w in wordings) else wordings,
            **delinquency,
        )
