"""The lab's commands: ``replay``, ``evaluate``, ``backtest``, ``fit`` and ``simulate``, the
detectors off the live pipeline (their code is in :mod:`streams.lab` and :mod:`sim`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from detectors.thresholds import InvalidThreshold, Thresholds, Value
from streams.control.cli import parse_assignments
from streams.ops.arguments import (
    Commands,
    add_no_mask,
    add_services,
    add_simulation,
    decode_input,
    profile_names,
    profiles_arg,
    require,
    say_rejected,
    settings_from,
)

if TYPE_CHECKING:
    from streams.lab.replay import Decoded
    from topics.labels import CaseLabel

__all__ = ["add_lab_commands"]


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.lab.progress import wanted
    from streams.lab.replay import replay_file
    from streams.privacy import Masker

    try:
        thresholds = _fitted_thresholds(args.fitted) if args.fitted else None
    except InvalidThreshold as exc:
        print(f"lendwatch replay: {exc}", file=sys.stderr)
        return 2
    settings = settings_from(args)
    report = replay_file(
        Path(args.input),
        Path(args.output),
        partitions=settings.partitions,
        topics=settings.topics,
        masker=Masker.from_settings(settings),
        thresholds=thresholds,
        processes=args.processes,
        progress=wanted(args.progress),
    )
    if thresholds is not None:
        print(
            f"under the fitted thresholds of {args.fitted} ({thresholds.version})",
            file=sys.stderr,
        )
    by_topic = ", ".join(f"{t} {n}" for t, n in sorted(report.alerts_by_topic.items()))
    print(
        f"replayed {report.events:,} events: {report.alerts} alerts ({by_topic or 'none'}); "
        f"{len(report.rejected)} records rejected; {report.verdicts} verdicts read, "
        f"{report.held} alerts held back by the verdict models",
        file=sys.stderr,
    )
    say_rejected(report.rejected)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from streams.lab.evaluate import evaluate, review_lines
    from streams.lab.evaluate_profiles import evaluate_profiles
    from streams.lab.review import write_review
    from streams.lab.verdict_ablation import AblationOptions

    seeds = [int(seed) for seed in args.seeds.split(",") if seed.strip()]
    try:
        thresholds = _evaluated_thresholds(args)
    except InvalidThreshold as exc:
        print(f"lendwatch evaluate: {exc}", file=sys.stderr)
        return 2
    verdicts = None
    if args.verdict_share > 0:
        verdicts = AblationOptions(share=args.verdict_share, delay_days=args.verdict_delay)
    report: Any
    if args.profiles is None:
        report = evaluate(
            seeds=seeds,
            borrowers=args.borrowers,
            days=args.days,
            partitions=settings_from(args).partitions,
            thresholds=thresholds,
            verdicts=verdicts,
        )
    else:
        report = evaluate_profiles(
            args.profiles,
            seeds,
            borrowers=args.borrowers,
            days=args.days,
            partitions=settings_from(args).partitions,
            jobs=args.jobs,
            thresholds=thresholds,
            verdicts=verdicts,
        )
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    if args.cases:
        reports = report.reports if args.profiles is not None else [report]
        written = write_review(Path(args.cases), review_lines(reports))
        print(f"{written} cases to look into written to {args.cases}")
    return 0


def _evaluated_thresholds(args: argparse.Namespace) -> Thresholds:
    """The defaults, or a fitted file's values, with any ``--set`` on top: a candidate judged
    on every profile before a platform runs it on its own history."""
    base = _fitted_thresholds(args.fitted) if args.fitted else Thresholds()
    changes = parse_assignments(args.set)
    return base.with_changes(changes, version="candidate") if changes else base


def _base_thresholds(args: argparse.Namespace) -> Thresholds:
    """The thresholds a backtest calls "current": the live version in Redis, where teams set
    them (``--base live``, the default), or the shipped defaults (``--base defaults``)."""
    if args.base == "defaults":
        return Thresholds()
    from redis.asyncio import Redis

    from streams.control.store import ThresholdStore

    settings = settings_from(args)

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
        require("matplotlib", "the plot of --sweep")
    from streams.lab.backtest import backtest, render_backtest, review_runs
    from streams.lab.review import write_review
    from topics.labels import LabelsError, read_labels

    try:
        base = _base_thresholds(args)
        candidate, swept = _backtest_plan(args, base)
        labels = read_labels(Path(args.labels)) if args.labels else None
    except (InvalidThreshold, LabelsError) as exc:
        print(f"lendwatch backtest: {exc}", file=sys.stderr)
        return 2
    if args.cases and (labels is None or candidate is None):
        print("lendwatch backtest: --cases needs --labels and a candidate", file=sys.stderr)
        return 2
    history = decode_input(args)
    if candidate is not None:
        report = backtest(history, base, candidate, labels)
        print(render_backtest(report))
        if args.cases and labels is not None:
            written = write_review(Path(args.cases), review_runs(report, labels))
            print(f"{written} cases to look into written to {args.cases}", file=sys.stderr)
        print(
            f"engine runs: current {report.base.seconds:.1f} s, "
            f"candidate {report.candidate.seconds:.1f} s",
            file=sys.stderr,
        )
    if swept is not None:
        _sweep(args, history, candidate or base, *swept, labels)
    return 0


def _fitted_thresholds(path: str) -> Thresholds:
    """The thresholds of a file ``lendwatch fit`` wrote, validated as any change is."""
    from streams.lab.fitted import read_fitted

    return read_fitted(Path(path)).thresholds


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
    history = decode_input(args)
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
    from streams.lab.progress import Progress, wanted

    category = category_of(key, base)
    bar = Progress("sweep", len(values), "runs", enabled=wanted(args.progress))
    points = sweep(history, base, key, values, labels, jobs=args.jobs, progress=bar.update)
    bar.close()
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

    config = SimulationConfig(
        borrowers=args.borrowers, days=args.days, seed=args.seed, profile=args.profile
    )
    if args.to_kafka:
        from streams.ops.broker import produce_records

        settings = settings_from(args)
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


def add_lab_commands(commands: Commands) -> None:
    """Detectors off the live pipeline: replay, evaluate, backtest, simulate."""
    replay = commands.add_parser("replay", help="run the detectors over a JSONL file")
    replay.add_argument("--input", required=True)
    replay.add_argument("--output", required=True)
    replay.add_argument("--partitions", type=int, help="partitions of the live topics")
    replay.add_argument("--fitted", help="run under the thresholds of a `lendwatch fit` file")
    replay.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count() or 1,
        help="processes to run the partitions in (default: one per CPU); the output is the "
        "same byte for byte",
    )
    _add_progress(replay)
    add_no_mask(replay)
    replay.set_defaults(func=cmd_replay)

    _add_evaluate(commands)

    _add_backtest(commands)
    _add_fit(commands)

    simulate = commands.add_parser("simulate", help="generate a platform's traffic")
    add_simulation(simulate)
    simulate.add_argument("--output", help="events JSONL file")
    simulate.add_argument("--labels", help="labels JSONL file (injected cases)")
    simulate.add_argument("--to-kafka", action="store_true", help="produce to the input topics")
    simulate.add_argument("--rate", type=float, default=0.0, help="events/s (0: unlimited)")
    add_services(simulate)
    simulate.set_defaults(func=cmd_simulate)


def _add_evaluate(commands: Commands) -> None:
    evaluation = commands.add_parser(
        "evaluate", help="detectors against simulated, labelled traffic: recall, precision, speed"
    )
    evaluation.add_argument("--seeds", default="7,8,9", help="comma-separated seeds")
    evaluation.add_argument("--borrowers", type=int, default=2000)
    evaluation.add_argument("--days", type=int, default=90)
    evaluation.add_argument("--json", help="also write the figures to this JSON file")
    evaluation.add_argument(
        "--cases",
        help="also write what to look into, one JSON line each: every case missed, every "
        "installment not warned in time, every false alert-day with its alerts' reasons",
    )
    evaluation.add_argument(
        "--profiles",
        type=profiles_arg,
        help="comma-separated simulator profiles (or all): a table per profile and a summary "
        "of the figures below target; known: " + ", ".join(profile_names()),
    )
    evaluation.add_argument(
        "--jobs", type=int, help="runs in parallel with --profiles (default: the CPUs)"
    )
    evaluation.add_argument(
        "--verdict-share",
        type=float,
        default=1.0,
        help="share of published alerts given a simulated verdict, for the verdict models' "
        "ablation (default 1: every alert; 0: no ablation)",
    )
    evaluation.add_argument(
        "--verdict-delay", type=float, default=2.0, help="days from an alert to its verdict"
    )
    evaluation.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="evaluate with this threshold changed (repeatable), e.g. pass_through.window_hours=6",
    )
    evaluation.add_argument(
        "--fitted", help="evaluate the thresholds of a `lendwatch fit` file (--set on top)"
    )
    evaluation.set_defaults(func=cmd_evaluate)


def _add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action="store_true",
        help="draw a progress bar on stderr even when it is not a terminal",
    )


def _add_backtest(commands: Commands) -> None:
    backtest = commands.add_parser(
        "backtest", help="replay history under the current thresholds and a candidate"
    )
    backtest.add_argument("--input", required=True, help="events JSONL file, as replay reads")
    backtest.add_argument("--labels", help="labels JSONL file: adds precision and recall")
    backtest.add_argument(
        "--cases",
        help="with --labels and a candidate: what to look into under each, one JSON line "
        "each naming its run (current, candidate): every case missed, every installment not "
        "warned in time, every false alert-day with its alerts' reasons",
    )
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
        "--jobs", type=int, default=os.cpu_count() or 1, help="sweep runs in parallel"
    )
    _add_progress(backtest)
    backtest.add_argument(
        "--base",
        choices=("live", "defaults"),
        default="live",
        help='"current" is the live version in Redis (default) or the shipped defaults',
    )
    add_services(backtest)
    backtest.set_defaults(func=cmd_backtest)


def _add_fit(commands: Commands) -> None:
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
