"""``lendwatch tail``: alerts as they are published, one line each, for the teams acting on them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer

from detectors.base import SEVERITY_BANDS

__all__ = ["SEVERITIES", "TailOptions", "format_alert", "tail"]

#: Alert severities, lowest first.
SEVERITIES = tuple(name for _, name in reversed(SEVERITY_BANDS))
SEVERITY_COLOURS = {"low": "37", "medium": "33", "high": "31", "critical": "1;31"}


@dataclass(frozen=True)
class TailOptions:
    """Which alerts to show, and how."""

    borrower: str | None = None
    min_severity: str = "low"
    from_beginning: bool = False
    colour: bool = True
    #: Stop after this many alerts shown (None: until cancelled).
    limit: int | None = None


def format_alert(topic: str, alert: dict[str, Any], *, colour: bool = True) -> str:
    """One line: severity (coloured), topic, detector, borrower, score, time, every reason."""
    severity = str(alert["severity"])
    shown = f"{severity:<8}"
    if colour:
        shown = f"\033[{SEVERITY_COLOURS.get(severity, '0')}m{shown}\033[0m"
    reasons = "; ".join(str(reason["message"]) for reason in alert["reasons"])
    return (
        f"{shown} {topic:<19} {alert['detector']:<17} "
        f"{alert['borrower_id']:<8} score {float(alert['score']):.2f}  "
        f"{str(alert['ts'])[:16]}  {reasons}"
    )


def wanted(alert: dict[str, Any], options: TailOptions) -> bool:
    """Whether ``alert`` passes the borrower and severity filters."""
    if options.borrower is not None and alert.get("borrower_id") != options.borrower:
        return False
    severity = alert.get("severity")
    if severity not in SEVERITIES:
        return True  # an unknown severity is shown rather than hidden
    return SEVERITIES.index(severity) >= SEVERITIES.index(options.min_severity)


async def tail(bootstrap: str, topics: Sequence[str], options: TailOptions, out: TextIO) -> int:
    """Print the alerts published to ``topics`` that pass the filters; returns how many.

    Reads with no consumer group, so tailing never moves anyone's committed offsets; from
    the end of each topic unless ``from_beginning``.
    """
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if options.from_beginning else "latest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    shown = 0
    try:
        async for message in consumer:
            try:
                alert = orjson.loads(message.value) if message.value is not None else None
            except orjson.JSONDecodeError:
                alert = None
            if not isinstance(alert, dict) or not wanted(alert, options):
                continue
            out.write(format_alert(message.topic, alert, colour=options.colour) + "\n")
            out.flush()
            shown += 1
            if options.limit is not None and shown >= options.limit:
                break
    except asyncio.CancelledError:
        pass
    finally:
        await consumer.stop()
    return shown
