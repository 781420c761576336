"""Score the detectors against simulated ground truth: recall, precision, warning time, speed."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any, TextIO

from detectors.base import ABNORMAL_BEHAVIOUR, CATEGORIES, DELINQUENCY_RISK, FALSIFIED_FLOW
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from streams.lab.replay import drive, parse_record
from streams.simulate import Label, SimulationConfig, simulate_stream
from topics import ContractError, InputRecord, Source, TopicNames
from topics.records import Alert

__all__ = [
    "CategoryScore",
    "Check",
    "DetectorScore",
    "EvaluationReport",
    "ScoreCard",
    "SeedRun",
    "Targets",
    "TypologyScore",
    "WarningScore",
    "evaluate",
    "render",
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


@dataclass(frozen=True)
class Targets:
    """The acceptance thresholds of the issue; categories without an entry have no target."""

    #: Recall per typology, by the category of its labels.
    recall: Mapping[str, float] = field(
        default_factory=lambda: {FALSIFIED_FLOW: 0.95, ABNORMAL_BEHAVIOUR: 0.95}
    )
    #: Precision of alert-days, per category.
    precision: Mapping[str, float] = field(
        default_factory=lambda: {
            FALSIFIED_FLOW: 0.90,
            ABNORMAL_BEHAVIOUR: 0.90,
            DELINQUENCY_RISK: 0.6,
        }
    )
    #: False alert-days per 1,000 borrowers without a label of the category, at most.
    false_per_1000: Mapping[str, float] = field(
        default_factory=lambda: {FALSIFIED_FLOW: 5.0, ABNORMAL_BEHAVIOUR: 5.0}
    )
    #: Share of missed installments warned at least ``WARN_AHEAD`` before the due date.
    warned_ahead: float = 0.80
    #: Events per second through ``Engine.process``.
    events_per_second: float = 50_000.0


# --- scoring ----------------------------------------------------------------------------------


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
        The simulator's :class:`~streams.simulate.Label` values (or their JSON form).
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
    by_owner: defaultdict[tuple[str, str], list[_Case]] = defaultdict(list)
    for case in cases:
        by_owner[case.borrower_id, case.category].append(case)

    population = borrowers if isinstance(borrowers, int) else len(set(borrowers))
    card = ScoreCard(period_days=period_days, borrowers=population)
    names = [*CATEGORIES]
    names += sorted(({c.category for c in cases} | {a.category for a in seen}) - set(names))
    for name in names:
        labelled = {c.borrower_id for c in cases if c.category == name}
        if isinstance(borrowers, int):
            benign = max(0, borrowers - len(labelled))
        else:
            benign = len(set(borrowers) - labelled)
        card.categories[name] = CategoryScore(name, benign_borrowers=benign)

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

    card.delinquency = _warnings(seen, cases, zone)
    return card


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


# --- running the engine as replay does -------------------------------------------------------


def _valid(
    records: Iterable[Mapping[str, Any]], topics: TopicNames, counts: dict[str, float]
) -> Iterator[tuple[Source, InputRecord]]:
    """Validate records as replay does, lazily; count rejects and time the validation."""
    for raw in records:
        started = time.perf_counter()
        try:
            parsed = parse_record(raw, topics)
        except ContractError:
            counts["rejected"] += 1
            continue
        finally:
            counts["parse_seconds"] += time.perf_counter() - started
        yield parsed


# --- the evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One figure against its target."""

    metric: str
    subject: str
    value: float | None
    target: float
    at_least: bool  # True: value ≥ target; False: value ≤ target

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.at_least else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "subject": self.subject,
            "value": self.value,
            "target": self.target,
            "comparison": ">=" if self.at_least else "<=",
            "met": self.met,
        }


