"""``lendwatch console``: one web page over the alert topics and the live thresholds.

The page (``console_static/index.html``, plain JavaScript, nothing to build) polls
``GET /api/state`` every second. The aggregation is :class:`AlertBoard`, a plain object fed
alert by alert, so it is tested without a broker; :func:`read_alerts` feeds it from the alert
topics with no consumer group, from their start, so the console moves no one's offsets and
shows the topics' history again after a restart. Threshold changes go through
:class:`~streams.control.store.ThresholdStore`, the same code as ``lendwatch thresholds``: the
console is one more client of it, not a second way to write Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis
from redis.exceptions import RedisError

from detectors.thresholds import TUNABLES, InvalidThreshold, format_value
from streams.control.store import (
    AuditEntry,
    Candidate,
    Conflict,
    ThresholdStore,
    ThresholdVersion,
    describe_tunable,
)
from streams.settings import Settings

__all__ = [
    "AlertBoard",
    "ChangeRequest",
    "create_app",
    "console_app",
    "parse_change_request",
    "read_alerts",
    "thresholds_view",
]

log = logging.getLogger("lendwatch")

#: History entries sent to the page, newest first; ``lendwatch thresholds history`` has all.
HISTORY_SHOWN = 50


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
        self, shadow_topic: str, *, latest: int = 100, window: int = 50_000, labels: int = 32
    ) -> None:
        self.shadow_topic = shadow_topic
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

    def add(self, topic: str, alert: object) -> bool:
        """Take one record of ``topic``; False (and counted as unreadable) if not an alert."""
        if not isinstance(alert, dict) or not isinstance(alert.get("detector"), str):
            self.unreadable += 1
            return False
        detector = alert["detector"]
        self.by_topic[topic] += 1
        self.by_detector[(topic, detector)] += 1
        if topic == self.shadow_topic:
            self._add_shadow(str(alert.get("thresholds_version")), detector)
        else:
            self.latest.appendleft(_summary(topic, alert))
            self._add_live(_when(alert.get("emitted_at")) or _when(alert.get("ts")), detector)
        return True

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


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "action": entry.action,
        "version": entry.version,
        "author": entry.author,
        "at": entry.at,
        "reason": entry.reason,
        "changes": {
            k: [format_value(old), format_value(new)] for k, (old, new) in entry.changes.items()
        },
    }


def thresholds_view(
    live: ThresholdVersion, candidate: Candidate | None, history: Sequence[AuditEntry]
) -> dict[str, Any]:
    """The thresholds as the page shows them: every tunable with its live value (and its
    shadow value when a candidate differs), range and meaning; the history newest first.
    Values are sent as text in the form a team types them (``10,7,5,3``)."""
    in_force = live.thresholds().values()
    shadow = candidate.thresholds().values() if candidate else {}
    values = []
    for key in TUNABLES:
        declared = describe_tunable(key)
        values.append(
            {
                **declared,
                "default": format_value(declared["default"]),
                "low": format_value(declared["low"]),
                "high": format_value(declared["high"]),
                "value": format_value(in_force[key]),
                "changed": in_force[key] != declared["default"],
                "shadow": (
                    format_value(shadow[key]) if shadow and shadow[key] != in_force[key] else None
                ),
            }
        )
    return {
        "live": {
            "label": live.label,
            "author": live.author,
            "at": live.at,
            "reason": live.reason,
            "action": live.action,
        },
        "candidate": (
            {
                "label": candidate.label,
                "base": f"v{candidate.base}",
                "author": candidate.author,
                "at": candidate.at,
                "reason": candidate.reason,
                "changes": {
                    k: [format_value(old), format_value(new)]
                    for k, (old, new) in candidate.changes.items()
                },
            }
            if candidate
            else None
        ),
        "values": values,
        "history": [_entry(e) for e in reversed(history[-HISTORY_SHOWN:])],
        "history_total": len(history),
    }


@dataclass(frozen=True)
class ChangeRequest:
    """A change asked for on the page: values by key (as typed), why, and who."""

    changes: dict[str, object]
    reason: str
    author: str


def parse_change_request(body: object, *, remote: str, changes: bool) -> ChangeRequest:
    """Check the shape of a POSTed body before anything reaches Redis.

    The values themselves are checked by the store, in full, as for the command line. A
    reason is required for every action here, shadow and discard included: the audit trail
    is what a second person reads. The author defaults to the browser's address, since the
    console has no login of its own.
    """
    if not isinstance(body, dict):
        raise InvalidThreshold('send a JSON object: {"changes": {...}, "reason": "..."}')
    wanted: dict[str, object] = {}
    if changes:
        given = body.get("changes")
        if not isinstance(given, dict) or not given:
            raise InvalidThreshold('"changes" must name at least one threshold and its value')
        for key, value in given.items():
            if isinstance(value, bool) or not isinstance(value, str | int | float | list):
                raise InvalidThreshold(f"{key}: {value!r} is not a value")
            wanted[str(key)] = value
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidThreshold("a reason is required: say why, for the audit trail")
    author = body.get("author")
    if not isinstance(author, str) or not author.strip():
        author = f"console@{remote}"
    return ChangeRequest(wanted, reason.strip(), author.strip())


STORE: web.AppKey[ThresholdStore] = web.AppKey("store", ThresholdStore)
BOARD: web.AppKey[AlertBoard] = web.AppKey("board", AlertBoard)
PAGE: web.AppKey[str] = web.AppKey("page", str)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A refused change is a 400 with the store's reason, which the page shows as is;
    Redis unreachable is a 503. Either way nothing was changed."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except (InvalidThreshold, Conflict) as exc:
        return _json({"error": str(exc)}, status=400)
    except (RedisError, OSError) as exc:
        return _json({"error": f"Redis is unreachable, nothing changed: {exc}"}, status=503)


async def _page(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[PAGE], content_type="text/html", headers={"Cache-Control": "no-cache"}
    )


async def _state(request: web.Request) -> web.Response:
    """Alerts from memory and thresholds from Redis; with Redis down the alerts still show."""
    store = request.app[STORE]
    try:
        live, candidate, history = await asyncio.gather(
            store.live(), store.candidate(), store.history()
        )
    except (RedisError, OSError) as exc:
        state = request.app[BOARD].snapshot()
        return _json({**state, "thresholds": None, "error": f"Redis is unreachable: {exc}"})
    state = request.app[BOARD].snapshot(candidate)
    return _json({**state, "thresholds": thresholds_view(live, candidate, history), "error": None})


async def _body(request: web.Request, *, changes: bool) -> ChangeRequest:
    # JSON only: a cross-site form cannot send it without a CORS preflight this server
    # never grants, so another web page cannot change thresholds through a browser.
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text='{"error": "send JSON (Content-Type: application/json)"}',
            content_type="application/json",
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise InvalidThreshold("the body is not JSON") from None
    return parse_change_request(body, remote=request.remote or "unknown", changes=changes)


async def _set_live(request: web.Request) -> web.Response:
    asked = await _body(request, changes=True)
    made = await request.app[STORE].set(asked.changes, author=asked.author, reason=asked.reason)
    return _json({"live": made.label, "changes": made.changes})


async def _shadow(request: web.Request) -> web.Response:
    asked = await _body(request, changes=True)
    candidate = await request.app[STORE].propose(
        asked.changes, author=asked.author, reason=asked.reason
    )
    return _json({"candidate": candidate.label, "changes": candidate.changes})


async def _promote(request: web.Request) -> web.Response:
    asked = await _body(request, changes=False)
    made = await request.app[STORE].promote(author=asked.author, reason=asked.reason)
    return _json({"live": made.label, "changes": made.changes})


async def _discard(request: web.Request) -> web.Response:
    asked = await _body(request, changes=False)
    dropped = await request.app[STORE].discard(author=asked.author, reason=asked.reason)
    return _json({"discarded": dropped.label})


def _index_html() -> str:
    return (resources.files("streams.control") / "console_static" / "index.html").read_text("utf-8")


def create_app(store: ThresholdStore, board: AlertBoard) -> web.Application:
    """The console's routes over ``store`` and ``board``; reading the topics is separate
    (:func:`console_app`), so the handlers are tested without a broker."""
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024)
    app[STORE] = store
    app[BOARD] = board
    app[PAGE] = _index_html()
    app.router.add_get("/", _page)
    app.router.add_get("/api/state", _state)
    app.router.add_post("/api/thresholds", _set_live)
    app.router.add_post("/api/shadow", _shadow)
    app.router.add_post("/api/promote", _promote)
    app.router.add_post("/api/discard", _discard)
    return app


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


def console_app(settings: Settings) -> web.Application:
    """The console with its Redis client and its reader of the alert topics (shadow too)."""
    redis = Redis.from_url(settings.redis_url, socket_timeout=3.0, socket_connect_timeout=3.0)
    board = AlertBoard(settings.topics.alerts_shadow)
    app = create_app(ThresholdStore(redis, settings.redis_prefix), board)
    topics = [*settings.topics.alert_topics(), settings.topics.alerts_shadow]

    async def services(_: web.Application) -> AsyncIterator[None]:
        reader = asyncio.create_task(read_alerts(settings.bootstrap_servers, topics, board))
        yield
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await redis.aclose()

    app.cleanup_ctx.append(services)
    return app


def run_console(settings: Settings, host: str, port: int) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    print(
        f"lendwatch console on http://{host}:{port}/ (alerts from {settings.bootstrap_servers}, "
        f"thresholds in {settings.redis_url} under {settings.redis_prefix}:)",
        flush=True,
    )
    web.run_app(console_app(settings), host=host, port=port, print=None, access_log=None)
