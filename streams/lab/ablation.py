"""``lendwatch evaluate --ablation``: does each online model earn its place?

Issue 14: a model that adds nothing measurable is removed, not kept as decoration. An
ablation runs the same simulated populations under several *arms* (the rules alone, the rules
with the models, ...) and reports, per arm and category, precision and the early warning of
missed installments over the whole period and over its first and last 30 days, so that a
model that learns online shows whether it helps once it has learnt.

An :class:`Arm` is a name, the thresholds it runs under and, optionally, a change to the input
(``feed``: simulated verdicts, for a model that learns from them): anything another model's
ablation needs joins as one more arm.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from detectors.base import DELINQUENCY_RISK, FALSIFIED_FLOW
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from sim import Profile, SimulationConfig, simulate_stream
from streams.lab.evaluate import _valid, visible_decline
from streams.lab.replay import drive
from streams.lab.scoring import score
from topics.labels import CaseLabel
from topics.records import Alert

__all__ = [
    "Arm",
    "ArmFigures",
    "Window",
    "ablate",
    "default_arms",
    "render_ablation",
    "run_arm",
]

#: Days of the first and last windows the figures are also counted over.
WINDOW_DAYS = 30
#: The categories an ablation reports: those whose detectors carry a model.
CATEGORIES = (DELINQUENCY_RISK, FALSIFIED_FLOW)

Feed = Callable[[Sequence[CaseLabel], Iterable[Mapping[str, Any]]], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class Arm:
    """One side of an ablation: its name, its thresholds, and optionally what it changes in
    the simulated input (``feed(labels, records)``), e.g. verdicts on a share of alerts."""

    name: str
    thresholds: Thresholds
    feed: Feed | None = None


def default_arms(thresholds: Thresholds | None = None) -> list[Arm]:
    """The rules alone: no detector carries a model now. This ablation removed both River
    models (``delinquency``'s classifier, ``flow_anomaly``'s ``HalfSpaceTrees``: neither
    changed an alert, docs/evaluation.md); a model under test joins as its own arm, the same
    thresholds with the model on (or a ``feed`` that gives it its labels)."""
    return [Arm("rules", thresholds or Thresholds())]


@dataclass(frozen=True)
class Window:
    """A span of the period, in days from its start: all of it, the first or the last 30."""

    name: str
    first: int
    last: int  # exclusive


@dataclass
class ArmFigures:
    """Counts of one arm over some runs, per window: alert-days and true ones per category,
    missed installments after a visible decline and those warned in time; alerts per
    detector (all, true)."""

    alert_days: dict[tuple[str, str], int] = field(default_factory=dict)
    true_days: dict[tuple[str, str], int] = field(default_factory=dict)
    installments: dict[str, int] = field(default_factory=dict)
    warned: dict[str, int] = field(default_factory=dict)
    detectors: dict[str, list[int]] = field(default_factory=dict)

    def add(self, other: ArmFigures) -> None:
        for key, value in other.alert_days.items():
            self.alert_days[key] = self.alert_days.get(key, 0) + value
        for key, value in other.true_days.items():
            self.true_days[key] = self.true_days.get(key, 0) + value
        for window, value in other.installments.items():
            self.installments[window] = self.installments.get(window, 0) + value
        for window, value in other.warned.items():
            self.warned[window] = self.warned.get(window, 0) + value
        for name, (alerts, true) in other.detectors.items():
            seen = self.detectors.setdefault(name, [0, 0])
            seen[0] += alerts
            seen[1] += true

    def precision(self, window: str, category: str) -> float | None:
        days = self.alert_days.get((window, category), 0)
        return self.true_days.get((window, category), 0) / days if days else None

    def warned_share(self, window: str) -> float | None:
        missed = self.installments.get(window, 0)
        return self.warned.get(window, 0) / missed if missed else None


def windows_of(days: int) -> list[Window]:
    """The whole period, then its first and last ``WINDOW_DAYS`` (when it is long enough)."""
    spans = [Window("all", 0, days)]
    if days >= 2 * WINDOW_DAYS:
        spans += [
            Window(f"first {WINDOW_DAYS} d", 0, WINDOW_DAYS),
            Window(f"last {WINDOW_DAYS} d", days - WINDOW_DAYS, days),
        ]
    return spans


def _in_window(
    alerts: Sequence[Alert], labels: Sequence[CaseLabel], config: SimulationConfig, span: Window
) -> tuple[list[Alert], list[CaseLabel]]:
    """The alerts stamped in the window (their precision), and the delinquency cases due in
    it (their early warning, by every alert on them, whenever it came)."""
    start = config.start + timedelta(days=span.first)
    end = config.start + timedelta(days=span.last)
    due = [
        label
        for label in labels
        if label.due_date is not None and start.date() <= label.due_date < end.date()
    ]
    return [a for a in alerts if start <= a.ts < end], due


def _figures(
    alerts: Sequence[Alert], labels: Sequence[CaseLabel], config: SimulationConfig
) -> ArmFigures:
    """One run's counts, per window. An alert-day is true or false by every case, whenever
    the case began; a missed installment counts in the window of its due date."""
    figures = ArmFigures()
    borrowers = config.borrowers
    for span in windows_of(config.days):
        mine, due = _in_window(alerts, labels, config, span)
        card = score(mine, labels, borrowers, span.last - span.first)
        for category in CATEGORIES:
            scored = card.categories.get(category)
            figures.alert_days[(span.name, category)] = scored.alert_days if scored else 0
            figures.true_days[(span.name, category)] = scored.true_alert_days if scored else 0
        visible = score(alerts, due, borrowers, config.days, visible=visible_decline)
        warned = visible.visible_decline
        figures.installments[span.name] = warned.installments if warned else 0
        figures.warned[span.name] = warned.warned if warned else 0
        if span.name == "all":
            figures.detectors = {
                name: [d.alerts, d.true_alerts] for name, d in card.detectors.items()
            }
    return figures


def run_arm(
    arm: Arm, profile: Profile, seed: int, borrowers: int, days: int, partitions: int
) -> ArmFigures:
    """Simulate one population, run the detectors under the arm as replay does, count."""
    config = SimulationConfig(borrowers=borrowers, days=days, seed=seed, profile=profile)
    labels, records = simulate_stream(config)
    fed = records if arm.feed is None else arm.feed(labels, records)
    counts = {"rejected": 0.0, "parse_seconds": 0.0}
    engine = Engine(arm.thresholds, MemoryStateStore(), MemoryCrossIndex())
    stats = asyncio.run(drive(_valid(fed, config.topics, counts), engine, partitions=partitions))
    return _figures(stats.alerts, labels, config)


Job = tuple[Arm, Profile, int, int, int, int]


def _job(job: Job) -> ArmFigures:
    return run_arm(*job)


def ablate(
    arms: Sequence[Arm],
    profiles: Sequence[Profile],
    seeds: Sequence[int],
    *,
    borrowers: int,
    days: int,
    partitions: int,
    jobs: int | None = None,
) -> dict[str, dict[str, ArmFigures]]:
    """Every arm over every profile and seed: arm -> profile name -> pooled counts."""
    work: list[Job] = [
        (arm, profile, seed, borrowers, days, partitions)
        for arm in arms
        for profile in profiles
        for seed in seeds
    ]
    workers = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    if workers == 1:
        results: Iterator[ArmFigures] = map(_job, work)
        return _pooled(work, results)
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return _pooled(work, pool.map(_job, work))


def _pooled(work: Sequence[Job], results: Iterable[ArmFigures]) -> dict[str, dict[str, ArmFigures]]:
    table: dict[str, dict[str, ArmFigures]] = {}
    for (arm, profile, *_), figures in zip(work, results, strict=True):
        table.setdefault(arm.name, {}).setdefault(profile.name, ArmFigures()).add(figures)
    return table


def _shown(value: float | None) -> str:
    return "   –" if value is None else f"{value:.2f}"


def render_ablation(table: Mapping[str, Mapping[str, ArmFigures]], days: int) -> str:
    """One line per profile, arm and window: precision per category, then the early warning
    of missed installments after a visible decline (warned/missed); then alerts per detector
    whose count differs between arms."""
    lines = [
        "ablation: each arm (rules alone, rules + a model) over the same populations "
        "(precision of alert-days; warned ≥3 d before due, of missed installments after a "
        "visible decline)",
        "",
        f"{'profile':<14}{'arm':<16}{'window':<12}"
        + "".join(f"{'prec ' + c:<26}" for c in CATEGORIES)
        + "warned",
    ]
    profiles = sorted({p for by_profile in table.values() for p in by_profile})
    for profile in profiles:
        for arm, by_profile in table.items():
            figures = by_profile.get(profile)
            if figures is None:
                continue
            for span in windows_of(days):
                cells = "".join(
                    f"{_shown(figures.precision(span.name, c))} "
                    f"({figures.true_days.get((span.name, c), 0)}/"
                    f"{figures.alert_days.get((span.name, c), 0)})".ljust(26)
                    for c in CATEGORIES
                )
                warned = (
                    f"{_shown(figures.warned_share(span.name))} "
                    f"({figures.warned.get(span.name, 0)}/{figures.installments.get(span.name, 0)})"
                )
                lines.append(f"{profile:<14}{arm:<16}{span.name:<12}{cells}{warned}")
    lines += ["", *_detector_lines(table)]
    return "\n".join(lines)


def _detector_lines(table: Mapping[str, Mapping[str, ArmFigures]]) -> list[str]:
    """Alerts (true) per detector and arm, over every profile, where the arms differ."""
    totals: dict[str, dict[str, list[int]]] = {}
    for arm, by_profile in table.items():
        for figures in by_profile.values():
            for name, (alerts, true) in figures.detectors.items():
                seen = totals.setdefault(name, {}).setdefault(arm, [0, 0])
                seen[0] += alerts
                seen[1] += true
    arms = list(table)
    lines = ["detector alerts (true) per arm, all profiles: " + " · ".join(arms)]
    for name, by_arm in sorted(totals.items()):
        cells = [by_arm.get(arm, [0, 0]) for arm in arms]
        same = all(cell == cells[0] for cell in cells)
        shown = "  ".join(f"{a} ({t})" for a, t in cells)
        lines.append(f"  {name:<22}{shown}{'  (same)' if same else ''}")
    return lines


def to_dict(table: Mapping[str, Mapping[str, ArmFigures]]) -> dict[str, Any]:
    """The counts as JSON-ready data (keys joined with '|')."""
    return {
        arm: {
            profile: {
                name: {"|".join(k) if isinstance(k, tuple) else k: v for k, v in value.items()}
                for name, value in dataclasses.asdict(figures).items()
            }
            for profile, figures in by_profile.items()
        }
        for arm, by_profile in table.items()
    }
