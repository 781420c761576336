"""`lendwatch backtest`: one history, current and candidate thresholds side by side, a sweep."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detectors.base import DELINQUENCY_RISK
from detectors.thresholds import InvalidThreshold, Thresholds
from streams.backtest import (
    BacktestReport,
    Run,
    backtest,
    category_of,
    parse_sweep,
    render_backtest,
    run,
)
from streams.evaluate import score
from streams.replay import Decoded, decode, read_records
from streams.simulate import SimulationConfig, iter_jsonl, write_jsonl

#: Small enough for about a second a run, with alerts of all three categories (3 delinquency).
CONFIG = SimulationConfig(borrowers=60, days=45, seed=3)


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
