"""Device rings: one device applies for several borrowers; a benign device has two at most."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from sim import Simulation
from tests.sim.helpers import Index, instant, labelled_ids, labels_of, values_of
from topics.labels import CaseLabel
from topics.names import Source


def test_device_ring_applies_for_several_borrowers_from_one_device(
    sim: Simulation, index: Index
) -> None:
    rings: dict[str, list[CaseLabel]] = defaultdict(list)
    for label in labels_of(sim, "device_ring"):
        rings[label.detail["ring"]].append(label)
    logins = values_of(sim, Source.LOGINS)
    for labels in rings.values():
        (device,) = {label.detail["device_id"] for label in labels}
        members = {label.borrower_id for label in labels}
        uses = [v for v in logins if v["device_id"] == device]
        assert {v["borrower_id"] for v in uses} == members and 3 <= len(members) <= 6
        assert all(v["success"] for v in uses)
        for member in members:
            actions = [v["action"] for v in uses if v["borrower_id"] == member]
            assert actions[:2] == ["login", "loan_application"]
        assert len({v["geo"]["city"] for v in uses}) == 1
        assert max(map(instant, uses)) - min(map(instant, uses)) <= timedelta(days=10)
        # One case: every member's runs to the ring's last use of the device.
        assert {label.end for label in labels} == {max(map(instant, uses))}
        assert all(label.start <= label.end for label in labels)


def test_two_person_devices_are_benign_and_never_three(sim: Simulation) -> None:
    labelled = labelled_ids(sim)
    logins = [v for v in values_of(sim, Source.LOGINS) if v["borrower_id"] not in labelled]
    devices: dict[str, set[str]] = defaultdict(set)
    for v in logins:
        if v["success"]:
            devices[v["device_id"]].add(v["borrower_id"])
    # A family tablet or an accountant's computer: two borrowers on one device, never three.
    sizes = Counter(len(borrowers) for borrowers in devices.values())
    assert sizes[2] >= 1
    assert max(sizes) == 2
    rings = {label.detail["device_id"] for label in labels_of(sim, "device_ring")}
    everyone: dict[str, set[str]] = defaultdict(set)
    for v in values_of(sim, Source.LOGINS):
        if v["success"] and v["device_id"] not in rings:
            everyone[v["device_id"]].add(v["borrower_id"])
    assert max(len(borrowers) for borrowers in everyone.values()) == 2
