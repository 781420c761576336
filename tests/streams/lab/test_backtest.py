"""`lendwatch backtest`: one history, current and candidate thresholds side by side, a sweep."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from benchmarks.detectors_only import EVERY_DETECTOR_IN_SHADOW
from detectors.base import CATEGORIES, DELINQUENCY_RISK
from detectors.registry import build_detectors
from detectors.thresholds import TUNABLES, InvalidThreshold, Thresholds
from sim import SimulationConfig, iter_jsonl, write_jsonl
from streams.lab.backtest import (
    BacktestReport,
    Run,
    backtest,
    category_of,
    changed_sections,
    parse_sweep,
    render_backtest,
    rerun,
    run,
    sweep,
)
from streams.lab.replay import Decoded, decode, read_records
from streams.lab.scoring import score
from streams.ops.cli import main
from topics.codec import encode_alert

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Small enough for about a second a run, with alerts of all three categories (3 delinquency).
CONFIG = SimulationConfig(borrowers=60, days=45, seed=3)
STRICTER = "delinquency.min_alert_score=0.95"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("backtest")
    events, labels = folder / "events.jsonl", folder / "labels.jsonl"
    write_jsonl(CONFIG, events, labels)
    return events, labels


@pytest.fixture(scope="module")
def history(files: tuple[Path, Path]) -> Decoded:
    return decode(read_records(files[0]))


def test_a_stricter_delinquency_score_drops_only_delinquency_alerts(files, history) -> None:
    labels = list(iter_jsonl(files[1]))
    base = Thresholds()
    candidate = base.with_changes({"delinquency.min_alert_score": "0.95"}, version="candidate")
    report = backtest(history, base, candidate, labels)

    before, after = report.base.by_detector(), report.candidate.by_detector()
    assert before["delinquency"] >= 2
    assert after["delinquency"] < before["delinquency"]
    for name in report.detectors:
        if name != "delinquency":
            assert after[name] == before[name], name
    assert sum(before.values()) > 10  # the other detectors did find things
    # The candidate keeps only base alerts that reach its bar: the same episodes, same ids.
    kept = {a.alert_id for a in report.candidate.alerts if a.detector == "delinquency"}
    assert kept < {a.alert_id for a in report.base.alerts if a.detector == "delinquency"}
    assert all(a.score >= 0.95 for a in report.candidate.alerts if a.detector == "delinquency")

    # Scored per category: fewer collections alerts cannot add false alert-days.
    was, will = report.base.figures(DELINQUENCY_RISK), report.candidate.figures(DELINQUENCY_RISK)
    assert (was.alerts, will.alerts) == (before["delinquency"], after["delinquency"])
    assert was.false_per_1000 is not None and will.false_per_1000 is not None
    assert will.false_per_1000 <= was.false_per_1000
    fraud = report.base.figures("falsified_flow")
    assert fraud.recall is not None and fraud.precision is not None
    assert report.borrowers == CONFIG.borrowers and report.period_days == CONFIG.days
    assert report.changes() == {"delinquency.min_alert_score": (0.5, 0.95)}

    # The decoded records are reused, not consumed: a third run repeats the first exactly.
    again = run(history, base)
    assert [a.alert_id for a in again.alerts] == [a.alert_id for a in report.base.alerts]


def test_cli_prints_both_columns_per_detector_and_the_scores(files, capsys) -> None:
    events, labels = files
    argv = ["backtest", "--base", "defaults", "--input", str(events), "--labels", str(labels)]
    assert main([*argv, "--set", STRICTER, "--set", "takeover.min_failures=6"]) == 0
    out = capsys.readouterr().out

    assert "current (v0)" in out and "candidate" in out
    assert "delinquency.min_alert_score: 0.5 → 0.95" in out
    assert "takeover.min_failures: 5 → 6" in out
    for detector in build_detectors(Thresholds()):
        assert re.search(rf"^{detector.name} +\d+ +\d+ +(0|[+-]\d+)$", out, re.M), detector.name
    row = re.search(r"^delinquency +(\d+) +(\d+) +(-\d+)$", out, re.M)
    assert row is not None
    was, will, change = map(int, row.groups())
    assert will < was and change == will - was
    for category in CATEGORIES:
        assert re.search(rf"^{category} +current \(v0\) +candidate$", out, re.M), category
    assert len(re.findall(r"^  precision +[\d.–]+ +[\d.–]+", out, re.M)) == 3
    assert len(re.findall(r"^  recall +[\d.–]+ +[\d.–]+", out, re.M)) == 3
    assert len(re.findall(r"^  false alert-days / 1,000 benign +[\d.]+ +[\d.]+", out, re.M)) == 3
    assert re.search(r"^  warned ≥3 days ahead +[\d.]+ +[\d.]+", out, re.M)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--set", "delinquency.min_alert_score=2"], "2.0 is out of range [0.05, 1.0]"),
        (["--set", "delinquency.min_alert_scor=0.6"], "delinquency.min_alert_scor: no such"),
        (["--set", "takeover.min_failures=2.5"], "'2.5' is not a whole number"),
        (["--set", "takeover.min_failures"], "expected KEY=VALUE"),
        (["--sweep", "delinquency.check_days_before_due=3:10:1"], "cannot be swept"),
        (["--sweep", "takeover.min_failures=2:8:0.5"], "start, stop and step must be whole"),
        (["--sweep", "delinquency.min_alert_score=0.5:1.1:0.3"], "1.1 is out of range"),
        ([], "give --set KEY=VALUE or --sweep"),
    ],
)
def test_invalid_changes_exit_2_before_anything_runs(
    files, tmp_path, capsys, options: list[str], message: str
) -> None:
    plot = tmp_path / "sweep.png"
    argv = ["backtest", "--base", "defaults", "--input", str(files[0]), *options]
    if "--sweep" in options:
        argv += ["--plot", str(plot)]
    elif options:  # a valid sweep beside an invalid --set must not run either
        argv += ["--sweep", "delinquency.min_alert_score=0.3:0.9:0.3", "--plot", str(plot)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == "" and "decoded" not in captured.err
    assert not plot.exists()


def test_sweep_writes_a_plot_and_alerts_fall_as_the_bar_rises(
    files, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # the plot's default place is the current directory
    events, labels = files
    argv = ["backtest", "--base", "defaults", "--input", str(events), "--labels", str(labels)]
    assert main([*argv, "--sweep", "delinquency.min_alert_score=0.3:0.9:0.2"]) == 0
    out = capsys.readouterr().out

    plot = tmp_path / "backtest-sweep-delinquency.min_alert_score.png"
    assert f"wrote the sweep plot to {plot.name}" in out
    image = plot.read_bytes()
    assert image.startswith(PNG_SIGNATURE) and len(image) > 5_000

    rows = re.findall(r"^(\d\.\d+) +(\d+) +(\d+) +(\d+) +(\d+) +([\d.–]+) +([\d.–]+)", out, re.M)
    assert [r[0] for r in rows] == ["0.3", "0.5", "0.7", "0.9"]
    totals = [int(r[1]) for r in rows]
    delinquency = [int(r[4]) for r in rows]
    assert totals == sorted(totals, reverse=True) and totals[0] > totals[-1]
    assert delinquency == sorted(delinquency, reverse=True) and delinquency[0] > delinquency[-1]
    assert len({(r[2], r[3]) for r in rows}) == 1  # fraud and security alerts do not move
    assert "figures of delinquency_risk" in out


def test_sweep_values_are_inclusive_typed_and_checked() -> None:
    base = Thresholds()
    key, values = parse_sweep("delinquency.min_alert_score=0.3:0.9:0.1", base)
    assert key == "delinquency.min_alert_score"
    assert values == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # 0.9 despite float steps
    assert parse_sweep("takeover.min_failures=2:8:3", base)[1] == [2, 5, 8]
    assert all(type(v) is int for v in parse_sweep("takeover.min_failures=2:8:3", base)[1])
    with pytest.raises(InvalidThreshold, match="must not exceed"):
        parse_sweep("delinquency.min_silence_surprise=30:40:5", base)  # 35 > full (34)
    with pytest.raises(InvalidThreshold, match="step > 0"):
        parse_sweep("delinquency.min_alert_score=0.9:0.3:0.1", base)


def test_a_key_belongs_to_the_category_of_the_detector_reading_its_section() -> None:
    base = Thresholds()
    assert category_of("delinquency.min_alert_score", base) == "delinquency_risk"
    assert category_of("takeover.min_failures", base) == "abnormal_behaviour"
    assert category_of("wash_trading.min_pair_days", base) == "falsified_flow"


def test_render_shows_a_dash_where_a_figure_is_undefined() -> None:
    base, candidate = Thresholds(), Thresholds().with_changes({"takeover.min_failures": 6}, "c")
    unscored = BacktestReport(
        base=Run(base, [], 0.0),
        candidate=Run(candidate, [], 0.0),
        events=0,
        rejected=0,
        borrowers=10,
        period_days=30,
        partitions=8,
        labelled=False,
        detectors=["account_takeover"],
    )
    text = render_backtest(unscored)
    assert "precision" not in text and "(no --labels" in text

    card = score([], [], borrowers=10, period_days=30)
    unscored.base.card = unscored.candidate.card = card
    unscored.labelled = True
    text = render_backtest(unscored)
    assert re.search(r"^  precision +– +– +–$", text, re.M)  # no alert-days: no precision
    assert re.search(r"^  false alert-days / 1,000 benign +0\.00 +0\.00 +0$", text, re.M)


@pytest.fixture(scope="module")
def current(history: Decoded) -> Run:
    return run(history, Thresholds())


#: Every detector's tunable of ``EVERY_DETECTOR_IN_SHADOW``, three or four detectors a candidate.
GROUPS = [sorted(EVERY_DETECTOR_IN_SHADOW)[start::3] for start in range(3)]


@pytest.mark.parametrize("keys", GROUPS)
def test_rerunning_the_changed_detectors_alone_gives_the_whole_runs_alerts(
    history: Decoded, current: Run, keys: list[str]
) -> None:
    """A candidate's run reruns only the detectors whose thresholds change and keeps the
    others' alerts from the current run: the same alerts, byte for byte, as a whole run."""
    changes = {key: EVERY_DETECTOR_IN_SHADOW[key] for key in keys}
    candidate = Thresholds().with_changes(changes, version="candidate")
    whole = run(history, candidate)
    fast = rerun(history, current, candidate)

    assert changed_sections(current.thresholds, candidate) == {TUNABLES[k].section for k in keys}
    assert sorted(map(encode_alert, fast.alerts)) == sorted(map(encode_alert, whole.alerts))


