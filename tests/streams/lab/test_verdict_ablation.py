"""The verdict models' ablation: false alerts the teams dismiss fall, true ones stay."""

from __future__ import annotations

from datetime import timedelta

from streams.lab.scoring import AlertTruth
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


def test_a_confirmation_in_the_last_days_of_a_case_found_before_them_counts_true() -> None:
    """An escalation (``…:confirmed``) is true by the scorer's rule over the run, though it
    finds nothing itself: the last 30 days count it true even when the alert that found the
    case came before them, and the simulated teams confirm it. Its twin, an alert of the same
    borrower on another episode after the case, stays false."""
    found = alert(24 * 55, "missed", "b-9")
    found.category, found.detector, found.episode = "falsified_flow", "revenue_inflation", "inf:a"
    confirmation = alert(24 * 62, "missed", "b-9")
    confirmation.category, confirmation.detector = found.category, found.detector
    confirmation.episode = "inf:a:confirmed"
    other = alert(24 * 63, "missed", "b-9")
    other.category, other.detector, other.episode = found.category, found.detector, "inf:b"
    label = {
        "case_id": "c-9", "borrower_id": "b-9", "category": "falsified_flow",
        "typology": "revenue_inflation", "start": (found.ts - timedelta(days=1)).isoformat(),
        "end": (found.ts + timedelta(days=1)).isoformat(),
    }  # fmt: skip
    labels = list(iter_labels([label]))
    alerts = [found, confirmation, other]
    result = ablate(alerts, labels, borrowers=10, days=DAYS, start=T0)
    rules = result.rules["falsified_flow"]
    assert (rules.true_first, rules.true_last, rules.false_last) == (0, 1, 1)
    truth = AlertTruth(labels)
    assert [truth(a) for a in alerts] == [True, True, False]
    assert not AlertTruth(labels)(confirmation)  # without the finding alert seen before
