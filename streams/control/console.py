"""``lendwatch console``: the teams' web page over the alerts, the queue and the thresholds.

The page (``console_static/``, plain JavaScript, nothing to build) signs in, then polls
``GET /api/state`` every second. What it shows is assembled by :mod:`streams.control.views`
from the alert board (:mod:`streams.control.board`), the risk view the workers keep in Redis,
and the thresholds store; who may see and do what is :mod:`streams.control.auth`. Threshold
changes go through :class:`~streams.control.store.ThresholdStore`, the same code as
``lendwatch thresholds``: the console is one more client of it, not a second way to write
Redis. Verdicts go to the feedback topic through :func:`streams.control.feedback.send_verdict`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from aiohttp import web
from aiokafka.errors import KafkaError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from detectors.thresholds import InvalidThreshold
from streams.control.auth import SESSION_COOKIE, AuthConfig, Gate, Identity, Refused
from streams.control.board import AlertBoard, read_alerts
from streams.control.feedback import VERDICTS, FeedbackProducer, send_verdict
from streams.control.store import Conflict, ThresholdStore
from streams.control.views import (
    ChangeRequest,
    alert_view,
    detector_thresholds,
    parse_change_request,
    queue_view,
    thresholds_view,
)
from streams.settings import Settings
from streams.worker.risk import RiskBoard

__all__ = [
    "AlertBoard",
    "ChangeRequest",
    "console_app",
    "create_app",
    "parse_change_request",
    "read_alerts",
    "thresholds_view",
]

log = logging.getLogger("lendwatch")

#: Borrowers read from the risk view for the queue page, riskiest first.
QUEUE_READ = 500

FindAlert = Callable[[str], Awaitable[dict[str, Any] | None]]


STORE: web.AppKey[ThresholdStore] = web.AppKey("store", ThresholdStore)
BOARD: web.AppKey[AlertBoard] = web.AppKey("board", AlertBoard)
GATE: web.AppKey[Gate] = web.AppKey("gate", Gate)
RISK: web.AppKey[RiskBoard | None] = web.AppKey("risk", object)  # type: ignore[arg-type]
FIND: web.AppKey[FindAlert | None] = web.AppKey("find", object)  # type: ignore[arg-type]
FEEDBACK: web.AppKey[FeedbackProducer | None] = web.AppKey("feedback", object)  # type: ignore[arg-type]

#: Files of ``console_static/`` served as they are, with their content types.
STATIC = {
    "index.html": "text/html",
    "login.html": "text/html",
    "console.css": "text/css",
    "console.js": "text/javascript",
    "login.js": "text/javascript",
}
#: Requests served to anyone: the sign-in page, its script and style, and sign-in itself.
PUBLIC = {("GET", "/login"), ("POST", "/api/login"), ("GET", "/static/{name}")}
#: What each action needs beyond reading.
NEEDS = {
    ("POST", "/api/thresholds"): "tune",
    ("POST", "/api/shadow"): "tune",
    ("POST", "/api/promote"): "tune",
    ("POST", "/api/discard"): "tune",
    ("POST", "/api/rollback"): "tune",
    ("POST", "/api/alerts/{alert_id}/verdict"): "verdict",
}
_NEEDED_ROLE = {"tune": "tuner", "verdict": "analyst", "read": "viewer, analyst or tuner"}
#: Every response: nothing from elsewhere, no framing, no sniffing, no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _static(name: str) -> str:
    return (resources.files("streams.control") / "console_static" / name).read_text("utf-8")


def _refusal(identity: Identity, needed: str, gate: Gate) -> str:
    if needed == "tune" and (reason := gate.read_only_reason()):
        return f"refused, nothing changed: {reason}"
    roles = ", ".join(sorted(identity.roles)) or "no role"
    if needed == "read":
        return f"{identity.name} has no console role: ask for viewer, analyst or tuner"
    what = "change thresholds" if needed == "tune" else "give verdicts on alerts"
    return (
        f"refused, nothing changed: {identity.name} ({roles}) may not {what}; that needs the "
        f"{_NEEDED_ROLE[needed]} role"
    )


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Who is asking, their CSRF token on every POST, and their role, before any handler.

    A refusal is logged with the peer's address and the name, if any, and changes nothing:
    401 when nobody (or an expired session) is signed in, 403 for a bad CSRF token or a
    missing role.
    """
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    key = (request.method, path)
    if key in PUBLIC or request.match_info.http_exception is not None:
        response: web.StreamResponse = await handler(request)
        return response
    gate = request.app[GATE]
    identity: Identity | None = None
    try:
        identity = gate.identify(request)
        if identity is None:
            raise Refused(
                401,
                "sign in through the single sign-on proxy"
                if gate.config.mode == "proxy"
                else "sign in first",
            )
        if request.method not in ("GET", "HEAD"):
            gate.check_csrf(request, identity)
        needed = NEEDS.get(key, "read")
        if not identity.may(needed):
            raise Refused(403, _refusal(identity, needed, gate))
    except Refused as exc:
        who = identity.name if identity else "nobody signed in"
        log.warning(
            "console: refused %s %s from %s (%s): %s",
            request.method,
            request.path,
            request.remote,
            who,
            exc,
        )
        if key == ("GET", "/") and exc.status == 401:
            if gate.config.mode == "password":
                raise web.HTTPFound("/login") from None
            # The page itself holds no data; it says why its requests are refused.
            return web.Response(text=_static("index.html"), content_type="text/html", status=401)
        refused = _json({"error": str(exc), "status": exc.status}, status=exc.status)
        if exc.status == 401:
            refused.del_cookie(SESSION_COOKIE, path="/")
        return refused
    response = await handler(request)
    return response


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """A refused change is a 400 with the store's reason, which the page shows as is;
    Redis unreachable is a 503. Either way nothing was changed."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except (InvalidThreshold, Conflict) as exc:
        return _json({"error": str(exc)}, status=400)
    except Refused as exc:
        return _json({"error": str(exc), "status": exc.status}, status=exc.status)
    except (RedisError, OSError) as exc:
        return _json({"error": f"Redis is unreachable, nothing changed: {exc}"}, status=503)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _identity(request: web.Request) -> Identity:
    """Who sent a request the guard let through (identified again: a dict look-up)."""
    identity = request.app[GATE].identify(request)
    if identity is None:  # the guard let nobody through: cannot happen
        raise Refused(401, "sign in first")
    return identity


# --- pages, sign-in -------------------------------------------------------------------------


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=_static("index.html"), content_type="text/html")


async def _login_page(request: web.Request) -> web.StreamResponse:
    if request.app[GATE].config.mode == "proxy":
        raise web.HTTPFound("/")
    return web.Response(text=_static("login.html"), content_type="text/html")


async def _static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC or name.endswith(".html"):
        raise web.HTTPNotFound()
    return web.Response(text=_static(name), content_type=STATIC[name])


def _me(request: web.Request, identity: Identity) -> dict[str, Any]:
    gate = request.app[GATE]
    return {
        "name": identity.name,
        "roles": sorted(identity.roles),
        "via": identity.via,
        "permissions": sorted(identity.permissions),
        "csrf": gate.csrf_token(identity),
        "mode": gate.config.mode,
        "read_only": gate.read_only_reason(),
        "session_ends": (
            datetime.fromtimestamp(identity.session.expires, UTC).isoformat(timespec="seconds")
            if identity.session
            else None
        ),
    }


async def _read_json(request: web.Request) -> dict[str, Any]:
    # JSON only: a cross-site form cannot send it without a CORS preflight this server
    # never grants; the CSRF token is the second lock.
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text='{"error": "send JSON (Content-Type: application/json)"}',
            content_type="application/json",
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise InvalidThreshold("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidThreshold("send a JSON object")
    return body


async def _login(request: web.Request) -> web.Response:
    gate = request.app[GATE]
    body = await _read_json(request)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise InvalidThreshold('send {"name": ..., "password": ...}')
    try:
        # scrypt takes tens of milliseconds: off the event loop, which serves the others.
        token, identity = await asyncio.to_thread(gate.sign_in, name.strip(), password)
    except Refused as exc:
        log.warning("console: refused sign-in of %r from %s: %s", name, request.remote, exc)
        raise
    log.info("console: %s signed in from %s", identity.name, request.remote)
    response = _json(_me(request, identity))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(gate.config.session_seconds),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=gate.secure(request),
    )
    return response


async def _logout(request: web.Request) -> web.Response:
    name = _identity(request).name
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        request.app[GATE].sessions.close(token)
    log.info("console: %s signed out", name)
    response = _json({"signed_out": name})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def _who(request: web.Request) -> web.Response:
    return _json(_me(request, _identity(request)))


# --- alerts, thresholds ---------------------------------------------------------------------


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


async def _change(request: web.Request, *, changes: bool) -> ChangeRequest:
    return parse_change_request(await _read_json(request), changes=changes)


def _changed(request: web.Request, action: str, label: str) -> None:
    log.info("console: %s by %s: %s", action, _identity(request).name, label)


async def _set_live(request: web.Request) -> web.Response:
    asked = await _change(request, changes=True)
    author = _identity(request).name
    made = await request.app[STORE].set(asked.changes, author=author, reason=asked.reason)
    _changed(request, "set", made.label)
    return _json({"live": made.label, "changes": made.changes})


async def _shadow(request: web.Request) -> web.Response:
    asked = await _change(request, changes=True)
    author = _identity(request).name
    candidate = await request.app[STORE].propose(asked.changes, author=author, reason=asked.reason)
    _changed(request, "shadow", candidate.label)
    return _json({"candidate": candidate.label, "changes": candidate.changes})


async def _promote(request: web.Request) -> web.Response:
    asked = await _change(request, changes=False)
    made = await request.app[STORE].promote(author=_identity(request).name, reason=asked.reason)
    _changed(request, "promote", made.label)
    return _json({"live": made.label, "changes": made.changes})


async def _discard(request: web.Request) -> web.Response:
    asked = await _change(request, changes=False)
    dropped = await request.app[STORE].discard(author=_identity(request).name, reason=asked.reason)
    _changed(request, "discard", dropped.label)
    return _json({"discarded": dropped.label})


async def _rollback(request: web.Request) -> web.Response:
    body = await _read_json(request)
    asked = parse_change_request({k: v for k, v in body.items() if k != "version"}, changes=False)
    version = str(body.get("version", "")).strip().lstrip("vV")
    if not version.isdigit():
        raise InvalidThreshold('"version" names the version to roll back to: v3, or 3')
    made = await request.app[STORE].rollback(
        int(version), author=_identity(request).name, reason=asked.reason
    )
    _changed(request, "rollback", made.label)
    return _json({"live": made.label, "changes": made.changes})


# --- the collections queue, an alert, a verdict ---------------------------------------------


def _number(request: web.Request, name: str, default: float | None) -> float | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidThreshold(f"{name}={raw!r} is not a number") from None


async def _queue(request: web.Request) -> web.Response:
    """The collections queue from the workers' risk view: what ``lendwatch risk`` prints."""
    risk = request.app[RISK]
    if risk is None:
        return _json({"error": "this console reads no risk view"}, status=503)
    try:
        views = await risk.queue(QUEUE_READ)
    except (RedisError, OSError) as exc:
        return _json({"error": f"Redis is unreachable: {exc}"}, status=503)
    within = _number(request, "due_within", None)
    return _json(
        queue_view(
            views,
            search=request.query.get("borrower", ""),
            min_score=_number(request, "min_score", 0.0) or 0.0,
            due_within_days=int(within) if within is not None else None,
            today=datetime.now(UTC).date(),
        )
    )


