"""The plan: case counts as configured or by default, refusals, and cases that blend in."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from sim import (
    BASELINE,
    PROFILES,
    TYPOLOGIES,
    Profile,
    Simulation,
    SimulationConfig,
    simulate_stream,
)
from tests.sim.helpers import EXPECTED_CASES, Index, Value, case_of, instant
from topics.names import Source


def test_each_typology_appears_with_the_configured_count(sim: Simulation) -> None:
    cases: dict[str, set[str]] = defaultdict(set)
    for label in sim.labels:
        cases[label.typology].add(case_of(label))
        assert label.category == TYPOLOGIES[label.typology]
        assert instant(label.start) <= instant(label.end)
        assert label.start.utcoffset() == label.end.utcoffset() == timedelta(hours=8)
    assert {typology: len(ids) for typology, ids in cases.items()} == EXPECTED_CASES
    counts = Counter(label.typology for label in sim.labels)
    # A ring labels its borrowers: three, or two when its third account is off the platform.
    rings = {
        str(label.detail["ring"]): label.detail["members"]
        for label in sim.labels
        if label.typology == "circular_transfer"
    }
    assert counts["circular_transfer"] == sum(len(m) for m in rings.values())
    assert all(len(m) in (2, 3) for m in rings.values())
    assert 20 <= counts["credential_stuffing"] <= 60
    assert 3 <= counts["device_ring"] <= 6
    injected = [label.borrower_id for label in sim.labels]
    assert len(injected) == len(set(injected))  # one case per borrower


@pytest.mark.parametrize("profile", PROFILES.values(), ids=list(PROFILES))
def test_defaults_at_2000_borrowers_label_at_least_15_borrowers_per_typology(
    profile: Profile,
) -> None:
    config = SimulationConfig(borrowers=2_000, days=90, seed=1, profile=profile)
    labels, stream = simulate_stream(config)
    counts = Counter(label.typology for label in labels)
    # The baseline is the simulator before profiles: phished takeovers came with them.
    off = {name for name in TYPOLOGIES if profile.case_rate(name) == 0}
    assert off == ({"account_takeover_phished"} if profile is BASELINE else set())
    assert set(counts) == set(TYPOLOGIES) - off
    assert min(counts.values()) >= 15
    assert sum(counts.values()) <= 0.35 * 2_000
    assert isinstance(stream, Iterator)  # nothing generated until asked


@pytest.mark.parametrize(
    "config",
    [
        SimulationConfig(borrowers=10, days=20, delinquents=1),
        SimulationConfig(borrowers=5, days=40, circular_rings=2),
        SimulationConfig(borrowers=10, days=20, start=datetime(2026, 1, 5)),
        SimulationConfig(borrowers=0),
        SimulationConfig(borrowers=50, days=30, cases={"credential_stuffing": 3}),
        SimulationConfig(borrowers=50, days=30, cases={"phishing": 1}),
        SimulationConfig(borrowers=50, days=30, cases={"revenue_inflation": 1}),
        SimulationConfig(borrowers=50, days=30, cases={"wash_trading": -1}),
        SimulationConfig(borrowers=50, days=30, takeovers=2, cases={"account_takeover": 3}),
    ],
)
def test_impossible_configs_are_refused(config: SimulationConfig) -> None:
    with pytest.raises(ValueError):
        simulate_stream(config)


def test_injected_cases_carry_no_artefact_benign_traffic_lacks(
    sim: Simulation, index: Index
) -> None:
    windows: dict[str, tuple[datetime, datetime]] = {
        label.borrower_id: (instant(label.start), instant(label.end)) for label in sim.labels
    }

    def in_case(v: Value) -> bool:
        window = windows.get(v["borrower_id"])
        return window is not None and window[0] <= instant(v) <= window[1]

    def tx_features(tx: Value) -> set[tuple[str, Any]]:
        memo = tx.get("memo")
        return {
            ("channel", tx["channel"]),
            ("prefix", tx["counterparty_id"].split("-")[0]),
            ("memo", "loan" if memo and memo.startswith("ln-") else memo),
            ("name", tx.get("counterparty_name")),
            ("direction+channel", (tx["direction"], tx["channel"])),
        }

    def login_features(v: Value) -> set[tuple[str, Any]]:
        agent = v["user_agent"]
        version, _, model = agent.partition(" ")
        return {
            ("action", v["action"]),
            ("app", version),
            ("model", model),
            ("device", re.sub("[0-9a-f]", "h", v["device_id"])),
            ("ip", ".".join(v["ip"].split(".")[:2])),
            ("city", v["geo"]["city"]),
        }

    for source, features in (
        (Source.TRANSACTIONS, tx_features),
        (Source.LOGINS, login_features),
    ):
        benign: set[tuple[str, Any]] = set()
        injected: set[tuple[str, Any]] = set()
        for borrower_id, values in index[source].items():
            for v in values:
                if borrower_id not in windows:
                    benign |= features(v)
                elif in_case(v):
                    injected |= features(v)
        assert injected, source
        assert injected <= benign, injected - benign
    words = set()
    for record in sim.records:
        for value in record["value"].values():
            if isinstance(value, str):
                words.update(re.split("[^a-z]+", value.lower()))
    assert not words & {"fraud", "fake", "ring", "wash", "attack", "script", "stuffing", "mule"}
