"""Events that give each detector added after the first three something to find in the
shared contract test (tests/detectors/test_detector_contract.py). Append, never reorder."""

from __future__ import annotations

from detectors.engine import Input

SCENARIO_EXTENSIONS: list[Input] = []