async def _find(request: web.Request, alert_id: str) -> tuple[dict[str, Any] | None, bool]:
    """The alert from memory, else from the topics; and whether the board had it."""
    kept = request.app[BOARD].alerts.get(alert_id)
    if kept is not None:
        return kept, True
    find = request.app[FIND]
    found = await find(alert_id) if find is not None else None
    if found is not None:
        found["topic"] = found.pop("_topic", found.get("topic"))
    return found, False


async def _alert(request: web.Request) -> web.Response:
    alert_id = request.match_info["alert_id"]
    alert, kept = await _find(request, alert_id)
    if alert is None:
        return _json({"error": f"no alert {alert_id} on the teams' topics"}, status=404)
    board = request.app[BOARD]
    thresholds, error = None, None
    version = str(alert.get("thresholds_version") or "")
    if version.startswith("v") and version[1:].isdigit():
        try:
            stored = await request.app[STORE].version(int(version[1:]))
            thresholds = detector_thresholds(str(alert.get("detector")), stored)
        except (RedisError, OSError) as exc:
            error = f"Redis is unreachable: {exc}"
        except InvalidThreshold as exc:
            error = str(exc)
    view = alert_view(
        alert,
        history=board.history(str(alert.get("borrower_id"))),
        verdicts=board.verdicts.get(alert_id, []),
        thresholds=thresholds,
        history_complete=kept,
    )
    return _json({**view, "error": error, "verdict_choices": list(VERDICTS)})


