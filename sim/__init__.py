"""The simulator: a platform's synthetic traffic and the ground truth of its injected cases."""

# It is what the detectors are scored against, so it imports neither detectors nor streams
# (tests/sim/test_boundaries.py checks); category and topic names come from the contract.

from sim.benign.flows import SALE_DAY, SLUMP_DAYS
from sim.config import SimulationConfig
from sim.io import iter_jsonl, write_jsonl
from sim.profiles import BASELINE, PROFILES, Profile, profile_named
from sim.simulation import Simulation, simulate, simulate_stream
from sim.typologies import TYPOLOGIES

__all__ = [
    "BASELINE",
    "PROFILES",
    "Profile",
    "SALE_DAY",
    "SLUMP_DAYS",
    "TYPOLOGIES",
    "Simulation",
    "SimulationConfig",
    "iter_jsonl",
    "profile_named",
    "simulate",
    "simulate_stream",
    "write_jsonl",
]
