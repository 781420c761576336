"""The alerts the console has read: counts, the latest, the shadow comparison, each alert by id,
each borrower's alerts, and the verdicts given, in bounded memory.

:class:`AlertBoard` is a plain object fed record by record, so it is tested without a broker;
:func:`read_alerts` feeds it from the topics with no consumer group, from their start, so the
console moves no one's offsets and shows the topics' history again after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from streams.control.store import Candidate

__all__ = ["AlertBoard", "read_alerts"]

log = logging.getLogger("lendwatch")

#: Whole alerts kept for their pages, the most recent; older ones are looked up on the topics.
ALERTS_KEPT = 20_000
#: Borrowers whose alert history is kept (the most recently alerted), and alerts kept for each.
BORROWERS_KEPT = 20_000
HISTORY_PER_BORROWER = 50


def _when(text: object) -> datetime | None:
    """An ISO-8601 time as an aware datetime (naive ones are taken as UTC); None if absent."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _summary(topic: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """What the page lists of an alert: one line's worth, reasons as their messages."""
    reasons = alert.get("reasons")
    return {
        "topic": topic,
        "alert_id": alert.get("alert_id"),
        "ts": alert.get("ts"),
        "emitted_at": alert.get("emitted_at"),
        "severity": alert.get("severity"),
        "detector": alert.get("detector"),
        "borrower_id": alert.get("borrower_id"),
        "score": alert.get("score"),
        "reasons": [
            str(r.get("message", r.get("code", "")))
            for r in (reasons if isinstance(reasons, list) else [])
            if isinstance(r, dict)
        ],
        "thresholds_version": alert.get("thresholds_version"),
    }


@dataclass
class _Comparison:
    """Live alerts per detector since a candidate started, kept up to date as alerts come."""

    label: str
    since: datetime
    live: Counter[str]
    partial: bool


