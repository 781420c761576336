"""The lendwatch worker with its consumer's fetch wait set: ``--fetch-wait-ms``, a diagnosis.

Faust creates the worker's consumer with ``fetch_max_wait_ms=1500`` whatever its settings say,
and Tansu holds a fetch for about half that wait even when records arrive meanwhile, so at a
moderate rate events wait in the broker for up to ~750 ms. This runs ``streams.cli`` unchanged
but for that one consumer argument (``BENCH_FETCH_WAIT_MS``), to show what it costs.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import aiokafka

from streams.cli import main

WAIT_MS = int(os.environ["BENCH_FETCH_WAIT_MS"])


class _Consumer(aiokafka.AIOKafkaConsumer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["fetch_max_wait_ms"] = WAIT_MS
        super().__init__(*args, **kwargs)


# Faust's driver calls ``aiokafka.AIOKafkaConsumer(...)`` through the module attribute.
aiokafka.AIOKafkaConsumer = _Consumer

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
