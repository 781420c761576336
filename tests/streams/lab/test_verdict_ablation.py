"""The verdict models' ablation: false alerts the teams dismiss fall, true ones stay."""

from __future__ import annotations

from datetime import timedelta

from streams.lab.verdict_ablation import AblationOptions, ablate, pooled, render_ablation
from tests.detectors.test_verdicts import T0, alert
from topics.labels import iter_labels

DAYS = 90


def history() -> tuple[list, list]:
    """Every day a false collections alert (a quiet borrower) and a true one (a missed
    installment of a labelled borrower)."""
    alerts, labels = [], []
    for day in range(DAYS):
        quiet = alert(day * 24, "silence")
        missed = alert(day * 24 + 1, "missed")
        alerts += [quiet, missed]
        labels.append(
            {
                "case_id": f"c-{day}",
                "borrower_id": missed.borrower_id,
                "category": "delinquency_risk",
                "typology": "missed_installment",
                "start": (missed.ts - timedelta(days=1)).isoformat(),
                "end": (missed.ts + timedelta(days=1)).isoformat(),
                "loan_id": "ln-1",
                "installment": 1,
                "due_date": (missed.ts + timedelta(days=10)).date().isoformat(),
            }
        )
    return alerts, list(iter_labels(labels))


def test_with_a_verdict_on_every_alert_false_alerts_fall_and_true_ones_stay() -> None:
    alerts, labels = history()
    options = AblationOptions()
    result = ablate(alerts, labels, borrowers=2 * DAYS, days=DAYS, start=T0, options=options)
    rules, models = result.rules["delinquency_risk"], result.models["delinquency_risk"]
    assert rules.false_last == 30 and rules.true_last == 30
    assert models.true_last == 30 and models.cases_found == rules.cases_found
    assert models.false_last <= 10
    assert result.met("delinquency_risk") and result.held > 0
    table = render_ablation(pooled([result, result]), options)
    assert "delinquency_risk" in table and "yes" in table


def test_without_verdicts_nothing_changes() -> None:
    alerts, labels = history()
    options = AblationOptions(share=0.0)
    result = ablate(alerts, labels, borrowers=2 * DAYS, days=DAYS, start=T0, options=options)
    assert result.held == 0 and result.models == result.rules
    assert result.false_drop("delinquency_risk") == 0.0
