"""Backtest: history replayed under the current thresholds and a candidate, side by side."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.base import CATEGORIES, DELINQUENCY_RISK
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.registry import build_detectors
from detectors.thresholds import (
    TUNABLES,
    InvalidThreshold,
    Thresholds,
    Tunable,
    Value,
    format_value,
)
from streams.lab.replay import Decoded, drive, run_engine
from streams.lab.review import review
from streams.lab.scoring import ScoreCard, score
from topics.labels import CaseLabel
from topics.records import Alert

__all__ = [
    "BacktestReport",
    "CategoryFigures",
    "Run",
    "SweepPoint",
    "backtest",
    "category_of",
    "changed_sections",
    "parse_sweep",
    "plot_sweep",
    "render_backtest",
    "render_sweep",
    "rerun",
    "rerun_all",
    "run",
    "sweep",
    "sweep_thresholds",
]

#: Labels of confirmed cases (``topics.labels``), or their JSON objects.
Labels = Sequence[CaseLabel | Mapping[str, Any]]

#: A sweep runs the engine once per value: more than this is a typo more often than a plan.
MAX_SWEEP_POINTS = 50
#: Values within this of the sweep's end still count (0.3 + 6 × 0.1 is 0.8999999999999999).
SWEEP_TOLERANCE = 1e-9

UNDEFINED = "–"


# --- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryFigures:
    """What one run did for one category; the scored figures are None without labels."""

    alerts: int
    precision: float | None = None
    recall: float | None = None
    false_per_1000: float | None = None
    #: Delinquency only: share of missed installments warned ≥3 days before the due date.
    warned: float | None = None


@dataclass
class Run:
    """One pass of the engine over the history under one set of thresholds."""

    thresholds: Thresholds
    alerts: list[Alert]
    seconds: float
    card: ScoreCard | None = None

    def by_detector(self) -> Counter[str]:
        return Counter(alert.detector for alert in self.alerts)

    def by_category(self) -> Counter[str]:
        return Counter(alert.category for alert in self.alerts)

    def figures(self, category: str) -> CategoryFigures:
        """Alerts of ``category`` and, when the run was scored, its precision and recall."""
        alerts = self.by_category()[category]
        if self.card is None:
            return CategoryFigures(alerts)
        typologies = [t for t in self.card.typologies.values() if t.category == category]
        cases = sum(t.cases for t in typologies)
        scored = self.card.categories.get(category)
        return CategoryFigures(
            alerts=alerts,
            precision=scored.precision if scored else None,
            # Pooled over the category's typologies: a typology with many cases weighs more.
            recall=sum(t.detected for t in typologies) / cases if cases else None,
            false_per_1000=scored.false_per_1000 if scored else None,
            warned=self.card.delinquency.share if category == DELINQUENCY_RISK else None,
        )


def borrowers_of(history: Decoded) -> list[str]:
    """The population the rates are per: every borrower the input names."""
    return sorted({record.borrower_id for _, record in history.records})


def period_days_of(history: Decoded) -> int:
    """The input's event-time span in whole days, rounded up."""
    if not history.records:
        return 0
    first, last = history.records[0][1].ts, history.records[-1][1].ts
    return math.ceil((last - first).total_seconds() / 86_400)


def run(history: Decoded, thresholds: Thresholds, labels: Labels | None = None) -> Run:
    """Run a fresh engine over ``history``; score its alerts when labels are given."""
    started = time.perf_counter()
    stats = asyncio.run(run_engine(history, thresholds))
    return _scored(history, Run(thresholds, stats.alerts, time.perf_counter() - started), labels)


def _scored(history: Decoded, result: Run, labels: Labels | None) -> Run:
    if labels is not None:
        result.card = score(result.alerts, labels, borrowers_of(history), period_days_of(history))
    return result


def changed_sections(base: Thresholds, candidate: Thresholds) -> set[str]:
    """The sections (one per detector) in which ``candidate`` has a value ``base`` has not."""
    before, after = base.values(), candidate.values()
    return {TUNABLES[key].section for key, value in after.items() if before[key] != value}


