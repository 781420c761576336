"""The table ``lendwatch evaluate`` prints: each figure beside its target."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.base import DELINQUENCY_RISK

#: The check of the warnings over borrowers in a visible decline (streams.lab.evaluate).
WARNED_VISIBLE = "warned ≥3 days ahead, visible decline"

if TYPE_CHECKING:
    from streams.lab.evaluate import Check, EvaluationReport

__all__ = ["render"]


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


@dataclass(frozen=True)
class _Table:
    """What every section of the table reads: the report, its checks by figure, the widths."""

    report: EvaluationReport
    checks: Mapping[tuple[str, str], Check]
    #: Width of the first column (names) and of the second (categories).
    first: int
    second: int

    @classmethod
    def of(cls, report: EvaluationReport) -> _Table:
        card = report.total
        first = 2 + max(
            len("≥3 days before due"),
            *(len(name) for name in (*card.typologies, *card.categories, *card.detectors)),
        )
        second = 2 + max(len("category"), *(len(name) for name in card.categories))
        checks = {(c.metric, c.subject): c for c in report.checks}
        return cls(report, checks, first, second)

    @property
    def several(self) -> bool:
        """More than one seed: each section adds a figure per seed."""
        return len(self.report.runs) > 1

    @property
    def per_seed(self) -> str:
        return "  per seed" if self.several else ""


def render(report: EvaluationReport) -> str:
    """The evaluation as a plain-text table, each figure beside its target."""
    table = _Table.of(report)
    lines = _title(report)
    for section in (_typologies, _categories, _warnings, _detectors, _throughput):
        lines += section(table)
        lines.append("")
    met = [c.met for c in report.checks if c.met is not None]
    lines.append(f"targets met: {sum(met)}/{len(met)}" + ("" if report.passed else " ✗"))
    return "\n".join(lines) + "\n"


def _title(report: EvaluationReport) -> list[str]:
    seeds = ",".join(str(s) for s in report.seeds)
    return [
        "",
        f"lendwatch evaluate: profile {report.profile} · seeds {seeds} · "
        f"{report.borrowers:,} borrowers · "
        f"{report.days} days · {report.partitions} partitions · "
        f"thresholds {report.thresholds_version}",
        "",
    ]


def _typologies(table: _Table) -> list[str]:
    """Recall and time to detect per typology."""
    first, second, runs = table.first, table.second, table.report.runs
    lines = [
        f"{'typology':<{first}}{'category':<{second}}{'cases':>6}{'found':>6}  {'recall':>6} "
        f"{'target':<11}{'median TTD':>11}{table.per_seed}"
    ]
    for t in table.report.total.typologies.values():
        recalls = [_get(r.score.typologies, t.typology, "recall") for r in runs]
        tail = "  " + _per_seed(recalls, ".2f") if table.several else ""
        verdict = _verdict(table.checks.get(("recall", t.typology)), ".2f")
        lines.append(
            f"{t.typology:<{first}}{t.category:<{second}}{t.cases:>6}{t.detected:>6}  "
            f"{_number(t.recall, '.3f'):>6} {verdict:<11}"
            f"{_number(t.median_hours_to_detect, '.1f', ' h'):>11}{tail}"
        )
    return lines


def _categories(table: _Table) -> list[str]:
    """Precision and false alert-days per category."""
    first, card, runs = table.first, table.report.total, table.report.runs
    lines = [
        f"{'category':<{first}}{'alert-days':>10}{'true':>6}  {'precision':>9} {'target':<11}"
        f"{'benign':>7}{'false':>6}{'on benign':>10}  {'false/1k':>8} {'target':<9}"
        f"{table.per_seed}"
    ]
    for c in card.categories.values():
        precisions = [_get(r.score.categories, c.category, "precision") for r in runs]
        tail = "  " + _per_seed(precisions, ".2f") if table.several else ""
        lines.append(
            f"{c.category:<{first}}{c.alert_days:>10}{c.true_alert_days:>6}  "
            f"{_number(c.precision, '.3f'):>9} "
            f"{_verdict(table.checks.get(('precision', c.category)), '.2f'):<11}"
            f"{c.benign_borrowers:>7}{c.false_alert_days:>6}{c.benign_alert_days:>10}  "
            f"{_number(c.false_per_1000, '.2f'):>8} "
            f"{_verdict(table.checks.get(('false per 1,000 benign', c.category)), '.0f'):<9}{tail}"
        )
    lines.append(
        "  (alert-day: one per borrower, category and platform day; true when one of its "
        "alerts names a case's borrower or entity within [start, end + 48 h]; on benign: the "
        "false ones on borrowers without a case of the category, the rest on a case's borrower "
        "outside its window; false/1k: false alert-days per 1,000 borrowers without such a case "
        f"over {card.period_days} days)"
    )
    return lines


def _warnings(table: _Table) -> list[str]:
    """Missed installments warned in time: all of them, and those after a visible decline."""
    first, card = table.first, table.report.total
    rows = [("≥3 days before due", card.delinquency, "warned ≥3 days ahead")]
    if card.visible_decline is not None:
        rows.append(("  visible decline", card.visible_decline, WARNED_VISIBLE))
    lines = [
        f"{'delinquency warning':<{first}}{'missed':>10}{'warned':>7}  {'share':>6} {'target':<11}"
        f"{'median warning':>15}"
    ]
    for name, w, metric in rows:
        verdict = _verdict(table.checks.get((metric, DELINQUENCY_RISK)), ".2f")
        lines.append(
            f"{name:<{first}}{w.installments:>10}{w.warned:>7}  "
            f"{_number(w.share, '.3f'):>6} {verdict:<11}"
            f"{_number(w.median_days, '.1f', ' d'):>15}"
        )
    return lines


def _detectors(table: _Table) -> list[str]:
    """Alerts per detector, and how many fall on a true alert-day."""
    first, second, card = table.first, table.second, table.report.total
    lines = [f"{'detector':<{first}}{'category':<{second}}{'alerts':>7}{'true':>6}"]
    for d in sorted(card.detectors.values(), key=lambda d: d.detector):
        categories = ",".join(sorted(d.categories))
        lines.append(f"{d.detector:<{first}}{categories:<{second}}{d.alerts:>7}{d.true_alerts:>6}")
    if not card.detectors:
        lines.append("(no alerts)")
    return lines


def _throughput(table: _Table) -> list[str]:
    """Events per second through the detectors and through the baseline, per seed and in all."""
    report, runs = table.report, table.report.runs
    speed = table.checks.get(("events/s", "detectors"))
    lines = [
        f"{'throughput':<12}{'events':>11}{'detectors/s':>13} {'target':<11}"
        f"{'baseline/s':>12}{'ratio':>7}{'simulate':>10}{'parse':>8}{'wall':>9}"
    ]
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
    if table.several:
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
            verdict = _verdict(dataclasses.replace(speed, subject=name, value=detectors), ",.0f")
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
    return lines
