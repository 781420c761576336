"""The console's sign-in, roles, sessions and CSRF, through its real handlers (no broker).

Redis is a closed local port: a change that gets past the guard answers 503, so a test can
tell "refused by the guard" (401/403) from "reached the store" without a Redis.
"""

from __future__ import annotations

import argparse
import io
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from detectors.thresholds import InvalidThreshold
from streams.control.accounts import UsersFile, check_password, hash_password
from streams.control.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    AuthConfig,
    Gate,
    Refused,
    Sessions,
)
from streams.control.cli import _author
from streams.control.console import GATE, SECURITY_HEADERS, AlertBoard, create_app
from streams.control.operator import operator_name
from streams.control.store import ThresholdStore
from streams.ops.cli import main
from streams.ops.embedded import free_port
from streams.settings import Settings

CHANGE = {"changes": {"takeover.min_failures": "9"}, "reason": "quieter"}


def test_passwords_are_salted_scrypt_and_checked() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$") and first != second  # a salt of its own each
    assert check_password("correct horse", first) and check_password("correct horse", second)
    assert not check_password("correct horsE", first)
    assert not check_password("x", "md5$whatever") and not check_password("x", "garbage")


def test_the_users_file_is_private_and_refuses_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    users = UsersFile(path)
    users.add("ana", ["tuner", "analyst"], "a-long-password")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "a-long-password" not in path.read_text()
    assert users.verify("ana", "a-long-password") is not None
    assert users.verify("ana", "wrong-password") is None
    assert users.verify("nobody", "a-long-password") is None
    for name, roles, password, says in [
        ("bad name", ["viewer"], "a-long-password", "a name is"),
        ("bo", ["admin"], "a-long-password", "roles must be"),
        ("bo", [], "a-long-password", "roles must be"),
        ("bo", ["viewer"], "short", "at least"),
    ]:
        with pytest.raises(ValueError, match=says):
            users.add(name, roles, password)
    # Another process's change is seen at the next look.
    UsersFile(path).add("bo", ["viewer"], "another-password")
    assert set(users.users()) == {"ana", "bo"}
    assert UsersFile(path).remove("ana") and set(users.users()) == {"bo"}


def test_sessions_end_when_they_expire() -> None:
    now = [1000.0]
    sessions = Sessions(60.0, clock=lambda: now[0])
    token, session = sessions.open("ana")
    assert sessions.get(token) is session and sessions.get("forged") is None
    now[0] += 61
    with pytest.raises(Refused, match="expired") as refused:
        sessions.get(token)
    assert refused.value.status == 401
    assert sessions.get(token) is None  # and it is gone


def test_settings_make_the_config_and_refuse_what_cannot_work() -> None:
    config = AuthConfig.from_settings(
        Settings.from_env(
            {
                "LW_CONSOLE_AUTH": "proxy",
                "LW_CONSOLE_TRUSTED_PROXIES": "10.0.0.5/32, 192.168.7.0/24",
                "LW_CONSOLE_GROUP_ROLES": "risk-tuners=tuner,collections=analyst",
            }
        )
    )
    assert config.mode == "proxy" and len(config.trusted_proxies) == 2
    assert config.group_roles == {"risk-tuners": "tuner", "collections": "analyst"}
    for env, says in [
        ({"LW_CONSOLE_AUTH": "ldap"}, "password or proxy"),
        ({"LW_CONSOLE_TRUSTED_PROXIES": "not-an-address"}, "TRUSTED_PROXIES"),
        ({"LW_CONSOLE_GROUP_ROLES": "admins=root"}, "GROUP_ROLES"),
    ]:
        with pytest.raises(ValueError, match=says):
            AuthConfig.from_settings(Settings.from_env(env))


