"""Live thresholds in Redis: versioned, audited, shadowed, and pushed to every worker.

Layout, under the settings' Redis prefix:

- ``thresholds:versions``: a list; entry N-1 is version ``vN``, every value in force with
  who made it, when, why, and the values it changed (old and new). Version ``v0`` is the
  shipped defaults and is not stored.
- ``thresholds:candidate``: the candidate run in shadow beside the live version, if any.
- ``thresholds:audit``: every action, in order (set, rollback, shadow, promote, discard).
- channel ``thresholds:changed``: a message per action; workers reload on it.

Why Redis and not a compacted control topic: the versions and audit need an atomic
"append version N+1 only if the last is N", which a Lua script gives in one round trip,
and Redis is already every worker's shared store. Pub/sub tells every worker at once (a
millisecond); a worker also re-reads every :data:`POLL_SECONDS`, so a message it missed
(reconnecting) costs at most that. A control topic would need its own consumer per worker
outside the group, and its log would duplicate what the list keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

import orjson
from redis.asyncio import Redis

from detectors.thresholds import (
    DEFAULT_VERSION,
    TUNABLES,
    InvalidThreshold,
    Thresholds,
    Value,
)

__all__ = [
    "AuditEntry",
    "Candidate",
    "Conflict",
    "POLL_SECONDS",
    "ThresholdStore",
    "ThresholdVersion",
    "ThresholdWatcher",
    "default_author",
    "describe_tunable",
    "live_label",
]

log = logging.getLogger("lendwatch")

#: A worker re-reads the live version this often, whatever pub/sub said (messages sent while
#: it reconnects are lost).
POLL_SECONDS = 5.0

# Append version N+1 only if the list holds N versions; optionally drop the candidate; log
# the action and tell the workers, all at once.
_APPEND_VERSION = """
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', KEYS[4], ARGV[5])
return redis.call('LLEN', KEYS[1])
"""

# Set or drop the candidate only if the live version is still the one it was based on.
_SET_CANDIDATE = """
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return -1 end
if ARGV[2] == '' then redis.call('DEL', KEYS[3]) else redis.call('SET', KEYS[3], ARGV[2]) end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PUBLISH', KEYS[4], ARGV[4])
return 1
"""


class Conflict(RuntimeError):
    """Someone else changed the thresholds between our read and our write: re-read, retry."""


def live_label(number: int) -> str:
    """The version stamped on alerts: ``v0`` (defaults), ``v1``, ..."""
    return f"v{number}"


def default_author() -> str:
    """Who is changing thresholds, when not told: the login and host, as an audit wants."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container): the host alone
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _changes(before: Mapping[str, Value], after: Mapping[str, Value]) -> dict[str, list[Any]]:
    return {
        key: [before.get(key), value] for key, value in after.items() if before.get(key) != value
    }


