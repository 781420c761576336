"""The Faust app of `lendwatch worker`: input reader, timers and pages, wired to a Pipeline."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import threading
import time
from typing import Any, cast

import faust
from faust.types import TP
from prometheus_client import generate_latest
from redis.asyncio import Redis

from streams.settings import Settings
from streams.worker.batches import InputReader
from streams.worker.compat import App, InputTopic, QuietWorker
from streams.worker.offsets import refetch_paused
from streams.worker.pipeline import Pipeline
from streams.worker.tables import MODEL_TABLE, STATE_TABLE, changelogged_table

__all__ = ["QuietWorker", "create_app", "run_worker"]

log = logging.getLogger("lendwatch")


def create_app(settings: Settings) -> tuple[faust.App, Pipeline]:
    """Build the Faust app; ``lendwatch worker`` runs it.

    No agent: one input reader drains the conductor's queue of all three input topics and
    hands each batch to the pipeline; timers fire quiet borrowers' timers and keep Faust's
    fetching and committing going; ``/metrics`` serves Prometheus.
    """
    app = App(
        settings.app_id,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        fetch_min_bytes=settings.fetch_min_bytes,
        broker=settings.broker_url,
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        producer_linger=settings.producer_linger_ms / 1000.0,
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_host="127.0.0.1" if settings.web_port else "0.0.0.0",
        processing_guarantee="at_least_once",
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        consumer_group_instance_id=settings.group_instance_id or None,
    )
    table = cast(faust.Table[str, bytes], changelogged_table(app, settings, STATE_TABLE, "raw"))
    models = cast(faust.Table[str, bytes], changelogged_table(app, settings, MODEL_TABLE, "raw"))
    # Timeouts bound a hung Redis; the breaker then keeps an outage off the per-batch path.
    redis = Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    pipeline = Pipeline(app, settings, table, models, redis)
    app.finish_in_flight = pipeline.flush
    app.position_inputs = pipeline.position_inputs
    app.input_topics = frozenset(pipeline.input_topics)
    _read_inputs(app, pipeline, settings)
    _add_tasks(app, pipeline)
    return app, pipeline


def _read_inputs(app: faust.App, pipeline: Pipeline, settings: Settings) -> None:
    """The input topics on one channel, read in batches; revoked partitions forgotten."""
    if settings.input_path == "agent":
        _agent_reads_inputs(app, pipeline, settings)
    elif settings.input_path == "reader":
        inputs = InputTopic(
            app,
            topics=sorted(pipeline.input_topics),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
        )
        channel = inputs.__aiter__()  # subscribes the worker, as an agent's stream would
        reader = InputReader(app, channel, settings.batch_size, pipeline.handle)
        app.service(reader)  # type: ignore[arg-type]
    else:
        raise ValueError(f"LW_INPUT_PATH={settings.input_path!r}: `reader` or `agent`")

    input_topics = pipeline.input_topics

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types receivers narrowly
    async def tables_recovered(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Sent once the tables hold every assigned partition, before the input partitions
        are sought (Recovery.on_recovery_completed): their stored offsets can be read."""
        pipeline.recovered = True

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types receivers narrowly
    async def forget_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Timers of partitions now owned elsewhere must not fire here; the tables are not
        whole again until the next recovery completes."""
        revoked: set[TP] = args[0]
        await pipeline.revoke({tp.partition for tp in revoked if tp.topic in input_topics})


def _agent_reads_inputs(app: faust.App, pipeline: Pipeline, settings: Settings) -> None:
    """One Faust agent over the three input topics, handing the pipeline batches of up to
    ``batch_size`` records, or what came within ``batch_within_ms``.

    The topic does not acknowledge (``acks=False``): Faust's acknowledgement bookkeeping never
    commits an input offset; the pipeline stores and commits the offsets of what it applied,
    and checks each partition's order (:class:`~streams.worker.offsets.InputOffsets`) as it
    does for the reader's batches. Records of a generation before the current rebalance are
    dropped by Faust's stream, as the reader drops them.
    """
    inputs = app.topic(
        *sorted(pipeline.input_topics),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        acks=False,
    )
    size, within = settings.batch_size, settings.batch_within_ms / 1000.0

    @app.agent(inputs, name="inputs")
    async def read_inputs(stream: Any) -> None:
        async for events in stream.take_events(size, within):
            await pipeline.handle([event.message for event in events])


def _add_tasks(app: faust.App, pipeline: Pipeline) -> None:
    """Tasks, timers and the metrics page around the pipeline."""

    @app.task  # type: ignore[untyped-decorator]
    async def dump_tasks_on_sigusr1() -> None:
        """``kill -USR1 <pid>`` logs every asyncio task's stack: what a stuck worker waits on."""
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, _dump_tasks)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_thresholds() -> None:
        """Live threshold changes and shadow candidates, from Redis, within a second."""
        await pipeline.thresholds.run()

    @app.task  # type: ignore[untyped-decorator]
    async def follow_verdicts() -> None:
        """The whole feedback topic, into the verdict models (streams/worker/feedback.py)."""
        await pipeline.verdicts.follow()

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def fire_quiet_timers() -> None:
        await pipeline.tick()

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def fetch_again_what_was_dropped() -> None:
        """Records Faust dropped with none after them to show it (see InputOffsets.stalled)."""
        await pipeline.refetch_stalled()

    @app.timer(5.0)  # type: ignore[untyped-decorator]
    async def keep_fetching() -> None:
        """Partitions Faust's flow control forgot, and a stall described once."""
        idle = time.monotonic() - pipeline.last_batch_at
        refetch_paused(app.consumer, idle=idle)
        pipeline.report_stall(app.consumer, idle)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        pipeline.observe_lag(app.consumer)
        return web.bytes(generate_latest(pipeline.metrics.registry), content_type="text/plain")


def _dump_tasks() -> None:
    for task in asyncio.all_tasks():
        chain = []
        awaiting: Any = task.get_coro()
        while awaiting is not None:
            frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
            if frame is not None:
                code = frame.f_code
                chain.append(f"  {code.co_filename}:{frame.f_lineno} {code.co_name}")
            awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
        log.warning("task %s awaits:\n%s", task.get_name(), "\n".join(chain) or repr(task))


#: What the verdict models import on first use: about 2 s, scipy the most.
SLOW_IMPORTS = ("river.compose", "river.linear_model", "river.preprocessing", "river.optim")


class SlowImports:
    """:data:`SLOW_IMPORTS` imported in a thread while the worker starts: it spends its first
    seconds waiting on the broker (joining its group, recovering tables), so they cost it
    nothing there.

    The pipeline waits for them (:meth:`wait`, without blocking the event loop) before its
    first batch: a model restored or created while the thread still imports would otherwise
    block the event loop on the import lock, heartbeats included.
    """

    def __init__(self) -> None:
        self.done = threading.Event()

    def start(self) -> SlowImports:
        threading.Thread(target=self._import, name="imports", daemon=True).start()
        return self

    def _import(self) -> None:
        try:
            for name in SLOW_IMPORTS:
                try:
                    importlib.import_module(name)
                except Exception:  # the detector's own import reports it, where it is needed
                    log.exception("could not import %s ahead of its use", name)
        finally:
            self.done.set()

    async def wait(self) -> None:
        if not self.done.is_set():
            await asyncio.to_thread(self.done.wait)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker until SIGINT/SIGTERM."""
    imports = SlowImports().start()
    app, pipeline = create_app(settings)
    pipeline.warming = imports.wait
    worker = QuietWorker(app, loglevel=loglevel)
    worker.spinner = None
    worker.execute_from_commandline()
