"""`lendwatch models`: what the workers publish of their verdict models, and whether they agree."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from streams.ops.models import render_models
from streams.settings import Settings
from streams.worker.feedback import VerdictFollower
from tests.detectors.test_verdicts import alert, taught, verdict


def follower(instance: str, rounds: int) -> VerdictFollower:
    """A worker's follower whose models learnt ``rounds`` rounds of verdicts (never started:
    its Redis client connects on first use, and none happens here)."""
    settings = Settings(group_instance_id=instance)
    made = VerdictFollower(settings, Redis(), CollectorRegistry(), dead_letters=None)  # type: ignore[arg-type]
    taught(made.models, rounds)
    made.offsets = {0: 2 * rounds}
    return made


def test_workers_that_learnt_the_same_verdicts_agree() -> None:
    statuses = [follower("w1", 15).status(), follower("w2", 15).status()]
    text = render_models(statuses, now=statuses[0]["published_at"] + 5)
    assert "w1: verdict models 30-" in text and "30 labels learnt" in text
    assert "delinquency_risk" in text and "15 confirmed, 15 dismissed" in text
    assert "holding" in text and "feedback offsets 0:30" in text
    assert text.endswith("2 worker(s): their models agree\n")


def test_a_worker_behind_shows_as_differing() -> None:
    ahead = follower("w1", 15)
    extra = alert(500, "silence")
    ahead.models.remember(extra)
    ahead.models.learn(verdict(extra, "dismissed"))
    text = render_models([ahead.status(), follower("w2", 15).status()])
    assert "their models differ (2 versions; some may lag)" in text
    assert render_models([]) == "no worker has published verdict models yet\n"
