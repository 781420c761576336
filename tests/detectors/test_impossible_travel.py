"""Impossible travel: two successful logins of a borrower too far apart for the time between."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from detectors.base import ABNORMAL_BEHAVIOUR, Finding, alert_id
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.impossible_travel import (
    ImpossibleTravelDetector,
    ImpossibleTravelThresholds,
    haversine_km,
)
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from tests.detectors.factories import at
from topics.records import Geo, Login

CITIES = {
    "Shanghai": (31.2304, 121.4737),
    "Suzhou": (31.2990, 120.5853),
    "Beijing": (39.9042, 116.4074),
    "Shenzhen": (22.5431, 114.0579),
}
#: Where each city's logins come from: its own network (the same address in two far places
#: is a geolocation's move, not a journey).
ADDRESSES = {
    "Shanghai": "58.32.0.1",
    "Suzhou": "58.208.0.1",
    "Beijing": "123.112.0.1",
    "Shenzhen": "113.87.0.1",
    None: "10.0.0.1",
}
PHONE = "phone-1"
DAY = at().date().isoformat()


def _login(
    event_id: str,
    ts: datetime,
    city: str | None,
    *,
    device: str = PHONE,
    success: bool = True,
    action: str = "login",
    shift: float = 0.0,
    borrower_id: str = "b-1",
    ip: str | None = None,
) -> Login:
    """A login geolocated in ``city`` (``shift`` degrees north of its centre), or not at all,
    from an address of the city's own network unless ``ip`` is given."""
    geo = None
    if city is not None:
        lat, lon = CITIES[city]
        geo = Geo(lat=lat + shift, lon=lon, city=city)
    return Login(
        event_id=event_id,
        ts=ts,
        borrower_id=borrower_id,
        action=action,
        device_id=device,
        ip=ip or ADDRESSES[city],
        success=success,
        geo=geo,
        user_agent="LendApp/5.3.0 (iPhone; iOS 17.4)",
    )


def _run(
    events: list[Login], thresholds: ImpossibleTravelThresholds | None = None
) -> tuple[list[Finding], BorrowerState]:
    detector = ImpossibleTravelDetector(thresholds or ImpossibleTravelThresholds())
    state = BorrowerState(borrower_id="b-1")
    findings = []
    for event in events:
        for finding in detector.on_login(event, state, ()):
            assert isinstance(finding, Finding)
            findings.append(finding)
    return findings, state


def test_haversine_of_known_city_pairs() -> None:
    assert haversine_km(*CITIES["Beijing"], *CITIES["Shanghai"]) == pytest.approx(1067, abs=1)
    assert haversine_km(*CITIES["Shanghai"], *CITIES["Suzhou"]) == pytest.approx(85, abs=1)
    assert haversine_km(*CITIES["Beijing"], *CITIES["Beijing"]) == 0.0


def test_shanghai_then_beijing_half_an_hour_later_alerts() -> None:
    events = [_login("sh", at(), "Shanghai"), _login("bj", at(minutes=30), "Beijing")]

    [finding], _ = _run(events)

    assert finding.detector == "impossible_travel" and finding.category == ABNORMAL_BEHAVIOUR
    assert finding.episode == f"travel:Shanghai>Beijing:{DAY}"
    assert finding.alert_id == alert_id("impossible_travel", "b-1", finding.episode)
    assert finding.ts == at(minutes=30)
    speed, distance = finding.reasons
    assert (speed.code, speed.threshold) == ("impossible_speed", 1000.0)
    assert speed.observed == pytest.approx(2 * 1067, abs=3)
    assert (distance.code, distance.threshold) == ("distance", 500.0)
    assert distance.observed == pytest.approx(1067, abs=1)
    assert "Shanghai → Beijing in 30 min" in speed.message
    assert finding.evidence == ("sh", "bj")
    # 0.75 + 0.1 * (2.13 - 1) / 4: the same phone
    assert finding.score == pytest.approx(0.75 + 0.1 * (speed.observed / 1000 - 1) / 4, abs=1e-6)


def test_another_device_far_away_adds_a_reason_and_score() -> None:
    events = [
        _login("sh", at(), "Shanghai"),
        _login("sz", at(minutes=10), "Shenzhen", device="dev-x"),
    ]

    [finding], _ = _run(events)

    assert [r.code for r in finding.reasons] == ["impossible_speed", "distance", "different_device"]
    assert finding.reasons[2].observed == "dev-x"
    # 1,214 km in 10 min is over 7,000 km/h: the speed term is capped
    assert finding.score == pytest.approx(0.95)