def test_the_command_line_records_the_os_user_or_the_operator_never_a_typed_name() -> None:
    name, source = operator_name("")
    assert "@" in name and "OS user" in source
    assert operator_name(" night-shift ") == ("night-shift", "the operator name in LW_OPERATOR")
    assert _author(argparse.Namespace(author=None, operator="ops")) == "ops"
    with pytest.raises(InvalidThreshold, match="--author is no longer taken"):
        _author(argparse.Namespace(author="mallory", operator=""))


def test_console_users_commands_write_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    argv = ["console", "users", "add", "ana", "--role", "tuner", "--role", "analyst"]
    assert main([*argv, "--password-stdin", "--file", str(path)]) == 0
    assert UsersFile(path).verify("ana", "a-long-password") is not None
    assert main(["console", "users", "list", "--file", str(path)]) == 0
    assert "ana" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    bad = ["console", "users", "add", "bo", "--role", "viewer", "--password-stdin"]
    assert main([*bad, "--file", str(path)]) == 2
    assert main(["console", "users", "remove", "ana", "--file", str(path)]) == 0
    assert UsersFile(path).users() == {}


async def _client(app_gate: Gate) -> AsyncIterator[TestClient]:
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    app = create_app(ThresholdStore(redis, "lw-unit"), AlertBoard("alerts.shadow"), app_gate)
    async with TestClient(TestServer(app)) as client:
        yield client
    await redis.aclose()


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    users = UsersFile(path)
    users.add("vic", ["viewer"], "viewer-password")
    users.add("tina", ["tuner"], "tuner-password")
    return path


@pytest.fixture
async def client(users: Path) -> AsyncIterator[TestClient]:
    async for client in _client(Gate(AuthConfig(users_path=str(users)))):
        yield client


async def _sign_in(client: TestClient, name: str, password: str) -> str:
    response = await client.post("/api/login", json={"name": name, "password": password})
    assert response.status == 200, await response.text()
    me = await response.json()
    assert me["name"] == name and me["via"] == "password"
    return str(me["csrf"])


async def test_nobody_signed_in_gets_the_sign_in_page_and_no_data(client: TestClient) -> None:
    page = await client.get("/", allow_redirects=False)
    assert page.status == 302 and page.headers["Location"] == "/login"
    assert (await client.get("/login")).status == 200
    for path in ("/api/state", "/api/me", "/api/queue", "/api/alerts/x"):
        response = await client.get(path)
        assert response.status == 401 and "sign in" in (await response.json())["error"]
    refused = await client.post("/api/thresholds", json=CHANGE)
    assert refused.status == 401
    wrong = await client.post("/api/login", json={"name": "tina", "password": "guess-guess"})
    assert wrong.status == 401 and (await wrong.json())["error"] == "wrong name or password"
    unknown = await client.post("/api/login", json={"name": "eve", "password": "guess-guess"})
    assert (await unknown.json())["error"] == "wrong name or password"  # says no more


async def test_the_session_cookie_is_http_only_and_same_site_strict(client: TestClient) -> None:
    response = await client.post("/api/login", json={"name": "tina", "password": "tuner-password"})
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # plain HTTP here; Secure over TLS
    assert cookie["path"] == "/"
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


async def test_a_viewer_reads_and_may_not_change(client: TestClient) -> None:
    csrf = await _sign_in(client, "vic", "viewer-password")
    me = await (await client.get("/api/me")).json()
    assert me["roles"] == ["viewer"] and me["permissions"] == ["read"]
    assert (await client.get("/api/state")).status == 200
    refused = await client.post("/api/thresholds", json=CHANGE, headers={CSRF_HEADER: csrf})
    assert refused.status == 403
    assert "needs the tuner role" in (await refused.json())["error"]
    verdict = await client.post(
        "/api/alerts/a-1/verdict", json={"verdict": "confirmed"}, headers={CSRF_HEADER: csrf}
    )
    assert verdict.status == 403 and "analyst" in (await verdict.json())["error"]


