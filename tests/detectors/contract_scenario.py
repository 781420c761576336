"""Events that give each detector added after the first three something to find in the
shared contract test (tests/detectors/test_detector_contract.py). Append, never reorder."""

from __future__ import annotations

from detectors.engine import Input
from tests.detectors import test_flow_anomaly

SCENARIO_EXTENSIONS: list[Input] = [*test_flow_anomaly.CONTRACT_EVENTS]
