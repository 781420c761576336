"""Impossible travel: two successful logins of one borrower too far apart for the time between."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from detectors import personal
from detectors.base import ABNORMAL_BEHAVIOUR, Detector, Finding, Output
from detectors.index import Found
from detectors.scenarios import at, geo, inputs, login
from detectors.sessions import network
from detectors.state import SECONDS_PER_DAY, BorrowerState
from detectors.tunables import tunable
from topics.names import Source
from topics.records import Login

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["ImpossibleTravelDetector", "ImpossibleTravelThresholds", "haversine_km"]


@dataclass(frozen=True, slots=True)
class ImpossibleTravelThresholds:
    #: Faster than this between two logins (km/h) is impossible; an airliner does ~900.
    max_speed_kmh: float = tunable(
        1000.0, 100.0, 20000.0, "speed between two logins above which travel is impossible"
    )
    #: Closer than this (km) is never flagged: geolocation of one city varies this much.
    min_distance_km: float = tunable(
        500.0, 0.0, 20000.0, "jumps shorter than this are never flagged"
    )
    #: A flagged jump's way back, to within min_distance_km of where it started, is part of
    #: the same episode for this many hours.
    return_hours: float = tunable(
        24.0, 0.0, 720.0, "hours in which the way back is part of the same episode"
    )
    #: Leading bits of an address that name its network: a jump on the borrower's own phone
    #: to a network it used before is where that network is geolocated (a carrier's gateway,
    #: a VPN exit it uses), not a journey.
    ipv4_network_bits: int = tunable(
        16, 8, 32, "leading bits of an IPv4 address naming its network"
    )
    ipv6_network_bits: int = tunable(
        32, 16, 128, "leading bits of an IPv6 address naming its network"
    )
    #: Days after which a network the borrower no longer uses is forgotten.
    network_memory_days: int = tunable(
        90, 1, 730, "days after which a network the borrower no longer uses is forgotten"
    )


EARTH_RADIUS_KM = 6371.0
HOUR = 3600.0
#: Logins closer in time than this are taken as this far apart: clocks and geolocation are
#: not exact to the second, and the speed must stay a finite number.
MIN_SECONDS = 60.0
#: Networks a borrower logged in from, remembered to tell a geolocation's move from a journey.
MAX_NETWORKS = 6


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres.

    >>> round(haversine_km(39.9042, 116.4074, 31.2304, 121.4737))  # Beijing → Shanghai
    1067
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _place(city: str | None, lat: float, lon: float) -> personal.Personal:
    """A login's place: published as its city, or its coordinates to 2 decimals."""
    return personal.place(city, lat, lon)


