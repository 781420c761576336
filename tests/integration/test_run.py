"""`lendwatch run`, the main job: embedded services, alerts of every category, clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time

import pytest

pytestmark = pytest.mark.integration

ALERT_TOPICS = {"alerts.fraud", "alerts.security", "alerts.collections"}


async def test_run_shows_every_category_and_stops_cleanly_on_ctrl_c() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streams.ops.cli",
        "run",
        "--borrowers",
        "80",
        "--days",
        "50",
        "--rate",
        "0",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = ""
    seen: set[str] = set()
    dead_lettered = False
    deadline = time.monotonic() + 120
    try:
        # Every category, and the malformed records the demo mixes in dead-lettered: partitions
        # are caught up in no fixed order, so either may come first.
        while (seen != ALERT_TOPICS or not dead_lettered) and time.monotonic() < deadline:
            chunk = await asyncio.wait_for(process.stdout.read(4096), timeout=60)
            if not chunk:
                break
            output += chunk.decode(errors="replace")
            seen = {
                topic for topic in ALERT_TOPICS if re.search(rf"\s{re.escape(topic)}\s", output)
            }
            dead_lettered = re.search(r"dead-lettered [1-9]", output) is not None
        assert seen == ALERT_TOPICS, output[-3000:]
        assert dead_lettered, output[-3000:]
        process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        output += rest.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0, output[-3000:]
    summary = re.search(
        r"stopping: events produced ([\d,]+), processed ([\d,]+).*dead-lettered (\d+)", output
    )
    assert summary, output[-3000:]
    assert int(summary.group(1).replace(",", "")) > 0
    assert int(summary.group(3)) > 0  # the demo mixes in malformed records
    # Alerts are shown as published: masked by default, hashed borrower ids, no raw one.
    borrowers = re.findall(r"alerts\.\w+\s+[a-z_]+\s+(\S+)\s+score", output)
    assert borrowers and all(re.fullmatch(r"h-[0-9a-f]{20}", b) for b in borrowers), borrowers
    assert not re.search(r"\bb-\d{5}\b", output), output[-3000:]
    # Ctrl-C stopped the embedded services: nothing listens on their ports any more.
    ports = [int(p) for p in re.findall(r"embedded (?:Tansu broker|Valkey) at \S+?:(\d+)", output)]
    assert len(ports) == 2, output[:1000]
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
