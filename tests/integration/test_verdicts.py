"""Verdicts on a real broker and Redis: two workers learn the same models from the whole
feedback topic, and the next alert like those the teams dismissed is held back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from detectors.verdicts import Remembered, VerdictModels, signature_of
from sim import SimulationConfig, simulate
from streams.control.feedback import verdict_record
from streams.lab.replay import replay
from streams.ops.broker import produce_records
from streams.ops.models import read_models, render_models
from streams.worker.feedback import FEATURES_TTL_SECONDS, status_key
from tests.integration.conftest import Deployment, Worker
from topics.records import Alert

pytestmark = pytest.mark.integration

TAUGHT = 30  # verdicts of each kind


def kind_of(alert: dict[str, Any]) -> str:
    """:func:`signature_of` of a published alert."""
    return f"{alert['detector']}:{'+'.join(sorted({r['code'] for r in alert['reasons']}))}"


async def wait_processed(workers: list[Worker], count: int, timeout: float) -> None:
    """Until the workers together have consumed ``count`` input records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            worker.check_alive()
        if sum([await worker.processed() for worker in workers]) >= count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the workers did not process {count} records in {timeout}s")


def split(alerts: list[Alert]) -> tuple[str, datetime]:
    """The most frequent kind of alert, and an instant in the widest gap between two of
    them: alerts of that kind come both before and after it."""
    by_kind: dict[str, list[datetime]] = defaultdict(list)
    for alert in alerts:
        by_kind[signature_of(alert)].append(alert.ts)
    kind, times = max(by_kind.items(), key=lambda item: len(item[1]))
    times.sort()
    gap = max(range(1, len(times)), key=lambda i: times[i] - times[i - 1])
    return kind, times[gap - 1] + (times[gap] - times[gap - 1]) / 2