@dataclass
class SeedRun:
    """One simulated population run through the detectors and scored."""

    seed: int
    events: int
    rejected: int
    alerts: int
    simulate_seconds: float
    parse_seconds: float
    baseline_seconds: float
    detector_seconds: float
    wall_seconds: float
    score: ScoreCard

    @property
    def detector_events_per_second(self) -> float | None:
        return self.events / self.detector_seconds if self.detector_seconds else None

    @property
    def baseline_events_per_second(self) -> float | None:
        return self.events / self.baseline_seconds if self.baseline_seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "events": self.events,
            "rejected": self.rejected,
            "alerts": self.alerts,
            "simulate_seconds": self.simulate_seconds,
            "parse_seconds": self.parse_seconds,
            "baseline_seconds": self.baseline_seconds,
            "detector_seconds": self.detector_seconds,
            "wall_seconds": self.wall_seconds,
            "detector_events_per_second": self.detector_events_per_second,
            "baseline_events_per_second": self.baseline_events_per_second,
            "score": self.score.to_dict(),
        }


@dataclass
class EvaluationReport:
    """The result of :func:`evaluate`: per seed, pooled over seeds, and against the targets."""

    seeds: list[int]
    borrowers: int
    days: int
    partitions: int
    thresholds_version: str
    targets: Targets
    runs: list[SeedRun]
    total: ScoreCard
    checks: list[Check]

    @property
    def events(self) -> int:
        return sum(r.events for r in self.runs)

    @property
    def detector_events_per_second(self) -> float | None:
        seconds = sum(r.detector_seconds for r in self.runs)
        return self.events / seconds if seconds else None

    @property
    def baseline_events_per_second(self) -> float | None:
        seconds = sum(r.baseline_seconds for r in self.runs)
        return self.events / seconds if seconds else None

    @property
    def speed_ratio(self) -> float | None:
        """Detector throughput as a share of the baseline's."""
        detectors, baseline = self.detector_events_per_second, self.baseline_events_per_second
        return detectors / baseline if detectors is not None and baseline else None

    @property
    def passed(self) -> bool:
        """Every target with a figure is met (a typology without cases has none)."""
        return all(c.met for c in self.checks if c.met is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": list(self.seeds),
            "borrowers": self.borrowers,
            "days": self.days,
            "partitions": self.partitions,
            "thresholds_version": self.thresholds_version,
            "events": self.events,
            "detector_events_per_second": self.detector_events_per_second,
            "baseline_events_per_second": self.baseline_events_per_second,
            "speed_ratio": self.speed_ratio,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "total": self.total.to_dict(),
            "runs": [r.to_dict() for r in self.runs],
        }


def _checks(card: ScoreCard, events_per_second: float | None, targets: Targets) -> list[Check]:
    checks = []
    for t in card.typologies.values():
        if t.category in targets.recall:
            checks.append(Check("recall", t.typology, t.recall, targets.recall[t.category], True))
    for c in card.categories.values():
        if c.category in targets.precision:
            goal = targets.precision[c.category]
            checks.append(Check("precision", c.category, c.precision, goal, True))
        if c.category in targets.false_per_1000:
            goal = targets.false_per_1000[c.category]
            checks.append(
                Check("false per 1,000 benign", c.category, c.false_per_1000, goal, False)
            )
    if card.delinquency.installments:
        checks.append(
            Check(
                "warned ≥3 days ahead",
                DELINQUENCY_RISK,
                card.delinquency.share,
                targets.warned_ahead,
                True,
            )
        )
    checks.append(
        Check("events/s", "detectors", events_per_second, targets.events_per_second, True)
    )
    return checks


def _run_seed(
    seed: int, borrowers: int, days: int, partitions: int, thresholds: Thresholds
) -> SeedRun:
    started = time.perf_counter()
    config = SimulationConfig(borrowers=borrowers, days=days, seed=seed)
    labels, records = simulate_stream(config)
    counts = {"rejected": 0.0, "parse_seconds": 0.0}
    engine = Engine(thresholds, MemoryStateStore(), MemoryCrossIndex())
    stats = asyncio.run(
        drive(_valid(records, config.topics, counts), engine, partitions=partitions)
    )
    card = score(stats.alerts, labels, borrowers, days)
    return SeedRun(
        seed=seed,
        events=stats.events,
        rejected=int(counts["rejected"]),
        alerts=len(stats.alerts),
        simulate_seconds=stats.source_seconds - counts["parse_seconds"],
        parse_seconds=counts["parse_seconds"],
        baseline_seconds=stats.baseline_seconds,
        detector_seconds=stats.detector_seconds,
        wall_seconds=time.perf_counter() - started,
        score=card,
    )


