"""The injected cases, one module per typology named as the detector that should find it."""

from sim.typologies.base import Typology
from sim.typologies.circular import CIRCULAR_TRANSFER
from sim.typologies.credential_stuffing import CREDENTIAL_STUFFING
from sim.typologies.delinquency import MISSED_INSTALLMENT
from sim.typologies.device_ring import DEVICE_RING
from sim.typologies.impossible_travel import IMPOSSIBLE_TRAVEL
from sim.typologies.machine_flow import MACHINE_GENERATED
from sim.typologies.pass_through import PASS_THROUGH
from sim.typologies.revenue_inflation import REVENUE_INFLATION
from sim.typologies.takeover import ACCOUNT_TAKEOVER, DEVICE_REPLAY, PHISHED
from sim.typologies.wash_trading import WASH_TRADING

__all__ = ["ALL", "BY_NAME", "TYPOLOGIES", "Typology"]

#: Every typology, in the order default counts are granted while the case budget lasts.
ALL: tuple[Typology, ...] = (
    CIRCULAR_TRANSFER,
    WASH_TRADING,
    REVENUE_INFLATION,
    MACHINE_GENERATED,
    ACCOUNT_TAKEOVER,
    DEVICE_REPLAY,
    PHISHED,
    CREDENTIAL_STUFFING,
    DEVICE_RING,
    IMPOSSIBLE_TRAVEL,
    MISSED_INSTALLMENT,
    PASS_THROUGH,
)
BY_NAME: dict[str, Typology] = {typology.name: typology for typology in ALL}

#: Every injected typology and its category. A case count counts rings of 3 borrowers for
#: ``circular_transfer``, attacker IPs (20–60 targets each) for ``credential_stuffing``,
#: shared devices (3–6 borrowers each) for ``device_ring``, and borrowers for the others.
TYPOLOGIES: dict[str, str] = {typology.name: typology.category for typology in ALL}
