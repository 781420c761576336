"""(r1), (rN) The whole ``lendwatch replay`` command over the dataset file, as a user times it:
interpreter start, reading, decoding, detectors and writing the alerts.

Run by ``python -m benchmarks`` as a child process, once with one process and once with one
per CPU; the outputs' digests show whether they are the same bytes::

    python -m benchmarks.replay_command FILE --processes 2 --partitions 8 --result F
"""

from __future__ import annotations

import argparse
import hashlib
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_result

__all__ = ["replay_command"]

#: What ``lendwatch replay`` prints last: "replayed 1,234 events: 56 alerts (...)".
SUMMARY = re.compile(r"replayed ([\d,]+) events: ([\d,]+) alerts")


def replay_command(path: Path, processes: int, partitions: int) -> dict[str, Any]:
    """Time ``lendwatch replay`` over ``path`` from start to exit; its figures and digest."""
    output = path.with_name(f"{path.stem}.alerts.{processes}.jsonl")
    command = [
        sys.executable,
        "-m",
        "streams.ops.cli",
        "replay",
        f"--input={path}",
        f"--output={output}",
        f"--processes={processes}",
        f"--partitions={partitions}",
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    summary = SUMMARY.search(done.stderr)
    if summary is None:
        raise RuntimeError(f"lendwatch replay printed no summary: {done.stderr[-500:]}")
    return {
        "events": int(summary.group(1).replace(",", "")),
        "alerts": int(summary.group(2).replace(",", "")),
        "seconds": seconds,
        "processes": processes,
        # The largest of its processes (ru_maxrss of waited-for children is their maximum).
        "peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "sha256": hashlib.sha256(output.read_bytes()).hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", type=Path)
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    write_result(args.result, replay_command(args.input, args.processes, args.partitions))


if __name__ == "__main__":
    main()
