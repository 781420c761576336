"""Live thresholds against a running worker: a change within a second, refusals, shadow mode."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from sim import SimulationConfig, write_jsonl
from streams.control.store import ThresholdStore
from streams.ops.broker import produce_records
from tests.integration.conftest import Deployment, Worker

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _episode(
    deployment: Deployment, borrower: str, failures: int, hour: int
) -> list[dict[str, Any]]:
    """A borrower who logs in from home, then fails ``failures`` times from a new device,
    then gets in from it: an account takeover when the failures reach the threshold."""
    at = START + timedelta(hours=hour)

    def login(number: int, minutes: float, device: str, success: bool) -> dict[str, Any]:
        return {
            "topic": deployment.topics.logins,
            "key": borrower,
            "value": {
                "event_id": f"{borrower}-{number}",
                "ts": (at + timedelta(minutes=minutes)).isoformat(),
                "borrower_id": borrower,
                "action": "login",
                "device_id": f"{borrower}-{device}",  # no device rings across the borrowers
                "ip": "198.51.100.7" if device == "attacker" else "10.1.2.3",
                "success": success,
            },
        }

    home = [login(0, -600, "home", True)]
    tries = [login(1 + i, i, "attacker", False) for i in range(failures)]
    return [*home, *tries, login(failures + 1, failures + 1, "attacker", True)]


def _cli(
    deployment: Deployment, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.ops.cli", "thresholds", *args],
        env={**deployment.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _thresholds_applied(worker: Worker) -> tuple[str, str] | None:
    """The (live, shadow) versions the worker reports on /metrics."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{worker.web_port}/metrics") as response,
    ):
        body = await response.text()
    found = re.search(r'^lendwatch_thresholds\{live="([^"]*)",shadow="([^"]*)"\} 1\.0$', body, re.M)
    return (found.group(1), found.group(2)) if found else None


async def _seconds_until(worker: Worker, wanted: tuple[str, str], timeout: float = 10.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await _thresholds_applied(worker) == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"worker did not apply {wanted} in {timeout}s: {worker.log.read_text()[-2000:]}"
    )


async def _alerts(
    deployment: Deployment, topic: str, wanted: Callable[[dict[str, Any]], bool] = lambda a: True
) -> list[dict[str, Any]]:
    received = await deployment.consume([topic], idle=3.0, timeout=30.0)
    return [alert for _, alert in received if wanted(alert)]