async def _verdict(request: web.Request) -> web.Response:
    """An analyst's verdict on an alert, produced to the feedback topic as the signed-in
    identity; the record sent is answered back."""
    alert_id = request.match_info["alert_id"]
    body = await _read_json(request)
    verdict, note = body.get("verdict"), body.get("note")
    if verdict not in VERDICTS:
        raise InvalidThreshold(f"verdict: one of {', '.join(VERDICTS)}")
    if note is not None and not isinstance(note, str):
        raise InvalidThreshold("a note is text")
    alert, _ = await _find(request, alert_id)
    if alert is None:
        return _json({"error": f"no alert {alert_id}: no verdict sent"}, status=404)
    feedback = request.app[FEEDBACK]
    if feedback is None:
        return _json({"error": "this console has no feedback topic"}, status=503)
    try:
        record = await send_verdict(
            await feedback.producer(),
            feedback.topic,
            str(alert["borrower_id"]),
            alert_id,
            str(verdict),
            _identity(request).name,
            note,
        )
    except ValueError as exc:
        raise InvalidThreshold(str(exc)) from None
    except (KafkaError, OSError) as exc:
        return _json({"error": f"the broker is unreachable, no verdict sent: {exc!r}"}, 503)
    request.app[BOARD].add_verdict(record)  # shown at once; the reader sees it again later
    log.info("console: verdict %s on %s by %s", verdict, alert_id, record["author"])
    return _json({"sent": record, "topic": feedback.topic})


