"""``lendwatch evaluate``: the detectors over simulated populations, scored against targets."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from detectors.base import ABNORMAL_BEHAVIOUR, DELINQUENCY_RISK, FALSIFIED_FLOW
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.thresholds import Thresholds
from sim import BASELINE, Profile, SimulationConfig, simulate_stream
from streams.lab.evaluation_table import WARNED_VISIBLE, render
from streams.lab.replay import drive, parse_record
from streams.lab.review import review
from streams.lab.scoring import ScoreCard, score
from streams.lab.verdict_ablation import Ablation, AblationOptions, ablate, pooled, render_ablation
from topics import ContractError, InputRecord, Source, TopicNames
from topics.labels import CaseLabel

__all__ = [
    "WARNED_VISIBLE",
    "Check",
    "EvaluationReport",
    "SeedRun",
    "Targets",
    "evaluate",
    "render",
    "report_of",
    "run_seed",
    "visible_decline",
]


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
    #: The same share over borrowers in a visible decline before the due date (the issue's).
    warned_visible: float = 0.90
    #: Events per second through ``Engine.process``.
    events_per_second: float = 50_000.0


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
    #: The rules alone against the rules with the verdict models (simulated verdicts).
    ablation: Ablation | None = None
    #: The cases missed, the installments not warned in time and the false alert-days, each
    #: with its alerts' reasons (``streams.lab.review.review``): what to look into.
    review: list[dict[str, Any]] = field(default_factory=list)

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
            "verdict_ablation": None if self.ablation is None else self.ablation.to_dict(),
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
    #: The simulator profile the populations were drawn from (sim/profiles.py).
    profile: str = BASELINE.name

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
            "profile": self.profile,
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
    visible = card.visible_decline
    if visible is not None and visible.installments:
        checks.append(
            Check(WARNED_VISIBLE, DELINQUENCY_RISK, visible.share, targets.warned_visible, True)
        )
    checks.append(
        Check("events/s", "detectors", events_per_second, targets.events_per_second, True)
    )
    return checks


def visible_decline(label: CaseLabel) -> bool:
    """A simulated missed installment whose borrower's inflows fell to a fraction of normal
    in the weeks before the due date: the borrowers a collections team can see coming."""
    return "decline" in (label.detail.get("signals") or ())


def run_seed(
    seed: int,
    borrowers: int,
    days: int,
    partitions: int,
    thresholds: Thresholds,
    profile: Profile = BASELINE,
    verdicts: AblationOptions | None = None,
) -> SeedRun:
    """Simulate one population of ``profile``, run the detectors over it and score them;
    with ``verdicts``, the verdict models' ablation over its alerts too."""
    started = time.perf_counter()
    config = SimulationConfig(borrowers=borrowers, days=days, seed=seed, profile=profile)
    labels, records = simulate_stream(config)
    counts = {"rejected": 0.0, "parse_seconds": 0.0}
    engine = Engine(thresholds, MemoryStateStore(), MemoryCrossIndex())
    stats = asyncio.run(
        drive(_valid(records, config.topics, counts), engine, partitions=partitions)
    )
    card = score(stats.alerts, labels, borrowers, days, visible=visible_decline)
    ablation = None
    if verdicts is not None:
        ablation = ablate(
            stats.alerts, labels, borrowers=borrowers, days=days, start=config.start,
            options=verdicts,
        )  # fmt: skip
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
        ablation=ablation,
        review=review(stats.alerts, labels),
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
    profile: Profile = BASELINE,
    verdicts: AblationOptions | None = None,
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
    profile
        The simulator profile the populations are drawn from (``streams.lab.evaluate_profiles``
        runs several).
    verdicts
        Simulated verdicts for the verdict models' ablation (None: no ablation).
    """
    if not seeds:
        raise ValueError("evaluate needs at least one seed")
    thresholds = thresholds or Thresholds()
    runs = []
    for seed in seeds:
        run = run_seed(seed, borrowers, days, partitions, thresholds, profile, verdicts)
        runs.append(run)
        say_run(out, profile, run)
    report = report_of(profile, runs, borrowers, days, partitions, thresholds, targets)
    out.write(render(report))
    write_ablation(out, runs, verdicts, profile.name)
    out.flush()
    return report


def write_ablation(
    out: TextIO, runs: Sequence[SeedRun], verdicts: AblationOptions | None, title: str
) -> None:
    """The verdict models' ablation pooled over ``runs``, if they have one."""
    ablations = [run.ablation for run in runs if run.ablation is not None]
    if verdicts is not None and ablations:
        out.write("\n" + render_ablation(pooled(ablations), verdicts, title))


def review_lines(reports: Iterable[EvaluationReport]) -> Iterator[dict[str, Any]]:
    """Every run's review (missed cases, late warnings, false alert-days), each line naming
    its profile and seed, in the order of the reports and their seeds."""
    for report in reports:
        for run in report.runs:
            for line in run.review:
                yield {"profile": report.profile, "seed": run.seed, **line}


def say_run(out: TextIO, profile: Profile, run: SeedRun, named: bool = False) -> None:
    """The progress line of one finished run, naming its profile if ``named`` or not the
    baseline."""
    name = f"{profile.name} " if named or profile is not BASELINE else ""
    print(
        f"{name}seed {run.seed}: {run.events:,} events, {run.alerts:,} alerts, "
        f"{run.wall_seconds:.1f} s",
        file=out,
        flush=True,
    )


def report_of(
    profile: Profile,
    runs: Sequence[SeedRun],
    borrowers: int,
    days: int,
    partitions: int,
    thresholds: Thresholds,
    targets: Targets | None = None,
) -> EvaluationReport:
    """The runs of one profile pooled, with every figure checked against its target."""
    targets = targets or Targets()
    report = EvaluationReport(
        seeds=[r.seed for r in runs],
        borrowers=borrowers,
        days=days,
        partitions=partitions,
        thresholds_version=thresholds.version,
        targets=targets,
        runs=list(runs),
        total=ScoreCard.pooled([r.score for r in runs]),
        checks=[],
        profile=profile.name,
    )
    report.checks = _checks(report.total, report.detector_events_per_second, targets)
    return report


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
