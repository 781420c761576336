"""The verdict models: what the teams dismiss they stop seeing, what they confirm keeps coming."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

from detectors.verdicts import VerdictModels, VerdictSettings, features_of, signature_of
from topics.records import Alert, Feedback, Reason

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def alert(n: int, kind: str, borrower: str | None = None) -> Alert:
    """Two kinds of collections alert: ``silence`` (a quiet borrower, barely past the rule)
    and ``missed`` (an installment unpaid, far past it)."""
    if kind == "silence":
        reasons = [Reason(code="login_silence", message="quiet", observed=8.0, threshold=7.0)]
        score = 0.55
    else:
        reasons = [
            Reason(code="installment_missed", message="unpaid", observed=1.0, threshold=0.5),
            Reason(code="inflow_decline", message="down", observed=0.2, threshold=0.6),
        ]
        score = 0.9
    return Alert(
        alert_id=f"a-{kind}-{n}",
        ts=T0 + timedelta(hours=n),
        emitted_at=T0 + timedelta(hours=n),
        category="delinquency_risk",
        detector="delinquency",
        severity="high",
        score=score,
        borrower_id=borrower or f"b-{kind}-{n}",
        reasons=reasons,
        evidence=[],
        detector_version="1",
        thresholds_version="v0",
        episode=f"ln-{n}#1",
    )


def verdict(a: Alert, said: str) -> Feedback:
    return Feedback(
        event_id=f"fb-{a.alert_id}", ts=a.ts + timedelta(days=2), alert_id=a.alert_id,
        verdict=said, author="ana",
    )  # fmt: skip


def taught(models: VerdictModels, rounds: int) -> VerdictModels:
    """Silence alerts always dismissed, missed installments always confirmed."""
    for n in range(rounds):
        for kind, said in (("silence", "dismissed"), ("missed", "confirmed")):
            raised = alert(n, kind)
            models.remember(raised)
            assert not models.judge(raised).hold or kind == "silence"
            assert models.learn(verdict(raised, said)) == "applied"
    return models


def test_a_kind_the_teams_always_dismiss_is_held_back_with_the_models_reason() -> None:
    models = taught(VerdictModels(), 20)
    judgement = models.judge(alert(100, "silence"))
    assert judgement.hold
    assert judgement.reason is not None and judgement.reason.code == "verdict_model"
    assert "similar alerts were dismissed" in judgement.reason.message
    assert judgement.probability is not None and judgement.cut is not None
    assert judgement.probability < judgement.cut


def test_benign_twin_a_kind_the_teams_confirm_is_never_held() -> None:
    models = taught(VerdictModels(), 20)
    assert not models.judge(alert(100, "missed")).hold
    assert models.describe_models()["delinquency_risk"]["confirmed"] == 20


def test_nothing_is_held_before_enough_labels_of_both_kinds() -> None:
    models = taught(VerdictModels(VerdictSettings(min_labels=60)), 20)
    assert not models.judge(alert(100, "silence")).hold
    only_dismissed = VerdictModels()
    for n in range(40):
        raised = alert(n, "silence")
        only_dismissed.remember(raised)
        only_dismissed.learn(verdict(raised, "dismissed"))
    assert not only_dismissed.judge(alert(100, "silence")).hold


def test_a_kind_never_judged_is_not_held_even_when_the_model_scores_it_low() -> None:
    models = taught(VerdictModels(), 20)
    odd = alert(100, "silence")
    odd.detector = "login_watch"  # a new detector: no similar alert judged yet
    judgement = models.judge(odd)
    assert not judgement.hold


def test_verdicts_for_unknown_alerts_are_counted_and_kept_not_applied() -> None:
    models = taught(VerdictModels(), 5)
    before = models.version
    ghost = verdict(alert(999, "silence"), "dismissed")
    assert models.learn(ghost) == "unknown_alert"
    assert models.unknown == {ghost.alert_id: "dismissed"}
    assert models.counts["unknown_alert"] == 1
    assert models.version == before


def test_duplicates_and_second_verdicts_teach_nothing() -> None:
    models = taught(VerdictModels(), 5)
    raised = alert(50, "silence")
    models.remember(raised)
    assert models.learn(verdict(raised, "duplicate")) == "duplicate"
    assert models.learn(verdict(raised, "dismissed")) == "applied"
    version = models.version
    assert models.learn(verdict(raised, "confirmed")) == "repeated"
    assert models.version == version


def test_the_same_verdicts_in_the_same_order_give_the_same_models() -> None:
    first, second = taught(VerdictModels(), 15), taught(VerdictModels(), 15)
    assert first.version == second.version and first.labels == 30
    assert first.state_digest() == second.state_digest()
    restored = VerdictModels.restore(first.snapshot())
    assert restored.version == first.version
    probe = alert(300, "silence")
    assert restored.judge(probe).probability == first.judge(probe).probability


def test_features_are_the_reasons_against_their_thresholds_and_the_borrowers_history() -> None:
    x = features_of(alert(1, "missed"), (2, 0))
    assert x["code=installment_missed"] == 1.0 and x["detector=delinquency"] == 1.0
    # Monotone in observed / threshold: 0.2 / 0.6 below 1 / 0.5.
    assert 0 < x["ratio:inflow_decline"] < x["ratio:installment_missed"]
    assert x["borrower_confirmed"] > 0 == x["borrower_dismissed"]
    assert signature_of(alert(1, "missed")) == "delinquency:inflow_decline+installment_missed"


def dismissed_once(models: VerdictModels, borrower: str = "b-1") -> Alert:
    """One quiet-borrower alert of ``borrower`` raised at T0 and dismissed two days later."""
    first = alert(0, "silence", borrower)
    models.remember(first)
    assert models.learn(verdict(first, "dismissed")) == "applied"
    return first


def test_an_alert_like_one_dismissed_for_the_same_borrower_lately_is_held_by_the_memory() -> None:
    models = VerdictModels()
    first = dismissed_once(models)
    again = alert(24 * 22, "silence", "b-1")  # 20 days after the verdict, the same kind
    judgement = models.judge(again)
    assert judgement.hold and judgement.reason is not None
    assert judgement.reason.code == "verdict_model"
    assert "dismissed for this borrower 20 days ago" in judgement.reason.message
    assert signature_of(first) in judgement.reason.message
    assert judgement.reason.observed < judgement.reason.threshold
    assert models.held == {"delinquency_risk": 1}


def test_benign_twins_of_the_memory_another_borrower_kind_or_a_much_stronger_score() -> None:
    models = VerdictModels()
    dismissed_once(models)
    assert not models.judge(alert(24 * 22, "silence", "b-2")).hold  # another borrower
    assert not models.judge(alert(24 * 22, "missed", "b-1")).hold  # other reasons
    stronger = alert(24 * 22, "silence", "b-1")
    stronger.score = 0.55 + models.settings.stronger_by
    assert not models.judge(stronger).hold
    other_detector = alert(24 * 22, "silence", "b-1")
    other_detector.detector = "login_watch"
    assert not models.judge(other_detector).hold
    assert models.held == {}


def test_the_memory_forgets_a_dismissal_older_than_memory_days() -> None:
    models = VerdictModels()
    dismissed_once(models)
    days = models.settings.memory_days
    assert models.judge(alert(int(24 * (days + 1)), "silence", "b-1")).hold
    assert not models.judge(alert(int(24 * (days + 3)), "silence", "b-1")).hold


def test_a_borrower_with_a_confirmed_alert_is_never_held_by_the_memory_or_the_model() -> None:
    """Dismissed once, then genuinely in trouble: once the teams confirm one of its alerts,
    its later alerts, even of the dismissed kind, reach them."""
    models = VerdictModels()
    dismissed_once(models)
    trouble = alert(24 * 5, "missed", "b-1")
    models.remember(trouble)
    models.learn(verdict(trouble, "confirmed"))
    assert not models.judge(alert(24 * 10, "silence", "b-1")).hold
    # The model would hold a quiet-borrower alert; not this confirmed borrower's.
    taught(models, 20)
    assert models.judge(alert(24 * 30, "silence", "b-new")).hold
    assert not models.judge(alert(24 * 30, "silence", "b-1")).hold


def test_the_memory_is_checkpointed_and_an_older_checkpoint_restores_without_it() -> None:
    models = VerdictModels()
    dismissed_once(models)
    probe = alert(24 * 22, "silence", "b-1")
    restored = VerdictModels.restore(models.snapshot())
    assert restored.judge(probe).hold
    assert restored.state_digest() == models.state_digest()
    older = pickle.dumps(pickle.loads(models.snapshot())[:8])  # before the memory existed
    assert not VerdictModels.restore(older).judge(probe).hold
