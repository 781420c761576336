"""``lendwatch fit``: the declared tunables fitted to a platform's labelled history.

Each category is fitted on its own: the tunables of its detectors, each within its declared
range, are searched by coordinate descent over a coarse grid, for the values that give the
most recall at the target precision, counted as ``evaluate`` counts them
(:func:`streams.lab.scoring.score`). A candidate is one run of a fresh engine over the decoded
history with only that category's detectors; candidates run in parallel in a pool of forked
processes that share the decoded history.

Borrowers, not events, are split into a fit share and a held-out share: the engine always runs
over the whole history (a ring or a round trip spans borrowers of both shares, and cutting it
would change what the detectors see), and only the labels and alerts of the fit share choose
the values. The held-out share says what the fitted values do on cases the search never saw.

A move is kept only when it is strictly better on the fit share, so a tunable the labels say
nothing about stays at its default.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.base import CATEGORIES, DELINQUENCY_RISK, FALSIFIED_FLOW
from detectors.engine import Engine, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.registry import REGISTRY, build_detectors
from detectors.thresholds import TUNABLES, InvalidThreshold, Thresholds, Tunable, Value
from streams.lab.backtest import borrowers_of, period_days_of
from streams.lab.fitted import FittedFile, version_of
from streams.lab.replay import Decoded, drive
from streams.lab.scoring import score
from topics.labels import CaseLabel
from topics.names import ABNORMAL_BEHAVIOUR
from topics.records import Alert

__all__ = [
    "DEFAULT_TARGETS",
    "FIXED",
    "MIN_FIT_CASES",
    "Figures",
    "FitRefused",
    "fit",
    "grid",
    "parse_targets",
    "split_borrowers",
]

#: The issue's precision targets; a category left out of ``--target-precision`` is not fitted.
DEFAULT_TARGETS: dict[str, float] = {
    FALSIFIED_FLOW: 0.9,
    ABNORMAL_BEHAVIOUR: 0.9,
    DELINQUENCY_RISK: 0.6,
}
#: Fewer confirmed cases of a category than this in the fit share and its fit is refused: with
#: four cases, one case more or less found moves recall by a quarter, and the search chases
#: that noise rather than the behaviour.
MIN_FIT_CASES = 5
#: A grid point is the current value times each of these (clipped to the declared range);
#: the smaller moves first, so that of two equally good values the nearer one is kept.
MULTIPLIERS = (0.75, 1.5, 0.5, 2.0)
#: The coarser grid (``--points 2``): half as many runs, for a first look at a long history.
COARSE_MULTIPLIERS = (0.5, 2.0)
#: For a tunable at 0: these fractions of its range above its low end.
ZERO_STEPS = (0.05, 0.1, 0.25)
COARSE_ZERO_STEPS = (0.05, 0.25)
#: Tunables the fit leaves alone, and why.
FIXED: dict[str, str] = {
    "delinquency.platform_utc_offset_hours": "a fact of the platform, not a threshold",
    "circular_flow.max_edges_per_account": "a bound on memory, not on what alerts",
}


class FitRefused(ValueError):
    """The history cannot support a fit as asked; the message says why and what to change."""


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
        early warning), then precision; short of the target, precision first."""
        precision = 1.0 if self.precision is None else self.precision  # no alerts: none false
        recall, warned = self.recall or 0.0, self.warned_share or 0.0
        false = float(self.true_alert_days - self.alert_days)
        if precision >= target:
            return (1.0, recall, warned, precision, false)
        return (0.0, precision, recall, warned, false)

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


# --- the pieces ---------------------------------------------------------------------------------


def parse_targets(text: str | None) -> dict[str, float]:
    """``category=precision,...`` as a dict; None or empty: the issue's targets."""
    if not text:
        return dict(DEFAULT_TARGETS)
    targets: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in CATEGORIES:
            raise FitRefused(
                f"--target-precision {item!r}: expected CATEGORY=PRECISION, the categories "
                f"being {', '.join(CATEGORIES)}"
            )
        try:
            goal = float(value)
        except ValueError:
            raise FitRefused(f"--target-precision {item!r}: {value!r} is not a number") from None
        if not 0.0 < goal <= 1.0:
            raise FitRefused(f"--target-precision {item!r}: a precision is in (0, 1]")
        targets[name] = goal
    return targets


