"""``lendwatch thresholds``: list, get, set, diff, history, rollback, shadow, promote, discard."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from redis.asyncio import Redis

from detectors.thresholds import TUNABLES, InvalidThreshold, format_value
from streams.control.operator import operator_name
from streams.control.store import (
    AuditEntry,
    Candidate,
    Conflict,
    ThresholdStore,
    ThresholdVersion,
)

__all__ = ["add_parser", "parse_assignments", "render_history"]


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments to a dict; the values are checked by the store."""
    changes: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidThreshold(f"{item!r}: expected KEY=VALUE, e.g. takeover.min_failures=6")
        changes[key.strip()] = value
    return changes


def _version_number(text: str) -> int:
    try:
        return int(text.strip().lstrip("vV"))
    except ValueError:
        raise InvalidThreshold(f"{text!r} is not a version (v3, or 3)") from None


def render_values(live: ThresholdVersion, candidate: Candidate | None, out: TextIO) -> None:
    in_force = live.thresholds().values()
    shadow = candidate.thresholds().values() if candidate else {}
    print(f"live {live.label}" + (f", {candidate.label} in shadow" if candidate else ""), file=out)
    width = max(len(key) for key in TUNABLES)
    for key, declared in TUNABLES.items():
        value = format_value(in_force[key])
        mark = "" if in_force[key] == declared.default else " *"
        trial = (
            f"  (shadow: {format_value(shadow[key])})"
            if shadow and shadow[key] != in_force[key]
            else ""
        )
        print(f"{key:<{width}}  {value:>12}{mark:2}{trial}  {declared.meaning}", file=out)
    print("* differs from the shipped default", file=out)


def render_changes(changes: dict[str, list[Any]], out: TextIO, indent: str = "  ") -> None:
    for key, (old, new) in sorted(changes.items()):
        print(f"{indent}{key}: {format_value(old)} -> {format_value(new)}", file=out)


def render_history(entries: Sequence[AuditEntry], out: TextIO) -> None:
    if not entries:
        print("no changes: the shipped defaults (v0) are live", file=out)
    for entry in entries:
        print(
            f"{entry.at}  {entry.action:<8} {entry.version:<5} by {entry.author}: {entry.reason}",
            file=out,
        )
        render_changes(entry.changes, out, indent="    ")


async def _run(args: argparse.Namespace, redis: Redis, out: TextIO) -> int:
    await _ACTIONS[args.action](ThresholdStore(redis, args.prefix), args, out)
    if args.action in _CHANGING:
        name, source = operator_name(getattr(args, "operator", ""))
        print(f"recorded in the audit trail as {name}: {source}", file=out)
    return 0


#: The actions that write the audit trail.
_CHANGING = frozenset({"set", "rollback", "shadow", "promote", "discard"})


def _author(args: argparse.Namespace) -> str:
    """Who the audit records: the operator name configured (``LW_OPERATOR``) or the OS user;
    never a name typed for the occasion."""
    if getattr(args, "author", None):
        raise InvalidThreshold(
            "--author is no longer taken: the audit trail records the OS user, or the operator "
            "name in LW_OPERATOR"
        )
    return operator_name(getattr(args, "operator", ""))[0]


