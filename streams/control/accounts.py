"""The console's users file: names, roles and scrypt password hashes; ``lendwatch console users``.

The file is JSON, written with mode 0600 and replaced whole (a rename), so a console reading
it never sees half a change::

    {"users": {"ana": {"roles": ["tuner"], "password": "scrypt$16384$8$1$<salt>$<hash>"}}}

Passwords are hashed with the standard library's scrypt and a salt of their own; a check
recomputes the hash and compares in constant time. The console re-reads the file when it
changes, so a user added, removed or given another role counts from their next request.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import re
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

__all__ = [
    "ROLES",
    "User",
    "UsersFile",
    "add_users_parser",
    "check_password",
    "hash_password",
    "run_users",
]

#: What each role may do: ``viewer`` reads; ``analyst`` reads and gives verdicts on alerts;
#: ``tuner`` reads and changes thresholds (set, shadow, promote, discard, rollback).
ROLES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "analyst": frozenset({"read", "verdict"}),
    "tuner": frozenset({"read", "tune"}),
}

# scrypt's cost: 16 MiB and some 50 ms a check, which makes a stolen file slow to guess at.
_N, _R, _P = 2**14, 8, 1
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
#: The shortest password ``users add`` accepts.
MIN_PASSWORD = 10


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash``, with a fresh 16-byte salt unless one is given."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        computed = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed, expected)


#: Checked against when the name is unknown, so that a wrong name costs what a wrong password
#: does and the time of an answer does not tell which names exist.
_DUMMY_HASH = hash_password(secrets.token_hex(16))


@dataclass(frozen=True)
class User:
    """One console user: name, roles, password hash."""

    name: str
    roles: frozenset[str]
    password: str

    def to_json(self) -> dict[str, Any]:
        return {"roles": sorted(self.roles), "password": self.password}


class UsersFile:
    """The users of one file, re-read whenever the file changes (its mtime or size)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    def users(self) -> dict[str, User]:
        """Every user; none when the file does not exist. A file that cannot be read as a
        users file raises ValueError, with the reason."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen, self._users = None, {}
            return {}
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._users = _parse(self.path)
            self._seen = seen
        return self._users

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def verify(self, name: str, password: str) -> User | None:
        """The user if ``password`` is theirs; None otherwise, after as long either way."""
        user = self.get(name)
        matches = check_password(password, user.password if user else _DUMMY_HASH)
        return user if user is not None and matches else None

    def add(self, name: str, roles: Iterable[str], password: str) -> User:
        """Add or replace ``name``; refused (ValueError) for a bad name, role or password."""
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"{name!r}: a name is 1-64 letters, digits and . _ @ -, starting with a letter "
                "or digit"
            )
        wanted = frozenset(roles)
        unknown = sorted(wanted - set(ROLES))
        if not wanted or unknown:
            raise ValueError(f"roles must be among {', '.join(ROLES)}; got {sorted(wanted)}")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        user = User(name, wanted, hash_password(password))
        self._write({**self.users(), name: user})
        return user

    def remove(self, name: str) -> bool:
        users = dict(self.users())
        if users.pop(name, None) is None:
            return False
        self._write(users)
        return True

    def _write(self, users: dict[str, User]) -> None:
        body = orjson.dumps(
            {"users": {name: users[name].to_json() for name in sorted(users)}},
            option=orjson.OPT_INDENT_2,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body + b"\n")
        os.replace(temporary, self.path)
        self._seen = None


def _parse(path: Path) -> dict[str, User]:
    try:
        data = orjson.loads(path.read_bytes())
        entries = data["users"]
        users = {
            str(name): User(str(name), frozenset(entry["roles"]), str(entry["password"]))
            for name, entry in entries.items()
        }
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a users file: {exc!r}") from None
    for user in users.values():
        unknown = sorted(user.roles - set(ROLES))
        if unknown:
            raise ValueError(f"{path}: {user.name} has unknown roles {unknown}")
    return users


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def run_users(args: argparse.Namespace, path: str, out: TextIO | None = None) -> int:
    """``lendwatch console users add|remove|list``; a refusal prints why and exits 2."""
    out = out or sys.stdout
    users = UsersFile(args.file or path)
    try:
        if args.users_action == "add":
            user = users.add(args.name, args.role, _read_password(args, sys.stdin))
            print(f"{user.name} ({', '.join(sorted(user.roles))}) is in {users.path}", file=out)
        elif args.users_action == "remove":
            if not users.remove(args.name):
                print(f"no user {args.name} in {users.path}", file=sys.stderr)
                return 1
            print(f"{args.name} removed from {users.path}", file=out)
        else:
            found = users.users()
            if not found:
                print(f"no users in {users.path}: the console is read-only", file=out)
            for user in found.values():
                print(f"{user.name:<24} {', '.join(sorted(user.roles))}", file=out)
    except ValueError as exc:
        print(f"refused, nothing changed: {exc}", file=sys.stderr)
        return 2
    return 0


def add_users_parser(console: argparse.ArgumentParser) -> None:
    """``console users add NAME --role R [--role R] | remove NAME | list`` under ``console``."""
    actions = console.add_subparsers(dest="console_action")
    users = actions.add_parser("users", help="the console's users file: add, remove, list")
    users_actions = users.add_subparsers(dest="users_action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        sub = users_actions.add_parser(name, help=help)
        sub.add_argument("--file", help="the users file (default: LW_CONSOLE_USERS)")
        return sub

    add = action("add", "add a user, or replace their roles and password")
    add.add_argument("name")
    add.add_argument(
        "--role", action="append", required=True, choices=list(ROLES), help="repeat for several"
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (scripts)"
    )
    action("remove", "remove a user").add_argument("name")
    action("list", "every user and their roles")
