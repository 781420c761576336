"""The verdict models' ablation in ``lendwatch evaluate``: the rules alone against the rules
with the verdict models, fed simulated verdicts, per category, first against last 30 days.

Small interface: :func:`ablate` takes the alerts of one run (in the order the engine raised
them) and its labels and returns an :class:`Ablation`; :func:`render_ablation` prints the
pooled table. The rules' alerts do not depend on the verdicts, so one engine pass serves both
arms (see :mod:`streams.lab.verdict_gate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from detectors.base import CATEGORIES
from detectors.verdicts import VerdictModels, VerdictSettings
from streams.lab.scoring import PLATFORM_ZONE, AlertTruth, score
from streams.lab.verdict_gate import SimulatedFeedback, VerdictGate
from topics.labels import CaseLabel
from topics.records import Alert

__all__ = ["Ablation", "AblationOptions", "ArmFigures", "ablate", "pooled", "render_ablation"]

WINDOW_DAYS = 30
#: The issue's bar: false alerts of every category down this much in the last 30 days.
FALSE_DROP_TARGET = 0.30


@dataclass(frozen=True)
class AblationOptions:
    """Which alerts get a verdict (a share, by alert id) and how long after them."""

    share: float = 1.0
    delay_days: float = 2.0
    settings: VerdictSettings = field(default_factory=VerdictSettings)


@dataclass
class ArmFigures:
    """One arm's figures of one category: alert-days true and false per window, cases found."""

    true_first: int = 0
    false_first: int = 0
    true_last: int = 0
    false_last: int = 0
    cases_found: int = 0
    warned: int = 0

    def add(self, other: ArmFigures) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Ablation:
    """Both arms of one or more runs, per category; ``held`` alerts and verdict outcomes."""

    rules: dict[str, ArmFigures]
    models: dict[str, ArmFigures]
    held: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def false_drop(self, category: str) -> float | None:
        before = self.rules[category].false_last
        if not before:
            return None
        return 1.0 - self.models[category].false_last / before

    def true_lost(self, category: str) -> int:
        rules, models = self.rules[category], self.models[category]
        return max(0, rules.true_last - models.true_last) + max(
            0, rules.cases_found - models.cases_found
        ) + max(0, rules.warned - models.warned)  # fmt: skip

    def met(self, category: str) -> bool | None:
        drop = self.false_drop(category)
        if drop is None:
            return None
        return drop >= FALSE_DROP_TARGET and self.true_lost(category) == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "outcomes": dict(self.outcomes),
            "categories": {
                c: {
                    "rules": vars(self.rules[c]),
                    "models": vars(self.models[c]),
                    "false_drop_last_30_days": self.false_drop(c),
                    "true_lost": self.true_lost(c),
                    "met": self.met(c),
                }
                for c in CATEGORIES
            },
        }


def _figures(
    alerts: Sequence[Alert], labels: Sequence[CaseLabel], borrowers: int, days: int,
    start: datetime,
) -> dict[str, ArmFigures]:  # fmt: skip
    """Per category: alert-days true and false in the first and last 30 days, cases found.

    Each alert is judged over the whole run (:class:`AlertTruth`, the scorer's rule), then
    counted in its window: a confirmation in the last 30 days of an alert that found its case
    before them is true, as :func:`score` counts it over the run."""
    first_end = start + timedelta(days=WINDOW_DAYS)
    last_start = start + timedelta(days=days - WINDOW_DAYS)
    truth = AlertTruth(labels)
    first: dict[tuple[str, str, date], bool] = {}
    last: dict[tuple[str, str, date], bool] = {}
    for alert in sorted(alerts, key=lambda a: a.ts):
        true = truth(alert)
        key = (alert.borrower_id, alert.category, alert.ts.astimezone(PLATFORM_ZONE).date())
        for window, inside in ((first, alert.ts < first_end), (last, alert.ts >= last_start)):
            if inside:
                window[key] = window.get(key, False) or true
    figures = {category: ArmFigures() for category in CATEGORIES}
    for (_, category, _), true in first.items():
        figures[category].true_first += true
        figures[category].false_first += not true
    for (_, category, _), true in last.items():
        figures[category].true_last += true
        figures[category].false_last += not true
    whole = score(alerts, labels, borrowers, days)
    for category, arm in figures.items():
        arm.cases_found = sum(
            t.detected for t in whole.typologies.values() if t.category == category
        )
    figures["delinquency_risk"].warned = whole.delinquency.warned
    return figures


def ablate(
    alerts: Sequence[Alert],
    labels: Sequence[CaseLabel],
    *,
    borrowers: int,
    days: int,
    start: datetime,
    options: AblationOptions | None = None,
) -> Ablation:
    """Run the verdict models over one run's alerts with simulated verdicts; score both arms."""
    options = options or AblationOptions()
    feedback = SimulatedFeedback(
        AlertTruth(labels), options.share, timedelta(days=options.delay_days)
    )
    gate = VerdictGate(VerdictModels(options.settings), feedback)
    kept = gate.admit(alerts)
    return Ablation(
        rules=_figures(alerts, labels, borrowers, days, start),
        models=_figures(kept, labels, borrowers, days, start),
        held=len(gate.held),
        outcomes=dict(gate.outcomes),
    )


def pooled(ablations: Iterable[Ablation]) -> Ablation:
    """Runs added up, figure by figure."""
    total = Ablation({c: ArmFigures() for c in CATEGORIES}, {c: ArmFigures() for c in CATEGORIES})
    for ablation in ablations:
        for category in CATEGORIES:
            total.rules[category].add(ablation.rules[category])
            total.models[category].add(ablation.models[category])
        total.held += ablation.held
        for outcome, count in ablation.outcomes.items():
            total.outcomes[outcome] = total.outcomes.get(outcome, 0) + count
    return total


def render_ablation(ablation: Ablation, options: AblationOptions, title: str = "") -> str:
    """The table: per category, rules alone against rules + verdict models."""
    head = (
        f"Verdict models{' ' + title if title else ''}: a verdict on {options.share:.0%} of "
        f"published alerts, {options.delay_days:g} days after each; alert-days true/false, "
        f"first and last {WINDOW_DAYS} days"
    )
    rows = [head, f"{'category':<20} {'arm':<8} {'first t/f':>10} {'last t/f':>10} "
            f"{'cases':>6} {'warned':>6}  false drop (last)  true lost  met"]  # fmt: skip
    for category in CATEGORIES:
        for name, arm in (
            ("rules", ablation.rules[category]),
            ("+models", ablation.models[category]),
        ):
            row = (
                f"{category:<20} {name:<8} {arm.true_first:>4}/{arm.false_first:<5} "
                f"{arm.true_last:>4}/{arm.false_last:<5} {arm.cases_found:>6} {arm.warned:>6}"
            )
            if name == "+models":
                drop, met = ablation.false_drop(category), ablation.met(category)
                shown = "—" if met is None else "yes" if met else "NO"
                row += (
                    f"  {'—' if drop is None else f'{drop:+.0%}':>17}  "
                    f"{ablation.true_lost(category):>9}  {shown}"
                )
            rows.append(row)
    rows.append(f"held back: {ablation.held}; verdicts: {ablation.outcomes}")
    return "\n".join(rows) + "\n"
