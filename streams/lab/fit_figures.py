"""The figures ``lendwatch fit`` counts per category and share, and its report as text."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from detectors.base import DELINQUENCY_RISK
from streams.lab.fitted import FittedFile
from streams.lab.scoring import score
from topics.labels import CaseLabel
from topics.records import Alert

__all__ = ["MIN_FALSE_DROP", "Figures", "Scoring", "figures_of", "render_report", "shown"]

#: A move that finds no more cases and warns of no more installments must cut at least this
#: many false alert-days (and more than their count's own noise) to be kept.
MIN_FALSE_DROP = 2


@dataclass(frozen=True)
class Figures:
    """One category's figures on one share of the borrowers, as ``evaluate`` counts them."""

    cases: int
    detected: int
    alert_days: int
    true_alert_days: int
    benign_borrowers: int
    #: Delinquency only: installments missed, and warned ≥3 days ahead.
    installments: int = 0
    warned: int = 0

    @property
    def recall(self) -> float | None:
        return self.detected / self.cases if self.cases else None

    @property
    def precision(self) -> float | None:
        return self.true_alert_days / self.alert_days if self.alert_days else None

    @property
    def false_per_1000(self) -> float | None:
        false = self.alert_days - self.true_alert_days
        return 1000.0 * false / self.benign_borrowers if self.benign_borrowers else None

    @property
    def warned_share(self) -> float | None:
        return self.warned / self.installments if self.installments else None

    @property
    def perfect(self) -> bool:
        """Nothing left to gain: every case found, every miss warned in time, no false
        alert-day. No candidate can rank higher, so the search of the category stops."""
        return (
            self.detected == self.cases
            and self.warned == self.installments
            and self.alert_days == self.true_alert_days
        )

    def rank(self, target: float) -> tuple[float, ...]:
        """What the search maximises: meeting the target precision first; then recall (and
        early warning), then precision; short of the target, precision first.

        For delinquency, early warning ranks before recall: every missed installment is found
        at its deadline whatever the thresholds (its recall is 1 by construction), so what a
        collections team gains from a fit is the warning ahead of the due date, and precision
        above the target is not worth a warning lost.
        """
        precision = 1.0 if self.precision is None else self.precision  # no alerts: none false
        recall, warned = self.recall or 0.0, self.warned_share or 0.0
        false = float(self.true_alert_days - self.alert_days)
        first, second = (warned, recall) if self.installments else (recall, warned)
        if precision >= target:
            return (1.0, first, second, precision, false)
        return (0.0, precision, first, second, false)

    def beyond_noise(self, before: Figures) -> bool:
        """Whether these figures gain on ``before`` by more than chance would: a case found
        or an installment warned more, or false alert-days cut by at least
        :data:`MIN_FALSE_DROP` and by more than the square root of their count (a Poisson
        count's noise).

        On a small history one alert-day more or less is noise: fit on seed 7, a move for one
        false alert-day fewer on 15 cases (and five such moves on 5 delinquency cases) lost
        a case and an early warning on seed 8 (README, "Thresholds fitted")."""
        if self.detected > before.detected or self.warned > before.warned:
            return True
        false_before = before.alert_days - before.true_alert_days
        dropped = false_before - (self.alert_days - self.true_alert_days)
        return dropped >= max(MIN_FALSE_DROP, math.ceil(math.sqrt(false_before)))

    def keeps_warning(self, start: Figures) -> bool:
        """No fewer installments warned in time than ``start`` (the defaults) on the same
        share: a fit may trade nothing of the early warning away, on any share."""
        return self.warned >= start.warned

    def to_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "detected": self.detected,
            "recall": self.recall,
            "alert_days": self.alert_days,
            "true_alert_days": self.true_alert_days,
            "precision": self.precision,
            "false_per_1000_benign": self.false_per_1000,
            "installments": self.installments,
            "warned": self.warned,
            "warned_share": self.warned_share,
        }


@dataclass(frozen=True)
class Scoring:
    """The labels and the two shares of borrowers the figures are counted over."""

    labels: Sequence[CaseLabel]
    shares: Mapping[str, frozenset[str]]
    period_days: int

    def figures(self, alerts: Sequence[Alert], category: str) -> dict[str, Figures]:
        """``category``'s figures on each share."""
        return {
            share: figures_of(alerts, self.labels, borrowers, category, self.period_days)
            for share, borrowers in self.shares.items()
        }


def figures_of(
    alerts: Sequence[Alert],
    labels: Sequence[CaseLabel],
    borrowers: frozenset[str],
    category: str,
    period_days: int,
) -> Figures:
    """``category``'s figures over one share: its borrowers' alerts against its labels."""
    mine = [a for a in alerts if a.borrower_id in borrowers and a.category == category]
    cases = [c for c in labels if c.category == category and c.borrower_id in borrowers]
    card = score(mine, cases, sorted(borrowers), period_days)
    typologies = [t for t in card.typologies.values() if t.category == category]
    scored = card.categories[category]
    warned = card.delinquency if category == DELINQUENCY_RISK else None
    return Figures(
        cases=sum(t.cases for t in typologies),
        detected=sum(t.detected for t in typologies),
        alert_days=scored.alert_days,
        true_alert_days=scored.true_alert_days,
        benign_borrowers=scored.benign_borrowers,
        installments=warned.installments if warned else 0,
        warned=warned.warned if warned else 0,
    )


# --- showing it ---------------------------------------------------------------------------------


def shown(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None else f"{value:{spec}}"


def render_report(fitted: FittedFile) -> str:
    """The report as a table a team reads before shadowing the values: per category, the
    defaults and the fitted values on the held-out share, and what moved."""
    report = fitted.report
    shares = report["borrowers"]
    lines = [
        f"lendwatch fit: {report['engine_runs']} engine runs in {report['wall_seconds']:.1f} s "
        f"({report['jobs']} jobs); borrowers: {shares['fit']} fit, {shares['held_out']} held out",
    ]
    for category, part in report["categories"].items():
        lines += [
            "",
            f"{category} (target precision {part['target_precision']}; cases: "
            f"{part['cases']['fit']} fit, {part['cases']['held_out']} held out; "
            f"{part['searched']} tunables, {part['engine_runs']} runs)",
            f"  {'held out':<24}{'defaults':>10}{'fitted':>10}",
        ]
        before, after = part["before"]["held_out"], part["after"]["held_out"]
        rows = [("recall", "recall", ".3f"), ("precision", "precision", ".3f")]
        rows.append(("false alert-days / 1,000", "false_per_1000_benign", ".2f"))
        if category == DELINQUENCY_RISK:
            rows.append(("warned ≥3 days ahead", "warned_share", ".3f"))
        for name, field_name, spec in rows:
            was, now = shown(before[field_name], spec), shown(after[field_name], spec)
            lines.append(f"  {name:<24}{was:>10}{now:>10}")
        fit_before, fit_after = part["before"]["fit"], part["after"]["fit"]
        lines.append(
            f"  (fit share: recall {shown(fit_before['recall'])} → {shown(fit_after['recall'])}"
            f", precision {shown(fit_before['precision'])} → {shown(fit_after['precision'])})"
        )
        for move in part["moves"]:
            lines.append(f"  {move['key']}: {move['from']} → {move['to']}")
        if not part["moves"]:
            lines.append("  no tunable moved: the defaults stay")
        if part.get("stopped"):
            lines.append(f"  {part['stopped']}")
    return "\n".join(lines) + "\n"