async def test_a_tuner_needs_the_csrf_token_on_every_post(client: TestClient) -> None:
    csrf = await _sign_in(client, "tina", "tuner-password")
    for headers in ({}, {CSRF_HEADER: "forged"}):
        refused = await client.post("/api/thresholds", json=CHANGE, headers=headers)
        assert refused.status == 403 and "CSRF" in (await refused.json())["error"]
    # With the token the change reaches the store (whose Redis is down here: 503).
    reached = await client.post("/api/thresholds", json=CHANGE, headers={CSRF_HEADER: csrf})
    assert reached.status == 503
    typed = await client.post(
        "/api/thresholds", json={**CHANGE, "author": "mallory"}, headers={CSRF_HEADER: csrf}
    )
    assert typed.status == 400 and "send no author" in (await typed.json())["error"]
    signed_out = await client.post("/api/logout", json={}, headers={CSRF_HEADER: csrf})
    assert signed_out.status == 200
    assert (await client.get("/api/state")).status == 401


async def test_an_expired_session_or_a_removed_user_is_told_to_sign_in(
    client: TestClient, users: Path
) -> None:
    csrf = await _sign_in(client, "tina", "tuner-password")
    assert client.app is not None
    gate = client.app[GATE]
    for session in gate.sessions._open.values():
        session.expires = 0.0
    expired = await client.post("/api/thresholds", json=CHANGE, headers={CSRF_HEADER: csrf})
    assert expired.status == 401 and "expired" in (await expired.json())["error"]
    await _sign_in(client, "tina", "tuner-password")
    UsersFile(users).remove("tina")
    gone = await client.get("/api/state")
    assert gone.status == 401 and "no longer a user" in (await gone.json())["error"]


async def test_without_users_the_console_is_read_only(tmp_path: Path) -> None:
    gate = Gate(AuthConfig(users_path=str(tmp_path / "absent.json")))
    async for client in _client(gate):
        me = await (await client.get("/api/me")).json()
        assert (me["name"], me["roles"]) == ("anonymous", ["viewer"])
        assert "read-only" in me["read_only"]
        refused = await client.post(
            "/api/thresholds", json=CHANGE, headers={CSRF_HEADER: me["csrf"]}
        )
        assert refused.status == 403
        assert "no users" in (await refused.json())["error"]


async def test_behind_the_proxy_the_header_counts_from_a_trusted_address_only() -> None:
    def gate(trusted: str) -> Gate:
        config = AuthConfig.from_settings(
            Settings.from_env(
                {
                    "LW_CONSOLE_AUTH": "proxy",
                    "LW_CONSOLE_TRUSTED_PROXIES": trusted,
                    "LW_CONSOLE_GROUP_ROLES": "risk-tuners=tuner",
                }
            )
        )
        return Gate(config)

    sso = {"X-Forwarded-User": "ana@bank.example", "X-Forwarded-Groups": "staff,risk-tuners"}
    async for client in _client(gate("127.0.0.1/32")):  # the test client is the proxy
        me = await (await client.get("/api/me", headers=sso)).json()
        assert (me["name"], me["roles"], me["via"]) == ("ana@bank.example", ["tuner"], "proxy")
        assert (await client.get("/login", allow_redirects=False)).status == 302
        no_token = await client.post("/api/thresholds", json=CHANGE, headers=sso)
        assert no_token.status == 403
        reached = await client.post(
            "/api/thresholds", json=CHANGE, headers={**sso, CSRF_HEADER: me["csrf"]}
        )
        assert reached.status == 503  # past the guard, to the (unreachable) store
        no_role = await client.get("/api/state", headers={"X-Forwarded-User": "eve"})
        assert no_role.status == 403 and "no console role" in (await no_role.json())["error"]
    async for client in _client(gate("10.9.8.7/32")):  # 127.0.0.1 is not the proxy
        ignored = await client.get("/api/me", headers=sso)
        assert ignored.status == 401
        assert "single sign-on" in (await ignored.json())["error"]