def rerun(history: Decoded, base: Run, candidate: Thresholds, labels: Labels | None = None) -> Run:
    """``candidate``'s run, the detectors it leaves as they are taken from ``base``'s run.

    Detectors keep their own slots, index keys and timers, and the engine writes what they
    share, so a detector's alerts do not depend on which others run beside it (as ``fit``
    relies on): only the detectors whose thresholds change run again. The alerts kept carry
    the candidate's version, as a whole run's would (``tests/streams/lab/test_backtest.py``
    compares the two). A history with verdicts runs whole: the verdict models judge each
    alert after every alert before it, whichever detector raised it.
    """
    if history.feedback:
        return run(history, candidate, labels)
    started = time.perf_counter()
    changed = changed_sections(base.thresholds, candidate)
    detectors = build_detectors(candidate)
    section = {d.name: d.section for d in detectors}
    engine = Engine(candidate, MemoryStateStore(), MemoryCrossIndex())
    engine.use([d for d in detectors if d.section in changed])
    stats = asyncio.run(
        drive(history.records, engine, partitions=history.partitions, expected=history.streams)
    )
    kept = [
        alert.derive(thresholds_version=candidate.version)
        for alert in base.alerts
        if section[alert.detector] not in changed
    ]
    alerts = kept + stats.alerts if changed else kept
    return _scored(history, Run(candidate, alerts, time.perf_counter() - started), labels)


#: The history and base run forked candidate runs share (set before the pool forks).
_SHARED: tuple[Decoded, Run] | None = None


def _rerun(candidate: Thresholds) -> list[Alert]:
    assert _SHARED is not None, "set before the pool forks"
    return rerun(*_SHARED, candidate).alerts


