"""The simulator: a platform's synthetic traffic and the ground truth of its injected cases."""

from sim.population import (
    SALE_DAY,
    SLUMP_DAYS,
    TYPOLOGIES,
    Label,
    Simulation,
    SimulationConfig,
    iter_jsonl,
    simulate,
    simulate_stream,
    write_jsonl,
)

__all__ = [
    "SALE_DAY",
    "SLUMP_DAYS",
    "TYPOLOGIES",
    "Label",
    "Simulation",
    "SimulationConfig",
    "iter_jsonl",
    "simulate",
    "simulate_stream",
    "write_jsonl",
]
