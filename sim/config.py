"""What to simulate: the population, the period, the seed and the cases to inject."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sim.profiles import BASELINE, Profile
from topics.names import TopicNames

__all__ = ["SimulationConfig"]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate; ``None`` case counts scale with the population.

    ``cases`` maps a typology of :data:`sim.TYPOLOGIES` to its count; ``circular_rings``,
    ``takeovers`` and ``delinquents`` are the same as ``cases`` entries for
    ``circular_transfer``, ``account_takeover`` and ``missed_installment``.
    """

    borrowers: int = 200
    days: int = 60
    seed: int = 7
    #: Midnight of day 0; every timestamp carries this offset (the platform's time zone).
    start: datetime = datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=8)))
    # None -> the default below, or 0 if the period is too short to hold such a case
    # (rings need 7 days, takeovers 8, delinquents 35); an explicit impossible count is an error.
    circular_rings: int | None = None  # None -> max(1, borrowers // 150)
    takeovers: int | None = None  # None -> max(1, borrowers // 100)
    delinquents: int | None = None  # None -> max(1, borrowers // 50)
    cases: dict[str, int] | None = None
    topics: TopicNames = field(default_factory=TopicNames)
    #: The population's knobs (sim/profiles.py); the baseline is the simulator before profiles.
    profile: Profile = BASELINE
