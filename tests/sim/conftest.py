"""The simulation most tests read, made once for the session, and its records per borrower."""

from __future__ import annotations

from collections import defaultdict

import pytest

from sim import Simulation, simulate
from tests.sim.helpers import CONFIG, Index
from topics.names import Source


@pytest.fixture(scope="session")
def sim() -> Simulation:
    return simulate(CONFIG)


@pytest.fixture(scope="session")
def index(sim: Simulation) -> Index:
    """Each source's values per borrower, in stream order."""
    by: Index = {source: defaultdict(list) for source in Source}
    for record in sim.records:
        source = CONFIG.topics.source_of(record["topic"])
        assert source is not None
        by[source][record["key"]].append(record["value"])
    return by