def evaluate(
    seeds: Sequence[int],
    borrowers: int = 2000,
    days: int = 90,
    partitions: int = 8,
    out: TextIO = sys.stdout,
    *,
    thresholds: Thresholds | None = None,
    targets: Targets | None = None,
) -> EvaluationReport:
    """Simulate each seed, run the detectors as replay does, score them and print one table.

    Parameters
    ----------
    seeds
        One simulated population per seed; figures are pooled over seeds.
    borrowers, days
        Size and length of each simulation.
    partitions
        Partitions the borrowers are spread over (event time is kept per partition).
    out
        Where the progress lines and the table go.
    thresholds
        The detector thresholds to evaluate (default: the built-in ones).
    targets
        The figures to meet (default: the issue's).
    """
    if not seeds:
        raise ValueError("evaluate needs at least one seed")
    thresholds = thresholds or Thresholds()
    targets = targets or Targets()
    runs = []
    for seed in seeds:
        run = _run_seed(seed, borrowers, days, partitions, thresholds)
        runs.append(run)
        print(
            f"seed {seed}: {run.events:,} events, {run.alerts:,} alerts, {run.wall_seconds:.1f} s",
            file=out,
            flush=True,
        )
    total = ScoreCard.pooled([r.score for r in runs])
    report = EvaluationReport(
        seeds=list(seeds),
        borrowers=borrowers,
        days=days,
        partitions=partitions,
        thresholds_version=thresholds.version,
        targets=targets,
        runs=runs,
        total=total,
        checks=[],
    )
    report.checks = _checks(total, report.detector_events_per_second, targets)
    out.write(render(report))
    out.flush()
    return report


# --- the table --------------------------------------------------------------------------------


