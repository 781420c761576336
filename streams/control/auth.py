"""Who is asking the console, and whether they may: sign-in, roles, sessions, CSRF.

Two ways to sign in, one per console (``LW_CONSOLE_AUTH``):

- ``password``: users from the users file (:mod:`streams.control.accounts`) sign in with a
  password and get a session: an HttpOnly, SameSite=Strict cookie (Secure over TLS) naming a
  session kept in the console's memory, which ends ``LW_CONSOLE_SESSION_MINUTES`` after
  sign-in, on sign-out, or when the console restarts. With no users at all the console is
  read-only: everyone reads as ``anonymous``, no one changes anything.
- ``proxy``: an authenticating reverse proxy (OIDC/SSO) names the user in a header
  (``LW_CONSOLE_USER_HEADER``) and their groups in another; the console believes them only
  from the addresses of ``LW_CONSOLE_TRUSTED_PROXIES`` and ignores them from any other peer.

Every POST carries the page's CSRF token in ``X-CSRF-Token``: the session's own random token,
or behind the proxy a keyed hash of the user's name. Another site can neither read it nor
make a browser send it, so it cannot act as a signed-in user. The audit trail records the
signed-in name, never a typed one. Refusals are logged and change nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from streams.control.accounts import ROLES, UsersFile
from streams.settings import Settings

__all__ = [
    "ANONYMOUS",
    "AuthConfig",
    "CSRF_HEADER",
    "Gate",
    "Identity",
    "Refused",
    "SESSION_COOKIE",
    "Sessions",
]

log = logging.getLogger("lendwatch")

SESSION_COOKIE = "lw_console_session"
CSRF_HEADER = "X-CSRF-Token"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Identity:
    """A signed-in person (or ``anonymous`` on a console without users) and their roles."""

    name: str
    roles: frozenset[str]
    #: How they were identified: ``password``, ``proxy`` or ``anonymous``.
    via: str
    #: The session, for a password sign-in (its CSRF token and its end).
    session: Session | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset().union(*(ROLES.get(role, frozenset()) for role in self.roles))

    def may(self, permission: str) -> bool:
        return permission in self.permissions


#: Everyone, on a console in password mode without users: read-only.
ANONYMOUS = Identity("anonymous", frozenset({"viewer"}), "anonymous")


class Refused(Exception):
    """A request the console will not serve: HTTP ``status`` with a message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    """One password sign-in: who, its CSRF token, and when it ends (``time.time()``)."""

    name: str
    csrf: str
    expires: float


@dataclass
class Sessions:
    """Sessions in memory, by the SHA-256 of their cookie (a memory dump shows no cookie)."""

    lifetime: float
    clock: Callable[[], float] = time.time
    _open: dict[str, Session] = field(default_factory=dict)

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def open(self, name: str) -> tuple[str, Session]:
        now = self.clock()
        for key in [k for k, s in self._open.items() if s.expires <= now]:
            del self._open[key]
        token = secrets.token_urlsafe(32)
        session = Session(name, secrets.token_urlsafe(32), now + self.lifetime)
        self._open[self._key(token)] = session
        return token, session

    def get(self, token: str) -> Session | None:
        """The session of a cookie; raises :class:`Refused` (401) when it has expired."""
        key = self._key(token)
        session = self._open.get(key)
        if session is None:
            return None
        if session.expires <= self.clock():
            del self._open[key]
            raise Refused(401, "your session has expired: sign in again")
        return session

    def close(self, token: str) -> None:
        self._open.pop(self._key(token), None)