class AlertBoard:
    """Counts and the latest alerts of the topics the console reads, in bounded memory.

    Kept: counters per topic and per (topic, detector); the ``latest`` newest alerts of the
    teams' topics (shadow alerts are counted and compared, not listed: they reach no team);
    shadow counts per detector for the ``labels`` most recent candidates; and the time and
    detector of the last ``window`` live alerts, so that a candidate set while the console
    runs is compared with the live alerts since it started without a second read of the
    topics. When older live alerts were forgotten, a comparison that needs them says
    ``partial``.
    """

    def __init__(
        self,
        shadow_topic: str,
        *,
        feedback_topic: str | None = None,
        latest: int = 100,
        window: int = 50_000,
        labels: int = 32,
    ) -> None:
        self.shadow_topic = shadow_topic
        self.feedback_topic = feedback_topic
        self._latest, self._window, self._labels = latest, window, labels
        self.clear()

    def clear(self) -> None:
        """Forget everything (the reader starts again from the topics' start)."""
        self.by_topic: Counter[str] = Counter()
        self.by_detector: Counter[tuple[str, str]] = Counter()
        self.unreadable = 0
        self.latest: deque[dict[str, Any]] = deque(maxlen=self._latest)
        self.shadow: OrderedDict[str, Counter[str]] = OrderedDict()
        self._live_times: deque[tuple[datetime, str]] = deque(maxlen=self._window)
        self._forgotten_until: datetime | None = None
        self._comparison: _Comparison | None = None
        #: Why the topics cannot be read right now, for the page (None while they can).
        self.reader_error: str | None = None
        #: Alerts of the teams' topics by id, as published plus ``topic``; the newest kept.
        self.alerts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: Each borrower's alerts (summaries), newest last.
        self.borrowers: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        #: Verdicts read from the feedback topic, by alert id, in the order given.
        self.verdicts: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

    def add(self, topic: str, alert: object) -> bool:
        """Take one record of ``topic``; False (and counted as unreadable) if not an alert."""
        if topic == self.feedback_topic:
            return self.add_verdict(alert)
        if not isinstance(alert, dict) or not isinstance(alert.get("detector"), str):
            self.unreadable += 1
            return False
        detector = alert["detector"]
        self.by_topic[topic] += 1
        self.by_detector[(topic, detector)] += 1
        if topic == self.shadow_topic:
            self._add_shadow(str(alert.get("thresholds_version")), detector)
        else:
            summary = _summary(topic, alert)
            self.latest.appendleft(summary)
            self._remember(topic, alert, summary)
            self._add_live(_when(alert.get("emitted_at")) or _when(alert.get("ts")), detector)
        return True

    def _remember(self, topic: str, alert: dict[str, Any], summary: dict[str, Any]) -> None:
        alert_id, borrower = alert.get("alert_id"), alert.get("borrower_id")
        if isinstance(alert_id, str):
            self.alerts[alert_id] = {**alert, "topic": topic}
            self.alerts.move_to_end(alert_id)
            while len(self.alerts) > ALERTS_KEPT:
                self.alerts.popitem(last=False)
        if isinstance(borrower, str):
            history = self.borrowers.get(borrower)
            if history is None:
                history = self.borrowers[borrower] = deque(maxlen=HISTORY_PER_BORROWER)
                while len(self.borrowers) > BORROWERS_KEPT:
                    self.borrowers.popitem(last=False)
            self.borrowers.move_to_end(borrower)
            history.append(summary)

    def add_verdict(self, record: object) -> bool:
        """Take one record of the feedback topic; False if it names no alert."""
        if not isinstance(record, dict) or not isinstance(record.get("alert_id"), str):
            return False
        alert_id = record["alert_id"]
        self.verdicts.setdefault(alert_id, []).append(
            {k: record.get(k) for k in ("verdict", "author", "ts", "note")}
        )
        self.verdicts.move_to_end(alert_id)
        while len(self.verdicts) > ALERTS_KEPT:
            self.verdicts.popitem(last=False)
        return True

    def history(self, borrower: str) -> list[dict[str, Any]]:
        """The borrower's alerts the console has read (the last 50), newest first."""
        return list(reversed(self.borrowers.get(borrower, ())))

    def _add_shadow(self, label: str, detector: str) -> None:
        counts = self.shadow.get(label)
        if counts is None:
            counts = self.shadow[label] = Counter()
            while len(self.shadow) > self._labels:
                self.shadow.popitem(last=False)
        counts[detector] += 1

    def _add_live(self, emitted: datetime | None, detector: str) -> None:
        if emitted is None:
            return
        if len(self._live_times) == self._live_times.maxlen:
            oldest = self._live_times[0][0]
            if self._forgotten_until is None or oldest > self._forgotten_until:
                self._forgotten_until = oldest
        self._live_times.append((emitted, detector))
        if self._comparison is not None and emitted >= self._comparison.since:
            self._comparison.live[detector] += 1

    def counts(self) -> dict[str, Any]:
        """Alerts per topic, and per topic and detector (most first)."""
        return {
            "topics": [{"topic": t, "count": n} for t, n in sorted(self.by_topic.items())],
            "detectors": [
                {"topic": topic, "detector": detector, "count": n}
                for (topic, detector), n in sorted(
                    self.by_detector.items(), key=lambda item: (item[0][0], -item[1], item[0][1])
                )
            ],
            "unreadable": self.unreadable,
        }

    def comparison(self, label: str, since: datetime) -> dict[str, Any]:
        """Per detector: live alerts emitted since ``since`` beside the alerts the candidate
        ``label`` raised in shadow (stamped with its label)."""
        kept = self._comparison
        if kept is None or (kept.label, kept.since) != (label, since):
            live = Counter(d for emitted, d in self._live_times if emitted >= since)
            partial = self._forgotten_until is not None and self._forgotten_until >= since
            kept = self._comparison = _Comparison(label, since, live, partial)
        shadow = self.shadow.get(label, Counter())
        rows = [
            {
                "detector": detector,
                "live": kept.live[detector],
                "shadow": shadow[detector],
                "difference": shadow[detector] - kept.live[detector],
            }
            for detector in sorted(set(kept.live) | set(shadow))
        ]
        return {
            "candidate": label,
            "since": since.isoformat(),
            "rows": rows,
            "live": sum(kept.live.values()),
            "shadow": sum(shadow.values()),
            "partial": kept.partial,
        }

    def snapshot(self, candidate: Candidate | None = None) -> dict[str, Any]:
        """Everything the page shows of the alerts, as plain data."""
        since = _when(candidate.at) if candidate else None
        return {
            "counts": self.counts(),
            "latest": list(self.latest),
            "reader_error": self.reader_error,
            "comparison": (
                self.comparison(candidate.label, since) if candidate and since else None
            ),
        }


async def read_alerts(bootstrap: str, topics: Sequence[str], board: AlertBoard) -> None:
    """Feed ``board`` every record of ``topics``, from their start, until cancelled.

    No consumer group: nothing is committed and no worker's assignment changes. aiokafka
    reconnects by itself; if the consumer fails anyway, the board is cleared and the topics
    read again from the start, so no alert is counted twice.
    """
    while True:
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
            metadata_max_age_ms=30_000,  # a topic created after the console starts joins soon
        )
        try:
            await consumer.start()
            board.reader_error = None
            async for message in consumer:
                try:
                    alert = orjson.loads(message.value) if message.value is not None else None
                except orjson.JSONDecodeError:
                    alert = None
                board.add(message.topic, alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("console: reading the alert topics failed, reading again: %r", exc)
            board.clear()
            board.reader_error = f"cannot read the alert topics from {bootstrap}: {exc}"
            await asyncio.sleep(2.0)
        finally:
            await consumer.stop()