async def teach(deployment: Deployment, like: Alert) -> None:
    """Verdicts on alerts as the gate remembers them: ``TAUGHT`` of ``like``'s kind dismissed,
    ``TAUGHT`` of another kind confirmed, interleaved; then three bad records and one verdict
    on an alert never raised."""
    dismissed = VerdictModels().describe(deployment.masker.alert(like))
    other = Remembered(dismissed.category, "h-x", "other:kind", {"score": 0.99, "code=other": 1.0})
    redis = Redis.from_url(deployment.redis_url)
    producer = AIOKafkaProducer(bootstrap_servers=deployment.kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(TAUGHT):
            for name, remembered, said in (
                (f"dis-{n}", dismissed, "dismissed"),
                (f"conf-{n}", other, "confirmed"),
            ):
                kept = Remembered(remembered.category, f"h-{name}", remembered.signature,
                                  remembered.x)  # fmt: skip
                key = f"{deployment.app_id}:verdicts:alert:{name}"
                await redis.set(key, orjson.dumps(kept.to_json()), ex=FEATURES_TTL_SECONDS)
                record = verdict_record(name, said, "ana")
                await producer.send_and_wait(
                    deployment.topics.feedback, orjson.dumps(record), key=f"h-{name}".encode()
                )
        good = verdict_record("never-raised", "dismissed", "ana")
        for key, value in (
            (b"h-1", {**good, "verdict": "maybe"}),
            (b"h-1", {**good, "ts": "2026-03-01T10:00:00"}),
            (None, good),
            (b"h-1", good),
        ):
            await producer.send_and_wait(deployment.topics.feedback, orjson.dumps(value), key=key)
    finally:
        await producer.stop()
        await redis.aclose()


async def statuses(deployment: Deployment, count: int, timeout: float) -> list[dict[str, Any]]:
    """The workers' published models, once ``count`` of them have read every verdict."""
    redis = Redis.from_url(deployment.redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = await redis.hgetall(status_key(deployment.app_id))
            found = [orjson.loads(value) for value in raw.values()]
            done = [s for s in found if sum(s["verdicts"].values()) >= 2 * TAUGHT + 1]
            if len(done) >= count:
                return done
            await asyncio.sleep(0.5)
    finally:
        await redis.aclose()
    raise AssertionError(f"workers did not learn every verdict in {timeout}s: {found}")


async def test_verdicts_change_the_next_similar_alert_and_two_workers_agree(
    deployment: Deployment,
) -> None:
    simulation = simulate(
        SimulationConfig(borrowers=40, days=40, seed=11, topics=deployment.topics)
    )
    lines = [(n, orjson.dumps(record)) for n, record in enumerate(simulation.records)]
    _, expected = await replay(lines, partitions=deployment.partitions, topics=deployment.topics)
    kind, cut = split(expected)
    before = [r for r in simulation.records if datetime.fromisoformat(r["value"]["ts"]) < cut]
    after = simulation.records[len(before) :]
    assert [r["value"]["ts"] for r in before] == [
        r["value"]["ts"] for r in simulation.records[: len(before)]
    ]
    workers: list[Worker] = [deployment.start_worker("w1"), deployment.start_worker("w2")]
    topics = deployment.topics
    try:
        sent = await produce_records(deployment.kafka.bootstrap, before)
        await wait_processed(workers, sent, 240)
        first = await deployment.consume(topics.alert_topics(), idle=3.0, timeout=60)
        published = [a for _, a in first if kind_of(a) == kind]
        assert published, f"no {kind} alert before {cut}"

        like = next(a for a in expected if signature_of(a) == kind and a.ts < cut)
        await teach(deployment, like)
        learnt = await statuses(deployment, 2, timeout=60)
        shown = render_models(await read_models(deployment.redis_url, deployment.app_id))
        assert shown.endswith("2 worker(s): their models agree\n"), shown

        sent += await produce_records(deployment.kafka.bootstrap, after)
        await wait_processed(workers, sent, 240)
        received = await deployment.consume_keyed(
            [*topics.alert_topics(), topics.alerts_shadow, topics.deadletter], idle=3.0, timeout=60
        )
        for worker in workers:
            worker.check_alive()
    finally:
        for worker in workers:
            worker.stop()

    # A worker started later takes the models from the checkpoint, with the offsets they
    # reflect: it learns nothing twice.
    late = deployment.start_worker("w3")
    try:
        restored = await statuses(deployment, 3, timeout=60)
    finally:
        late.stop()
    assert len({(s["version"], s["state"]) for s in restored}) == 1
    assert all(s["offsets"] == {"0": 2 * TAUGHT + 4} for s in restored)
    assert f"restored at offsets {{0: {2 * TAUGHT + 4}}}" in late.log.read_text()

    # Both workers learnt the same models from the whole topic, in the same order.
    one, two = learnt[:2]
    assert one["instance"] != two["instance"]
    assert one["version"] == two["version"] and one["state"] == two["state"]
    assert one["labels"] == 2 * TAUGHT
    assert one["verdicts"] == {"applied": 2 * TAUGHT, "unknown_alert": 1}

    # Before the verdicts, alerts of the kind went to the team; after, they are held back,
    # on the shadow topic with the model's reason, and none reaches the team topics.
    team = [v for t, _, v in received if t in topics.alert_topics()]
    later = [a for a in team if kind_of(a) == kind and datetime.fromisoformat(a["ts"]) >= cut]
    assert later == []
    held = [v for t, _, v in received if t == topics.alerts_shadow]
    assert held, "no alert was held back"
    for alert in held:
        reason = alert["reasons"][-1]
        assert reason["code"] == "verdict_model"
        assert f"similar alerts were dismissed {TAUGHT} of {TAUGHT} times" in reason["message"]
        assert reason["observed"] < reason["threshold"]
    expected_after = [a for a in expected if signature_of(a) == kind and a.ts >= cut]
    # As many as replay's, each at least once: two workers closing one cycle from its two
    # ends at the same moment may both send it (docs/operations.md), nothing else twice.
    sends = Counter(a["alert_id"] for a in held)
    assert len(sends) == len(expected_after), sorted(sends.items())
    twice = {a["detector"] for a in held if sends[a["alert_id"]] > 1}
    assert twice <= {"circular_flow"}, sorted(sends.items())

    # Bad feedback is dead-lettered once (every worker reads it), with the reason.
    letters = [v for t, _, v in received if t == topics.deadletter]
    assert sorted(letter["reason"].split(" ")[0] for letter in letters) == [
        "field",
        "field",
        "record",
    ]
    assert {letter["source_topic"] for letter in letters} == {topics.feedback}
