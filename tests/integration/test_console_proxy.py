"""The console behind an authenticating reverse proxy, in Chromium: the identity header counts
from the proxy's address only.

The proxy is a small forwarder in a thread of this test that plays the part of an OIDC proxy
(oauth2-proxy and the like): it drops whatever identity headers the browser sent, adds the
signed-in user's, and connects to the console from 127.0.0.2, the one address the console
trusts. The same header sent straight to the console from 127.0.0.1 is ignored.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from streams.control.store import ThresholdStore
from streams.ops.embedded import free_port
from tests.integration.browser import (  # noqa: F401 (fixtures)
    absent,
    browser_fixture,
    running_console,
    text,
    wait_for,
)
from tests.integration.conftest import Deployment
from tests.integration.test_console import _set

pytestmark = pytest.mark.integration

PROXY_ADDRESS = "127.0.0.2"
SSO_USER = "pat@bank.example"
IDENTITY = {"X-Forwarded-User": SSO_USER, "X-Forwarded-Groups": "staff,tuner"}


class SsoProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` from 127.0.0.2, as the signed-in user."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "x-forwarded-user", "x-forwarded-groups", "content-length")
        }
        headers.update(IDENTITY)
        connector = aiohttp.TCPConnector(local_addr=(PROXY_ADDRESS, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(
                request.method,
                f"{self.upstream}{request.path_qs}",
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as answer,
        ):
            body = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(body=body, status=answer.status, headers=kept)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> SsoProxy:
        self._thread.start()
        assert self._ready.wait(10), "the test proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
async def store(deployment: Deployment, redis_url: str) -> AsyncIterator[ThresholdStore]:
    redis = Redis.from_url(redis_url)
    yield ThresholdStore(redis, deployment.app_id)
    await redis.aclose()


@pytest.fixture
def proxy_mode() -> Iterator[dict[str, str]]:
    yield {
        "LW_CONSOLE_AUTH": "proxy",
        "LW_CONSOLE_TRUSTED_PROXIES": f"{PROXY_ADDRESS}/32",
    }


async def test_behind_the_proxy_the_header_counts_from_the_proxy_only(
    deployment: Deployment,
    browser: Any,
    store: ThresholdStore,
    proxy_mode: dict[str, str],
    tmp_path: Path,
) -> None:
    async with running_console(deployment, tmp_path, **proxy_mode) as (url, log):
        with SsoProxy(url) as proxy:
            # Through the proxy: signed in as the SSO user, a tuner by group; a change is
            # audited under that name.
            browser.get(proxy.url)
            wait_for(browser, "the SSO user", lambda: text(browser, "user-name") == SSO_USER)
            assert text(browser, "user-roles") == "tuner"
            assert (
                absent(browser, "sign-out")
                or not browser.find_element("id", "sign-out").is_displayed()
            )
            wait_for(browser, "live version v0", lambda: text(browser, "live-version") == "v0")
            _set(browser, "takeover.min_failures", "8", "quieter, from SSO", "set-live")
            wait_for(browser, "live version v1", lambda: text(browser, "live-version") == "v1")
            live = await store.live()
            assert (live.label, live.author) == ("v1", SSO_USER)

            # Straight to the console with the same headers, as a browser (or anyone) could
            # send them: ignored, because 127.0.0.1 is not the proxy.
            browser.execute_cdp_cmd("Network.enable", {})
            browser.execute_cdp_cmd(
                "Network.setExtraHTTPHeaders",
                {"headers": {**IDENTITY, "X-Forwarded-User": "mallory"}},
            )
            browser.get(url)
            wait_for(
                browser,
                "the refusal",
                lambda: "sign in through the single sign-on proxy" in text(browser, "status"),
            )
            assert "sign in through the single sign-on proxy" in text(browser, "refused")
            assert absent(browser, "set-live") and absent(browser, "user-name")
            assert (await store.live()).label == "v1" and len(await store.history()) == 1
        assert "ignored X-Forwarded-User from 127.0.0.1" in log.read_text()