def _number(value: float | None, spec: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{unit}"


def _verdict(check: Check | None, spec: str) -> str:
    if check is None:
        return ""
    sign = "≥" if check.at_least else "≤"
    mark = {True: "✓", False: "✗", None: "–"}[check.met]
    return f"{sign} {check.target:{spec}} {mark}"


def _get(scores: Mapping[str, Any], key: str, figure: str) -> float | None:
    """A figure of one seed's card; a seed without the typology or category has none."""
    found = scores.get(key)
    return None if found is None else getattr(found, figure)


def _per_seed(values: Iterable[float | None], spec: str) -> str:
    return " ".join(_number(v, spec) for v in values)


def render(report: EvaluationReport) -> str:
    """The evaluation as a plain-text table, each figure beside its target."""
    card, runs = report.total, report.runs
    several = len(runs) > 1
    find = {(c.metric, c.subject): c for c in report.checks}
    seeds = ",".join(str(s) for s in report.seeds)
    lines = [
        "",
        f"lendwatch evaluate: seeds {seeds} · {report.borrowers:,} borrowers · "
        f"{report.days} days · {report.partitions} partitions · "
        f"thresholds {report.thresholds_version}",
        "",
    ]
    extra = "  per seed" if several else ""
    first = 2 + max(
        len("≥3 days before due"),
        *(len(name) for name in (*card.typologies, *card.categories, *card.detectors)),
    )
    second = 2 + max(len("category"), *(len(name) for name in card.categories))

    lines.append(
        f"{'typology':<{first}}{'category':<{second}}{'cases':>6}{'found':>6}  {'recall':>6} "
        f"{'target':<11}{'median TTD':>11}{extra}"
    )
    for t in card.typologies.values():
        recalls = [_get(r.score.typologies, t.typology, "recall") for r in runs]
        tail = "  " + _per_seed(recalls, ".2f") if several else ""
        lines.append(
            f"{t.typology:<{first}}{t.category:<{second}}{t.cases:>6}{t.detected:>6}  "
            f"{_number(t.recall, '.3f'):>6} {_verdict(find.get(('recall', t.typology)), '.2f'):<11}"
            f"{_number(t.median_hours_to_detect, '.1f', ' h'):>11}{tail}"
        )
    lines.append("")

    lines.append(
        f"{'category':<{first}}{'alert-days':>10}{'true':>6}  {'precision':>9} {'target':<11}"
        f"{'benign':>7}{'false':>6}  {'false/1k':>8} {'target':<9}{extra}"
    )
    for c in card.categories.values():
        precisions = [_get(r.score.categories, c.category, "precision") for r in runs]
        tail = "  " + _per_seed(precisions, ".2f") if several else ""
        lines.append(
            f"{c.category:<{first}}{c.alert_days:>10}{c.true_alert_days:>6}  "
            f"{_number(c.precision, '.3f'):>9} "
            f"{_verdict(find.get(('precision', c.category)), '.2f'):<11}"
            f"{c.benign_borrowers:>7}{c.false_alert_days:>6}  "
            f"{_number(c.false_per_1000, '.2f'):>8} "
            f"{_verdict(find.get(('false per 1,000 benign', c.category)), '.0f'):<9}{tail}"
        )
    lines.append(
        "  (alert-day: one per borrower, category and platform day; true within "
        "[label start − 1 d, end + 7 d]; false/1k: false alert-days per 1,000 borrowers "
        f"without such a label over {card.period_days} days)"
    )
    lines.append("")

    w = card.delinquency
    lines.append(
        f"{'delinquency warning':<{first}}{'missed':>10}{'warned':>7}  {'share':>6} {'target':<11}"
        f"{'median warning':>15}"
    )
    lines.append(
        f"{'≥3 days before due':<{first}}{w.installments:>10}{w.warned:>7}  "
        f"{_number(w.share, '.3f'):>6} "
        f"{_verdict(find.get(('warned ≥3 days ahead', DELINQUENCY_RISK)), '.2f'):<11}"
        f"{_number(w.median_days, '.1f', ' d'):>15}"
    )
    lines.append("")

    lines.append(f"{'detector':<{first}}{'category':<{second}}{'alerts':>7}{'true':>6}")
    for d in sorted(card.detectors.values(), key=lambda d: d.detector):
        categories = ",".join(sorted(d.categories))
        lines.append(f"{d.detector:<{first}}{categories:<{second}}{d.alerts:>7}{d.true_alerts:>6}")
    if not card.detectors:
        lines.append("(no alerts)")
    lines.append("")

    speed = find.get(("events/s", "detectors"))
    lines.append(
        f"{'throughput':<12}{'events':>11}{'detectors/s':>13} {'target':<11}"
        f"{'baseline/s':>12}{'ratio':>7}{'simulate':>10}{'parse':>8}{'wall':>9}"
    )
    rows: list[tuple[str, int, float | None, float | None, float, float, float]] = [
        (
            f"seed {r.seed}",
            r.events,
            r.detector_events_per_second,
            r.baseline_events_per_second,
            r.simulate_seconds,
            r.parse_seconds,
            r.wall_seconds,
        )
        for r in runs
    ]
    if several:
        rows.append(
            (
                "all",
                report.events,
                report.detector_events_per_second,
                report.baseline_events_per_second,
                sum(r.simulate_seconds for r in runs),
                sum(r.parse_seconds for r in runs),
                sum(r.wall_seconds for r in runs),
            )
        )
    for name, events, detectors, baseline, simulated, parsed, wall in rows:
        ratio = detectors / baseline if detectors is not None and baseline else None
        verdict = ""
        if speed is not None:
            verdict = _verdict(Check("events/s", name, detectors, speed.target, True), ",.0f")
        lines.append(
            f"{name:<12}{events:>11,}{_number(detectors, ',.0f'):>13} {verdict:<11}"
            f"{_number(baseline, ',.0f'):>12}{_number(ratio, '.3f'):>7}"
            f"{simulated:>9.1f}s{parsed:>7.1f}s{wall:>8.1f}s"
        )
    lines.append(
        "  (detectors/s: events over time inside Engine.process; baseline/s: the same loop "
        "building Inputs for a no-op engine; ratio = detectors/baseline)"
    )
    rejected = sum(r.rejected for r in runs)
    if rejected:
        lines.append(f"  {rejected:,} simulated records failed validation and were skipped")
    lines.append("")

    met = [c.met for c in report.checks if c.met is not None]
    lines.append(f"targets met: {sum(met)}/{len(met)}" + ("" if report.passed else " ✗"))
    return "\n".join(lines) + "\n"