@pytest.mark.parametrize(
    "events",
    [
        # a sales rep flying Beijing → Shanghai: 1,067 km in 2.5 h is ~430 km/h
        [_login("bj", at(), "Beijing"), _login("sh", at(hours=2.5), "Shanghai")],
        # ... or in 2 h, just over 500 km/h
        [_login("bj", at(), "Beijing"), _login("sh", at(hours=2), "Shanghai")],
        # a login without a geolocation in between, then the far city the next day
        [
            _login("sh", at(), "Shanghai"),
            _login("nogeo", at(minutes=5), None),
            _login("bj", at(days=1), "Beijing"),
        ],
        # the same city, geolocated 6 degrees (667 km) apart: a coarse IP geolocation
        [_login("sh1", at(), "Shanghai"), _login("sh2", at(minutes=1), "Shanghai", shift=6.0)],
        # a new phone at home
        [_login("sh1", at(), "Shanghai"), _login("sh2", at(minutes=2), "Shanghai", device="p2")],
        # 85 km in 5 minutes: over 1,000 km/h, but geolocations of one area vary that much
        [_login("sh", at(), "Shanghai"), _login("su", at(minutes=5), "Suzhou")],
        # a sales rep before boarding in Shenzhen and on landing in Beijing: 1,950 km in 3 h
        [
            _login("sz", at(), "Shenzhen"),
            _login("bj", at(hours=3), "Beijing", ip="123.112.88.1"),
            _login("bj2", at(hours=5), "Beijing"),
            _login("sz2", at(days=2, hours=1), "Shenzhen"),
        ],
    ],
    ids=["flight-2.5h", "flight-2h", "no-geo", "same-city", "new-phone", "nearby", "sales-rep"],
)
def test_traps_do_not_alert(events: list[Login]) -> None:
    findings, _ = _run(events)

    assert findings == []


def test_logins_without_geo_failures_and_other_actions_are_not_positions() -> None:
    events = [
        _login("sh", at(), "Shanghai"),
        _login("nogeo", at(minutes=1), None),
        _login("fail", at(minutes=2), "Beijing", success=False),
        _login("dd", at(minutes=3), "Beijing", action="drawdown"),
        _login("sh2", at(minutes=4), "Shanghai"),
    ]

    findings, state = _run(events)

    assert findings == []
    assert state.slots["impossible_travel"]["l"][4] == "sh2"


def test_the_way_back_is_the_same_episode() -> None:
    events = [
        _login("sh", at(), "Shanghai"),
        _login("bj", at(minutes=20), "Beijing", device="dev-x"),
        _login("sh2", at(minutes=40), "Shanghai"),  # the owner, at home again
        _login("sh3", at(hours=3), "Shanghai"),
        _login("bj2", at(hours=3, minutes=10), "Beijing", device="dev-x"),  # the attacker again
    ]

    findings, _ = _run(events)

    assert [f.episode for f in findings] == [f"travel:Shanghai>Beijing:{DAY}"] * 2
    assert findings[0].alert_id == findings[1].alert_id  # the engine sends it once


def test_the_same_address_placed_in_two_far_cities_did_not_travel() -> None:
    """A geolocation database that places one address in Shanghai, then in Beijing (an error,
    an update, a platform mixing GPS and IP): the address did not move."""
    events = [
        _login("sh", at(), "Shanghai", ip="58.32.7.7"),
        _login("bj", at(minutes=10), "Beijing", ip="58.32.7.7"),
        _login("bj2", at(minutes=20), "Beijing", ip="58.32.7.7", device="tablet"),
    ]

    assert _run(events)[0] == []


def test_the_own_phone_on_its_carrier_placed_at_a_far_gateway_did_not_travel() -> None:
    """A carrier that geolocates its mobile addresses where its gateway is: the borrower's
    phone, on the carrier's network it used before, leaves its broadband for mobile data."""
    events = [
        _login("mobile-earlier", at(days=-3), "Shanghai", ip="117.136.5.5"),
        _login("home", at(), "Shanghai"),
        _login("mobile", at(minutes=10), "Beijing", ip="117.136.77.9"),
        _login("home-again", at(minutes=30), "Shanghai"),
    ]

    assert _run(events)[0] == []


def test_another_device_on_a_known_network_far_away_still_alerts() -> None:
    events = [
        _login("mobile-earlier", at(days=-3), "Shanghai", ip="117.136.5.5"),
        _login("home", at(), "Shanghai"),
        _login("far", at(minutes=10), "Beijing", ip="117.136.77.9", device="dev-x"),
    ]

    [finding], _ = _run(events)

    assert finding.reasons[-1].code == "different_device"


def test_a_vpn_exit_far_away_alerts_the_first_time_only() -> None:
    """The first use of a VPN exit placed far away looks like a stolen session on the same
    phone; once the borrower has used that exit, switching to it again is not a journey."""
    vpn = "185.220.101.4"
    first = [_login("home", at(), "Shanghai"), _login("vpn", at(minutes=5), "Beijing", ip=vpn)]
    later = [
        _login("home-2", at(days=1), "Shanghai"),
        _login("vpn-2", at(days=1, minutes=5), "Beijing", ip="185.220.9.9"),
        _login("home-3", at(days=1, minutes=30), "Shanghai"),
        _login("vpn-3", at(days=2), "Beijing", ip=vpn),
    ]

    findings, _ = _run([*first, *later])

    assert [f.evidence for f in findings] == [("home", "vpn")]