def rerun_all(
    history: Decoded,
    base: Run,
    candidates: Sequence[Thresholds],
    labels: Labels | None = None,
    *,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[Run]:
    """:func:`rerun` of every candidate, in ``jobs`` forked processes sharing the history."""
    global _SHARED
    started = time.perf_counter()
    _SHARED = (history, base)
    alerts: list[list[Alert]] = []
    try:
        if jobs <= 1 or len(candidates) <= 1:
            for candidate in candidates:
                alerts.append(_rerun(candidate))
                if progress:
                    progress(len(alerts))
        else:
            with multiprocessing.get_context("fork").Pool(min(jobs, len(candidates))) as pool:
                for found in pool.imap(_rerun, candidates):
                    alerts.append(found)
                    if progress:
                        progress(len(alerts))
    finally:
        _SHARED = None
    seconds = (time.perf_counter() - started) / max(1, len(candidates))  # each, on average
    return [
        _scored(history, Run(candidate, found, seconds), labels)
        for candidate, found in zip(candidates, alerts, strict=True)
    ]


# --- current against candidate ----------------------------------------------------------------


@dataclass
class BacktestReport:
    """The same history under the current thresholds and a candidate."""

    base: Run
    candidate: Run
    events: int
    rejected: int
    borrowers: int
    period_days: int
    partitions: int
    labelled: bool
    #: Detector names in the engine's order, so that a detector without alerts shows as 0.
    detectors: list[str] = field(default_factory=list)

    def changes(self) -> dict[str, tuple[Value, Value]]:
        """Key to (current, candidate) for every tunable the candidate changes."""
        before, after = self.base.thresholds.values(), self.candidate.thresholds.values()
        return {k: (before[k], after[k]) for k in before if before[k] != after[k]}


def backtest(
    history: Decoded, base: Thresholds, candidate: Thresholds, labels: Labels | None = None
) -> BacktestReport:
    """Run ``history`` under ``base``, then ``candidate``'s changed detectors (:func:`rerun`)."""
    current = run(history, base, labels)
    return BacktestReport(
        base=current,
        candidate=rerun(history, current, candidate, labels),
        events=len(history.records),
        rejected=len(history.rejected),
        borrowers=len(borrowers_of(history)),
        period_days=period_days_of(history),
        partitions=history.partitions,
        labelled=labels is not None,
        detectors=[d.name for d in build_detectors(base)],
    )


def review_runs(report: BacktestReport, labels: Labels) -> list[dict[str, Any]]:
    """Both runs' reviews (:func:`~streams.lab.review.review`: cases missed, installments
    warned too late, false alert-days), each line naming its run, ``current`` first: what the
    candidate would gain or lose, case by case."""
    runs = (("current", report.base), ("candidate", report.candidate))
    return [{"run": name, **line} for name, one in runs for line in review(one.alerts, labels)]


# --- one threshold swept ----------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """One value of the swept threshold: alerts, and the figures of its detector's category."""

    value: Value
    alerts: int
    by_category: dict[str, int]
    #: Of the swept key's category (precision and recall None without labels).
    figures: CategoryFigures
    seconds: float


def parse_sweep(text: str, base: Thresholds) -> tuple[str, list[Value]]:
    """``KEY=a:b:step`` as the key and its values a, a+step, … ≤ b, each checked against the
    tunable (and ``base``'s other values) before anything runs."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or spec.count(":") != 2:
        raise InvalidThreshold(f"--sweep {text!r}: expected KEY=start:stop:step")
    declared = _sweepable(key, base)
    start, stop, step = _range(text, spec)
    if declared.type == "int" and not all(v.is_integer() for v in (start, stop, step)):
        raise InvalidThreshold(f"{key} is a whole number: start, stop and step must be whole")
    count = math.floor((stop - start) / step + SWEEP_TOLERANCE) + 1
    if count > MAX_SWEEP_POINTS:
        raise InvalidThreshold(
            f"--sweep {text!r}: {count} values; at most {MAX_SWEEP_POINTS} (one run each)"
        )
    values = [declared.check(round(start + i * step, 10)) for i in range(count)]
    sweep_thresholds(base, key, values)  # refuses a value out of range or inconsistent
    return key, values


def _sweepable(key: str, base: Thresholds) -> Tunable:
    """The tunable ``key`` names, if it is a number."""
    declared = TUNABLES.get(key)
    if declared is None:
        base.with_changes({key: "0"}, version="sweep")  # refuses, naming the keys there are
        raise InvalidThreshold(f"{key}: no such threshold")  # not reached
    if declared.type == "days":
        raise InvalidThreshold(
            f"{key}: a list of days cannot be swept; try one list at a time with --set"
        )
    return declared


def _range(text: str, spec: str) -> tuple[float, float, float]:
    """start, stop and step of a sweep: finite numbers, stop ≥ start, step > 0."""
    try:
        start, stop, step = (float(part) for part in spec.split(":"))
    except ValueError:
        raise InvalidThreshold(f"--sweep {text!r}: start, stop and step must be numbers") from None
    if not all(map(math.isfinite, (start, stop, step))) or step <= 0 or stop < start:
        raise InvalidThreshold(f"--sweep {text!r}: needs finite numbers, step > 0, stop ≥ start")
    return start, stop, step


def sweep_thresholds(base: Thresholds, key: str, values: Sequence[Value]) -> list[Thresholds]:
    """``base`` with ``key`` at each value; the first invalid value refuses them all."""
    built = []
    for value in values:
        try:
            built.append(base.with_changes({key: value}, version=f"{key}={format_value(value)}"))
        except InvalidThreshold as exc:
            raise InvalidThreshold(f"--sweep at {format_value(value)}: {exc}") from None
    return built


def category_of(key: str, thresholds: Thresholds) -> str:
    """The category of the detector a tunable belongs to: the one holding its section."""
    section = getattr(thresholds, TUNABLES[key].section)
    for detector in build_detectors(thresholds):
        if getattr(detector, "thresholds", None) is section:
            return detector.category
    raise LookupError(f"no detector reads {key}")


def sweep(
    history: Decoded,
    base: Thresholds,
    key: str,
    values: Sequence[Value],
    labels: Labels | None = None,
    *,
    jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[SweepPoint]:
    """Run ``history`` under ``base``, then once per value of ``key`` (every value checked
    first) its detector alone (:func:`rerun`), in ``jobs`` processes."""
    category = category_of(key, base)
    candidates = sweep_thresholds(base, key, values)
    current = run(history, base, labels)
    points = []
    for result in rerun_all(history, current, candidates, labels, jobs=jobs, progress=progress):
        thresholds = result.thresholds
        points.append(
            SweepPoint(
                value=thresholds.values()[key],
                alerts=len(result.alerts),
                by_category=dict(result.by_category()),
                figures=result.figures(category),
                seconds=result.seconds,
            )
        )
    return points


# --- rendering --------------------------------------------------------------------------------


def _count(value: int) -> str:
    return f"{value:,}"


def _ratio(value: float | None, spec: str = ".3f") -> str:
    return UNDEFINED if value is None else f"{value:{spec}}"


def _change(before: float | None, after: float | None, spec: str) -> str:
    if before is None or after is None:
        return UNDEFINED
    difference = after - before
    return "0" if abs(difference) < 1e-12 else f"{difference:+{spec}}"


def _row(name: str, before: str, after: str, change: str, width: int) -> str:
    return f"{name:<{width}}{before:>14}{after:>12}{change:>10}".rstrip()


def render_backtest(report: BacktestReport) -> str:
    """The two runs as a plain-text table: one column per run, then the change."""
    base, candidate = report.base, report.candidate
    current = f"current ({base.thresholds.version})"
    width = 2 + max(len("false alert-days / 1,000 benign"), *map(len, report.detectors))
    lines = [
        f"lendwatch backtest: {report.events:,} events · {report.borrowers:,} borrowers · "
        f"{report.period_days} days · {report.partitions} partitions",
    ]
    for key, (before, after) in report.changes().items():
        lines.append(f"  {key}: {format_value(before)} → {format_value(after)}")
    lines += ["", _row("alerts by detector", current, "candidate", "change", width)]
    before_counts, after_counts = base.by_detector(), candidate.by_detector()
    for name in report.detectors:
        b, a = before_counts[name], after_counts[name]
        lines.append(_row(name, _count(b), _count(a), _change(b, a, ","), width))
    b, a = len(base.alerts), len(candidate.alerts)
    lines.append(_row("total", _count(b), _count(a), _change(b, a, ","), width))
    for category in CATEGORIES:
        lines += ["", _row(category, current, "candidate", "", width)]
        was, will = base.figures(category), candidate.figures(category)
        lines += _category_rows(was, will, width, scored=report.labelled)
    if report.labelled:
        lines += [
            "",
            "  (precision: of alert-days, one per borrower, category and day; recall: labelled",
            "  cases alerted, pooled over the category's typologies; false alert-days per 1,000",
            "  borrowers without a label of the category; warned: missed installments alerted",
            "  ≥3 days before due; – where a figure is undefined)",
        ]
    else:
        lines += ["", "  (no --labels: alert counts only)"]
    return "\n".join(lines) + "\n"


def _category_rows(
    before: CategoryFigures, after: CategoryFigures, width: int, *, scored: bool
) -> list[str]:
    rows = [
        _row(
            "  alerts",
            _count(before.alerts),
            _count(after.alerts),
            _change(before.alerts, after.alerts, ","),
            width,
        )
    ]
    if not scored:
        return rows
    figures: list[tuple[str, float | None, float | None, str]] = [
        ("  precision", before.precision, after.precision, ".3f"),
        ("  recall", before.recall, after.recall, ".3f"),
        ("  false alert-days / 1,000 benign", before.false_per_1000, after.false_per_1000, ".2f"),
    ]
    if before.warned is not None or after.warned is not None:
        figures.append(("  warned ≥3 days ahead", before.warned, after.warned, ".3f"))
    for name, b, a, spec in figures:
        rows.append(_row(name, _ratio(b, spec), _ratio(a, spec), _change(b, a, spec), width))
    return rows


def render_sweep(
    key: str,
    category: str,
    points: Sequence[SweepPoint],
    labelled: bool,
    *,
    current: Value | None = None,
) -> str:
    """The sweep as a table, one row per value: alerts per category, and with labels the
    figures of the category the swept detector alerts in."""
    now = "" if current is None else f" (now {format_value(current)})"
    lines = [f"sweep of {key}{now}: alerts per category"]
    if labelled:
        lines.append(f"  and the figures of {category}, the category its detector alerts in")
    columns = [(c, len(c) + 2) for c in CATEGORIES]
    header = f"{'value':<8}{'alerts':>8}" + "".join(f"{c:>{w}}" for c, w in columns)
    if labelled:
        header += f"{'precision':>11}{'recall':>8}{'false/1k':>10}"
        header += f"{'warned':>8}" if category == DELINQUENCY_RISK else ""
    lines.append(header)
    for p in points:
        line = f"{format_value(p.value):<8}{p.alerts:>8,}" + "".join(
            f"{p.by_category.get(c, 0):>{w},}" for c, w in columns
        )
        if labelled:
            f = p.figures
            line += f"{_ratio(f.precision):>11}{_ratio(f.recall):>8}"
            line += f"{_ratio(f.false_per_1000, '.2f'):>10}"
            line += f"{_ratio(f.warned):>8}" if category == DELINQUENCY_RISK else ""
        lines.append(line)
    return "\n".join(lines) + "\n"


def plot_sweep(
    key: str,
    category: str,
    points: Sequence[SweepPoint],
    labelled: bool,
    path: Path,
    *,
    current: Value | None = None,
) -> Path:
    """The trade-off curve as a PNG: precision and recall (or alert counts, without labels)
    against the threshold, false alerts per 1,000 on a second axis."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    from matplotlib.figure import Figure  # no pyplot: nothing global to leak or close

    figure = Figure(figsize=(8, 5.5), dpi=120)
    axis = figure.subplots()
    if current is not None:
        axis.axvline(
            _number(current), color="grey", linestyle=":", label=f"now {format_value(current)}"
        )
    xs = [_number(p.value) for p in points]
    if labelled:
        _plot_scored(axis, xs, category, points)
    else:
        axis.plot(xs, [p.figures.alerts for p in points], "o-", label=f"{category} alerts")
        axis.plot(xs, [p.alerts for p in points], "s--", label="all alerts")
        axis.set_ylim(bottom=0)
        axis.set_ylabel("alerts")
        _legend(axis, *axis.get_legend_handles_labels())
    axis.set_xlabel(key)
    axis.grid(True, alpha=0.3)
    axis.set_title(f"lendwatch backtest: sweep of {key}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def _plot_scored(axis: Any, xs: list[float], category: str, points: Sequence[SweepPoint]) -> None:
    """Precision and recall on the left axis, false alert-days on a right one, one legend."""
    axis.plot(xs, _nan([p.figures.precision for p in points]), "o-", label="precision")
    axis.plot(xs, _nan([p.figures.recall for p in points]), "s-", label="recall")
    if category == DELINQUENCY_RISK:  # recall counts alerts after the miss too; this does not
        warned = _nan([p.figures.warned for p in points])
        axis.plot(xs, warned, "D-", color="tab:green", label="warned ≥3 days ahead")
    axis.set_ylim(-0.02, 1.02)
    axis.set_ylabel(f"{category}: shares")
    second = axis.twinx()
    second.plot(
        xs,
        _nan([p.figures.false_per_1000 for p in points]),
        "^--",
        color="tab:red",
        label="false alert-days / 1,000 benign",
    )
    second.set_ylabel("false alert-days per 1,000 benign borrowers", color="tab:red")
    second.set_ylim(bottom=0)
    left, right = axis.get_legend_handles_labels(), second.get_legend_handles_labels()
    _legend(axis, left[0] + right[0], left[1] + right[1])


def _legend(axis: Any, handles: list[Any], names: list[str]) -> None:
    """One legend under the plot, where it hides no curve of either axis."""
    axis.legend(
        handles, names, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=3, frameon=False
    )


def _number(value: Value) -> float:
    if isinstance(value, tuple):
        raise TypeError("a list of days has no place on an axis")
    return float(value)


def _nan(values: Sequence[float | None]) -> list[float]:
    """Undefined figures as gaps in a line, not as zeros."""
    return [math.nan if v is None else v for v in values]
