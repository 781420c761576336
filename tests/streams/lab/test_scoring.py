"""Scoring against labels, by hand-checked numbers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import orjson
import pytest

from detectors.base import CATEGORIES
from streams.lab.review import review
from streams.lab.scoring import ScoreCard, score
from topics.codec import encode_alert
from topics.labels import CaseLabel
from topics.records import Alert

CST = timezone(timedelta(hours=8))


def at(month: int, day: int, hour: float = 0.0) -> datetime:
    """A platform-time instant in 2026."""
    return datetime(2026, month, day, tzinfo=CST) + timedelta(hours=hour)


def alert(
    borrower: str,
    category: str,
    detector: str,
    ts: datetime,
    loan_id: str | None = None,
    installment: int | None = None,
    episode: str = "e",
) -> Alert:
    return Alert(
        alert_id=f"{detector}-{borrower}-{ts.isoformat()}-{installment}",
        ts=ts,
        emitted_at=ts,
        category=category,
        detector=detector,
        severity="high",
        score=0.8,
        borrower_id=borrower,
        reasons=[],
        evidence=[],
        detector_version="1",
        thresholds_version="test",
        episode=episode,
        loan_id=loan_id,
        installment=installment,
    )


def label(
    borrower: str,
    category: str,
    typology: str,
    start: datetime,
    end: datetime,
    *entities: str,
    loan_id: str | None = None,
    installment: int | None = None,
    due_date: str | None = None,
) -> CaseLabel:
    return CaseLabel(
        case_id=f"{typology}-{borrower}",
        borrower_id=borrower,
        category=category,
        typology=typology,
        start=start,
        end=end,
        entities=entities,
        loan_id=loan_id,
        installment=installment,
        due_date=None if due_date is None else date.fromisoformat(due_date),
    )


FF, AB, DR = "falsified_flow", "abnormal_behaviour", "delinquency_risk"
END_OF_DAY = 24 - 1 / 3600

LABELS = [
    # found from Jan 10 12:00 to Jan 13 12:00 (end + 48 h), by an alert naming b-1 or b-11
    label("b-1", FF, "circular_transfer", at(1, 10, 12), at(1, 11, 12), "b-11", "acct-11"),
    # found from Jan 10 08:00 to Jan 12 20:00
    label("b-2", FF, "circular_transfer", at(1, 10, 8), at(1, 10, 20)),
    label("b-3", AB, "account_takeover", at(1, 20, 10), at(1, 20, 11), "dev-x"),
    label("b-4", AB, "account_takeover", at(1, 25, 10), at(1, 25, 10.5)),
    label(
        "b-5",
        DR,
        "missed_installment",
        at(1, 5),
        at(2, 8, END_OF_DAY),
        loan_id="ln-5-1",
        installment=1,
        due_date="2026-02-05",
    ),
    label(
        "b-6",
        DR,
        "missed_installment",
        at(1, 10),
        at(2, 13, END_OF_DAY),
        loan_id="ln-6-1",
        installment=2,
        due_date="2026-02-10",
    ),
    label(
        "b-9",
        DR,
        "missed_installment",
        at(1, 20),
        at(2, 23, END_OF_DAY),
        loan_id="ln-9-1",
        installment=1,
        due_date="2026-02-20",
    ),
]

ALERTS = [
    # b-1: three alerts on two days, all true; the first 3 h after the start.
    alert("b-1", FF, "circular_flow", at(1, 10, 15)),
    alert("b-1", FF, "circular_flow", at(1, 10, 18)),  # same borrower, category, day: once
    alert("b-1", FF, "circular_flow", at(1, 12, 9)),
    # b-11 has no case of its own, but is an entity of b-1's: its alert finds that case.
    alert("b-11", FF, "circular_flow", at(1, 11, 10)),
    # b-2: one alert before the start and one an hour after the end + 48 h: both false.
    alert("b-2", FF, "circular_flow", at(1, 8, 20)),
    alert("b-2", FF, "circular_flow", at(1, 12, 21)),
    alert("b-7", FF, "circular_flow", at(1, 15, 10)),  # benign borrower
    # b-3 found 30 min after the start (twice the same day); b-4 missed. b-8's alert names
    # the attacker's device of b-3's case: it finds that case; b-12's names nothing: false.
    alert("b-3", AB, "account_takeover", at(1, 20, 10.5)),
    alert("b-3", AB, "account_takeover", at(1, 20, 10.75)),
    alert("b-8", AB, "device_ring", at(1, 21, 3), episode="device:dev-x"),
    alert("b-12", AB, "device_ring", at(1, 21, 4), episode="device:dev-y"),
    # b-5: warned 4 days before the end of its due date, then the missed alert.
    alert("b-5", DR, "delinquency", at(2, 2), "ln-5-1", 1),
    alert("b-5", DR, "delinquency", at(2, 9), "ln-5-1", 1),
    # b-6: an early alert on *another* installment finds the case (it names the borrower) but
    # is no warning for this installment; the alert on it comes 2.5 days before the end of
    # its due date: too late.
    alert("b-6", DR, "delinquency", at(2, 1), "ln-6-1", 3),
    alert("b-6", DR, "delinquency", at(2, 8, 12), "ln-6-1", 2),
    alert("b-6", DR, "delinquency", at(2, 14), "ln-6-1", 2),
    # b-9: warned 6 days ahead; the alert is stamped in UTC (Feb 15 00:00 platform time).
    alert("b-9", DR, "delinquency", datetime(2026, 2, 14, 16, tzinfo=UTC), "ln-9-1", 1),
    alert("b-10", DR, "delinquency", at(2, 3), "ln-10-1", 1),  # benign borrower
]


def _check(card: ScoreCard) -> None:
    ff, ab, dr = (card.categories[c] for c in (FF, AB, DR))
    assert (ff.alert_days, ff.true_alert_days, ff.benign_borrowers) == (6, 3, 18)
    assert ff.precision == pytest.approx(0.5)
    # The false alert-days of a labelled borrower (b-2) count too, over the benign population;
    # of the three, one is on a borrower without a case (b-7). The true alert-day of b-11, an
    # entity of b-1's case without a case of its own, is not a benign one's false alert.
    assert ff.false_per_1000 == pytest.approx(3 / 18 * 1000)
    assert (ff.benign_alert_days, ff.benign_per_1000) == (1, pytest.approx(1 / 18 * 1000))
    assert (ab.alert_days, ab.true_alert_days, ab.benign_borrowers) == (3, 2, 18)
    assert ab.false_per_1000 == pytest.approx(1 / 18 * 1000)
    assert (dr.alert_days, dr.true_alert_days, dr.benign_borrowers) == (7, 6, 17)
    assert dr.false_per_1000 == pytest.approx(1 / 17 * 1000)

    ring, takeover, missed = (
        card.typologies[t] for t in ("circular_transfer", "account_takeover", "missed_installment")
    )
    assert (ring.category, ring.cases, ring.detected, ring.recall) == (FF, 2, 1, 0.5)
    assert ring.hours_to_detect == pytest.approx([3.0])
    assert (takeover.cases, takeover.detected, takeover.median_hours_to_detect) == (2, 1, 0.5)
    assert (missed.cases, missed.detected) == (3, 3)
    # First finding alert minus start: 28, 22 and 26 days.
    assert sorted(missed.hours_to_detect) == pytest.approx([528.0, 624.0, 672.0])
    assert missed.median_hours_to_detect == pytest.approx(624.0)

    warning = card.delinquency
    assert (warning.installments, warning.warned) == (3, 2)
    assert warning.share == pytest.approx(2 / 3)
    assert sorted(warning.days_of_warning) == pytest.approx([4.0, 6.0])
    assert warning.median_days == pytest.approx(5.0)
    assert card.warnings["missed_installment"].to_dict() == warning.to_dict()

    by_detector = {
        d.detector: (d.categories, d.alerts, d.true_alerts) for d in card.detectors.values()
    }
    assert by_detector == {
        "circular_flow": ([FF], 7, 4),
        "account_takeover": ([AB], 2, 2),
        "device_ring": ([AB], 2, 1),
        "delinquency": ([DR], 7, 6),
    }


def test_score_counts_recall_alert_days_false_rate_and_warnings_exactly() -> None:
    card = score(ALERTS, LABELS, borrowers=20, period_days=60)
    assert (card.borrowers, card.period_days) == (20, 60)
    _check(card)


def test_score_takes_alerts_and_labels_as_json_and_borrowers_as_ids() -> None:
    alerts = [orjson.loads(encode_alert(a)) for a in reversed(ALERTS)]  # any order
    labels = [json.loads(json.dumps(x.to_dict())) for x in LABELS]
    borrowers = [f"b-{i}" for i in range(1, 21)]
    card = score(alerts, labels, borrowers=borrowers, period_days=60)
    _check(card)
    assert json.loads(json.dumps(card.to_dict())) == card.to_dict()


def test_an_alert_names_an_entity_as_a_whole_id_not_inside_a_longer_one() -> None:
    labels = [label("b-1", AB, "device_ring", at(1, 3), at(1, 3, 1), "dev-1")]
    alerts = [
        alert("b-2", AB, "device_ring", at(1, 3, 2), episode="device:dev-10"),
        alert("b-3", AB, "device_ring", at(1, 3, 2), episode="device:dev-1"),
    ]
    card = score(alerts, labels, borrowers=10, period_days=30)
    assert card.detectors["device_ring"].true_alerts == 1
    assert card.typologies["device_ring"].hours_to_detect == [2.0]


def test_a_category_and_typology_nobody_told_the_scorer_about_are_scored() -> None:
    labels = [label("b-1", "identity_fraud", "synthetic_id", at(1, 3), at(1, 3, 1))]
    alerts = [
        alert("b-1", "identity_fraud", "some_new_detector", at(1, 3, 2)),
        alert("b-2", "identity_fraud", "some_new_detector", at(1, 4)),
    ]
    card = score(alerts, labels, borrowers=10, period_days=30)
    assert list(card.categories) == [*CATEGORIES, "identity_fraud"]
    new = card.categories["identity_fraud"]
    assert (new.alert_days, new.true_alert_days, new.benign_borrowers) == (2, 1, 9)
    assert card.typologies["synthetic_id"].recall == 1.0
    assert card.typologies["synthetic_id"].hours_to_detect == [2.0]
    # No labels, no alerts: nothing to divide by, nothing false either.
    for name in CATEGORIES:
        assert card.categories[name].precision is None
        assert card.categories[name].false_per_1000 == 0.0
    assert card.delinquency.share is None


def test_pooled_cards_add_counts_and_pool_samples() -> None:
    card = score(ALERTS, LABELS, borrowers=20, period_days=60)
    both = ScoreCard.pooled([card, card])
    assert both.borrowers == 40
    ring = both.typologies["circular_transfer"]
    assert (ring.cases, ring.detected, ring.recall) == (4, 2, 0.5)
    assert both.categories[FF].false_per_1000 == pytest.approx(6 / 36 * 1000)
    assert both.categories[FF].benign_alert_days == 2
    assert (both.delinquency.installments, both.delinquency.warned) == (6, 4)
    assert both.delinquency.median_days == pytest.approx(5.0)
    assert both.warnings["missed_installment"].warned == 4
    assert both.detectors["delinquency"].alerts == 14


#: The case ends on 5 March; its alert on the 4th finds it; the confirmation a week later, the
#: same episode and more, is true though it finds nothing. Another borrower's alert of that
#: episode, another detector's, or a mere shared prefix of a word are not.
CONFIRMED_CASE = label("b-1", FF, "revenue_inflation", at(2, 1), at(3, 5))
CONFIRMATIONS = [
    alert("b-1", FF, "revenue_inflation", at(3, 4), episode="inflation:app-1"),
    alert("b-1", FF, "revenue_inflation", at(3, 11), episode="inflation:app-1:confirmed"),
    alert("b-1", FF, "circular_flow", at(3, 12), episode="inflation:app-1:confirmed"),
    alert("b-1", FF, "revenue_inflation", at(3, 13), episode="inflation:app-10"),
    alert("b-2", FF, "revenue_inflation", at(3, 14), episode="inflation:app-1:confirmed"),
]


def test_a_confirmation_of_a_found_case_is_true_after_the_case_window() -> None:
    card = score(CONFIRMATIONS, [CONFIRMED_CASE], borrowers=10, period_days=60)

    assert card.typologies["revenue_inflation"].detected == 1
    falsified = card.categories[FF]
    assert (falsified.alert_days, falsified.true_alert_days) == (5, 2)
    assert card.detectors["revenue_inflation"].true_alerts == 2
    assert card.detectors["circular_flow"].true_alerts == 0


def test_a_confirmation_before_anything_found_the_case_is_false() -> None:
    case = label("b-1", FF, "revenue_inflation", at(2, 1), at(3, 5))
    late = alert("b-1", FF, "revenue_inflation", at(3, 11), episode="inflation:app-1:confirmed")

    card = score([late], [case], borrowers=10, period_days=60)

    assert card.categories[FF].true_alert_days == 0


def test_review_lists_what_the_card_counts_case_by_case() -> None:
    """The cases missed, the installment warned too late and each false alert-day, as the
    card counts them: a team reads these to see why a figure is what it is."""
    lines = review(ALERTS, LABELS)

    kinds = sorted((line["kind"], line["borrower_id"]) for line in lines)
    assert kinds == [
        ("false", "b-10"),
        ("false", "b-12"),
        ("false", "b-2"),
        ("false", "b-2"),
        ("false", "b-7"),
        ("late_warning", "b-6"),
        ("missed", "b-2"),
        ("missed", "b-4"),
    ]
    late = next(line for line in lines if line["kind"] == "late_warning")
    assert (late["case_id"], late["due_date"]) == ("missed_installment-b-6", "2026-02-10")
    assert late["first_alert"] == at(2, 8, 12).isoformat()
    falses = {(line["borrower_id"], line["day"]): line for line in lines if line["kind"] == "false"}
    assert set(falses) == {
        ("b-2", "2026-01-08"),
        ("b-2", "2026-01-12"),
        ("b-7", "2026-01-15"),
        ("b-12", "2026-01-21"),
        ("b-10", "2026-02-03"),
    }
    assert falses["b-2", "2026-01-12"]["borrower_has_case"] is True  # outside its window
    assert falses["b-7", "2026-01-15"]["borrower_has_case"] is False
    [device] = falses["b-12", "2026-01-21"]["alerts"]
    assert (device["detector"], device["episode"]) == ("device_ring", "device:dev-y")
    card = score(ALERTS, LABELS, borrowers=20, period_days=60)
    for category in (FF, AB, DR):
        counted = card.categories[category]
        listed = [line for line in falses.values() if line["category"] == category]
        assert len(listed) == counted.alert_days - counted.true_alert_days
    assert json.loads(orjson.dumps(lines)) == lines


def test_review_lists_no_confirmation_of_a_found_case_as_false() -> None:
    lines = review(CONFIRMATIONS, [CONFIRMED_CASE])

    falses = [(line["kind"], line["day"], line["borrower_has_case"]) for line in lines]
    assert falses == [
        ("false", "2026-03-12", True),
        ("false", "2026-03-13", True),
        ("false", "2026-03-14", False),
    ]