def test_a_state_from_before_networks_were_kept() -> None:
    detector = ImpossibleTravelDetector(ImpossibleTravelThresholds())
    state = BorrowerState(borrower_id="b-1")
    detector.on_login(_login("sh", at(), "Shanghai"), state, ())
    memory = state.slots["impossible_travel"]
    memory["l"] = memory["l"][:6]
    for key in ("n", "i"):
        del memory[key]

    [finding] = detector.on_login(_login("bj", at(minutes=30), "Beijing"), state, ())

    assert isinstance(finding, Finding) and finding.evidence == ("sh", "bj")


def test_network_bits_are_data() -> None:
    # 58.33.x and 58.40.x are two networks at 16 bits, one at 8.
    events = [
        _login("far-earlier", at(days=-2), "Suzhou", ip="58.33.0.9"),
        _login("sh", at(), "Shanghai"),
        _login("bj", at(minutes=30), "Beijing", ip="58.40.3.3"),
    ]

    assert len(_run(events)[0]) == 1
    assert _run(events, ImpossibleTravelThresholds(ipv4_network_bits=8))[0] == []


def test_a_late_login_older_than_the_last_is_skipped() -> None:
    events = [
        _login("sh", at(), "Shanghai"),
        _login("bj-late", at(minutes=-10), "Beijing"),
        _login("sh2", at(minutes=5), "Shanghai"),
    ]

    findings, state = _run(events)

    assert findings == []
    assert state.slots["impossible_travel"]["l"][4] == "sh2"


def test_logins_at_the_same_instant_in_two_cities_alert() -> None:
    events = [_login("sh", at(), "Shanghai"), _login("bj", at(), "Beijing")]

    [finding], _ = _run(events)

    # taken one minute apart: the speed stays a finite number
    assert finding.reasons[0].observed == pytest.approx(1067 * 60, rel=1e-3)


def test_thresholds_are_data() -> None:
    flight = [_login("bj", at(), "Beijing"), _login("sh", at(hours=2.5), "Shanghai")]
    attack = [_login("sh", at(), "Shanghai"), _login("bj", at(minutes=30), "Beijing")]

    [slow], _ = _run(flight, ImpossibleTravelThresholds(max_speed_kmh=300))
    assert slow.reasons[0].threshold == 300
    assert _run(attack, ImpossibleTravelThresholds(min_distance_km=1100))[0] == []
    nearby = [_login("sh", at(), "Shanghai"), _login("su", at(minutes=2), "Suzhou")]
    assert len(_run(nearby, ImpossibleTravelThresholds(min_distance_km=50))[0]) == 1


def test_memory_round_trips_through_orjson_and_is_small() -> None:
    detector = ImpossibleTravelDetector(ImpossibleTravelThresholds())
    live = BorrowerState(borrower_id="b-1")
    detector.on_login(_login("sh", at(), "Shanghai", device="d" * 60), live, ())
    restored = BorrowerState.from_dict(orjson.loads(orjson.dumps(live.to_dict())))
    after = _login("bj", at(minutes=30), "Beijing")

    assert [
        f.alert_id for f in detector.on_login(after, restored, ()) if isinstance(f, Finding)
    ] == [f.alert_id for f in detector.on_login(after, live, ()) if isinstance(f, Finding)]
    assert restored.to_dict() == live.to_dict()
    assert len(orjson.dumps(live.slots["impossible_travel"])) < 200


def test_found_is_not_used_even_when_the_index_is_down() -> None:
    detector = ImpossibleTravelDetector(ImpossibleTravelThresholds())
    state = BorrowerState(borrower_id="b-1")
    detector.on_login(_login("sh", at(), "Shanghai"), state, None)

    assert detector.lookups(_login("bj", at(minutes=30), "Beijing"), state) is None
    assert len(detector.on_login(_login("bj", at(minutes=30), "Beijing"), state, None)) == 1


#: The detector's own contract events (a borrower at home in Shanghai, then in Shenzhen 25
#: minutes later on another phone), which the shared contract test runs every detector over.
CONTRACT_EVENTS: list[Input] = ImpossibleTravelDetector.contract_events()


async def test_contract_events_alert_through_an_engine() -> None:
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([ImpossibleTravelDetector(ImpossibleTravelThresholds())])

    alerts = []
    for item in CONTRACT_EVENTS:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts

    [alert] = alerts
    assert (alert.borrower_id, alert.episode) == ("it-1", "travel:Shanghai>Shenzhen:2024-03-03")
    assert alert.evidence == ["it-home", "it-far"]