def split_borrowers(
    borrowers: Iterable[str], holdout: float, seed: int
) -> tuple[frozenset[str], frozenset[str]]:
    """The fit share and the held-out share: a borrower is held out when a hash of the seed
    and its id falls under ``holdout``, so the split depends on nothing but those two."""
    if not 0.0 < holdout < 1.0:
        raise FitRefused(f"--holdout {holdout}: the held-out share is in (0, 1)")
    fit: set[str] = set()
    held: set[str] = set()
    for borrower in borrowers:
        digest = hashlib.sha256(f"{seed}:{borrower}".encode()).digest()
        (held if int.from_bytes(digest[:8], "big") / 2**64 < holdout else fit).add(borrower)
    return frozenset(fit), frozenset(held)


def grid(declared: Tunable, current: Value, points: int = 4) -> list[Value]:
    """The values tried for one tunable around its current one, within its declared range:
    ``points`` 4 or 2 (the coarse grid). A list of days is not gridded (there is no "half"
    of a schedule)."""
    if declared.type == "days" or isinstance(current, tuple):
        return []
    coarse = points <= 2
    if current == 0:
        steps = COARSE_ZERO_STEPS if coarse else ZERO_STEPS
        raw = [declared.low + (declared.high - declared.low) * step for step in steps]
    else:
        raw = [current * factor for factor in (COARSE_MULTIPLIERS if coarse else MULTIPLIERS)]
    chosen: list[Value] = []
    for value in raw:
        value = min(max(value, declared.low), declared.high)
        point: Value = math.floor(value + 0.5) if declared.type == "int" else round(value, 6)
        if point != current and point not in chosen:
            chosen.append(point)
    return chosen


def sections_of(category: str) -> list[str]:
    """The sections of the detectors that alert in ``category``."""
    return [row.detector.section for row in REGISTRY if row.detector.category == category]


def searched_keys(category: str) -> list[str]:
    """The tunables searched for ``category``, in declaration order."""
    sections = set(sections_of(category))
    return [
        key
        for key, declared in TUNABLES.items()
        if declared.section in sections and key not in FIXED and declared.type != "days"
    ]


# --- one candidate ------------------------------------------------------------------------------


@dataclass
class _Shared:
    """What every candidate reads; set in the parent before the pool forks, so the workers
    share the decoded history instead of receiving a copy each."""

    history: Decoded
    labels: list[CaseLabel]
    shares: dict[str, frozenset[str]]
    period_days: int


_SHARED: _Shared | None = None


def category_alerts(history: Decoded, thresholds: Thresholds, category: str) -> list[Alert]:
    """A fresh engine over the history running only the detectors of ``category``."""
    engine = Engine(thresholds, MemoryStateStore(), MemoryCrossIndex())
    engine.use([d for d in build_detectors(thresholds) if d.category == category])
    stats = asyncio.run(
        drive(history.records, engine, partitions=history.partitions, expected=history.streams)
    )
    return stats.alerts


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


def _evaluate(task: tuple[str, dict[str, Value]]) -> dict[str, Figures]:
    """One candidate: its category's figures on each share."""
    category, values = task
    shared = _SHARED
    assert shared is not None, "the history is set before candidates run"
    thresholds = Thresholds.from_values(values, version="fit")
    alerts = category_alerts(shared.history, thresholds, category)
    return {
        share: figures_of(alerts, shared.labels, borrowers, category, shared.period_days)
        for share, borrowers in shared.shares.items()
    }


Evaluator = Callable[[Sequence[tuple[str, dict[str, Value]]]], list[dict[str, Figures]]]


def _evaluator(jobs: int) -> tuple[Evaluator, Callable[[], None]]:
    """Run candidates in this process (``jobs`` 1) or in a pool of forked processes."""
    if jobs <= 1:
        return (lambda tasks: [_evaluate(task) for task in tasks]), (lambda: None)
    pool = multiprocessing.get_context("fork").Pool(jobs)

    def close() -> None:
        pool.close()
        pool.join()

    return (lambda tasks: pool.map(_evaluate, tasks, chunksize=1)), close


# --- the search ---------------------------------------------------------------------------------


