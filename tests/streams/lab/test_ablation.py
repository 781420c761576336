"""`lendwatch evaluate --ablation`: arms over one small population, counted as evaluate counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from detectors.base import DELINQUENCY_RISK, FALSIFIED_FLOW
from detectors.thresholds import Thresholds
from sim import BASELINE
from streams.lab.ablation import Arm, ArmFigures, ablate, default_arms, render_ablation
from streams.lab.evaluate import run_seed
from topics.labels import CaseLabel

BORROWERS, DAYS, SEED = 60, 60, 3


def test_the_default_arm_is_the_rules_alone() -> None:
    assert [(arm.name, arm.thresholds, arm.feed) for arm in default_arms()] == [
        ("rules", Thresholds(), None)
    ]


def _no_repayments(
    labels: Sequence[CaseLabel], records: Iterable[Mapping[str, Any]]
) -> Iterable[Mapping[str, Any]]:
    return (r for r in records if "repayment" not in str(r.get("topic", "")))


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, ArmFigures]]:
    """Defaults as simulated, and the same without the repayments topic, one seed."""
    arms = [Arm("as simulated", Thresholds()), Arm("no repayments", Thresholds(), _no_repayments)]
    return ablate(arms, [BASELINE], [SEED], borrowers=BORROWERS, days=DAYS, partitions=4, jobs=1)


def test_an_arm_counts_what_evaluate_counts_over_the_whole_period(
    table: dict[str, dict[str, ArmFigures]],
) -> None:
    figures = table["as simulated"]["baseline"]
    card = run_seed(SEED, BORROWERS, DAYS, 4, Thresholds(), BASELINE).score

    for category in (DELINQUENCY_RISK, FALSIFIED_FLOW):
        scored = card.categories[category]
        assert figures.alert_days[("all", category)] == scored.alert_days
        assert figures.true_days[("all", category)] == scored.true_alert_days
        # The first and last 30 days are parts of the whole, apart here (60 days).
        parts = sum(figures.alert_days[(w, category)] for w in ("first 30 d", "last 30 d"))
        assert parts == scored.alert_days
    assert card.visible_decline is not None
    assert figures.installments["all"] == card.visible_decline.installments
    assert figures.warned["all"] == card.visible_decline.warned
    assert figures.installments["first 30 d"] + figures.installments["last 30 d"] == (
        card.visible_decline.installments
    )


def test_an_arms_feed_changes_what_the_detectors_see_and_the_table_shows_it(
    table: dict[str, dict[str, ArmFigures]],
) -> None:
    assert table["no repayments"]["baseline"].alert_days[("all", DELINQUENCY_RISK)] == 0
    assert table["as simulated"]["baseline"].alert_days[("all", DELINQUENCY_RISK)] > 0
    text = render_ablation(table, DAYS)
    assert "no repayments" in text and "last 30 d" in text and "delinquency " in text
