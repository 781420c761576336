"""`lendwatch evaluate --profiles`: the CLI, the warnings after a visible decline, the summary."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from sim import BASELINE, PROFILES, profile_named
from streams.lab.evaluate import WARNED_VISIBLE, Check, EvaluationReport, Targets, evaluate
from streams.lab.evaluate_profiles import ProfilesReport, evaluate_profiles, render_summary
from streams.lab.scoring import CategoryScore, ScoreCard, score
from streams.ops.cli import build_parser, main
from tests.streams.lab.test_scoring import DR, alert, at, label
from topics.labels import CaseLabel


def test_the_cli_takes_profiles_and_refuses_unknown_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--profiles", "sector-shock,baseline", "--jobs", "2"])
    assert [p.name for p in args.profiles] == ["sector-shock", "baseline"] and args.jobs == 2
    assert parser.parse_args(["evaluate", "--profiles", "all"]).profiles == list(PROFILES.values())
    assert parser.parse_args(["evaluate"]).profiles is None  # the baseline table, as before
    simulate = parser.parse_args(["simulate", "--profile", "noisy-payers", "--output", "x"])
    assert simulate.profile is profile_named("noisy-payers")
    assert parser.parse_args(["simulate", "--output", "x"]).profile is BASELINE
    for argv in (
        ["evaluate", "--profiles", "baseline,lockdown"],
        ["simulate", "--profile", "lockdown", "--output", "x"],
        ["run", "--profile", "lockdown"],
    ):
        with pytest.raises(SystemExit) as exit:
            parser.parse_args(argv)
        assert exit.value.code == 2
        assert (
            "unknown profile 'lockdown'; known: baseline, retail-heavy" in capsys.readouterr().err
        )


def test_simulate_writes_the_profiles_population(tmp_path: Path) -> None:
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    argv = ["simulate", "--borrowers", "30", "--days", "20", "--output", str(events)]
    assert main([*argv, "--profile", "retail-heavy", "--labels", str(labels)]) == 0
    records = [json.loads(line) for line in events.read_text().splitlines()]
    transactions = [r["value"] for r in records if r["topic"] == "lending.transactions"]
    assert transactions and not any("sector" in tx for tx in transactions)  # not reported


def test_warnings_are_counted_apart_for_borrowers_in_a_visible_decline() -> None:
    def missed(borrower: str, signals: list[str]) -> CaseLabel:
        plain = label(
            borrower,
            DR,
            "missed_installment",
            at(2, 1),
            at(2, 23),
            loan_id=f"ln-{borrower}",
            installment=2,
            due_date="2026-02-20",
        )
        return replace(plain, detail={"signals": signals})

    labels = [missed("b-1", ["decline"]), missed("b-2", ["decline", "quiet"]), missed("b-3", [])]
    alerts = [
        alert("b-1", DR, "delinquency", at(2, 16), "ln-b-1", 2),  # 5 days ahead
        alert("b-2", DR, "delinquency", at(2, 19), "ln-b-2", 2),  # too late
        alert("b-3", DR, "delinquency", at(2, 10), "ln-b-3", 2),  # not in a decline
    ]
    visible = lambda case: "decline" in case.detail.get("signals", ())  # noqa: E731
    card = score(alerts, labels, 10, 60, visible=visible)
    assert (card.delinquency.installments, card.delinquency.warned) == (3, 2)
    assert card.visible_decline is not None
    assert (card.visible_decline.installments, card.visible_decline.warned) == (2, 1)
    assert score(alerts, labels, 10, 60).visible_decline is None
    pooled = ScoreCard.pooled([card, card])
    assert pooled.visible_decline is not None and pooled.visible_decline.warned == 2


def _report(profile: str, checks: list[Check]) -> EvaluationReport:
    return EvaluationReport(
        seeds=[7],
        borrowers=10,
        days=30,
        partitions=1,
        thresholds_version="v0",
        targets=Targets(),
        runs=[],
        total=ScoreCard(period_days=30, borrowers=10),
        checks=checks,
        profile=profile,
    )


def test_the_summary_marks_every_figure_below_target_per_profile() -> None:
    good = [
        Check("recall", "account_takeover", 1.0, 0.95, True),
        Check("false per 1,000 benign", "falsified_flow", 2.0, 5.0, False),
        Check("events/s", "detectors", 10.0, 50_000.0, True),  # not a target of the issue
    ]
    bad = [
        Check("recall", "account_takeover", 0.5, 0.95, True),
        Check("false per 1,000 benign", "falsified_flow", 7.5, 5.0, False),
        Check(WARNED_VISIBLE, DR, 0.95, 0.9, True),
        Check("recall", "account_takeover_phished", None, 0.95, True),  # no case: no figure
    ]
    report = ProfilesReport([_report("calm", good), _report("stormy", bad)])
    # calm: of its 2 false alert-days, 1 on one of its 10 borrowers without a case.
    calm = report.reports[0].total.categories
    calm["falsified_flow"] = CategoryScore("falsified_flow", 3, 1, 10, benign_alert_days=1)
    assert [(p, c.subject) for p, c in report.misses] == [
        ("stormy", "account_takeover"),
        ("stormy", "falsified_flow"),
    ]
    assert not report.passed
    text = render_summary(report)
    row = next(line for line in text.splitlines() if line.startswith("recall account_takeover "))
    assert row.split()[-4:] == ["1.00", "✓", "0.50", "✗"]
    false_row = next(line for line in text.splitlines() if line.startswith("false/1k"))
    assert false_row.split()[-4:] == ["2.0", "✓", "7.5", "✗"]
    lines = text.splitlines()
    on_benign = lines[lines.index(false_row) + 1]
    assert on_benign.startswith("  of which on benign borrowers")
    assert on_benign.split()[-2:] == ["100.0", "–"]
    assert "events/s" not in text
    assert "stormy: 2 below target" in text and "calm:" not in text
    assert "recall account_takeover: 0.5 (target ≥ 0.95)" in text
    clean = render_summary(ProfilesReport([_report("calm", good)]))
    assert "every profile meets every target" in clean
    dumped = json.loads(json.dumps(report.to_dict()))
    assert dumped["passed"] is False and set(dumped["profiles"]) == {"calm", "stormy"}
    assert dumped["misses"][0] == {
        "profile": "stormy",
        "metric": "recall",
        "subject": "account_takeover",
        "value": 0.5,
        "target": 0.95,
        "comparison": ">=",
        "met": False,
    }


def test_evaluate_profiles_runs_every_profile_and_seed_in_a_pool() -> None:
    out = io.StringIO()
    profiles = [BASELINE, profile_named("noisy-payers")]
    report = evaluate_profiles(profiles, [3, 4], borrowers=40, days=36, jobs=2, out=out)
    assert [r.profile for r in report.reports] == ["baseline", "noisy-payers"]
    for each in report.reports:
        assert [run.seed for run in each.runs] == [3, 4]
        assert all(run.events > 5_000 and run.rejected == 0 for run in each.runs)
    noisy = report.reports[1].total.typologies
    assert "account_takeover_phished" in noisy
    assert "account_takeover_phished" not in report.reports[0].total.typologies
    text = out.getvalue()
    assert text.count("lendwatch evaluate: profile ") == 2
    assert "profile noisy-payers · seeds 3,4" in text
    assert (
        "baseline seed 3:" in text
        and "noisy-payers seed 4:" in text
        and "summary: the issue's targets per profile" in text
    )
    # Another seed is another population, so the pool ran each pair, not one twice.
    baseline_runs = report.reports[0].runs
    assert baseline_runs[0].events != baseline_runs[1].events
    assert report.reports[0].runs[0].events != report.reports[1].runs[0].events


def test_one_job_runs_inline_and_scores_as_evaluate_does() -> None:
    inline = evaluate_profiles([BASELINE], [2], borrowers=30, days=12, jobs=1, out=io.StringIO())
    alone = evaluate(seeds=[2], borrowers=30, days=12, out=io.StringIO())
    (report,) = inline.reports
    assert report.total.to_dict() == alone.total.to_dict()
    assert [c.to_dict() for c in report.checks if c.metric != "events/s"] == [
        c.to_dict() for c in alone.checks if c.metric != "events/s"
    ]


def test_the_cli_writes_every_runs_review_naming_its_profile_and_seed(tmp_path: Path) -> None:
    """``--cases``: what to look into, as each run's review has it, one JSON line each."""
    path = tmp_path / "cases.jsonl"
    argv = ["evaluate", "--profiles", "baseline", "--seeds", "2", "--borrowers", "40"]
    assert main([*argv, "--days", "20", "--jobs", "1", "--cases", str(path)]) == 0

    lines = [json.loads(line) for line in path.read_bytes().splitlines()]
    (run,) = evaluate(seeds=[2], borrowers=40, days=20, out=io.StringIO()).runs
    assert lines and [{"profile": "baseline", "seed": 2, **line} for line in run.review] == lines
    assert {line["kind"] for line in lines} <= {"missed", "late_warning", "false"}


def test_the_cli_evaluates_thresholds_set_on_the_command_line(tmp_path: Path) -> None:
    """``--set``: a candidate judged on simulated traffic before a platform runs it; rings
    whose hops are all below the smallest counted no longer alert, and a bad value is refused."""
    argv = ["evaluate", "--seeds", "2", "--borrowers", "40", "--days", "20", "--verdict-share", "0"]
    figures = {}
    never = ["--set", "circular_flow.small_amount=1e7"]
    for name, changes in (
        ("defaults", []),
        ("candidate", ["--set", "circular_flow.min_amount=1e7"]),
    ):
        path = tmp_path / f"{name}.json"
        assert main([*argv, *changes, *(never if changes else []), "--json", str(path)]) == 0
        figures[name] = json.loads(path.read_bytes())

    rings = [figures[name]["total"]["typologies"]["circular_transfer"] for name in figures]
    assert [ring["cases"] for ring in rings] == [3, 3]
    assert [ring["detected"] for ring in rings] == [3, 0]
    assert [figures[name]["thresholds_version"] for name in figures] == ["v0", "candidate"]
    assert main([*argv, "--set", "circular_flow.min_amount=lots"]) == 2
