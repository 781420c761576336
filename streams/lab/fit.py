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

A move is kept only when it is better on the fit share by more than noise (a case found or an
installment warned more, or false alert-days cut beyond their count's own noise:
:meth:`Figures.beyond_noise`), so a tunable the labels say nothing about, or say only one
alert-day about, stays at its default.
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
from streams.lab.fit_figures import Figures, Scoring, shown
from streams.lab.fitted import FittedFile, version_of
from streams.lab.replay import Decoded, drive
from topics.labels import CaseLabel
from topics.names import ABNORMAL_BEHAVIOUR
from topics.records import Alert

__all__ = [
    "DEFAULT_TARGETS",
    "FIXED",
    "MIN_FIT_CASES",
    "Figures",
    "FitRefused",
    "Scoring",
    "fit",
    "grid",
    "parse_targets",
    "section_alerts",
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
    borrowers: Iterable[str], holdout: float, seed: int, labels: Sequence[CaseLabel] = ()
) -> tuple[frozenset[str], frozenset[str]]:
    """The fit share and the held-out share, from a hash of the seed and each id only.

    Labelled borrowers are split per typology: of a typology's borrowers, in hash order, the
    first ``holdout`` of them (rounded; one at least, and one kept, when there are two or
    more) are held out, so that a rare typology lands in both shares rather than, by chance,
    all in one. The others are held out when their hash falls under ``holdout``.
    """
    if not 0.0 < holdout < 1.0:
        raise FitRefused(f"--holdout {holdout}: the held-out share is in (0, 1)")

    def rank(borrower: str) -> float:
        digest = hashlib.sha256(f"{seed}:{borrower}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    everyone = set(borrowers)
    by_typology: dict[tuple[str, str], set[str]] = {}
    for label in labels:
        if label.borrower_id in everyone:
            by_typology.setdefault((label.category, label.typology), set()).add(label.borrower_id)
    held: set[str] = set()
    placed: set[str] = set()
    for typology in sorted(by_typology):
        members = sorted(by_typology[typology] - placed, key=rank)
        count = math.floor(holdout * len(members) + 0.5)
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        held.update(members[:count])
        placed.update(members)
    held.update(b for b in everyone - placed if rank(b) < holdout)
    return frozenset(everyone - held), frozenset(held)


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


def searched_keys(category: str, only: Sequence[str] = ()) -> list[str]:
    """The tunables searched for ``category``, in declaration order; with ``only``, those
    named there, a key or a whole section (``revenue_inflation``)."""
    sections = set(sections_of(category))
    return [
        key
        for key, declared in TUNABLES.items()
        if declared.section in sections
        and key not in FIXED
        and declared.type != "days"
        and (not only or key in only or declared.section in only)
    ]


def check_only(only: Sequence[str]) -> None:
    """Refuse a name in ``--only`` that is neither a tunable nor a section."""
    for name in only:
        if name not in TUNABLES and not any(t.section == name for t in TUNABLES.values()):
            raise FitRefused(f"--only {name}: neither a tunable (section.name) nor a section")


# --- one candidate ------------------------------------------------------------------------------


@dataclass
class _Shared:
    """What every candidate reads; set in the parent before the pool forks, so the workers
    share the decoded history instead of receiving a copy each."""

    history: Decoded


_SHARED: _Shared | None = None


def section_alerts(history: Decoded, thresholds: Thresholds, section: str) -> list[Alert]:
    """A fresh engine over the history running only the detector of ``section``.

    Detectors keep their own slots, index keys and timers, and the engine writes what they
    share (inflows), so one detector's alerts do not depend on which others run beside it:
    a candidate that moves one tunable reruns one detector, and its category's figures take
    the other detectors' alerts as they stand.
    """
    engine = Engine(thresholds, MemoryStateStore(), MemoryCrossIndex())
    engine.use([d for d in build_detectors(thresholds) if d.section == section])
    stats = asyncio.run(
        drive(history.records, engine, partitions=history.partitions, expected=history.streams)
    )
    return stats.alerts


#: One engine run: a section and the values of every tunable.
Task = tuple[str, dict[str, Value]]


def _run(task: Task) -> list[Alert]:
    """One candidate: the alerts of its section's detector under its values."""
    section, values = task
    shared = _SHARED
    assert shared is not None, "the history is set before candidates run"
    return section_alerts(shared.history, Thresholds.from_values(values, version="fit"), section)


Runner = Callable[[Sequence[Task]], list[list[Alert]]]


def _runner(jobs: int) -> tuple[Runner, Callable[[], None]]:
    """Run candidates in this process (``jobs`` 1) or in a pool of forked processes."""
    if jobs <= 1:
        return (lambda tasks: [_run(task) for task in tasks]), (lambda: None)
    pool = multiprocessing.get_context("fork").Pool(jobs)

    def close() -> None:
        pool.close()
        pool.join()

    return (lambda tasks: pool.map(_run, tasks, chunksize=1)), close


# --- the search ---------------------------------------------------------------------------------


@dataclass
class _Search:
    """Where one category's coordinate descent stands."""

    category: str
    target: float
    keys: list[str]
    values: dict[str, Value]
    scoring: Scoring
    points: int = 4
    #: The alerts of each of the category's detectors under the current values.
    alerts: dict[str, list[Alert]] = field(default_factory=dict)
    best: dict[str, Figures] = field(default_factory=dict)
    start: dict[str, Figures] = field(default_factory=dict)
    position: int = 0
    runs: int = 0
    moves: list[dict[str, Any]] = field(default_factory=list)
    #: Why the search stopped before its last tunable, if it did.
    stopped: str | None = None

    def begin(self, alerts: dict[str, list[Alert]]) -> None:
        """The starting values' alerts, one run per detector of the category."""
        self.alerts, self.runs = alerts, len(alerts)
        self.start = self.best = self.scoring.figures(self._joined(), self.category)

    def _joined(self, section: str = "", alerts: Sequence[Alert] = ()) -> list[Alert]:
        """The category's alerts, with ``section``'s replaced by ``alerts``."""
        kept = [a for name, mine in self.alerts.items() if name != section for a in mine]
        return [*kept, *alerts]

    def score_of(self, figures: dict[str, Figures]) -> tuple[float, ...]:
        return figures["fit"].rank(self.target)

    def keeps_warning(self, figures: dict[str, Figures]) -> bool:
        """Each share warns of at least as many missed installments as under the defaults."""
        return all(figures[share].keeps_warning(self.start[share]) for share in figures)

    def next_tasks(self) -> list[Task]:
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
                tasks.append((TUNABLES[key].section, values))
            if tasks:
                return tasks
            self.position += 1
        return []

    def take(self, tasks: list[Task], results: list[list[Alert]]) -> None:
        """Keep the best candidate of this tunable if it beats the current values."""
        key = self.keys[self.position]
        section = TUNABLES[key].section
        self.runs += len(tasks)
        scored = [
            (values, alerts, self.scoring.figures(self._joined(section, alerts), self.category))
            for (_, values), alerts in zip(tasks, results, strict=True)
        ]
        # A candidate that warns of fewer missed installments than the defaults, on either
        # share, is no candidate: the held-out share guards what the fit share cannot see.
        scored = [item for item in scored if self.keeps_warning(item[2])]
        if not scored:
            self.position += 1
            return
        # max keeps the first of equals: the grid lists the smaller moves first.
        values, alerts, figures = max(scored, key=lambda item: self.score_of(item[2]))
        if self.score_of(figures) > self.score_of(self.best) and figures["fit"].beyond_noise(
            self.best["fit"]
        ):
            self.moves.append({"key": key, "from": self.values[key], "to": values[key]})
            self.values, self.best = values, figures
            self.alerts[section] = alerts
        self.position += 1


Progress = Callable[[str], None]


def _begin(searches: list[_Search], run: Runner) -> None:
    """Every detector of every category once under the starting values, in one batch."""
    tasks = [
        (search, (section, search.values))
        for search in searches
        for section in sections_of(search.category)
    ]
    results = run([task for _, task in tasks])
    by_search: dict[str, dict[str, list[Alert]]] = {}
    for (search, (section, _)), alerts in zip(tasks, results, strict=True):
        by_search.setdefault(search.category, {})[section] = alerts
    for search in searches:
        search.begin(by_search[search.category])


def _descend(searches: list[_Search], run: Runner, rounds: int, progress: Progress) -> None:
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
            results = run([task for _, tasks in batch for task in tasks])
            at = 0
            for search, tasks in batch:
                key, moves = search.keys[search.position], len(search.moves)
                search.take(tasks, results[at : at + len(tasks)])
                at += len(tasks)
                change = search.moves[-1] if len(search.moves) > moves else None
                progress(
                    f"{search.category} {search.position}/{len(search.keys)} {key}: "
                    + (f"{change['from']} → {change['to']}" if change else "kept")
                    + f" (fit share: recall {shown(search.best['fit'].recall)}, "
                    f"precision {shown(search.best['fit'].precision)})"
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
    only: Sequence[str] = (),
    progress: Progress | None = None,
) -> FittedFile:
    """Fit the tunables of each category in ``targets`` to ``labels`` over ``history``.

    Raises :class:`FitRefused` before any engine run when a category has too few cases in
    the fit share, or the split or targets are invalid. ``only`` limits the search to these
    tunables or sections (the others keep their defaults), to bound the time a long history
    takes. Returns the fitted file: every
    threshold (fitted, or default where not searched or not moved) and the report, per
    category, of the defaults and the fitted values on each share.
    """
    global _SHARED
    started = time.perf_counter()
    targets = dict(DEFAULT_TARGETS if targets is None else targets)
    if not targets:
        raise FitRefused("no category to fit: give at least one in --target-precision")
    check_only(only)
    fit_share, held_out = split_borrowers(borrowers_of(history), holdout, seed, labels)
    counts = _check_cases(labels, targets, fit_share)
    defaults = Thresholds().values()
    scoring = Scoring(
        list(labels), {"fit": fit_share, "held_out": held_out}, period_days_of(history)
    )
    searches = [
        _Search(category, target, searched_keys(category, only), dict(defaults), scoring, points)
        for category, target in targets.items()
    ]
    _SHARED = _Shared(history)
    run, close = _runner(jobs)
    try:
        _begin(searches, run)
        _descend(searches, run, rounds, progress or (lambda line: None))
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
        settings={
            "targets": targets,
            "holdout": holdout,
            "seed": seed,
            "points": points,
            "only": list(only),
        },
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
