"""A fitted file on a live worker: `thresholds shadow --fitted` runs it beside the live values,
`promote` makes it live; a file that breaks a rule changes nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from detectors.thresholds import Thresholds
from streams.control.store import ThresholdStore
from streams.lab.fitted import FittedFile, read_fitted, write_fitted
from streams.ops.broker import produce_records
from tests.integration.conftest import Deployment
from tests.integration.test_control import _alerts, _cli, _episode, _seconds_until

pytestmark = pytest.mark.integration


def _fitted(tmp_path: Path) -> Path:
    """A fitted file that lowers the takeover bar to three failures (and moves a fraud
    tunable, so the candidate carries more than one change)."""
    values = Thresholds().with_changes(
        {"takeover.min_failures": 3, "wash_trading.min_pair_days": 4}, version="x"
    )
    return write_fitted(tmp_path / "fitted.json", FittedFile(values, report={"wall_seconds": 1}))


async def test_a_fitted_file_goes_to_shadow_then_live_on_a_running_worker(
    deployment: Deployment, tmp_path: Path
) -> None:
    topics, public = deployment.topics, deployment.masker.borrower
    fitted = _fitted(tmp_path)
    broken = tmp_path / "broken.json"
    raw = orjson.loads(fitted.read_bytes())
    raw["thresholds"]["takeover.min_failures"] = 0
    broken.write_bytes(orjson.dumps(raw))
    worker = deployment.start_worker()
    sent = 0
    try:
        # Four failures before a new device gets in: below the shipped bar of five.
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-a", 4, 0))
        await worker.wait_processed(sent, timeout=90)
        assert await _alerts(deployment, topics.alerts_security) == []

        refused = _cli(deployment, "shadow", "--fitted", str(broken), "--reason", "fit of May")
        assert refused.returncode == 2
        assert "takeover.min_failures: 0 is out of range [1, 100]" in refused.stderr

        nothing = _cli(deployment, "shadow", "--reason", "fit of May")
        assert nothing.returncode == 2 and "give KEY=VALUE ... or --fitted FILE" in nothing.stderr

        shadowed = _cli(deployment, "shadow", "--fitted", str(fitted), "--reason", "fit of May")
        assert shadowed.returncode == 0, shadowed.stderr
        assert f"from {fitted} (fit-" in shadowed.stdout
        assert "c1 runs in shadow beside v0" in shadowed.stdout
        assert "takeover.min_failures: 5 -> 3" in shadowed.stdout
        assert "wash_trading.min_pair_days: 3 -> 4" in shadowed.stdout
        await _seconds_until(worker, ("v0", "c1"))

        # The fitted bar alerts in shadow only.
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-b", 4, 1))
        await worker.wait_processed(sent, timeout=60)
        [shadow] = await _alerts(deployment, topics.alerts_shadow)
        assert (shadow["borrower_id"], shadow["thresholds_version"]) == (public("b-b"), "c1")
        assert await _alerts(deployment, topics.alerts_security) == []

        promoted = _cli(deployment, "promote", "--reason", "shadow matched the reviews")
        assert promoted.returncode == 0, promoted.stderr
        assert "v1 is live" in promoted.stdout
        await _seconds_until(worker, ("v1", ""))
        sent += await produce_records(deployment.kafka.bootstrap, _episode(deployment, "b-c", 4, 2))
        await worker.wait_processed(sent, timeout=60)
        security = await _alerts(deployment, topics.alerts_security)
        assert [(a["borrower_id"], a["thresholds_version"]) for a in security] == [
            (public("b-c"), "v1")
        ]

        redis = Redis.from_url(deployment.redis_url)
        try:
            store = ThresholdStore(redis, deployment.app_id)
            live = await store.live()
            assert live.thresholds().values() == read_fitted(fitted).thresholds.values()
            assert [(e.action, e.version) for e in await store.history()] == [
                ("shadow", "c1"),
                ("promote", "v1"),
            ]
        finally:
            await redis.aclose()
        worker.check_alive()
    finally:
        worker.stop()