def _networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(
            ipaddress.ip_network(part.strip(), strict=False)
            for part in text.split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise ValueError(f"LW_CONSOLE_TRUSTED_PROXIES: {exc}") from None


def _group_roles(text: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        group, sep, role = part.partition("=")
        if not sep or role.strip() not in ROLES:
            raise ValueError(
                f"LW_CONSOLE_GROUP_ROLES: {part.strip()!r} is not group=role with a role among "
                f"{', '.join(ROLES)}"
            )
        mapping[group.strip()] = role.strip()
    return mapping


@dataclass(frozen=True)
class AuthConfig:
    """The console's sign-in settings, checked when the console starts."""

    mode: Literal["password", "proxy"] = "password"
    users_path: str = "console-users.json"
    session_seconds: float = 8 * 3600.0
    trusted_proxies: tuple[Network, ...] = ()
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    #: Group to role; empty: a group named as a role gives that role.
    group_roles: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuthConfig:
        mode = settings.console_auth.strip().lower()
        if mode not in ("password", "proxy"):
            raise ValueError(f"LW_CONSOLE_AUTH={settings.console_auth!r}: password or proxy")
        return cls(
            mode="proxy" if mode == "proxy" else "password",
            users_path=settings.console_users,
            session_seconds=settings.console_session_minutes * 60.0,
            trusted_proxies=_networks(settings.console_trusted_proxies),
            user_header=settings.console_user_header,
            groups_header=settings.console_groups_header,
            group_roles=_group_roles(settings.console_group_roles),
        )


class Gate:
    """Identifies the sender of each request and checks its CSRF token."""

    def __init__(self, config: AuthConfig, secret: bytes | None = None) -> None:
        self.config = config
        self.users = UsersFile(config.users_path)
        self.sessions = Sessions(config.session_seconds)
        # Behind the proxy the CSRF token is a keyed hash of the name; the key lives as long as
        # the process, so a page loaded before a restart must be reloaded.
        self._secret = secret or secrets.token_bytes(32)

    def describe(self) -> str:
        """One line for the console's start-up message."""
        if self.config.mode == "proxy":
            trusted = ", ".join(map(str, self.config.trusted_proxies)) or "no address"
            return (
                f"sign-in through the proxy: {self.config.user_header} believed from {trusted} only"
            )
        count = len(self.users.users())
        if not count:
            return f"read-only: no users in {self.users.path} (lendwatch console users add)"
        return f"sign-in with a password: {count} user(s) in {self.users.path}"

    def read_only_reason(self) -> str | None:
        """Why nobody can change anything here, if so."""
        if self.config.mode == "password" and not self.users.users():
            return (
                f"this console has no users ({self.users.path}), so it is read-only: "
                "`lendwatch console users add NAME --role tuner` adds one"
            )
        return None

    def trusted(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.config.trusted_proxies)

    def identify(self, request: web.Request) -> Identity | None:
        """Who sent ``request``: None when nobody is signed in; raises :class:`Refused` for an
        expired session or a user the users file no longer has."""
        if self.config.mode == "proxy":
            return self._from_proxy(request)
        if not self.users.users():
            return ANONYMOUS
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        session = self.sessions.get(token)
        if session is None:
            raise Refused(401, "your session has ended (the console restarted?): sign in again")
        user = self.users.get(session.name)
        if user is None:
            self.sessions.close(token)
            raise Refused(401, f"{session.name} is no longer a user of this console")
        return Identity(user.name, user.roles, "password", session)

    def _from_proxy(self, request: web.Request) -> Identity | None:
        name = request.headers.get(self.config.user_header, "").strip()
        if not self.trusted(request.remote):
            if name:
                log.warning(
                    "console: ignored %s from %s, which is not a trusted proxy",
                    self.config.user_header,
                    request.remote,
                )
            return None
        if not name:
            return None
        groups = {
            g.strip()
            for g in request.headers.get(self.config.groups_header, "").split(",")
            if g.strip()
        }
        mapping = self.config.group_roles or {role: role for role in ROLES}
        roles = frozenset(mapping[g] for g in groups if g in mapping)
        return Identity(name, roles, "proxy")

    def sign_in(self, name: str, password: str) -> tuple[str, Identity]:
        """A new session for ``name`` if ``password`` is theirs; else :class:`Refused` (401)."""
        if self.config.mode != "password":
            raise Refused(400, "this console signs in through its proxy, not with a password")
        if not self.users.users():
            raise Refused(400, "this console has no users: it is read-only")
        user = self.users.verify(name, password)
        if user is None:
            raise Refused(401, "wrong name or password")
        token, session = self.sessions.open(user.name)
        return token, Identity(user.name, user.roles, "password", session)

    def csrf_token(self, identity: Identity) -> str:
        if identity.session is not None:
            return identity.session.csrf
        digest = hmac.new(self._secret, f"csrf\0{identity.name}".encode(), hashlib.sha256)
        return digest.hexdigest()

    def check_csrf(self, request: web.Request, identity: Identity) -> None:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), self.csrf_token(identity).encode()):
            raise Refused(403, "missing or wrong CSRF token: reload the page and try again")

    def secure(self, request: web.Request) -> bool:
        """Whether the browser reached us over TLS (directly, or through a trusted proxy)."""
        if request.secure:
            return True
        forwarded = request.headers.get("X-Forwarded-Proto", "")
        return self.trusted(request.remote) and forwarded.lower() == "https"
