"""Train the compression dictionary of the state records (``detectors/state_dictionary_3.zstd``).

A borrower's state is a small JSON document that repeats the keys, shapes and common values of
every other; zstd compresses it against a dictionary trained on typical states. The states are
those the engine holds after simulating seed 3 (200 borrowers, 90 days), not seed 7, which the
memory benchmark measures, nor seed 8, on which this prints the sizes. Training is
deterministic: the same detectors and simulator give the same file.

A new dictionary is a new record format: give it a new tag in ``detectors/state.py`` and keep
the old one there to read, so that a worker recovers a changelog an older one wrote.

    python -m benchmarks.state_dictionary detectors/state_dictionary_3.zstd
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

import orjson
import zstandard

from benchmarks.detectors_only import drive_detectors
from detectors.state import STATE_COMPRESSION, state_compressor
from sim import SimulationConfig, simulate_stream

#: Bytes of the dictionary: 16 KiB made records 1.4 % larger than 32 KiB, 64 KiB 0.7 %
#: smaller but compressing took twice as long (seed 8's states, 2026-12-07).
DICTIONARY_BYTES = 32_768


def states_json(seed: int, borrowers: int = 200, days: int = 90) -> list[bytes]:
    """The JSON of every borrower's state after simulating ``days`` of ``seed``."""
    _, records = simulate_stream(SimulationConfig(borrowers=borrowers, days=days, seed=seed))
    _, store, _ = asyncio.run(drive_detectors(records, 8))
    return [orjson.dumps(state.to_dict()) for state in store.states.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    dictionary = zstandard.train_dictionary(DICTIONARY_BYTES, states_json(3))
    args.output.write_bytes(dictionary.as_bytes())
    compressor = state_compressor(dictionary)
    held_out = states_json(8)
    size = statistics.mean(len(compressor.compress(state)) for state in held_out)
    json_size = statistics.mean(map(len, held_out))
    print(f"{args.output}: {DICTIONARY_BYTES} B; seed 8's states {json_size:.0f} B of JSON,")
    print(f"  {size:.0f} B compressed at level {STATE_COMPRESSION}, and a record's 5-byte header")


if __name__ == "__main__":
    main()
