"""Every detector the engine runs, listed once: the detectors and the thresholds come from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from detectors.base import Detector
from detectors.circular import CircularFlowDetector
from detectors.credential_stuffing import CredentialStuffingDetector
from detectors.delinquency import DelinquencyDetector
from detectors.device_ring import DeviceRingDetector
from detectors.flow_anomaly import FlowAnomalyDetector
from detectors.impossible_travel import ImpossibleTravelDetector
from detectors.machine_flow import MachineFlowDetector
from detectors.pass_through import PassThroughDetector
from detectors.revenue_inflation import RevenueInflationDetector
from detectors.takeover import AccountTakeoverDetector
from detectors.wash_trading import WashTradingDetector

if TYPE_CHECKING:
    from detectors.thresholds import Thresholds

__all__ = ["REGISTRY", "Registered", "build_detectors", "sections"]


class Registered(NamedTuple):
    """One row of the registry."""

    detector: type[Detector]
    #: Where its section comes among the tunables: the command line, the console and every
    #: stored version list them in this order, which is older than the order they run in.
    listed: int


#: Every detector once, in the order the engine runs them (findings keep this order). Adding a
#: detector adds a row here; its module declares its thresholds and its contract events.
REGISTRY: tuple[Registered, ...] = (
    Registered(CircularFlowDetector, listed=0),
    Registered(WashTradingDetector, listed=6),
    Registered(PassThroughDetector, listed=10),
    Registered(RevenueInflationDetector, listed=5),
    Registered(MachineFlowDetector, listed=4),
    Registered(AccountTakeoverDetector, listed=1),
    Registered(CredentialStuffingDetector, listed=9),
    Registered(DeviceRingDetector, listed=8),
    Registered(ImpossibleTravelDetector, listed=7),
    Registered(DelinquencyDetector, listed=2),
    Registered(FlowAnomalyDetector, listed=3),
)


def sections() -> dict[str, type[Any]]:
    """Each registered detector's section name and thresholds type, in listing order."""
    listed = sorted(REGISTRY, key=lambda row: row.listed)
    return {row.detector.section: _thresholds_type(row.detector) for row in listed}


def build_detectors(thresholds: Thresholds) -> list[Detector]:
    """One instance of every detector, in a fixed order (findings keep this order)."""
    return [_build(row.detector, thresholds.section(row.detector.section)) for row in REGISTRY]


def _build(kind: type[Detector], section: object) -> Detector:
    # Every registered class takes its thresholds dataclass; the base class declares no
    # constructor, so the call is typed here, once.
    return cast(Callable[[object], Detector], kind)(section)


def _thresholds_type(kind: type[Detector]) -> type[Any]:
    if kind.thresholds_type is None:
        raise TypeError(f"{kind.__name__} declares no thresholds_type")
    return kind.thresholds_type
