"""Headless Chromium and ``lendwatch console`` for the console's browser tests.

Debian's ``chromium`` and ``chromium-driver`` are used as installed (``make browser``);
nothing is downloaded at test time. The console runs as the command a team starts (a
subprocess of ``lendwatch console``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from streams.control.accounts import UsersFile
from streams.ops.embedded import free_port
from tests.integration.conftest import Deployment

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, and quiet on a closed network: without these Chromium keeps dialling Google.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
#: The users of the standalone console's tests, by role: name, password.
USERS = {
    "tuner": ("tina", "tuner-password-1"),
    "viewer": ("vic", "viewer-password-1"),
    "analyst": ("ana", "analyst-password-1"),
}


# Fixtures are registered by name, so that a test module imports them without its test
# arguments shadowing the import: `from tests.integration.browser import browser_fixture`.
@pytest.fixture(name="browser")
def browser_fixture(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Debian's Chromium through its chromedriver; missing ones fail the test, never skip it."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: run `make browser` (installs Debian's "
            "chromium and chromium-driver)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)  # with the Service path: no Selenium Manager
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(name="users_file")
def users_file_fixture(tmp_path: Path) -> Path:
    """A users file with one user of each role (:data:`USERS`)."""
    path = tmp_path / "console-users.json"
    users = UsersFile(path)
    for role, (name, password) in USERS.items():
        users.add(name, [role], password)
    return path


@contextlib.asynccontextmanager
async def running_console(
    deployment: Deployment, tmp_path: Path, **env: str
) -> AsyncIterator[tuple[str, Path]]:
    """``lendwatch console`` on a free port with the deployment's topics and Redis prefix
    and ``env``; yields its URL and its log."""
    port = free_port()
    log = tmp_path / f"console-{port}.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.ops.cli", "console", "--port", str(port)],
            env={**deployment.env, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_answering(url, process, log)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"console exited {process.returncode}:\n{log.read_text()}")
            try:
                async with session.get(f"{url}/static/console.css") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"console did not answer in 30 s:\n{log.read_text()}")


def wait_for(
    driver: webdriver.Chrome, what: str, holds: Callable[[], bool], timeout: float = 20.0
) -> None:
    """Poll the DOM until ``holds``; on timeout say what was awaited and what the page shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if holds():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass  # the page re-rendered under us, or is not there yet: look again
        time.sleep(0.1)
    page = driver.find_element(By.TAG_NAME, "body").text
    raise AssertionError(f"not seen in {timeout} s: {what}\npage:\n{page[:3000]}")


def click(driver: webdriver.Chrome, css: str, timeout: float = 10.0) -> None:
    """Click the first element matching ``css``, again if the page redrew it meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except (StaleElementReferenceException, NoSuchElementException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def absent(driver: webdriver.Chrome, element_id: str) -> bool:
    return not driver.find_elements(By.ID, element_id)


def sign_in(driver: webdriver.Chrome, url: str, role: str) -> str:
    """What a person does: open the console, land on the sign-in page, type, submit."""
    name, password = USERS[role]
    driver.get(url)
    wait_for(driver, "the sign-in page", lambda: driver.current_url.endswith("/login"))
    driver.find_element(By.ID, "login-name").send_keys(name)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait_for(driver, f"signed in as {name}", lambda: text(driver, "user-name") == name)
    return name


def post_from_page(
    driver: webdriver.Chrome, path: str, body: dict[str, Any], *, csrf: bool
) -> dict[str, Any]:
    """A POST made by script in the signed-in page, with its cookie; with the page's CSRF
    token or without (a forged request). Returns ``{"status", "body"}``."""
    script = """
        const [path, body, withToken, done] = arguments;
        const headers = {"Content-Type": "application/json"};
        const me = await (await fetch("/api/me")).json();
        if (withToken) headers["X-CSRF-Token"] = me.csrf;
        const response = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
        done({status: response.status, body: await response.json()});
    """
    wrapped = f"(async () => {{ {script} }})().catch((e) => arguments[3]({{error: String(e)}}));"
    result: dict[str, Any] = driver.execute_async_script(wrapped, path, body, csrf)
    return result


def screenshot(driver: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    """The whole page (Chromium's DevTools capture beyond the viewport) as ``name``.png in the
    test's tmp dir, and in ``LW_CONSOLE_SCREENSHOTS`` (a directory) when that is set."""
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path = tmp_path / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    directory = os.environ.get("LW_CONSOLE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / path.name).write_bytes(path.read_bytes())
    assert path.stat().st_size > 10_000, f"{name}.png is nearly empty"
    return path
