"""Alerts scored against ground-truth labels: recall, precision, false alerts, warning time."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from detectors.base import CATEGORIES, DELINQUENCY_RISK
from topics.labels import CaseLabel, iter_labels
from topics.records import Alert

__all__ = [
    "AlertTruth",
    "CategoryScore",
    "DetectorScore",
    "ScoreCard",
    "TypologyScore",
    "WarningScore",
    "score",
]

#: Due dates and alert-days are calendar days of the platform (UTC+8), as in the simulator.
PLATFORM_ZONE = timezone(timedelta(hours=8))
#: An alert finds a case from the case's start to this long after its end (the contract's rule,
#: topics/labels.py).
AFTER_END = timedelta(hours=48)
#: A missed installment is warned in time when an alert on it comes this long before the end of
#: its due date.
WARN_AHEAD = timedelta(days=3)
# The ids an alert names, in its episode and reasons: what a label's entities are matched with.
_TOKEN = re.compile(r"[\w.\-]+")


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
    #: Of the false alert-days, those on borrowers without a label of this category; the rest
    #: fell on a labelled borrower outside its case's window (before it, or more than 48 h
    #: after it: a late alert on a known case, or a chance one).
    benign_alert_days: int = 0

    @property
    def false_alert_days(self) -> int:
        return self.alert_days - self.true_alert_days

    @property
    def benign_per_1000(self) -> float | None:
        """False alert-days on borrowers without a case, per 1,000 of them."""
        if not self.benign_borrowers:
            return None
        return 1000.0 * self.benign_alert_days / self.benign_borrowers

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
            "benign_alert_days": self.benign_alert_days,
            "benign_alert_days_per_1000": self.benign_per_1000,
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
    """Missed installments alerted on at least ``WARN_AHEAD`` before the end of their due date."""

    installments: int = 0
    warned: int = 0
    #: End of the due date minus the first alert on the installment, per warned installment.
    days_of_warning: list[float] = field(default_factory=list)

    @property
    def share(self) -> float | None:
        return _share(self.warned, self.installments)

    def add(self, other: WarningScore) -> None:
        self.installments += other.installments
        self.warned += other.warned
        self.days_of_warning += other.days_of_warning

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
    #: The same, per delinquency typology (a visible decline, a sudden default, ...).
    warnings: dict[str, WarningScore] = field(default_factory=dict)
    #: The same, over the installments of borrowers in a visible decline (``score``'s
    #: ``visible``); ``None`` when no such predicate was given.
    visible_decline: WarningScore | None = None

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
                pooled.benign_alert_days += c.benign_alert_days
            for name, d in card.detectors.items():
                det = total.detectors.setdefault(name, DetectorScore(name))
                det.categories = sorted({*det.categories, *d.categories})
                det.alerts += d.alerts
                det.true_alerts += d.true_alerts
            total.delinquency.add(card.delinquency)
            if card.visible_decline is not None:
                if total.visible_decline is None:
                    total.visible_decline = WarningScore()
                total.visible_decline.add(card.visible_decline)
            for name, w in card.warnings.items():
                total.warnings.setdefault(name, WarningScore()).add(w)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "period_days": self.period_days,
            "borrowers": self.borrowers,
            "typologies": {k: v.to_dict() for k, v in self.typologies.items()},
            "categories": {k: v.to_dict() for k, v in self.categories.items()},
            "detectors": {k: v.to_dict() for k, v in self.detectors.items()},
            "delinquency": self.delinquency.to_dict(),
            "warnings": {k: v.to_dict() for k, v in self.warnings.items()},
            "visible_decline": (
                None if self.visible_decline is None else self.visible_decline.to_dict()
            ),
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
    #: Every id the alert names in its episode and reasons, its borrower included.
    named: frozenset[str]
    episode: str = ""

    def escalates(self, found: set[tuple[str, str, str]]) -> bool:
        """Whether it raises an alert that found a case: the same detector and borrower, its
        episode that alert's episode and more (``inflation:app-1:confirmed``)."""
        parts = self.episode.split(":")
        return any(
            (self.detector, self.borrower_id, ":".join(parts[:n])) in found
            for n in range(1, len(parts))
        )


@dataclass(frozen=True, slots=True)
class _Case:
    """A label with its window, its ids and its installment."""

    borrower_id: str
    category: str
    typology: str
    start: datetime
    high: datetime
    ids: frozenset[str]  # the borrower and the entities
    loan_id: str | None
    installment: int | None
    due_date: date | None

    def found_by(self, alert: _Seen) -> bool:
        return (
            alert.category == self.category
            and self.start <= alert.ts <= self.high
            and not self.ids.isdisjoint(alert.named)
        )