class ImpossibleTravelDetector(Detector):
    """Flags a successful login more than ``min_distance_km`` from the borrower's previous
    geolocated successful login, reached faster than ``max_speed_kmh``.

    Per borrower only: its logins reach the detector in the same order live and in replay.
    A sales rep flying Beijing → Shanghai (1,070 km in 2–4 h), logins without a geolocation,
    logins in the same city and a change of phone are not flagged. After a flagged jump, the
    login back where it came from is the same episode (the owner at home after an attacker's
    login far away), not a second alert.

    What moved may be the geolocation, not the borrower: an address geolocated in two far
    places (a geolocation database's error or update) never travelled, and the borrower's own
    phone on a network it logged in from before (a carrier that geolocates its mobile
    addresses at a far gateway, a VPN exit the borrower uses) is where that network is placed.
    Neither is flagged; the first use of a VPN exit far away is, like a stolen session.
    """

    name = "impossible_travel"
    category = ABNORMAL_BEHAVIOUR
    version = "2"
    section = "impossible_travel"
    thresholds_type = ImpossibleTravelThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """A borrower at home in Shanghai, then in Shenzhen 25 minutes later on another phone."""
        app = "LendApp/5.3.0 (iPhone; iOS 17.4)"
        return inputs(
            Source.LOGINS,
            [
                login(
                    "it-home",
                    at(days=2),
                    device="phone-1",
                    ip="10.0.0.1",
                    borrower_id="it-1",
                    geo=geo("Shanghai"),
                    user_agent=app,
                ),
                login(
                    "it-far",
                    at(days=2, minutes=25),
                    device="it-x",
                    ip="198.51.100.60",
                    borrower_id="it-1",
                    geo=geo("Shenzhen"),
                    user_agent=app,
                ),
            ],
        )

    messages = {
        "impossible_speed": "{origin} → {place} in {minutes:.0f} min needs {speed:,.0f} km/h",
        "distance": "{distance:,.0f} km between the two logins",
        "different_device": "device {device} is not the one of the login before",
    }
    episodes = {"travel": "travel:{origin}>{place}:{day}"}

    def __init__(self, thresholds: ImpossibleTravelThresholds) -> None:
        self.thresholds = thresholds

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if not event.success or event.action != "login":
            return []
        # "l": the last geolocated login [ts, lat, lon, city, event, device crc, ip crc]; "o":
        # [lat, lon, ts] where a flagged jump started, until the way back or return_hours;
        # "n": [network, last day] of the networks of its logins; "i": the crc of the IP of
        # its last login, whose network is known.
        memory: dict[str, Any] = self.slot(state, dict)
        epoch = event.ts.timestamp()
        address = zlib.crc32(event.ip.encode())
        known_network = True
        if memory.get("i") != address:
            memory["i"] = address
            known_network = self._learn_network(memory, event.ip, epoch)
        geo = event.geo
        if geo is None:
            return []
        lat, lon, city = geo.lat, geo.lon, geo.city
        last = memory.get("l")
        if last is not None and epoch < last[0]:
            return []  # older than the last login (late): nothing to compare with in order
        device = zlib.crc32(event.device_id.encode())
        memory["l"] = [epoch, lat, lon, city, event.event_id, device, address]
        if last is None:
            return []
        if len(last) > 6 and last[6] == address:
            return []  # the same address as before: wherever it is placed, it did not move
        if device == last[5] and known_network:
            return []  # the borrower's phone on a network of its own, placed where it is
        jump = self._jump(memory, last, epoch, lat, lon, city)
        if jump is None:
            return []
        memory["o"] = [last[1], last[2], epoch]
        distance, hours = jump
        return [self._finding(event, state, last, distance, hours, last[5] != device)]

    def _learn_network(self, memory: dict[str, Any], ip: str, epoch: float) -> bool:
        """Whether the network of ``ip`` was known to the borrower; learns it."""
        t = self.thresholds
        key = network(ip, t.ipv4_network_bits, t.ipv6_network_bits)
        day = int(epoch // SECONDS_PER_DAY)
        networks: list[list[int]] = memory.setdefault("n", [])
        for entry in networks:
            if entry[0] == key:
                known = entry[1] >= day - t.network_memory_days
                entry[1] = max(entry[1], day)
                return known
        networks.append([key, day])
        if len(networks) > MAX_NETWORKS:
            networks.remove(min(networks, key=lambda entry: entry[1]))
        return False

    def _jump(
        self,
        memory: dict[str, Any],
        last: list[Any],
        epoch: float,
        lat: float,
        lon: float,
        city: str | None,
    ) -> tuple[float, float] | None:
        """Distance (km) and time (h) from the last login, when too far too fast and not the
        way back from a flagged jump; keeps the flagged jump's origin while it still counts."""
        t = self.thresholds
        origin = memory.pop("o", None)
        if origin is not None and epoch - origin[2] > t.return_hours * HOUR:
            origin = None
        if city is not None and last[3] == city:
            distance = 0.0  # the same city: never flagged, whatever its geolocation
        else:
            distance = haversine_km(last[1], last[2], lat, lon)
        if distance <= t.min_distance_km:
            if origin is not None:
                memory["o"] = origin
            return None
        if origin is not None and haversine_km(origin[0], origin[1], lat, lon) <= t.min_distance_km:
            return None  # back where the flagged jump started: the same episode
        hours = max(epoch - last[0], MIN_SECONDS) / HOUR
        if distance / hours <= t.max_speed_kmh:
            return None
        return distance, hours

    def _finding(
        self,
        event: Login,
        state: BorrowerState,
        last: list[Any],
        distance: float,
        hours: float,
        other_device: bool,
    ) -> Finding:
        t = self.thresholds
        assert event.geo is not None
        speed = distance / hours
        origin = _place(last[3], last[1], last[2])
        place = _place(event.geo.city, event.geo.lat, event.geo.lon)
        reasons = [
            self.reason(
                "impossible_speed",
                observed=round(speed, 1),
                threshold=t.max_speed_kmh,
                origin=origin,
                place=place,
                minutes=hours * 60,
                speed=speed,
            ),
            self.reason(
                "distance",
                observed=round(distance, 1),
                threshold=t.min_distance_km,
                distance=distance,
            ),
        ]
        if other_device:
            reasons.append(
                self.reason(
                    "different_device",
                    observed=personal.device(event.device_id),
                    threshold="the previous login's device",
                    device=personal.device(event.device_id),
                )
            )
        excess = min(1.0, (speed / t.max_speed_kmh - 1.0) / 4.0)
        day = datetime.fromtimestamp(event.ts.timestamp(), UTC).date().isoformat()
        return self.finding(
            state.borrower_id,
            episode=self.episode("travel", origin=origin, place=place, day=day),
            ts=event.ts,
            score=0.75 + 0.1 * excess + (0.1 if other_device else 0.0),
            reasons=reasons,
            evidence=[last[4], event.event_id],
        )