@dataclass
class _Search:
    """Where one category's coordinate descent stands."""

    category: str
    target: float
    keys: list[str]
    values: dict[str, Value]
    best: dict[str, Figures]
    start: dict[str, Figures]
    points: int = 4
    position: int = 0
    runs: int = 1
    moves: list[dict[str, Any]] = field(default_factory=list)
    #: Why the search stopped before its last tunable, if it did.
    stopped: str | None = None

    def score_of(self, figures: dict[str, Figures]) -> tuple[float, ...]:
        return figures["fit"].rank(self.target)

    def next_tasks(self) -> list[tuple[str, dict[str, Value]]]:
        """The candidates of the next tunable with a grid (none: the pass is over)."""
        if self.best["fit"].perfect and self.position < len(self.keys):
            self.stopped = self.stopped or (
                f"stopped after {self.position} of {len(self.keys)} tunables: every case of "
                "the fit share found, no false alert-day; nothing left to gain"
            )
            self.position = len(self.keys)
        while self.position < len(self.keys):
            key = self.keys[self.position]
            tasks = []
            for point in grid(TUNABLES[key], self.values[key], self.points):
                values = {**self.values, key: point}
                try:
                    Thresholds.from_values(values, version="fit")
                except InvalidThreshold:
                    continue  # breaks a constraint across tunables: not a candidate
                tasks.append((self.category, values))
            if tasks:
                return tasks
            self.position += 1
        return []

    def take(
        self, tasks: list[tuple[str, dict[str, Value]]], results: list[dict[str, Figures]]
    ) -> None:
        """Keep the best candidate of this tunable if it beats the current values."""
        key = self.keys[self.position]
        self.runs += len(tasks)
        # max keeps the first of equals: the grid lists the smaller moves first.
        values, figures = max(
            zip((values for _, values in tasks), results, strict=True),
            key=lambda pair: self.score_of(pair[1]),
        )
        if self.score_of(figures) > self.score_of(self.best):
            self.moves.append({"key": key, "from": self.values[key], "to": values[key]})
            self.values, self.best = values, figures
        self.position += 1


def _searches(targets: Mapping[str, float], start: dict[str, Value], points: int) -> list[_Search]:
    """One search per category with a target, each at the starting values."""
    return [
        _Search(category, target, searched_keys(category), dict(start), {}, {}, points)
        for category, target in targets.items()
    ]


Progress = Callable[[str], None]


def _descend(searches: list[_Search], evaluate: Evaluator, rounds: int, progress: Progress) -> None:
    """Coordinate descent for every category at once: each step runs the next tunable's grid
    of every category still searching, all in one parallel batch."""
    said: set[str] = set()
    for _ in range(rounds):
        moved = sum(len(search.moves) for search in searches)
        for search in searches:
            search.position = 0
        while True:
            batch = [(search, search.next_tasks()) for search in searches]
            for search, tasks in batch:
                if not tasks and search.stopped and search.category not in said:
                    said.add(search.category)
                    progress(f"{search.category}: {search.stopped}")
            batch = [(search, tasks) for search, tasks in batch if tasks]
            if not batch:
                break
            flat = [task for _, tasks in batch for task in tasks]
            results = evaluate(flat)
            at = 0
            for search, tasks in batch:
                key, moves = search.keys[search.position], len(search.moves)
                search.take(tasks, results[at : at + len(tasks)])
                at += len(tasks)
                change = search.moves[-1] if len(search.moves) > moves else None
                progress(
                    f"{search.category} {search.position}/{len(search.keys)} {key}: "
                    + (f"{change['from']} → {change['to']}" if change else "kept")
                    + f" (fit share: recall {_shown(search.best['fit'].recall)}, "
                    f"precision {_shown(search.best['fit'].precision)})"
                )
        if sum(len(search.moves) for search in searches) == moved:
            return  # a pass that moved nothing: another would try the same candidates


def _check_cases(
    labels: Sequence[CaseLabel], targets: Mapping[str, float], fit_share: frozenset[str]
) -> dict[str, tuple[int, int]]:
    """Per category to fit: (cases in the fit share, cases in all); refuses, naming every
    category with fewer than :data:`MIN_FIT_CASES` in the fit share."""
    counts: dict[str, tuple[int, int]] = {}
    problems = []
    for category in targets:
        mine = {c.case_id: c.borrower_id for c in labels if c.category == category}
        in_fit = sum(borrower in fit_share for borrower in mine.values())
        counts[category] = (in_fit, len(mine))
        if in_fit < MIN_FIT_CASES:
            problems.append(
                f"{category}: {in_fit} confirmed case(s) in the fit share (of {len(mine)} in "
                f"all), at least {MIN_FIT_CASES} are needed"
            )
    if problems:
        raise FitRefused(
            "too few cases to fit: "
            + "; ".join(problems)
            + ". Give a longer history or more borrowers, a smaller --holdout, or leave the "
            "category out of --target-precision."
        )
    return counts


