"""Alert consumers for the teams acting on alerts: ``lendwatch tail`` and ``lendwatch explain``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from detectors.base import SEVERITY_BANDS
from streams.privacy import Masker

__all__ = ["SEVERITIES", "TailOptions", "describe_alert", "find_alert", "format_alert", "tail"]

#: Alert severities, lowest first.
SEVERITIES = tuple(name for _, name in reversed(SEVERITY_BANDS))
SEVERITY_COLOURS = {"low": "37", "medium": "33", "high": "31", "critical": "1;31"}


@dataclass(frozen=True)
class TailOptions:
    """Which alerts to show, and how."""

    #: The borrower as the user knows it: its id, or the hash a masked alert shows.
    borrower: str | None = None
    #: The worker's masker (same LW_PRIVACY_KEY): a raw ``borrower`` id is hashed with it to
    #: match masked alerts. None, or masking off: compared as typed.
    masker: Masker | None = None
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
    if options.borrower is not None and alert.get("borrower_id") not in _borrower_ids(options):
        return False
    severity = alert.get("severity")
    if severity not in SEVERITIES:
        return True  # an unknown severity is shown rather than hidden
    return SEVERITIES.index(severity) >= SEVERITIES.index(options.min_severity)


def _borrower_ids(options: TailOptions) -> set[str | None]:
    """The ids an alert of ``options.borrower`` may carry: as typed (a raw id on an unmasked
    deployment, or a hash copied from a masked alert) and its hash."""
    ids: set[str | None] = {options.borrower}
    if options.masker is not None and options.borrower is not None:
        ids.add(options.masker.borrower(options.borrower))
    return ids


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


async def find_alert(bootstrap: str, topics: Sequence[str], alert_id: str) -> dict[str, Any] | None:
    """The alert with ``alert_id``, read from the start of ``topics`` to their current end
    (None if it is not there: expired, or another deployment's)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # the cluster's metadata, for the partitions below
        parts = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not parts:
            return None
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        needle = alert_id.encode()
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    if message.value is None or needle not in message.value:
                        continue
                    alert = orjson.loads(message.value)
                    if isinstance(alert, dict) and alert.get("alert_id") == alert_id:
                        alert["_topic"] = message.topic
                        return alert
    finally:
        await consumer.stop()
    return None


def describe_alert(alert: dict[str, Any]) -> str:
    """Everything an alert says, for a person: what, who, when, every reason with the value
    observed and the threshold it was compared with, and the events behind it."""
    lines = [
        f"{alert['alert_id']}  {alert['severity']}  score {float(alert['score']):.2f}",
        f"  {alert.get('_topic', alert['category'])}: {alert['detector']} "
        f"(detector {alert.get('detector_version')}, thresholds {alert.get('thresholds_version')})",
        f"  borrower {alert['borrower_id']}, episode {alert.get('episode')}",
    ]
    if alert.get("loan_id"):
        lines.append(
            f"  loan {alert['loan_id']} installment {alert.get('installment')}"
            f" due {alert.get('due_date')}"
        )
    lines.append(f"  at {alert['ts']} (event time), emitted {alert.get('emitted_at')}")
    lines.append("  reasons:")
    for reason in alert.get("reasons", []):
        compared = ""
        if reason.get("observed") is not None or reason.get("threshold") is not None:
            compared = f" (observed {reason.get('observed')}, threshold {reason.get('threshold')})"
        lines.append(f"    - {reason['code']}: {reason['message']}{compared}")
    evidence = alert.get("evidence", [])
    lines.append(f"  evidence, {len(evidence)} events: {', '.join(evidence)}")
    return "\n".join(lines)
