"""``lendwatch evaluate --profiles``: every figure per simulator profile, and what misses target."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TextIO

from detectors.thresholds import Thresholds
from sim import Profile
from streams.lab.evaluate import (
    WARNED_VISIBLE,
    Check,
    EvaluationReport,
    SeedRun,
    Targets,
    render,
    report_of,
    run_seed,
    say_run,
    write_ablation,
)
from streams.lab.verdict_ablation import AblationOptions

__all__ = ["ISSUE_METRICS", "ProfilesReport", "evaluate_profiles", "render_summary"]

#: The figures the issue sets targets for; the summary marks each one that misses, per profile.
ISSUE_METRICS = ("recall", "precision", "false per 1,000 benign", WARNED_VISIBLE)


@dataclass
class ProfilesReport:
    """One :class:`EvaluationReport` per profile, in the order the profiles were given."""

    reports: list[EvaluationReport]

    def issue_checks(self, report: EvaluationReport) -> list[Check]:
        return [c for c in report.checks if c.metric in ISSUE_METRICS]

    @property
    def misses(self) -> list[tuple[str, Check]]:
        """(profile, check) of every issue figure below its target."""
        return [
            (r.profile, c) for r in self.reports for c in self.issue_checks(r) if c.met is False
        ]

    @property
    def passed(self) -> bool:
        return not self.misses

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "misses": [{"profile": p, **c.to_dict()} for p, c in self.misses],
            "profiles": {r.profile: r.to_dict() for r in self.reports},
        }


def evaluate_profiles(
    profiles: Sequence[Profile],
    seeds: Sequence[int],
    borrowers: int = 2000,
    days: int = 90,
    partitions: int = 8,
    out: TextIO = sys.stdout,
    *,
    thresholds: Thresholds | None = None,
    targets: Targets | None = None,
    jobs: int | None = None,
    verdicts: AblationOptions | None = None,
) -> ProfilesReport:
    """Run every (profile, seed), print one table per profile and the summary of misses.

    Runs are independent: with ``jobs`` > 1 (default: the CPUs, at most the runs) they go to
    a pool of forked processes, each simulating, replaying and scoring its own population.
    """
    if not profiles or not seeds:
        raise ValueError("evaluate needs at least one profile and one seed")
    thresholds = thresholds or Thresholds()
    pairs = [(p, s) for p in profiles for s in dict.fromkeys(seeds)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(pairs)))
    runs = _run_all(pairs, borrowers, days, partitions, thresholds, jobs, out, verdicts)
    report = ProfilesReport(
        [
            report_of(
                p,
                [runs[p.name, s] for s in dict.fromkeys(seeds)],
                borrowers,
                days,
                partitions,
                thresholds,
                targets,
            )
            for p in profiles
        ]
    )
    for each in report.reports:
        out.write(render(each))
        write_ablation(out, each.runs, verdicts, each.profile)
    out.write(render_summary(report))
    write_ablation(out, list(runs.values()), verdicts, "over every profile and seed")
    out.flush()
    return report


def _run_all(
    pairs: list[tuple[Profile, int]],
    borrowers: int,
    days: int,
    partitions: int,
    thresholds: Thresholds,
    jobs: int,
    out: TextIO,
    verdicts: AblationOptions | None = None,
) -> dict[tuple[str, int], SeedRun]:
    """Every run, inline or in a process pool; a progress line as each one ends."""
    runs: dict[tuple[str, int], SeedRun] = {}
    if jobs == 1:
        for profile, seed in pairs:
            runs[profile.name, seed] = run = run_seed(
                seed, borrowers, days, partitions, thresholds, profile, verdicts
            )
            say_run(out, profile, run, named=True)
        return runs
    # Fork: the children start with the parent's imports, nothing is re-imported per run.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures: dict[Future[SeedRun], Profile] = {
            pool.submit(
                run_seed, seed, borrowers, days, partitions, thresholds, profile, verdicts
            ): profile
            for profile, seed in pairs
        }
        for future in as_completed(futures):
            run = future.result()
            runs[futures[future].name, run.seed] = run
            say_run(out, futures[future], run, named=True)
    return runs


#: How the summary names a figure: short, the subject after it.
SHORT = {"false per 1,000 benign": "false/1k", WARNED_VISIBLE: "warned ≥3 d, visible decline,"}
#: The summary's rows: recall per typology first, then the categories' figures.
ORDER = {metric: i for i, metric in enumerate(ISSUE_METRICS)}


def _cell(check: Check | None) -> str:
    if check is None or check.value is None:
        return "–"
    spec = ".1f" if check.metric == "false per 1,000 benign" else ".2f"
    return f"{check.value:{spec}} {'✓' if check.met else '✗'}"


def _on_benign(report: ProfilesReport, category: str, first: int, width: int) -> str:
    """The false alert-days of ``category`` on borrowers without a case, per 1,000 of them:
    no target of its own, it tells the false alarms from the alerts on a case's borrower
    outside its window (late or early) that the false/1k row counts too."""
    cells = []
    for r in report.reports:
        score = r.total.categories.get(category)
        value = None if score is None else score.benign_per_1000
        cells.append(f"{'–' if value is None else f'{value:.1f}':>{width}}")
    return f"{'  of which on benign borrowers':<{first}}{'':<9}" + "".join(cells)


def render_summary(report: ProfilesReport) -> str:
    """Every issue figure (rows) per profile (columns), each marked against its target, then
    the misses profile by profile: what the detector work has to close."""
    rows: dict[tuple[str, str], Check] = {}
    by_profile: dict[str, dict[tuple[str, str], Check]] = {}
    for r in report.reports:
        mine = {(c.metric, c.subject): c for c in report.issue_checks(r)}
        by_profile[r.profile] = mine
        for key, check in mine.items():
            rows.setdefault(key, check)
    rows = {key: rows[key] for key in sorted(rows, key=lambda k: (ORDER[k[0]], k[1]))}
    names = [f"{SHORT.get(metric, metric)} {subject}" for metric, subject in rows]
    first = 2 + max([len("figure"), *(len(n) for n in names)])
    width = 2 + max([len("0.00 ✓"), *(len(p) for p in by_profile)])
    lines = ["", "summary: the issue's targets per profile (✗ below target)", ""]
    lines.append(f"{'figure':<{first}}{'target':<9}" + "".join(f"{p:>{width}}" for p in by_profile))
    for (metric, subject), check in rows.items():
        sign = "≥" if check.at_least else "≤"
        cells = "".join(
            f"{_cell(by_profile[p].get((metric, subject))):>{width}}" for p in by_profile
        )
        name = f"{SHORT.get(metric, metric)} {subject}"
        lines.append(f"{name:<{first}}{sign} {check.target:<7g}{cells}")
        if metric == "false per 1,000 benign":
            lines.append(_on_benign(report, subject, first, width))
    lines.append("")
    if report.passed:
        lines.append("every profile meets every target")
    for profile in by_profile:
        missed = [c for p, c in report.misses if p == profile]
        if missed:
            lines.append(f"{profile}: {len(missed)} below target")
            for c in missed:
                sign = "≥" if c.at_least else "≤"
                name = f"{SHORT.get(c.metric, c.metric)} {c.subject}"
                lines.append(f"  {name}: {c.value:.3g} (target {sign} {c.target:g})")
    return "\n".join(lines) + "\n"