async def test_live_thresholds_reach_the_worker_within_a_second_and_shadow_stays_apart(
    deployment: Deployment,
) -> None:
    topics = deployment.topics
    public = deployment.masker.borrower  # alerts carry the keyed hash of a borrower's id
    worker = deployment.start_worker()
    sent = 0
    try:
        # v0: seven failures before a success from a new device are a takeover.
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-x", 7, 0))
        await worker.wait_processed(sent, timeout=90)
        [first] = await _alerts(deployment, topics.alerts_security)
        assert (first["borrower_id"], first["thresholds_version"]) == (public("b-x"), "v0")

        # A team raises the bar to ten failures: the worker has it within a second. The
        # audit records the configured operator name, and the command says so.
        done = _cli(
            deployment,
            "set",
            "takeover.min_failures=10",
            "--reason",
            "too noisy",
            env={"LW_OPERATOR": "sec-team"},
        )
        assert done.returncode == 0, done.stderr
        assert "v1 is live" in done.stdout
        assert "recorded in the audit trail as sec-team: the operator name" in done.stdout
        took = await _seconds_until(worker, ("v1", ""))
        print(f"threshold change applied by the worker {took * 1000:.0f} ms after the command")
        assert took < 1.0

        # An invalid change is refused and changes nothing.
        refused = _cli(deployment, "set", "takeover.min_failures=0", "--reason", "typo")
        assert refused.returncode == 2
        assert (
            "refused, nothing changed: takeover.min_failures: 0 is out of range [1, 100]"
            in refused.stderr
        )
        unknown = _cli(deployment, "set", "takeover.min_failure=6", "--reason", "typo")
        assert unknown.returncode == 2 and "no such threshold" in unknown.stderr
        redis = Redis.from_url(deployment.redis_url)
        try:
            store = ThresholdStore(redis, deployment.app_id)
            live = await store.live()
            assert (live.label, live.values["takeover.min_failures"]) == ("v1", 10)
            assert live.author == "sec-team"
            assert [e.version for e in await store.history()] == ["v1"]
        finally:
            await redis.aclose()
        await asyncio.sleep(1.0)
        assert await _thresholds_applied(worker) == ("v1", "")

        # The same seven failures no longer alert; eleven do, stamped v1.
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-y", 7, 1))
        sent += await produce_records(
            deployment.kafka.bootstrap, _episode(deployment, "b-z", 11, 2)
        )
        await worker.wait_processed(sent, timeout=60)
        security = await _alerts(deployment, topics.alerts_security)
        assert sorted((a["borrower_id"], a["thresholds_version"]) for a in security) == sorted(
            [(public("b-x"), "v0"), (public("b-z"), "v1")]
        )

        # A candidate of three failures runs in shadow: its alerts reach alerts.shadow only.
        tried = _cli(
            deployment, "shadow", "takeover.min_failures=3", "--reason", "catch slow attacks"
        )
        assert tried.returncode == 0, tried.stderr
        await _seconds_until(worker, ("v1", "c1"))
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-w", 4, 3))
        await worker.wait_processed(sent, timeout=60)
        [shadow] = await _alerts(deployment, topics.alerts_shadow)
        assert (shadow["borrower_id"], shadow["detector"], shadow["thresholds_version"]) == (
            public("b-w"),
            "account_takeover",
            "c1",
        )
        for topic in topics.alert_topics():
            on_team_topic = await _alerts(deployment, topic)
            assert all(a["borrower_id"] != public("b-w") for a in on_team_topic), topic
            assert all(a["thresholds_version"].startswith("v") for a in on_team_topic), topic

        # Promoted with one command, the candidate is live as v2 and alerts on the team topic.
        promoted = _cli(deployment, "promote", "--reason", "shadow matched the reviews")
        assert promoted.returncode == 0, promoted.stderr
        assert "v2 is live" in promoted.stdout
        await _seconds_until(worker, ("v2", ""))
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-v", 4, 4))
        await worker.wait_processed(sent, timeout=60)
        security = await _alerts(deployment, topics.alerts_security)
        assert (public("b-v"), "v2") in [
            (a["borrower_id"], a["thresholds_version"]) for a in security
        ]
        shadowed = await _alerts(deployment, topics.alerts_shadow)
        assert [a["borrower_id"] for a in shadowed] == [public("b-w")]

        history = _cli(deployment, "history")
        print(history.stdout)
        assert [
            line.split()[1:3] for line in history.stdout.splitlines() if not line.startswith(" ")
        ] == [
            ["set", "v1"],
            ["shadow", "c1"],
            ["promote", "v2"],
        ]
        worker.check_alive()
    finally:
        worker.stop()


async def test_a_backtest_compares_with_the_live_version_in_redis(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"lw-backtest-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(redis_url)
    try:
        await ThresholdStore(redis, prefix).set(
            {"delinquency.min_alert_score": 0.6}, author="test", reason="stricter"
        )
    finally:
        await redis.aclose()
    events = tmp_path / "events.jsonl"
    write_jsonl(SimulationConfig(borrowers=20, days=20, seed=5), events, None)
    env = {**os.environ, "REDIS_URL": redis_url, "LW_REDIS_PREFIX": prefix}

    def backtest(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streams.ops.cli", "backtest", "--input", str(events), *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = backtest("--set", "delinquency.min_alert_score=0.7")
    assert done.returncode == 0, done.stderr
    assert "current (v1)" in done.stdout

    # --base defaults compares with the shipped defaults instead.
    defaults = backtest("--set", "delinquency.min_alert_score=0.7", "--base", "defaults")
    assert defaults.returncode == 0, defaults.stderr
    assert "current (v0)" in defaults.stdout

    down = backtest("--set", "delinquency.min_alert_score=0.7", "--redis", "redis://127.0.0.1:1/0")
    assert down.returncode == 2
    assert "cannot read the live thresholds" in down.stderr and "--base defaults" in down.stderr
