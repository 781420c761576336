"""The detectors the engine runs, built from the thresholds in force."""

from __future__ import annotations

from detectors.base import Detector
from detectors.circular import CircularFlowDetector
from detectors.credential_stuffing import CredentialStuffingDetector
from detectors.delinquency import DelinquencyDetector
from detectors.device_ring import DeviceRingDetector
from detectors.flow_anomaly import FlowAnomalyDetector
from detectors.impossible_travel import ImpossibleTravelDetector
from detectors.machine_flow import MachineFlowDetector
from detectors.revenue_inflation import RevenueInflationDetector
from detectors.takeover import AccountTakeoverDetector
from detectors.thresholds import Thresholds
from detectors.wash_trading import WashTradingDetector

__all__ = ["build_detectors"]


def build_detectors(thresholds: Thresholds) -> list[Detector]:
    """One instance of every detector, in a fixed order (findings keep this order)."""
    return [
        CircularFlowDetector(thresholds.circular_flow),
        WashTradingDetector(thresholds.wash_trading),
        RevenueInflationDetector(thresholds.revenue_inflation),
        MachineFlowDetector(thresholds.machine_flow),
        AccountTakeoverDetector(thresholds.takeover),
        CredentialStuffingDetector(thresholds.credential_stuffing),
        DeviceRingDetector(thresholds.device_ring),
        ImpossibleTravelDetector(thresholds.impossible_travel),
        DelinquencyDetector(thresholds.delinquency),
        FlowAnomalyDetector(thresholds.flow_anomaly),
    ]