async def _list(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    render_values(await store.live(), await store.candidate(), out)


async def _get(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    declared = TUNABLES.get(args.key)
    if declared is None:
        raise InvalidThreshold(f"{args.key}: no such threshold")
    live, candidate = await store.live(), await store.candidate()
    print(
        f"{args.key} = {format_value(live.thresholds().values()[args.key])}  ({live.label})",
        file=out,
    )
    if candidate is not None:
        shadow = format_value(candidate.thresholds().values()[args.key])
        print(f"  in shadow ({candidate.label}): {shadow}", file=out)
    print(
        f"  {declared.type}, range [{format_value(declared.low)}, "
        f"{format_value(declared.high)}], default {format_value(declared.default)}: "
        f"{declared.meaning}",
        file=out,
    )


async def _set(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    made = await store.set(
        parse_assignments(args.assignments), author=_author(args), reason=args.reason
    )
    print(f"{made.label} is live (was v{made.number - 1}):", file=out)
    render_changes(made.changes, out)


async def _rollback(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    made = await store.rollback(
        _version_number(args.version), author=_author(args), reason=args.reason
    )
    print(f"{made.label} is live, with the values of {args.version}:", file=out)
    render_changes(made.changes, out)


async def _diff(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    first, second = _version_number(args.first), _version_number(args.second)
    changes = await store.diff(first, second)
    print(f"v{first} -> v{second}: {len(changes)} value(s) differ", file=out)
    render_changes(changes, out)


async def _history(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    render_history(await store.history(), out)


async def _fitted_changes(store: ThresholdStore, path: str, out: TextIO) -> dict[str, object]:
    """The values of a ``lendwatch fit`` file that differ from the live ones; the file is
    validated in full first (keys, types, ranges, constraints), as any change is."""
    from streams.lab.fitted import read_fitted  # the control plane needs it for this only

    fitted = read_fitted(Path(path))
    live = (await store.live()).thresholds().values()
    print(f"from {path} ({fitted.thresholds.version}, fitted {fitted.created_at})", file=out)
    return {k: v for k, v in fitted.thresholds.values().items() if v != live[k]}


async def _shadow(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    author = _author(args)
    changes = await _fitted_changes(store, args.fitted, out) if args.fitted else {}
    changes.update(parse_assignments(args.assignments))  # given values win over the file's
    if not changes and not args.fitted:
        raise InvalidThreshold("give KEY=VALUE ... or --fitted FILE")
    candidate = await store.propose(changes, author=author, reason=args.reason)
    print(
        f"{candidate.label} runs in shadow beside v{candidate.base}; its alerts go to "
        "alerts.shadow:",
        file=out,
    )
    render_changes(candidate.changes, out)


async def _promote(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    made = await store.promote(author=_author(args), reason=args.reason)
    print(f"{made.label} is live (promoted from shadow):", file=out)
    render_changes(made.changes, out)


async def _discard(store: ThresholdStore, args: argparse.Namespace, out: TextIO) -> None:
    dropped = await store.discard(author=_author(args), reason=args.reason)
    print(f"{dropped.label} no longer runs in shadow", file=out)


#: One coroutine per ``thresholds`` action, as :func:`add_parser` names them.
_ACTIONS: dict[
    str, Callable[[ThresholdStore, argparse.Namespace, TextIO], Coroutine[Any, Any, None]]
] = {
    "list": _list,
    "get": _get,
    "set": _set,
    "rollback": _rollback,
    "diff": _diff,
    "history": _history,
    "shadow": _shadow,
    "promote": _promote,
    "discard": _discard,
}


def run(args: argparse.Namespace, redis_url: str) -> int:
    """Run one ``thresholds`` action; a refused change prints why and exits 2."""

    async def main() -> int:
        redis = Redis.from_url(redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
        try:
            return await _run(args, redis, sys.stdout)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(main())
    except (InvalidThreshold, Conflict) as exc:
        print(f"refused, nothing changed: {exc}", file=sys.stderr)
        return 2


def add_parser(commands: Any, add_services: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "thresholds", help="live detector thresholds: list, change, audit, shadow, promote"
    )
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, help: str, reason: bool = False) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help)
        add_services(sub)
        sub.add_argument("--prefix", default=None, help="Redis key prefix (or LW_REDIS_PREFIX)")
        if reason:
            sub.add_argument("--reason", required=True, help="why: kept in the audit trail")
            # Refused when given (the audit records the OS user or LW_OPERATOR); kept so that
            # an old script is told why rather than "unrecognized arguments".
            sub.add_argument("--author", help=argparse.SUPPRESS)
        return sub

    action("list", "every threshold, its live value and meaning")
    action("get", "one threshold: value, type, range, default").add_argument("key")
    action("set", "make a new live version", reason=True).add_argument(
        "assignments", nargs="+", metavar="KEY=VALUE"
    )
    diff = action("diff", "values that differ between two versions")
    diff.add_argument("first")
    diff.add_argument("second")
    action("history", "every change: who, when, why, old and new values")
    action(
        "rollback", "make a new live version with an old version's values", reason=True
    ).add_argument("version")
    shadow = action(
        "shadow", "run candidate values beside the live ones (alerts.shadow)", reason=True
    )
    shadow.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    shadow.add_argument(
        "--fitted", help="the values of a `lendwatch fit` file (KEY=VALUE given win over them)"
    )
    action("promote", "make the candidate in shadow live", reason=True)
    action("discard", "stop running the candidate in shadow", reason=True)
    return parser
