"""`lendwatch evaluate`: one small run end to end."""

from __future__ import annotations

import io
import json

from detectors.base import CATEGORIES
from streams.lab.evaluate import evaluate


def test_evaluate_small_run_end_to_end() -> None:
    out = io.StringIO()
    report = evaluate(seeds=[1], borrowers=60, days=45, out=out)

    assert set(CATEGORIES) <= set(report.total.categories)
    assert {"circular_transfer", "account_takeover", "missed_installment"} <= set(
        report.total.typologies
    )
    (run,) = report.runs
    assert run.seed == 1 and run.events > 10_000 and run.rejected == 0
    assert run.alerts == sum(d.alerts for d in report.total.detectors.values()) > 0
    assert 0 < run.detector_seconds < run.wall_seconds
    assert report.detector_events_per_second and report.baseline_events_per_second
    assert report.speed_ratio is not None and report.speed_ratio > 0
    for t in report.total.typologies.values():
        assert t.recall is not None and 0.0 <= t.recall <= 1.0
    for c in report.total.categories.values():
        assert 0 <= c.true_alert_days <= c.alert_days
        assert c.benign_borrowers < 60
    assert {c.metric for c in report.checks} >= {
        "recall",
        "precision",
        "false per 1,000 benign",
        "warned ≥3 days ahead",
        "events/s",
    }

    table = out.getvalue()
    for word in (*CATEGORIES, "circular_transfer", "missed_installment", "baseline/s", "seed 1"):
        assert word in table
    assert "✓" in table or "✗" in table
    assert json.loads(json.dumps(report.to_dict()))["runs"][0]["seed"] == 1
