"""``lendwatch`` with the window between resuming input partitions and seeking them widened.

Integration tests run a worker as ``python -m tests.integration.slow_seek worker ...`` to make
a race deterministic: at every assignment Faust resumes fetching the input partitions, then
seeks them (``Consumer.perform_seek``); records fetched in between are what a worker must not
lose. ``LW_TEST_SEEK_DELAY`` (seconds) is slept before the seek; ``LW_TEST_MAX_FETCH_BYTES``
caps a partition's fetch, so a lost fetch is the first records of a partition. Nothing here is
imported by the worker itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from streams.worker import compat


def _widen() -> None:
    delay = float(os.environ.get("LW_TEST_SEEK_DELAY", "0"))
    fetch_bytes = int(os.environ.get("LW_TEST_MAX_FETCH_BYTES", "0"))
    seek = compat.Consumer.perform_seek

    async def perform_seek(self: Any) -> None:
        await asyncio.sleep(delay)
        await seek(self)

    compat.Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    init = compat.App.__init__

    def app_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if fetch_bytes:
            kwargs["consumer_max_fetch_size"] = fetch_bytes
        init(self, *args, **kwargs)

    compat.App.__init__ = app_init  # type: ignore[method-assign]


def main() -> None:
    _widen()
    from streams.ops.cli import main as cli

    sys.exit(cli())


if __name__ == "__main__":
    main()