def fit(
    history: Decoded,
    labels: Sequence[CaseLabel],
    *,
    targets: Mapping[str, float] | None = None,
    holdout: float = 0.3,
    seed: int = 0,
    jobs: int = 1,
    rounds: int = 1,
    points: int = 4,
    progress: Progress | None = None,
) -> FittedFile:
    """Fit the tunables of each category in ``targets`` to ``labels`` over ``history``.

    Raises :class:`FitRefused` before any engine run when a category has too few cases in
    the fit share, or the split or targets are invalid. Returns the fitted file: every
    threshold (fitted, or default where not searched or not moved) and the report, per
    category, of the defaults and the fitted values on each share.
    """
    global _SHARED
    started = time.perf_counter()
    targets = dict(DEFAULT_TARGETS if targets is None else targets)
    if not targets:
        raise FitRefused("no category to fit: give at least one in --target-precision")
    fit_share, held_out = split_borrowers(borrowers_of(history), holdout, seed)
    counts = _check_cases(labels, targets, fit_share)
    defaults = Thresholds().values()
    searches = _searches(targets, defaults, points)
    _SHARED = _Shared(
        history, list(labels), {"fit": fit_share, "held_out": held_out}, period_days_of(history)
    )
    evaluate, close = _evaluator(jobs)
    try:
        firsts = evaluate([(search.category, search.values) for search in searches])
        for search, figures in zip(searches, firsts, strict=True):
            search.start = search.best = figures
        _descend(searches, evaluate, rounds, progress or (lambda line: None))
    finally:
        close()
        _SHARED = None
    values = dict(defaults)
    for search in searches:
        values.update({key: search.values[key] for key in search.keys})
    report = _report(searches, counts, (len(fit_share), len(held_out)))
    report["jobs"], report["rounds"], report["points"] = jobs, rounds, points
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    return FittedFile(
        thresholds=Thresholds.from_values(values, version=version_of(values)),
        settings={"targets": targets, "holdout": holdout, "seed": seed, "points": points},
        report=report,
    )


def _report(
    searches: Sequence[_Search], counts: Mapping[str, tuple[int, int]], sizes: tuple[int, int]
) -> dict[str, Any]:
    """Per category: what was searched, the moves kept, and the defaults against the fitted
    values on each share."""
    categories = {}
    for search in searches:
        in_fit, in_all = counts[search.category]
        categories[search.category] = {
            "target_precision": search.target,
            "cases": {"fit": in_fit, "held_out": in_all - in_fit},
            "searched": len(search.keys),
            "engine_runs": search.runs,
            "moves": search.moves,
            "stopped": search.stopped,
            "before": {share: f.to_dict() for share, f in search.start.items()},
            "after": {share: f.to_dict() for share, f in search.best.items()},
        }
    return {
        "borrowers": {"fit": sizes[0], "held_out": sizes[1]},
        "categories": categories,
        "engine_runs": sum(search.runs for search in searches),
        "not_searched": {
            **FIXED,
            **{
                key: "a list of days, not gridded"
                for key, declared in TUNABLES.items()
                if declared.type == "days"
            },
        },
        "min_fit_cases": MIN_FIT_CASES,
    }


# --- showing it ---------------------------------------------------------------------------------


def _shown(value: float | None, spec: str = ".3f") -> str:
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
            was, now = _shown(before[field_name], spec), _shown(after[field_name], spec)
            lines.append(f"  {name:<24}{was:>10}{now:>10}")
        fit_before, fit_after = part["before"]["fit"], part["after"]["fit"]
        lines.append(
            f"  (fit share: recall {_shown(fit_before['recall'])} → {_shown(fit_after['recall'])}"
            f", precision {_shown(fit_before['precision'])} → {_shown(fit_after['precision'])})"
        )
        for move in part["moves"]:
            lines.append(f"  {move['key']}: {move['from']} → {move['to']}")
        if not part["moves"]:
            lines.append("  no tunable moved: the defaults stay")
        if part.get("stopped"):
            lines.append(f"  {part['stopped']}")
    return "\n".join(lines) + "\n"
