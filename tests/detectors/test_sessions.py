"""The session view: the network of an address, and a borrower's novelty rates."""

from __future__ import annotations

import doctest
import math

import pytest

import detectors.sessions
from detectors.sessions import (
    CITY,
    DEVICE,
    FAILURES,
    IP,
    NETWORK,
    REPLAY,
    Session,
    count,
    network,
    surprises,
)


def test_the_examples_hold() -> None:
    assert doctest.testmod(detectors.sessions).failed == 0


@pytest.mark.parametrize(
    ("one", "other", "bits", "same"),
    [
        ("117.136.4.5", "117.136.250.1", 16, True),  # a carrier's block: a new address daily
        ("117.136.4.5", "117.137.4.5", 16, False),
        ("117.136.4.5", "117.137.4.5", 8, True),
        ("10.0.0.1", "10.0.0.1", 32, True),
        ("10.0.0.1", "10.0.0.2", 32, False),
        ("2408:8456:1::1", "2408:8456:ffff::2", 32, True),
        ("2408:8456:1::1", "2408:8457:1::1", 32, False),
        ("not-an-address", "not-an-address", 16, True),
        ("not-an-address", "another", 16, False),
    ],
)
def test_network_of_an_address(one: str, other: str, bits: int, same: bool) -> None:
    assert (network(one, bits, 32) == network(other, bits, 32)) is same


def test_networks_of_other_kinds_never_meet_an_ipv4_prefix() -> None:
    assert network("2408:8456:1::1", 16, 32) < 0 and network("x", 16, 32) < 0
    assert 0 <= network("255.255.255.255", 32, 32) < 2**32


def test_surprise_follows_the_borrowers_own_rate() -> None:
    # 60 logins: 30 from a new IP (a carrier's shared addresses), none from a new city.
    ip, city = surprises([60.0, 1.0, 30.0, 2.0, 0.0, 2.0], 4.0, 0.2)[1:4:2]

    assert ip == pytest.approx(-math.log(30.8 / 64))
    assert city == pytest.approx(-math.log(0.8 / 64))
    assert city > 4 * ip


def test_a_short_history_is_priced_by_the_prior() -> None:
    assert surprises([0.0] * 6, 4.0, 0.2) == pytest.approx([-math.log(0.2)] * 5)


def test_count_weighs_older_logins_less_past_the_memory() -> None:
    counters = [0.0] * 6
    for _ in range(100):
        count(counters, IP, memory=20)
    for _ in range(30):
        count(counters, 0, memory=20)

    assert 20.0 <= counters[0] < 40.0
    # Every login of the first 100 came from a new IP, none of the last 30: under half now.
    assert counters[2] / counters[0] < 0.5


def test_a_replayed_device_counts_as_a_device_not_vouched_for() -> None:
    counters = [0.0] * 6
    count(counters, REPLAY | CITY | FAILURES, memory=60)
    count(counters, DEVICE | IP | NETWORK, memory=60)

    assert counters == [2.0, 2.0, 1.0, 1.0, 1.0, 1.0]


def test_a_session_round_trips_through_json() -> None:
    session = Session(
        1.5, "d", "10.0.0.1", "e-1", DEVICE | CITY, (2.5, 0.0, 0.0, 3.0, 0.0), 0, "X", ""
    )

    assert Session.from_json(session.to_json()) == session
    assert session.novelty == 5.5 and session.who and session.where
