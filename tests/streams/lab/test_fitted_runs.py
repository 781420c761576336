"""`replay --fitted` and `backtest --fitted`: history run under a fitted file's thresholds."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detectors.thresholds import Thresholds
from sim import SimulationConfig, write_jsonl
from streams.lab.fitted import FittedFile, write_fitted
from streams.ops.cli import main

#: Small enough for about a second a run, with alerts of all three categories.
CONFIG = SimulationConfig(borrowers=60, days=45, seed=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("fitted")
    events, labels = folder / "events.jsonl", folder / "labels.jsonl"
    write_jsonl(CONFIG, events, labels)
    stricter = Thresholds().with_changes({"delinquency.min_alert_score": 0.95}, version="x")
    fitted = write_fitted(folder / "fitted.json", FittedFile(stricter))
    return events, labels, fitted


def _alerts(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replay_runs_under_the_fitted_thresholds(files, tmp_path: Path, capsys) -> None:
    events, _, fitted = files
    plain, under = tmp_path / "plain.jsonl", tmp_path / "fitted.jsonl"
    assert main(["replay", "--input", str(events), "--output", str(plain), "--no-mask"]) == 0
    argv = ["replay", "--input", str(events), "--output", str(under), "--no-mask"]
    assert main([*argv, "--fitted", str(fitted)]) == 0
    assert f"under the fitted thresholds of {fitted} (fit-" in capsys.readouterr().err

    before, after = _alerts(plain), _alerts(under)
    version = str(after[0]["thresholds_version"])
    assert version.startswith("fit-") and all(a["thresholds_version"] == version for a in after)
    assert all(a["thresholds_version"] == "v0" for a in before)

    def delinquency(alerts: list[dict[str, object]]) -> int:
        return sum(a["detector"] == "delinquency" for a in alerts)

    assert 0 <= delinquency(after) < delinquency(before)
    others = [a["alert_id"] for a in before if a["detector"] != "delinquency"]
    assert others and others == [a["alert_id"] for a in after if a["detector"] != "delinquency"]


def test_backtest_takes_the_fitted_file_as_its_candidate(files, capsys) -> None:
    events, labels, fitted = files
    argv = ["backtest", "--base", "defaults", "--input", str(events), "--labels", str(labels)]
    assert main([*argv, "--fitted", str(fitted), "--set", "takeover.min_failures=6"]) == 0
    out = capsys.readouterr().out
    assert "delinquency.min_alert_score: 0.5 → 0.95" in out
    assert "takeover.min_failures: 5 → 6" in out  # --set on top of the fitted values


def test_a_fitted_file_that_breaks_a_rule_is_refused_before_anything_runs(
    files, tmp_path: Path, capsys
) -> None:
    events, _, fitted = files
    raw = orjson.loads(fitted.read_bytes())
    raw["thresholds"]["delinquency.min_alert_score"] = 2
    broken = tmp_path / "broken.json"
    broken.write_bytes(orjson.dumps(raw))
    out = tmp_path / "alerts.jsonl"
    replay = ["replay", "--input", str(events), "--output", str(out), "--fitted", str(broken)]
    assert main(replay) == 2
    assert "delinquency.min_alert_score: 2.0 is out of range" in capsys.readouterr().err
    assert not out.exists()
    backtest = ["backtest", "--base", "defaults", "--input", str(events), "--fitted"]
    assert main([*backtest, str(tmp_path / "missing.json")]) == 2
    captured = capsys.readouterr()
    assert "no such file" in captured.err and "decoded" not in captured.err
