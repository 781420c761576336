"""Alerts scored against ground-truth labels: recall, precision, false alerts, warning time."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from detectors.base import CATEGORIES, DELINQUENCY_RISK
from sim import Label
from topics.records import Alert

__all__ = [
    "CategoryScore",
    "DetectorScore",
    "ScoreCard",
    "TypologyScore",
    "WarningScore",
    "score",
]

#: Due dates and alert-days are calendar days of the platform (UTC+8), as in the simulator.
PLATFORM_ZONE = timezone(timedelta(hours=8))
#: An alert counts for a label from one day before its start to seven days after its end.
BEFORE_START = timedelta(days=1)
AFTER_END = timedelta(days=7)
#: A missed installment is warned in time when an alert on it comes this long before its due date.
WARN_AHEAD = timedelta(days=3)
#: What a delinquency label names to be scored as a missed installment.
INSTALLMENT_DETAIL = frozenset({"loan_id", "installment", "due_date"})


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class TypologyScore:
    """Recall and time to detect of one typology; the unit is a labelled borrower."""

    typology: str
    category: str
    cases: int = 0
    detected: int = 0
    #: First true alert minus label start, per detected case (negative: alerted before start).
    hours_to_detect: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return _share(self.detected, self.cases)

    @property
    def median_hours_to_detect(self) -> float | None:
        return _median(self.hours_to_detect)

    def to_dict(self) -> dict[str, Any]:
        return {
            "typology": self.typology,
            "category": self.category,
            "cases": self.cases,
            "detected": self.detected,
            "recall": self.recall,
            "median_hours_to_detect": self.median_hours_to_detect,
            "hours_to_detect": list(self.hours_to_detect),
        }


@dataclass
class CategoryScore:
    """Precision and false-alert rate of one category; the unit is an alert-day."""

    category: str
    alert_days: int = 0
    true_alert_days: int = 0
    #: Borrowers without a label of this category.
    benign_borrowers: int = 0

    @property
    def false_alert_days(self) -> int:
        return self.alert_days - self.true_alert_days

    @property
    def precision(self) -> float | None:
        return _share(self.true_alert_days, self.alert_days)

    @property
    def false_per_1000(self) -> float | None:
        if not self.benign_borrowers:
            return None
        return 1000.0 * self.false_alert_days / self.benign_borrowers

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "alert_days": self.alert_days,
            "true_alert_days": self.true_alert_days,
            "false_alert_days": self.false_alert_days,
            "precision": self.precision,
            "benign_borrowers": self.benign_borrowers,
            "false_per_1000_benign": self.false_per_1000,
        }


@dataclass
class DetectorScore:
    """Alerts of one detector, and how many fall on a true alert-day."""

    detector: str
    categories: list[str] = field(default_factory=list)
    alerts: int = 0
    true_alerts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "categories": sorted(self.categories),
            "alerts": self.alerts,
            "true_alerts": self.true_alerts,
        }


@dataclass
class WarningScore:
    """Missed installments alerted on at least ``WARN_AHEAD`` before their due date."""

    installments: int = 0
    warned: int = 0
    #: Due date midnight minus the first alert on the installment, per warned installment.
    days_of_warning: list[float] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        return _share(self.warned, self.installments)

    @property
    def median_days(self) -> float | None:
        return _median(self.days_of_warning)

    def to_dict(self) -> dict[str, Any]:
        return {
            "installments": self.installments,
            "warned": self.warned,
            "share": self.share,
            "median_days_of_warning": self.median_days,
            "days_of_warning": list(self.days_of_warning),
        }


@dataclass
class ScoreCard:
    """Everything :func:`score` measures; counts, so that cards of several seeds add up."""

    period_days: int
    borrowers: int
    typologies: dict[str, TypologyScore] = field(default_factory=dict)
    categories: dict[str, CategoryScore] = field(default_factory=dict)
    detectors: dict[str, DetectorScore] = field(default_factory=dict)
    delinquency: WarningScore = field(default_factory=WarningScore)

    @classmethod
    def pooled(cls, cards: Sequence[ScoreCard]) -> ScoreCard:
        """One card for several runs: counts add, per-case samples are pooled for medians."""
        total = cls(
            period_days=max((c.period_days for c in cards), default=0),
            borrowers=sum(c.borrowers for c in cards),
        )
        for card in cards:
            for name, t in card.typologies.items():
                into = total.typologies.setdefault(name, TypologyScore(name, t.category))
                into.cases += t.cases
                into.detected += t.detected
                into.hours_to_detect += t.hours_to_detect
            for name, c in card.categories.items():
                pooled = total.categories.setdefault(name, CategoryScore(name))
                pooled.alert_days += c.alert_days
                pooled.true_alert_days += c.true_alert_days
                pooled.benign_borrowers += c.benign_borrowers
            for name, d in card.detectors.items():
                det = total.detectors.setdefault(name, DetectorScore(name))
                det.categories = sorted({*det.categories, *d.categories})
                det.alerts += d.alerts
                det.true_alerts += d.true_alerts
            total.delinquency.installments += card.delinquency.installments
            total.delinquency.warned += card.delinquency.warned
            total.delinquency.days_of_warning += card.delinquency.days_of_warning
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "period_days": self.period_days,
            "borrowers": self.borrowers,
            "typologies": {k: v.to_dict() for k, v in self.typologies.items()},
            "categories": {k: v.to_dict() for k, v in self.categories.items()},
            "detectors": {k: v.to_dict() for k, v in self.detectors.items()},
            "delinquency": self.delinquency.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class _Seen:
    """The fields of an alert that scoring reads."""

    borrower_id: str
    category: str
    detector: str
    ts: datetime
    loan_id: str | None
    installment: int | None


@dataclass(frozen=True, slots=True)
class _Case:
    """A label with its window, in instants and in platform days."""

    borrower_id: str
    category: str
    typology: str
    start: datetime
    low: datetime
    high: datetime
    first_day: date
    last_day: date
    detail: Mapping[str, Any]


def _instant(value: Any, what: str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a datetime with a UTC offset, got {value!r}")
    return moment


def _seen(alert: Alert | Mapping[str, Any]) -> _Seen:
    if isinstance(alert, Mapping):
        fields: Mapping[str, Any] = alert
    else:
        fields = {name: getattr(alert, name) for name in _Seen.__slots__}
    installment, loan_id = fields.get("installment"), fields.get("loan_id")
    return _Seen(
        borrower_id=str(fields["borrower_id"]),
        category=str(fields["category"]),
        detector=str(fields["detector"]),
        ts=_instant(fields["ts"], "alert ts"),
        loan_id=None if loan_id is None else str(loan_id),
        installment=None if installment is None else int(installment),
    )


def _case(label: Label | Mapping[str, Any], zone: tzinfo) -> _Case:
    fields: Mapping[str, Any] = label if isinstance(label, Mapping) else vars(label)
    start = _instant(fields["start"], "label start")
    low, high = start - BEFORE_START, _instant(fields["end"], "label end") + AFTER_END
    return _Case(
        borrower_id=fields["borrower_id"],
        category=fields["category"],
        typology=fields["typology"],
        start=start,
        low=low,
        high=high,
        first_day=low.astimezone(zone).date(),
        last_day=high.astimezone(zone).date(),
        detail=fields.get("detail") or {},
    )


def score(
    alerts: Iterable[Alert | Mapping[str, Any]],
    labels: Sequence[Label | Mapping[str, Any]],
    borrowers: Sequence[str] | int,
    period_days: int,
    *,
    zone: tzinfo = PLATFORM_ZONE,
) -> ScoreCard:
    """Score alerts against ground-truth labels.

    Parameters
    ----------
    alerts
        :class:`~topics.records.Alert` records, or their JSON form (``ts`` as ISO-8601).
    labels
        The simulator's :class:`~sim.Label` values (or their JSON form).
    borrowers
        The population: its borrower ids, or only its size.
    period_days
        Length of the simulated period, kept on the card to read rates against.
    zone
        Time zone of calendar days (alert-days, due dates): the platform's.

    Notes
    -----
    A label's window runs from one day before its start to seven days after its end.

    - Recall of a typology: share of its labelled borrowers with an alert of the label's
      category whose ``ts`` is in the window; time to detect is the first such ``ts`` minus
      the label's start.
    - Precision of a category: one unit per (borrower, category, platform day) with alerts;
      it is true when that day lies within the window (in platform days) of a label of the
      borrower and category. False alert-days per 1,000 borrowers without such a label.
    - Delinquency: a labelled missed installment is warned when an alert of its category on
      its ``loan_id`` and ``installment`` comes at or before due-date midnight minus 3 days.

    >>> card = score([], [], borrowers=10, period_days=30)
    >>> card.categories["falsified_flow"].false_per_1000
    0.0
    """
    seen = sorted((_seen(alert) for alert in alerts), key=lambda a: a.ts)
    cases = [_case(label, zone) for label in labels]
    population = borrowers if isinstance(borrowers, int) else len(set(borrowers))
    card = ScoreCard(period_days=period_days, borrowers=population)
    _categories(card, seen, cases, borrowers)
    owned = _alert_days(card, seen, cases, zone)
    _typologies(card, cases, owned)
    card.delinquency = _warnings(seen, cases, zone)
    return card


def _categories(
    card: ScoreCard, seen: Sequence[_Seen], cases: Sequence[_Case], borrowers: Sequence[str] | int
) -> None:
    """A category card each, the known categories first, with its benign population."""
    names = [*CATEGORIES]
    names += sorted(({c.category for c in cases} | {a.category for a in seen}) - set(names))
    for name in names:
        labelled = {c.borrower_id for c in cases if c.category == name}
        if isinstance(borrowers, int):
            benign = max(0, borrowers - len(labelled))
        else:
            benign = len(set(borrowers) - labelled)
        card.categories[name] = CategoryScore(name, benign_borrowers=benign)


def _alert_days(
    card: ScoreCard, seen: Sequence[_Seen], cases: Sequence[_Case], zone: tzinfo
) -> dict[tuple[str, str], list[_Seen]]:
    """Count alert-days per category and alerts per detector, true or not; return the alerts
    by (borrower, category), in time order, for recall."""
    by_owner: defaultdict[tuple[str, str], list[_Case]] = defaultdict(list)
    for case in cases:
        by_owner[case.borrower_id, case.category].append(case)
    alert_days: dict[tuple[str, str, date], bool] = {}
    owned: defaultdict[tuple[str, str], list[_Seen]] = defaultdict(list)
    for alert in seen:
        day = alert.ts.astimezone(zone).date()
        true = any(
            c.first_day <= day <= c.last_day
            for c in by_owner.get((alert.borrower_id, alert.category), ())
        )
        alert_days[alert.borrower_id, alert.category, day] = true
        owned[alert.borrower_id, alert.category].append(alert)
        detector = card.detectors.setdefault(alert.detector, DetectorScore(alert.detector))
        if alert.category not in detector.categories:
            detector.categories.append(alert.category)
        detector.alerts += 1
        detector.true_alerts += true
    for (_, category, _), true in alert_days.items():
        card.categories[category].alert_days += 1
        card.categories[category].true_alert_days += true
    return owned


def _typologies(
    card: ScoreCard, cases: Sequence[_Case], owned: Mapping[tuple[str, str], list[_Seen]]
) -> None:
    """Recall and time to detect per typology: a labelled borrower is detected by the first
    alert of the label's category inside the window of one of its labels, earliest first."""
    by_typology: defaultdict[str, defaultdict[str, list[_Case]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for case in sorted(cases, key=lambda c: c.start):
        by_typology[case.typology][case.borrower_id].append(case)
    for typology in sorted(by_typology):
        per_borrower = by_typology[typology]
        first_case = next(iter(per_borrower.values()))[0]
        result = card.typologies[typology] = TypologyScore(typology, first_case.category)
        for borrower_cases in per_borrower.values():
            result.cases += 1
            for case in borrower_cases:  # earliest label first
                hit = next(
                    (
                        a.ts
                        for a in owned.get((case.borrower_id, case.category), ())
                        if case.low <= a.ts <= case.high
                    ),
                    None,
                )
                if hit is not None:
                    result.detected += 1
                    result.hours_to_detect.append((hit - case.start).total_seconds() / 3600)
                    break


def _warnings(seen: Sequence[_Seen], cases: Sequence[_Case], zone: tzinfo) -> WarningScore:
    first: dict[tuple[str, int], datetime] = {}
    for alert in seen:  # in time order: the first one stays
        if alert.category == DELINQUENCY_RISK and alert.loan_id is not None:
            if alert.installment is not None:
                first.setdefault((str(alert.loan_id), alert.installment), alert.ts)
    result = WarningScore()
    for case in cases:
        detail = case.detail
        if case.category != DELINQUENCY_RISK or not INSTALLMENT_DETAIL <= detail.keys():
            continue
        result.installments += 1
        due = date.fromisoformat(str(detail["due_date"]))
        midnight = datetime(due.year, due.month, due.day, tzinfo=zone)
        alerted = first.get((str(detail["loan_id"]), int(detail["installment"])))
        if alerted is not None and alerted <= midnight - WARN_AHEAD:
            result.warned += 1
            result.days_of_warning.append((midnight - alerted).total_seconds() / 86_400)
    return result
