"""Credential stuffing: one address fails on many borrowers; shared addresses see a few typos."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from sim import Simulation, SimulationConfig, simulate_stream
from tests.sim.helpers import Index, instant, labels_of
from topics.labels import CaseLabel
from topics.names import Source


def test_credential_stuffing_fails_on_many_borrowers_from_one_address(
    sim: Simulation, index: Index
) -> None:
    campaigns: dict[str, list[CaseLabel]] = defaultdict(list)
    for label in labels_of(sim, "credential_stuffing"):
        campaigns[label.detail["campaign"]].append(label)
    for labels in campaigns.values():
        (ip,) = {label.detail["ip"] for label in labels}
        (mode,) = {label.detail["mode"] for label in labels}
        assert 20 <= len(labels) == labels[0].detail["targets"] <= 60
        attempts = []
        for label in labels:
            mine = [
                v
                for v in index[Source.LOGINS][label.borrower_id]
                if v["ip"] == ip and instant(label.start) <= instant(v) <= instant(label.end)
            ]
            assert len(mine) == label.detail["attempts"] in (1, 2)
            assert [v["success"] for v in mine][-1] == label.detail["success"]
            assert not any(v["success"] for v in mine[:-1])
            attempts += mine
        assert sum(v["success"] for v in attempts) <= 2
        span = max(map(instant, attempts)) - min(map(instant, attempts))
        if mode == "burst":
            assert span < timedelta(minutes=30)
        else:
            assert timedelta(hours=6) <= span <= timedelta(hours=20, minutes=15)


def test_carrier_nat_addresses_are_shared_by_many_with_a_few_typos_a_day() -> None:
    config = SimulationConfig(borrowers=1_000, days=5, seed=1)
    labelled = {label.borrower_id for label in simulate_stream(config)[0]}
    succeeded: dict[tuple[str, str], set[str]] = defaultdict(set)
    failed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in simulate_stream(config)[1]:
        v = record["value"]
        if record["topic"] == config.topics.logins and v["borrower_id"] not in labelled:
            ip_day = (v["ip"], v["ts"][:10])
            (succeeded if v["success"] else failed)[ip_day].add(v["borrower_id"])
    # Many borrowers log in from one carrier NAT or office address the same day ...
    assert sum(len(borrowers) >= 10 for borrowers in succeeded.values()) >= 20
    # ... and there, a few of them mistype their passwords the same day: 2-4, never 20.
    clusters = [len(bs) for ip_day, bs in failed.items() if len(succeeded[ip_day]) >= 10]
    assert sum(2 <= size <= 4 for size in clusters) >= 5
    assert max(clusters) < 10