def _instant(value: Any, what: str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a datetime with a UTC offset, got {value!r}")
    return moment


def _seen(alert: Alert | Mapping[str, Any]) -> _Seen:
    if isinstance(alert, Mapping):
        fields: Mapping[str, Any] = alert
        reasons = [(r.get("message"), r.get("observed")) for r in fields.get("reasons") or ()]
    else:
        fields = {name: getattr(alert, name) for name in _Seen.__slots__ if name != "named"}
        fields = {**fields, "episode": alert.episode}
        reasons = [(r.message, r.observed) for r in alert.reasons]
    installment, loan_id = fields.get("installment"), fields.get("loan_id")
    texts = [str(fields.get("episode") or "")]
    texts += [str(text) for pair in reasons for text in pair if isinstance(text, str)]
    borrower = str(fields["borrower_id"])
    return _Seen(
        borrower_id=borrower,
        category=str(fields["category"]),
        detector=str(fields["detector"]),
        ts=_instant(fields["ts"], "alert ts"),
        loan_id=None if loan_id is None else str(loan_id),
        installment=None if installment is None else int(installment),
        named=frozenset({borrower, *(t for text in texts for t in _TOKEN.findall(text))}),
        episode=texts[0],
    )


def _case(label: CaseLabel) -> _Case:
    return _Case(
        borrower_id=label.borrower_id,
        category=label.category,
        typology=label.typology,
        start=label.start,
        high=label.end + AFTER_END,
        ids=frozenset({label.borrower_id, *label.entities}),
        loan_id=label.loan_id,
        installment=label.installment,
        due_date=label.due_date,
    )


class AlertTruth:
    """Whether one alert is true by the scorer's rule (:func:`score`): it finds a case, or it
    escalates an episode whose earlier alert found one (``inflation:app-1:confirmed`` after
    ``inflation:app-1``). What a team that looked into the alert would conclude, for
    simulated verdicts; call it on the alerts the team sees, in time order."""

    def __init__(self, labels: Iterable[CaseLabel | Mapping[str, Any]]) -> None:
        self.cases: defaultdict[str, list[_Case]] = defaultdict(list)
        for label in iter_labels(labels):
            case = _case(label)
            for name in case.ids:
                self.cases[name].append(case)
        #: Episodes of the alerts seen that found a case, as :func:`score` keeps them.
        self.finding_episodes: set[tuple[str, str, str]] = set()

    def __call__(self, alert: Alert | Mapping[str, Any]) -> bool:
        seen = _seen(alert)
        finds = any(case.found_by(seen) for name in seen.named for case in self.cases.get(name, ()))
        if finds:
            self.finding_episodes.add((seen.detector, seen.borrower_id, seen.episode))
        return finds or seen.escalates(self.finding_episodes)


def score(
    alerts: Iterable[Alert | Mapping[str, Any]],
    labels: Iterable[CaseLabel | Mapping[str, Any]],
    borrowers: Sequence[str] | int,
    period_days: int,
    *,
    zone: tzinfo = PLATFORM_ZONE,
    visible: Callable[[CaseLabel], bool] | None = None,
) -> ScoreCard:
    """Score alerts against the labels of confirmed cases (``topics.labels``).

    Parameters
    ----------
    alerts
        :class:`~topics.records.Alert` records, or their JSON form (``ts`` as ISO-8601), with
        raw ids (``replay --no-mask``): labels name raw ids.
    labels
        :class:`~topics.labels.CaseLabel` values, or their JSON objects.
    borrowers
        The population: its borrower ids, or only its size.
    period_days
        Length of the period, kept on the card to read rates against.
    zone
        Time zone of calendar days (alert-days, due dates): the platform's.
    visible
        Which delinquency cases show a visible decline before the due date; their warnings
        are counted apart too (``ScoreCard.visible_decline``), the figure the issue targets.

    Notes
    -----
    An alert finds a case when it is of the case's category, names its borrower or one of its
    entities (its borrower, or an id in its episode or reasons), and its ``ts`` lies between
    the case's start and its end + 48 h.

    - Recall of a typology: share of its cases found; time to detect is the first finding
      alert's ``ts`` minus the case's start.
    - Precision of a category: one unit per (borrower, category, platform day) with alerts;
      it is true when an alert of it finds a case, or raises one that did (same detector and
      borrower, its episode the finding alert's episode and more: a confirmation such as
      ``inflation:app-1:confirmed`` after ``inflation:app-1``). False alert-days per 1,000
      borrowers without a case of the category; and, of them, those on such borrowers
      (``benign_alert_days``: the rest fell on a case's borrower outside its window).
    - Delinquency: a case's installment is warned when an alert of its category on its
      ``loan_id`` and ``installment`` comes at least 3 days before the end of its due date.

    >>> card = score([], [], borrowers=10, period_days=30)
    >>> card.categories["falsified_flow"].false_per_1000
    0.0
    """
    seen = sorted((_seen(alert) for alert in alerts), key=lambda a: a.ts)
    parsed = list(iter_labels(labels))
    cases = [_case(label) for label in parsed]
    population = borrowers if isinstance(borrowers, int) else len(set(borrowers))
    card = ScoreCard(period_days=period_days, borrowers=population)
    _categories(card, seen, cases, borrowers)
    found = _alert_days(card, seen, cases, zone)
    _typologies(card, cases, found)
    card.delinquency, card.warnings = _warnings(seen, cases, zone)
    if visible is not None:
        shown = [_case(label) for label in parsed if visible(label)]
        card.visible_decline = _warnings(seen, shown, zone)[0]
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


def _judged(
    seen: Sequence[_Seen], cases: Sequence[_Case]
) -> Iterator[tuple[_Seen, list[int], bool]]:
    """Each alert, in time order, with the cases it finds (their positions) and whether it is
    true: it finds one, or it raises an episode whose earlier alert found one."""
    by_id: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for position, case in enumerate(cases):
        for named in case.ids:
            by_id[case.category, named].append(position)
    # Episodes of alerts that found a case: a later alert raising one (a confirmation) is
    # true too, though it finds nothing itself (it may come after the case's window).
    finding_episodes: set[tuple[str, str, str]] = set()
    for alert in seen:
        candidates = {p for named in alert.named for p in by_id.get((alert.category, named), ())}
        finds = [p for p in sorted(candidates) if cases[p].found_by(alert)]
        if finds:
            finding_episodes.add((alert.detector, alert.borrower_id, alert.episode))
        yield alert, finds, bool(finds) or alert.escalates(finding_episodes)


def _alert_days(
    card: ScoreCard, seen: Sequence[_Seen], cases: Sequence[_Case], zone: tzinfo
) -> dict[int, datetime]:
    """Count alert-days per category and alerts per detector, true or not; return, per case
    (its position), the first alert that finds it."""
    alert_days: dict[tuple[str, str, date], bool] = {}
    found: dict[int, datetime] = {}
    for alert, finds, true in _judged(seen, cases):
        for position in finds:
            found.setdefault(position, alert.ts)  # alerts come in time order
        day = alert.ts.astimezone(zone).date()
        key = (alert.borrower_id, alert.category, day)
        alert_days[key] = alert_days.get(key, False) or true
        detector = card.detectors.setdefault(alert.detector, DetectorScore(alert.detector))
        if alert.category not in detector.categories:
            detector.categories.append(alert.category)
        detector.alerts += 1
        detector.true_alerts += true
    labelled = _labelled(cases)
    for (borrower, category, _), true in alert_days.items():
        card.categories[category].alert_days += 1
        card.categories[category].true_alert_days += true
        card.categories[category].benign_alert_days += (
            not true and (category, borrower) not in labelled
        )
    return found


def _labelled(cases: Sequence[_Case]) -> set[tuple[str, str]]:
    """(category, borrower) of every case: whose false alert-days fall outside a window."""
    return {(case.category, case.borrower_id) for case in cases}


def _installments(
    seen: Sequence[_Seen], cases: Sequence[_Case], zone: tzinfo
) -> Iterator[tuple[int, datetime, datetime | None]]:
    """Each delinquency case with an installment (its position), the end of its due date,
    and the first alert on that installment (None: none); ``seen`` in time order."""
    first: dict[tuple[str, str, int], datetime] = {}
    for alert in seen:
        if alert.category == DELINQUENCY_RISK and alert.loan_id is not None:
            if alert.installment is not None:
                key = (alert.borrower_id, alert.loan_id, alert.installment)
                first.setdefault(key, alert.ts)
    for position, case in enumerate(cases):
        if case.category != DELINQUENCY_RISK or case.loan_id is None or case.due_date is None:
            continue
        assert case.installment is not None
        end_of_due = datetime.combine(case.due_date + timedelta(days=1), time(), tzinfo=zone)
        yield position, end_of_due, first.get((case.borrower_id, case.loan_id, case.installment))


def _in_time(alerted: datetime, end_of_due: datetime) -> bool:
    """Whether an installment's first alert warned ``WARN_AHEAD`` before its due date ended."""
    return alerted <= end_of_due - WARN_AHEAD


def _typologies(card: ScoreCard, cases: Sequence[_Case], found: Mapping[int, datetime]) -> None:
    """Recall and time to detect per typology: each case is found by its first alert."""
    for position, case in sorted(enumerate(cases), key=lambda item: item[1].typology):
        result = card.typologies.setdefault(
            case.typology, TypologyScore(case.typology, case.category)
        )
        result.cases += 1
        hit = found.get(position)
        if hit is not None:
            result.detected += 1
            result.hours_to_detect.append((hit - case.start).total_seconds() / 3600)


def _warnings(
    seen: Sequence[_Seen], cases: Sequence[_Case], zone: tzinfo
) -> tuple[WarningScore, dict[str, WarningScore]]:
    """Warned installments, in all and per typology."""
    result, by_typology = WarningScore(), dict[str, WarningScore]()
    for position, end_of_due, alerted in _installments(seen, cases, zone):
        mine = by_typology.setdefault(cases[position].typology, WarningScore())
        for into in (result, mine):
            into.installments += 1
            if alerted is not None and _in_time(alerted, end_of_due):
                into.warned += 1
                into.days_of_warning.append((end_of_due - alerted).total_seconds() / 86_400)
    return result, by_typology
