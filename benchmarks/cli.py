"""``python -m benchmarks``: every figure in one run on the embedded broker, side by side."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import redis

from benchmarks.common import (
    EVENTS_PER_BORROWER_DAY,
    PYTHON,
    Children,
    Dataset,
    encode_dataset,
    latency_cases,
    make_dataset,
    produce_encoded,
    read_result,
    suffixed_topics,
)
from benchmarks.forwarder import measure_forwarding, start_forwarder
from benchmarks.report import Results, render
from benchmarks.startup import Startup, measure_startup
from benchmarks.worker import (
    Throughput,
    alert_ids,
    end_offsets,
    measure_latency,
    measure_throughput,
    start_worker,
)
from streams.ops.broker import create_topics
from streams.ops.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from streams.worker.tables import STATE_TABLE
from topics import TopicNames

__all__ = ["main"]


#: The topics a run writes: each run gets its own, to compare its alerts with (c)'s.
_OUTPUTS = ("deadletter", "alerts_fraud", "alerts_security", "alerts_collections")

PARTS = ("a", "a'", "b", "bf", "c", "cs", "r", "startup", "latency", "memory")


@dataclass(frozen=True)
class Plan:
    """How big each part is; ``--quick`` and ``--events`` choose one."""

    events: int = 300_000
    days: int = 30
    paced_days: int = 28
    paced_seconds: float = 60.0
    memory_borrowers: int = 200
    memory_days: int = 90

    @classmethod
    def quick(cls) -> Plan:
        return cls(events=40_000, paced_seconds=15.0, memory_borrowers=60, memory_days=45)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _timeout(events: int, floor_rate: float = 300.0) -> float:
    """Generous: a part stuck for this long has failed, however loaded the machine is."""
    return 120.0 + events / floor_rate


class Bench:
    """One run: the broker and Redis it started, its children, its scratch directory."""

    def __init__(
        self, args: argparse.Namespace, plan: Plan, bootstrap: str, redis_url: str, workdir: Path
    ) -> None:
        self.args = args
        self.plan = plan
        self.bootstrap = bootstrap
        self.redis_url = redis_url
        self.workdir = workdir
        self.children = Children(workdir)
        self.run_id = uuid.uuid4().hex[:6]
        self.partitions: int = args.partitions
        self.results = Results(partitions=self.partitions)

    async def topics(self, name: str) -> TopicNames:
        topics = suffixed_topics(f"bench-{self.run_id}-{name}")
        await create_topics(self.bootstrap, topics.all(), self.partitions)
        return topics

    def wants(self, part: str) -> bool:
        return part in self.args.parts

    async def run(self) -> Results:
        plan, results = self.plan, self.results
        if {"a", "a'", "b", "bf", "c", "cs", "r", "startup"} & self.args.parts:
            await self.throughput()
        b = results.rate("b") if self.wants("b") else None
        rate = self.args.rate or (0.5 * b if b else None)
        if self.wants("latency") and rate and not self.args.profile:
            await self.latency(rate)
        if self.wants("memory"):
            _say("state per borrower")
            memory = await self.child(
                "memory",
                [
                    "-m",
                    "benchmarks.detectors_only",
                    "memory",
                    f"--borrowers={plan.memory_borrowers}",
                    f"--days={plan.memory_days}",
                    f"--partitions={self.partitions}",
                ],
                events=plan.memory_borrowers * plan.memory_days * 20,
            )
            results.memory = {**memory, "days": plan.memory_days}
        return results

    async def throughput(self) -> None:
        """(a), (a'), (b), (c) and (b2) over one simulation, produced once to the input topics."""
        topics, dataset = await self.load()
        suffix = topics.transactions.removeprefix(TopicNames().transactions + ".")
        runs = self.results.runs
        if self.wants("a"):
            runs["a"] = await self.passthrough(suffix, dataset.events)
        if self.wants("a'"):
            _say("(a') bare Faust agent")
            runs["a'"] = await self.bare_faust(suffix, dataset.events)
        if self.wants("b"):
            _say("(b) lendwatch worker" + (" under cProfile" if self.args.profile else ""))
            runs["b"] = await self.workers(
                "worker", topics, dataset.events, count=1, profile=self.args.profile
            )
        if self.wants("bf"):
            _say("(bf) lendwatch worker, input through a Faust agent")
            runs["bf"] = await self.workers(
                "agent", topics, dataset.events, count=1, env={"LW_INPUT_PATH": "agent"}
            )
        if self.wants("c"):
            _say("(c) detectors alone")
            runs["c"] = await self.detectors_alone("detectors", dataset)
        if self.wants("cs"):
            _say("(cs) detectors alone, every one also running a candidate in shadow")
            runs["cs"] = await self.detectors_alone("shadow", dataset, "--shadow")
        if self.wants("b2"):
            _say("(b2) two lendwatch workers in one group")
            runs["b2"] = await self.workers("two", topics, dataset.events, count=2)
        if self.wants("r"):
            for name, processes in (("r1", 1), ("rN", os.cpu_count() or 1)):
                _say(f"({name}) the whole `lendwatch replay` command, {processes} process(es)")
                runs[name] = await self.replay_command(name, dataset, processes)
        if self.wants("startup"):
            _say("(s) start-up and a killed worker's replacement")
            self.results.startup = asdict(await self.startup(topics, dataset.events))

    async def startup(self, topics: TopicNames, events: int) -> Startup:
        """(s): a new group's worker to its first batch; killed, its replacement to its own."""
        app_id = f"bench-{self.run_id}-startup"
        outputs = suffixed_topics(f"bench-{self.run_id}-startup")
        topics = replace(topics, **{name: getattr(outputs, name) for name in _OUTPUTS})
        await create_topics(self.bootstrap, topics.all(), self.partitions)
        try:
            return await measure_startup(
                self.children,
                bootstrap=self.bootstrap,
                redis_url=self.redis_url,
                topics=topics,
                app_id=app_id,
                partitions=self.partitions,
                events=events,
            )
        finally:
            self.forget_redis(app_id)

    async def replay_command(self, name: str, dataset: Dataset, processes: int) -> dict[str, Any]:
        """(r1), (rN): ``lendwatch replay`` over the dataset file, timed from start to exit."""
        return await self.child(
            name,
            [
                "-m",
                "benchmarks.replay_command",
                str(dataset.path),
                f"--processes={processes}",
                f"--partitions={self.partitions}",
            ],
        )

    async def load(self) -> tuple[TopicNames, Dataset]:
        """Simulate the throughput runs' events and produce them once to new input topics."""
        plan, results = self.plan, self.results
        topics = await self.topics("load")
        _say(f"simulating {plan.events:,} events")
        dataset = make_dataset(self.workdir / "events.jsonl", plan.events, days=plan.days)
        results.events, results.borrowers, results.days = (
            dataset.events,
            dataset.borrowers,
            dataset.days,
        )
        results.by_source = dataset.by_source
        encoded = encode_dataset(dataset, topics)
        _say(f"producing {len(encoded):,} events to the input topics")
        seconds = await produce_encoded(self.bootstrap, encoded)
        results.produce_events_per_second = len(encoded) / seconds
        return topics, dataset

    async def passthrough(self, suffix: str, events: int) -> dict[str, Any]:
        """(a): aiokafka consume-decode-produce, to a topic of its own."""
        output = f"bench.passthrough.{suffix}"
        await create_topics(self.bootstrap, [output], self.partitions)
        _say("(a) aiokafka pass-through")
        return await self.child(
            "passthrough",
            [
                "-m",
                "benchmarks.passthrough",
                f"--bootstrap={self.bootstrap}",
                f"--suffix={suffix}",
                f"--partitions={self.partitions}",
                f"--events={events}",
                f"--output={output}",
            ],
        )

    async def bare_faust(self, suffix: str, events: int) -> dict[str, Any]:
        """(a'): a Faust agent that only decodes, configured as the worker is."""
        return await self.child(
            "bare-faust",
            ["-m", "benchmarks.bare_faust"],
            env={
                "BENCH_BOOTSTRAP": self.bootstrap,
                "BENCH_SUFFIX": suffix,
                "BENCH_PARTITIONS": str(self.partitions),
                "BENCH_EVENTS": str(events),
                "BENCH_WEB_PORT": str(free_port()),
            },
            result_option=False,
        )

    async def detectors_alone(self, name: str, dataset: Dataset, *options: str) -> dict[str, Any]:
        """(c), or (cs) with ``--shadow``: the detectors over the dataset file, as replay runs."""
        return await self.child(
            name,
            [
                "-m",
                "benchmarks.detectors_only",
                "replay",
                str(dataset.path),
                f"--partitions={self.partitions}",
                *options,
            ],
        )

    async def child(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        result_option: bool = True,
        events: int | None = None,
    ) -> dict[str, Any]:
        """Run one ``python -m benchmarks.*`` child to its result; stop it whatever happens."""
        result = self.workdir / f"{name}.json"
        argv = [PYTHON, *command]
        if result_option:
            argv.append(f"--result={result}")
        process, log = self.children.spawn(name, argv, {**(env or {}), "BENCH_RESULT": str(result)})
        try:
            return await read_result(process, result, log, _timeout(events or self.results.events))
        finally:
            self.children.stop(process)

    async def workers(
        self,
        name: str,
        topics: TopicNames,
        events: int,
        *,
        count: int,
        profile: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """``count`` lendwatch workers in one new group over the pre-produced topics, with
        ``env`` on top of their settings.

        Each run publishes to alert topics of its own, to compare its alerts with (c)'s.
        """
        app_id = f"bench-{self.run_id}-{name}"
        outputs = suffixed_topics(f"bench-{self.run_id}-{name}")
        topics = replace(topics, **{name: getattr(outputs, name) for name in _OUTPUTS})
        await create_topics(self.bootstrap, topics.all(), self.partitions)
        redis_before = self.redis_memory()
        workers = [
            start_worker(
                self.children,
                f"{name}-{number}",
                bootstrap=self.bootstrap,
                redis_url=self.redis_url,
                topics=topics,
                app_id=app_id,
                partitions=self.partitions,
                profile=profile,
                fetch_wait_ms=self.args.fetch_wait_ms,
                extra_env=env,
            )
            for number in range(count)
        ]
        try:
            slowdown = 5 if profile is not None else 1  # the profiler's
            measured = await measure_throughput(
                workers, events, slowdown * _timeout(events), stall=slowdown * 60.0
            )
            figures = await self.figures(measured, app_id, topics)
            figures["redis_bytes"] = self.redis_memory() - redis_before
        finally:
            self.children.stop(*(w.process for w in workers), timeout=60.0)
            self.forget_redis(app_id)
        if profile is not None:
            self.results.profile = str(profile)
            _print_profile(profile)
        return figures

    async def figures(
        self, measured: Throughput, app_id: str, topics: TopicNames
    ) -> dict[str, Any]:
        """What a throughput run of the workers of ``app_id`` did, from its metrics and topics."""
        changelog = f"{app_id}-{STATE_TABLE}-changelog"
        counters = measured.counters
        return {
            "events": measured.events,
            "seconds": measured.seconds,
            "peak_rss": measured.peak_rss if len(measured.peak_rss) > 1 else measured.peak_rss[0],
            "alerts": counters.alerts,
            "batches": counters.batches,
            "total_events": counters.events,
            "changelog_records": await end_offsets(self.bootstrap, changelog, self.partitions),
            "alert_ids": await alert_ids(self.bootstrap, topics, self.partitions),
            "redis_keys": len(self.redis_keys(app_id)),
        }

    async def latency(self, rate: float) -> None:
        """(b) at ``rate`` events/s on a fresh simulation with more injected cases."""
        plan = self.plan
        events = int(rate * plan.paced_seconds)
        _say(f"latency: {events:,} events paced at {rate:,.0f} events/s")
        borrowers = max(40, round(events / (EVENTS_PER_BORROWER_DAY * plan.paced_days)))
        dataset = make_dataset(
            self.workdir / "paced.jsonl",
            events,
            days=plan.paced_days,
            seed=11,
            cases=latency_cases(borrowers, plan.paced_days),
            borrowers=borrowers,
        )
        topics = await self.topics("paced")
        encoded = encode_dataset(dataset, topics)
        app_id = f"bench-{self.run_id}-paced"
        worker = start_worker(
            self.children,
            "paced",
            bootstrap=self.bootstrap,
            redis_url=self.redis_url,
            topics=topics,
            app_id=app_id,
            partitions=self.partitions,
            fetch_wait_ms=self.args.fetch_wait_ms,
        )
        try:
            measured = await measure_latency(
                worker,
                encoded,
                bootstrap=self.bootstrap,
                topics=topics,
                partitions=self.partitions,
                rate=rate,
                timeout=_timeout(events),
            )
        finally:
            self.children.stop(worker.process, timeout=60.0)
            self.forget_redis(app_id)
        self.results.latency = {**asdict(measured), "load": os.getloadavg()[0]}
        self.results.forwarder = await self.forwarding(dataset, rate)

    async def forwarding(self, dataset: Dataset, rate: float) -> dict[str, Any]:
        """The bare forwarder over the latency run's records at its rate, on topics of its own:
        the part of the worker's latency that any consumer→producer hop on this broker takes."""
        topics = await self.topics("forward")
        output = f"bench.forwarded.{self.run_id}"
        await create_topics(self.bootstrap, [output], self.partitions)
        _say(f"latency floor: a bare aiokafka forwarder at {rate:,.0f} events/s")
        process, log = start_forwarder(
            self.children,
            "forwarder",
            bootstrap=self.bootstrap,
            topics=topics,
            partitions=self.partitions,
            output=output,
            fetch_wait_ms=self.args.fetch_wait_ms,
        )
        try:
            measured = await measure_forwarding(
                process,
                log,
                encode_dataset(dataset, topics),
                bootstrap=self.bootstrap,
                output=output,
                partitions=self.partitions,
                rate=rate,
            )
        finally:
            self.children.stop(process)
        return measured.figures()

    def redis_keys(self, prefix: str) -> list[bytes]:
        client = redis.Redis.from_url(self.redis_url)
        try:
            return list(client.scan_iter(match=f"{prefix}*", count=1000))
        finally:
            client.close()

    def redis_memory(self) -> int:
        """Redis's ``used_memory``: the index a run leaves is the growth over the run."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()

    def forget_redis(self, prefix: str) -> None:
        """Drop a run's cross-borrower index: REDIS_URL may be a server others use."""
        with contextlib.suppress(redis.RedisError):
            keys = self.redis_keys(prefix)
            client = redis.Redis.from_url(self.redis_url)
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            client.close()


def _print_profile(path: Path, top: int = 25) -> None:
    """CPU time by package (own time), then the lendwatch functions by cumulative time."""
    if not path.exists():
        _say(f"no profile written to {path} (the worker did not exit cleanly)")
        return
    stats = pstats.Stats(str(path))
    by_package: Counter[str] = Counter()
    for (filename, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename, name)] += own
    total = sum(by_package.values()) or 1.0
    print(f"\nworker CPU time by package (own time, {total:.1f} s under the profiler):")
    for package, own in by_package.most_common(20):
        print(f"  {100 * own / total:5.1f} %  {package}")
    stats.stream = sys.stdout  # type: ignore[attr-defined]
    print("\nlendwatch functions by cumulative CPU time:")
    stats.sort_stats("cumulative").print_stats(r"/(streams|detectors|topics)/", top)


def _package(filename: str, name: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    for own in ("streams/", "detectors/", "topics/"):
        if f"/{own}" in filename:
            return own + filename.rsplit("/", 1)[1]
    if "/lib/python3" in filename:
        return "stdlib " + filename.split("/lib/python3")[1].split("/")[1].removesuffix(".py")
    return name if filename == "~" else filename


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM too: leave through the same finally blocks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--events", type=int, help="events of the throughput runs")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument(
        "--two-workers", action="store_true", help="also two worker processes in one group"
    )
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"comma-separated parts to run, of {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--rate", type=float, help="events/s of the latency run (default: 50 %% of (b))"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run (b) under cProfile, write the stats here and print the top; skips the latency",
    )
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        help="run the workers with this consumer fetch wait, LW_FETCH_MAX_WAIT_MS (default 100)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data files")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    if args.parts - set(PARTS):
        parser.error(f"unknown parts {sorted(args.parts - set(PARTS))}; known: {PARTS}")
    if args.two_workers:
        if "b" not in args.parts:
            parser.error("--two-workers compares with (b): keep b in --parts")
        args.parts.add("b2")
    if "latency" in args.parts and "b" not in args.parts and not args.rate:
        parser.error("the latency run is paced at 50 % of (b): keep b in --parts or give --rate")
    plan = Plan.quick() if args.quick else Plan()
    if args.events:
        plan = Plan(**{**asdict(plan), "events": args.events})
    if args.profile:
        args.profile = args.profile.resolve()
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="lendwatch-bench-"))
    started = time.monotonic()
    outcome = {"failed": True}

    def tidy() -> None:  # last: after every process has stopped
        if outcome["failed"] or args.keep:
            _say(f"logs and data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    with contextlib.ExitStack() as stack:
        stack.callback(tidy)
        try:
            _say("starting the Tansu broker")
            kafka = stack.enter_context(EmbeddedKafka())
            redis_url = os.environ.get("REDIS_URL")
            if redis_url:
                redis.Redis.from_url(redis_url, socket_connect_timeout=3).ping()
                _say(f"using REDIS_URL={redis_url}")
            else:
                redis_url = stack.enter_context(EmbeddedRedis()).url
            bench = Bench(args, plan, kafka.bootstrap, redis_url, workdir)
            stack.callback(bench.children.close)
            results = asyncio.run(bench.run())
            results.fetch_wait_ms = args.fetch_wait_ms
            outcome["failed"] = False
        except KeyboardInterrupt:
            _say("interrupted: stopping every process")
            outcome["failed"] = False  # nothing to look into
            return 130
    sys.stdout.write(render(results))
    print(f"\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_bytes(orjson.dumps(results.to_dict(), option=orjson.OPT_INDENT_2))
    return 0
