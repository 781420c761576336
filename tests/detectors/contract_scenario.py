"""Events that give each detector added after the first three something to find in the
shared contract test (tests/detectors/test_detector_contract.py). Append, never reorder."""

from __future__ import annotations

from detectors.engine import Input
from tests.detectors import (
    test_credential_stuffing,
    test_device_ring,
    test_flow_anomaly,
    test_impossible_travel,
    test_machine_flow,
    test_revenue_inflation,
    test_takeover,
    test_wash_trading,
)

SCENARIO_EXTENSIONS: list[Input] = [
    *test_flow_anomaly.CONTRACT_EVENTS,
    *test_takeover.CONTRACT_EVENTS,
    *test_credential_stuffing.CONTRACT_EVENTS,
    *test_device_ring.CONTRACT_EVENTS,
    *test_impossible_travel.CONTRACT_EVENTS,
    *test_wash_trading.CONTRACT_EVENTS,
    *test_revenue_inflation.CONTRACT_EVENTS,
    *test_machine_flow.CONTRACT_EVENTS,
]