class _Stored:
    """A record kept in Redis as the JSON of its fields."""

    def to_json(self) -> bytes:
        return orjson.dumps(vars(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        return cls(**orjson.loads(raw))


@dataclass(frozen=True)
class ThresholdVersion(_Stored):
    """One live version: every value in force, and the change that made it."""

    number: int
    values: dict[str, Any]
    author: str
    at: str
    reason: str
    action: str  # "set", "rollback" or "promote"
    changes: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return live_label(self.number)

    def thresholds(self) -> Thresholds:
        return Thresholds.from_values(self.values, self.label)

    @classmethod
    def defaults(cls) -> ThresholdVersion:
        return cls(0, dict(Thresholds().values()), "lendwatch", "", "shipped defaults", "set")


@dataclass(frozen=True)
class Candidate(_Stored):
    """Thresholds run in shadow beside live version ``base``: its alerts go to
    ``alerts.shadow`` stamped ``label``, never to the teams' topics."""

    number: int
    base: int
    values: dict[str, Any]
    changes: dict[str, list[Any]]
    author: str
    at: str
    reason: str

    @property
    def label(self) -> str:
        return f"c{self.number}"

    def thresholds(self) -> Thresholds:
        return Thresholds.from_values(self.values, self.label)


@dataclass(frozen=True)
class AuditEntry(_Stored):
    """One action on the thresholds: who, when, why, what changed."""

    action: str  # set | rollback | promote | shadow | discard
    version: str  # the live version made, or the candidate's label
    author: str
    at: str
    reason: str
    changes: dict[str, list[Any]]


class ThresholdStore:
    """Reads and changes the thresholds in Redis; the one way anything changes them.

    Every change is validated in full (:meth:`Thresholds.with_changes`) before anything is
    written: an invalid one raises :class:`InvalidThreshold` and changes nothing.
    """

    def __init__(self, redis: Redis, prefix: str = "lw") -> None:
        self.redis = redis
        self.versions_key = f"{prefix}:thresholds:versions"
        self.audit_key = f"{prefix}:thresholds:audit"
        self.candidate_key = f"{prefix}:thresholds:candidate"
        self.candidate_seq_key = f"{prefix}:thresholds:candidates"
        self.channel = f"{prefix}:thresholds:changed"

    # --- reading -----------------------------------------------------------------------------

    async def live(self) -> ThresholdVersion:
        raw = await self.redis.lindex(self.versions_key, -1)
        return ThresholdVersion.from_json(raw) if raw else ThresholdVersion.defaults()

    async def version(self, number: int) -> ThresholdVersion:
        if number == 0:
            return ThresholdVersion.defaults()
        raw = await self.redis.lindex(self.versions_key, number - 1) if number > 0 else None
        if not raw:
            raise InvalidThreshold(f"no version v{number}")
        return ThresholdVersion.from_json(raw)

    async def candidate(self) -> Candidate | None:
        raw = await self.redis.get(self.candidate_key)
        return Candidate.from_json(raw) if raw else None

    async def in_force(self) -> tuple[Thresholds, Thresholds | None]:
        """The live thresholds and the candidate's, read together (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lindex(self.versions_key, -1)
        pipe.get(self.candidate_key)
        live_raw, candidate_raw = await pipe.execute()
        live = ThresholdVersion.from_json(live_raw) if live_raw else ThresholdVersion.defaults()
        candidate = Candidate.from_json(candidate_raw) if candidate_raw else None
        return live.thresholds(), candidate.thresholds() if candidate else None

    async def history(self) -> list[AuditEntry]:
        raw = await self.redis.lrange(self.audit_key, 0, -1)
        return [AuditEntry.from_json(entry) for entry in raw]

    async def diff(self, first: int, second: int) -> dict[str, list[Any]]:
        """Keys whose values differ between two versions: key to [first's, second's]."""
        a, b = await self.version(first), await self.version(second)
        return _changes(a.thresholds().values(), b.thresholds().values())

    # --- changing ----------------------------------------------------------------------------

    async def set(
        self, changes: Mapping[str, object], *, author: str, reason: str
    ) -> ThresholdVersion:
        """Make live version N+1 from the live values with ``changes``."""
        live = await self.live()
        return await self._append(live, changes, author=author, reason=reason, action="set")

    async def rollback(self, number: int, *, author: str, reason: str) -> ThresholdVersion:
        """Make live version N+1 with the values of version ``number`` (history is kept)."""
        live, target = await self.live(), await self.version(number)
        return await self._append(
            live,
            target.values,
            author=author,
            reason=reason or f"rollback to v{number}",
            action="rollback",
        )

    async def propose(
        self, changes: Mapping[str, object], *, author: str, reason: str
    ) -> Candidate:
        """Run the live values with ``changes`` in shadow (replacing any candidate)."""
        live = await self.live()
        current = live.thresholds()
        values = current.with_changes(changes, "candidate").values()
        changed = _changes(current.values(), values)
        if not changed:
            raise InvalidThreshold("no change: every value given is already live")
        number = int(await self.redis.incr(self.candidate_seq_key))
        candidate = Candidate(number, live.number, dict(values), changed, author, _now(), reason)
        entry = AuditEntry("shadow", candidate.label, author, candidate.at, reason, changed)
        await self._set_candidate(live.number, candidate.to_json(), entry, f"shadow:{number}")
        return candidate

    async def promote(self, *, author: str, reason: str) -> ThresholdVersion:
        """Make the candidate live as version N+1; it stops running in shadow."""
        candidate = await self.candidate()
        if candidate is None:
            raise InvalidThreshold("no candidate in shadow to promote")
        live = await self.live()
        if live.number != candidate.base:
            raise Conflict(
                f"{candidate.label} was tried against v{candidate.base}, but v{live.number} is "
                "live now: shadow it again against the live version first"
            )
        why = reason or f"promote {candidate.label}"
        return await self._append(
            live,
            candidate.values,
            author=author,
            reason=why,
            action="promote",
            drop_candidate=True,
            promoted=candidate.label,
        )

    async def discard(self, *, author: str, reason: str) -> Candidate:
        candidate = await self.candidate()
        if candidate is None:
            raise InvalidThreshold("no candidate in shadow to discard")
        live = await self.live()
        entry = AuditEntry("discard", candidate.label, author, _now(), reason, {})
        await self._set_candidate(live.number, b"", entry, "discard")
        return candidate

    async def _append(
        self,
        live: ThresholdVersion,
        changes: Mapping[str, object],
        *,
        author: str,
        reason: str,
        action: str,
        drop_candidate: bool = False,
        promoted: str = "",
    ) -> ThresholdVersion:
        if not reason.strip():
            raise InvalidThreshold("a reason is required: say why, for the audit trail")
        number = live.number + 1
        current = live.thresholds()
        values = current.with_changes(changes, live_label(number)).values()
        changed = _changes(current.values(), values)
        if not changed:
            raise InvalidThreshold("no change: every value given is already live")
        made = ThresholdVersion(number, dict(values), author, _now(), reason, action, changed)
        audit_reason = f"{reason} ({promoted})" if promoted else reason
        entry = AuditEntry(action, made.label, author, made.at, audit_reason, changed)
        appended = await self.redis.eval(
            _APPEND_VERSION,
            4,
            self.versions_key,
            self.audit_key,
            self.candidate_key,
            self.channel,
            live.number,
            made.to_json(),
            entry.to_json(),
            "1" if drop_candidate else "0",
            f"live:{number}",
        )
        if int(appended) < 0:
            raise Conflict(f"the thresholds changed since v{live.number} was read; try again")
        return made

    async def _set_candidate(
        self, base: int, candidate: bytes, entry: AuditEntry, message: str
    ) -> None:
        done = await self.redis.eval(
            _SET_CANDIDATE,
            4,
            self.versions_key,
            self.audit_key,
            self.candidate_key,
            self.channel,
            base,
            candidate,
            entry.to_json(),
            message,
        )
        if int(done) < 0:
            raise Conflict(f"the live thresholds changed since v{base} was read; try again")


OnChange = Callable[[Thresholds, Thresholds | None], Awaitable[None]]


class ThresholdWatcher:
    """Keeps a worker on the thresholds in Redis: on every change message, and every
    :data:`POLL_SECONDS` in case one was missed, it reads the live version and candidate and
    calls ``on_change`` when either differs from what it last applied."""

    def __init__(self, store: ThresholdStore, on_change: OnChange) -> None:
        self.store = store
        self.on_change = on_change
        self.applied: tuple[str, str | None] = (DEFAULT_VERSION, None)
        #: Set once the first read is done, or has failed (the worker then starts on the
        #: defaults, and takes the stored version as soon as Redis answers).
        self.ready = asyncio.Event()

    async def refresh(self) -> bool:
        """Read and apply if changed; True when it changed something."""
        live, candidate = await self.store.in_force()
        seen = (live.version, candidate.version if candidate else None)
        if seen == self.applied:
            return False
        await self.on_change(live, candidate)
        self.applied = seen
        return True

    async def run(self) -> None:
        """Until cancelled; Redis going away is waited out (the last thresholds stay)."""
        down = False
        while True:
            pubsub = self.store.redis.pubsub()
            try:
                await pubsub.subscribe(self.store.channel)
                await self.refresh()  # after subscribing: no change falls in between
                self.ready.set()
                if down:
                    log.warning("thresholds: Redis answers again; on %s", self.applied[0])
                    down = False
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=POLL_SECONDS
                    )
                    if message is not None:
                        # Drain a burst of messages; one read covers them all.
                        while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0):
                            pass
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except InvalidThreshold as exc:  # a version this release cannot run
                self.ready.set()
                log.error(
                    "thresholds: cannot apply the stored version, keeping %s: %s",
                    self.applied[0],
                    exc,
                )
                await asyncio.sleep(POLL_SECONDS)
            except Exception as exc:
                self.ready.set()
                if not down:
                    log.warning(
                        "thresholds: cannot read them from Redis, keeping %s: %r",
                        self.applied[0],
                        exc,
                    )
                    down = True
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):  # the connection is gone already
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]


def describe_tunable(key: str) -> dict[str, Any]:
    """A tunable's declaration as JSON-ready data (the console and ``thresholds get``)."""
    declared = TUNABLES[key]
    return {
        "key": key,
        "type": declared.type,
        "default": declared.default,
        "low": declared.low,
        "high": declared.high,
        "meaning": declared.meaning,
    }