def test_a_sweep_in_processes_gives_what_whole_runs_give(history: Decoded) -> None:
    key, values = "delinquency.min_alert_score", [0.3, 0.9]
    done: list[int] = []
    points = sweep(history, Thresholds(), key, values, jobs=2, progress=done.append)

    assert done == [1, 2]
    for point, value in zip(points, values, strict=True):
        whole = run(history, Thresholds().with_changes({key: value}, version="w"))
        assert (point.alerts, point.by_category) == (len(whole.alerts), dict(whole.by_category()))


def test_cli_writes_both_runs_cases_to_look_into(files, tmp_path, capsys) -> None:
    """``--cases``: each run's review, naming its run; a stricter collections bar can only
    add late warnings and take false alert-days away, and the other categories' lines stay."""
    events, labels = files
    cases = tmp_path / "cases.jsonl"
    argv = ["backtest", "--base", "defaults", "--input", str(events), "--labels", str(labels)]
    assert main([*argv, "--set", STRICTER, "--cases", str(cases)]) == 0

    lines = [orjson.loads(line) for line in cases.read_bytes().splitlines()]
    current = [{k: v for k, v in x.items() if k != "run"} for x in lines if x["run"] == "current"]
    stricter = [{k: v for k, v in x.items() if k != "run"} for x in lines if x["run"] != "current"]
    assert {x["run"] for x in lines} == {"current", "candidate"}

    def of(run: list[dict], kind: str, category: str) -> list[str]:
        """The cases (or the false alert-days) of ``kind`` in ``category``."""
        return sorted(
            x.get("case_id") or f"{x['borrower_id']} {x['day']}"
            for x in run
            if x["kind"] == kind and x["category"] == category
        )

    assert set(of(current, "late_warning", DELINQUENCY_RISK)) <= set(
        of(stricter, "late_warning", DELINQUENCY_RISK)
    )
    assert len(of(stricter, "false", DELINQUENCY_RISK)) < len(
        of(current, "false", DELINQUENCY_RISK)
    )
    for category in ("falsified_flow", "abnormal_behaviour"):
        for kind in ("missed", "false"):
            assert of(current, kind, category) == of(stricter, kind, category)
    assert "cases to look into written" in capsys.readouterr().err

    assert main([*argv[:-2], "--set", STRICTER, "--cases", str(cases)]) == 2  # no labels
    assert "--cases needs --labels and a candidate" in capsys.readouterr().err