def create_app(
    store: ThresholdStore,
    board: AlertBoard,
    gate: Gate | None = None,
    *,
    risk: RiskBoard | None = None,
    find_alert: FindAlert | None = None,
    feedback: FeedbackProducer | None = None,
) -> web.Application:
    """The console's routes over ``store`` and ``board``, signed in through ``gate`` (default:
    password sign-in with the default users file); reading the topics is separate
    (:func:`console_app`), so the handlers are tested without a broker."""
    app = web.Application(middlewares=[_errors, _guard], client_max_size=64 * 1024)
    app[STORE] = store
    app[BOARD] = board
    app[GATE] = gate or Gate(AuthConfig())
    app[RISK] = risk
    app[FIND] = find_alert
    app[FEEDBACK] = feedback
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", _page)
    app.router.add_get("/login", _login_page)
    app.router.add_get("/static/{name}", _static_file)
    app.router.add_post("/api/login", _login)
    app.router.add_post("/api/logout", _logout)
    app.router.add_get("/api/me", _who)
    app.router.add_get("/api/state", _state)
    app.router.add_get("/api/queue", _queue)
    app.router.add_get("/api/alerts/{alert_id}", _alert)
    app.router.add_post("/api/alerts/{alert_id}/verdict", _verdict)
    app.router.add_post("/api/thresholds", _set_live)
    app.router.add_post("/api/shadow", _shadow)
    app.router.add_post("/api/promote", _promote)
    app.router.add_post("/api/discard", _discard)
    app.router.add_post("/api/rollback", _rollback)
    return app


def console_app(settings: Settings, gate: Gate | None = None) -> web.Application:
    """The console with its Redis client, its reader of the alert and feedback topics, and
    its producer of verdicts."""
    from streams.ops.tail import find_alert

    redis = Redis.from_url(settings.redis_url, socket_timeout=3.0, socket_connect_timeout=3.0)
    topics = settings.topics
    board = AlertBoard(topics.alerts_shadow, feedback_topic=topics.feedback)
    feedback = FeedbackProducer(settings.bootstrap_servers, topics.feedback)

    async def find(alert_id: str) -> dict[str, Any] | None:
        return await find_alert(settings.bootstrap_servers, topics.alert_topics(), alert_id)

    app = create_app(
        ThresholdStore(redis, settings.redis_prefix),
        board,
        gate or Gate(AuthConfig.from_settings(settings)),
        risk=RiskBoard(redis, settings.redis_prefix),
        find_alert=find,
        feedback=feedback,
    )
    read = [*topics.alert_topics(), topics.alerts_shadow, topics.feedback]

    async def services(_: web.Application) -> AsyncIterator[None]:
        reader = asyncio.create_task(read_alerts(settings.bootstrap_servers, read, board))
        yield
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await feedback.close()
        await redis.aclose()

    app.cleanup_ctx.append(services)
    return app


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not (settings.console_tls_cert or settings.console_tls_key):
        return None
    if not (settings.console_tls_cert and settings.console_tls_key):
        raise ValueError("LW_CONSOLE_TLS_CERT and LW_CONSOLE_TLS_KEY go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.console_tls_cert, settings.console_tls_key)
    return context


def run_console(settings: Settings, host: str, port: int) -> None:
    """Serve until Ctrl-C or SIGTERM; sign-ins, refusals and changes are logged."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    gate = Gate(AuthConfig.from_settings(settings))
    tls = _tls(settings)
    print(
        f"lendwatch console on {'https' if tls else 'http'}://{host}:{port}/ (alerts from "
        f"{settings.bootstrap_servers}, thresholds in {settings.redis_url} under "
        f"{settings.redis_prefix}:); {gate.describe()}",
        flush=True,
    )
    web.run_app(
        console_app(settings, gate),
        host=host,
        port=port,
        ssl_context=tls,
        print=None,
        access_log=None,
    )
