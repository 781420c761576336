"""Real services for integration tests: a Tansu broker per session, Redis or Valkey."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.lab.replay import replay
from streams.ops.broker import create_topics
from streams.ops.embedded import EmbeddedKafka, EmbeddedRedis, ServiceError, free_port
from streams.privacy import Masker
from topics import Alert, TopicNames
from topics.codec import alert_to_dict

#: The platform key of the test deployments: alerts leave masked, as by default in production.
TEST_PRIVACY_KEY = "integration-tests-" + "k" * 46


@pytest.fixture(scope="session")
def kafka() -> Iterator[EmbeddedKafka]:
    """A real Kafka-compatible broker; a failure to start fails the tests, never skips them."""
    try:
        broker = EmbeddedKafka().start()
    except ServiceError as exc:
        pytest.fail(f"could not start the Tansu broker: {exc}")
    yield broker
    broker.cleanup()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set (a real server the machine runs), else an embedded Valkey."""
    url = os.environ.get("REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            pytest.fail(f"REDIS_URL={url} is set but does not answer: {exc}")
        yield url
        return
    try:
        server = EmbeddedRedis().start()
    except ServiceError as exc:
        pytest.fail(f"could not start Valkey: {exc}")
    yield server.url
    server.cleanup()


@dataclass
class Worker:
    """A ``lendwatch worker`` subprocess with its own topics, consumer group and Redis prefix."""

    process: subprocess.Popen[bytes]
    web_port: int
    log: Path

    async def processed(self) -> int:
        """Input records the worker has consumed (processed or dead-lettered)."""
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{self.web_port}/metrics") as response,
            ):
                body = await response.text()
        except aiohttp.ClientError:
            return 0
        return int(
            sum(float(v) for v in re.findall(r"^lendwatch_events_total\{.*\} (\S+)$", body, re.M))
        )

    async def wait_processed(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if await self.processed() >= count:
                return
            await asyncio.sleep(0.25)
        raise AssertionError(
            f"worker processed {await self.processed()} of {count} records in {timeout}s; "
            f"log tail:\n{self.log.read_text()[-3000:]}"
        )

    def cpu_seconds(self) -> float:
        """User plus system CPU time the worker has used (from /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def metric(self, name: str) -> float:
        """Sum of a metric's samples on the worker's /metrics page (0 when absent)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.web_port}/metrics") as response,
        ):
            body = await response.text()
        pattern = rf"^{re.escape(name)}(?:\{{.*\}})? (\S+)$"
        return sum(float(v) for v in re.findall(pattern, body, re.M))

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
            )

    def kill(self) -> None:
        """SIGKILL: no flush, no commit, no goodbye to the group."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Deployment:
    """Unique names for one test, so tests share the session's broker and Redis safely."""

    kafka: EmbeddedKafka
    redis_url: str
    topics: TopicNames
    app_id: str
    partitions: int
    tmp_path: Path

    @property
    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "REDIS_URL": self.redis_url,
            "LW_APP_ID": self.app_id,
            "LW_REDIS_PREFIX": self.app_id,
            "LW_PARTITIONS": str(self.partitions),
            # Exact live/replay agreement needs streams that never count as idle.
            "LW_IDLE_STREAM_SECONDS": "3600",
            # Tansu answers a group join after half the session timeout.
            "LW_SESSION_TIMEOUT_SECONDS": "10",
            # Far fewer decoded states than borrowers: every test also checks that states
            # let go and decoded again on use lose nothing.
            "LW_HOT_STATES": "16",
            "LW_PRIVACY_KEY": TEST_PRIVACY_KEY,
            "LW_MASK_PERSONAL_DATA": "1",
        }
        env.update(
            {
                f"LW_TOPIC_{name.upper()}": getattr(self.topics, name)
                for name in TopicNames.__dataclass_fields__
            }
        )
        return env

    @property
    def masker(self) -> Masker:
        """The workers' masker: replayed alerts masked with it are the live ones."""
        return Masker(TEST_PRIVACY_KEY.encode())

    def start_worker(
        self, name: str = "worker", module: str = "streams.ops.cli", **env: str
    ) -> Worker:
        """A worker process; ``module`` runs it (tests.integration.slow_seek widens a race)."""
        port = free_port()
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", module, "worker", "--log-level", "info"],
                env={**self.env, **env, "LW_WEB_PORT": str(port)},
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return Worker(process, port, log)

    async def committed(self) -> int:
        """Input records the consumer group has committed, over every input partition."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.kafka.bootstrap, group_id=self.app_id, enable_auto_commit=False
        )
        await consumer.start()
        try:
            total = 0
            for topic in (self.topics.transactions, self.topics.logins, self.topics.repayments):
                for partition in range(self.partitions):
                    offset = await consumer.committed(TopicPartition(topic, partition))
                    total += offset or 0
            return total
        finally:
            await consumer.stop()

    async def assert_as_replayed(
        self, records: list[dict[str, Any]], live: list[dict[str, Any]]
    ) -> dict[str, Alert]:
        """The live alerts are replay's over ``records``, masked with the workers' key (ids and
        borrowers); on a difference, show the alerts that differ, whole. Returns replay's
        alerts by id."""
        lines = [(n, orjson.dumps(r)) for n, r in enumerate(records, start=1)]
        _, alerts = await replay(lines, partitions=self.partitions, topics=self.topics)
        replayed = {alert.alert_id: alert for alert in map(self.masker.alert, alerts)}
        received = {alert["alert_id"]: alert for alert in live}
        only_live = [received[i] for i in received.keys() - replayed.keys()]
        only_replayed = [alert_to_dict(replayed[i]) for i in replayed.keys() - received.keys()]
        assert not only_live and not only_replayed, (
            f"{len(only_live)} alerts only live: {only_live}\n"
            f"{len(only_replayed)} only in replay: {only_replayed}"
        )
        assert all(received[i]["borrower_id"] == replayed[i].borrower_id for i in received)
        return replayed

    async def wait_committed(self, count: int, timeout: float, *workers: Worker) -> None:
        """Until the group has committed ``count`` input records (all of them, usually)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in workers:
                worker.check_alive()
            if await self.committed() >= count:
                return
            await asyncio.sleep(0.5)
        logs = "\n".join(w.log.read_text()[-2000:] for w in workers)
        committed = await self.committed()
        raise AssertionError(f"committed {committed} of {count} in {timeout}s:\n{logs}")

    async def consume(
        self, topics: list[str], *, idle: float, timeout: float
    ) -> list[tuple[str, dict[str, Any]]]:
        """Everything on ``topics`` until nothing new arrives for ``idle`` seconds."""
        received = await self.consume_keyed(topics, idle=idle, timeout=timeout)
        return [(topic, value) for topic, _, value in received]

    async def consume_keyed(
        self, topics: list[str], *, idle: float, timeout: float
    ) -> list[tuple[str, bytes | None, dict[str, Any]]]:
        """As :meth:`consume`, with each record's key."""
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=self.kafka.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        await consumer.start()
        received: list[tuple[str, bytes | None, dict[str, Any]]] = []
        try:
            deadline = time.monotonic() + timeout
            last_new = time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - last_new < idle:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    for message in messages:
                        value = orjson.loads(message.value)
                        received.append((message.topic, message.key, value))
                        last_new = time.monotonic()
        finally:
            await consumer.stop()
        return received


async def make_deployment(kafka: EmbeddedKafka, redis_url: str, tmp_path: Path) -> Deployment:
    """Fresh topics, consumer group and Redis prefix on ``kafka`` and ``redis_url``."""
    suffix = uuid.uuid4().hex[:8]
    topics = TopicNames(
        **{
            name: f"{getattr(TopicNames(), name)}.{suffix}"
            for name in TopicNames.__dataclass_fields__
        }
    )
    deployment = Deployment(kafka, redis_url, topics, f"lw-test-{suffix}", 4, tmp_path)
    await create_topics(
        kafka.bootstrap, topics.all(), deployment.partitions, one_partition=[topics.feedback]
    )
    return deployment


@pytest.fixture
async def deployment(kafka: EmbeddedKafka, redis_url: str, tmp_path: Path) -> Deployment:
    return await make_deployment(kafka, redis_url, tmp_path)
