"""The session view: what is new about a login, priced against the borrower's own logins."""

from __future__ import annotations

import ipaddress
import math
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CITY",
    "DEVICE",
    "FAILURES",
    "IP",
    "NETWORK",
    "REPLAY",
    "SIGNS",
    "Session",
    "app_family",
    "count",
    "halve",
    "network",
    "surprises",
]

#: What may be new about a login, as bits of a mask: a device the borrower never used; a
#: device id it used, sent with an app family it never used (a replayed id); an IP, its
#: network, its city; failed logins before it.
DEVICE, REPLAY, IP, NETWORK, CITY, FAILURES = 1, 2, 4, 8, 16, 32
#: The signs in the order of a borrower's novelty counters (after the count of logins); a
#: replayed device id is counted with the new devices: both are a device not vouched for.
SIGNS = (DEVICE, IP, NETWORK, CITY, FAILURES)
#: Signs that say someone else holds the credentials, and signs that say they are elsewhere.
WHO = DEVICE | REPLAY | FAILURES
WHERE = NETWORK | CITY
#: Bits of the checksum that names a network other than an IPv4 prefix (24: a state keeps a
#: few of them, and two of a borrower's networks colliding is a chance in millions).
_SHORT = (1 << 24) - 1
# An app update changes the version numbers of its user agent, not the app or the phone model.
_VERSION_CHARACTERS = str.maketrans("", "", "0123456789._")


def app_family(agent: str) -> int:
    """The app and phone model of a user agent, whatever its version numbers, as a checksum.

    >>> app_family("LendApp/5.2.4 (Android 14; Xiaomi 14)") == app_family("LendApp/5.3 (Android)")
    False
    >>> phone = "LendApp/5.2.4 (iPhone; iOS 17.4)"
    >>> app_family(phone) == app_family("LendApp/5.3.1 (iPhone; iOS 18.1)")
    True
    """
    return zlib.crc32(agent.translate(_VERSION_CHARACTERS).encode())


def network(ip: str, v4_bits: int, v6_bits: int) -> int:
    """The network of an address: its leading bits, as a number (IPv6 and anything that is
    not an address as a short checksum, negative: apart from every IPv4 prefix).

    >>> network("203.0.113.9", 16, 32) == network("203.0.7.1", 16, 32)
    True
    >>> network("203.0.113.9", 16, 32) == network("203.1.113.9", 16, 32)
    False
    >>> network("2001:db8:1::5", 16, 32) == network("2001:db8:ffff::1", 16, 32)
    True
    """
    parts = ip.split(".")
    if len(parts) == 4:
        try:
            a, b, c, d = map(int, parts)
        except ValueError:
            pass
        else:
            return (a << 24 | b << 16 | c << 8 | d) >> (32 - v4_bits)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return -1 - (zlib.crc32(ip.encode()) & _SHORT)
    bits = v6_bits if address.version == 6 else v4_bits
    prefix = int(address) >> (address.max_prefixlen - bits)
    return -1 - (zlib.crc32(f"{address.version}/{prefix}".encode()) & _SHORT)


def surprises(counters: list[float], prior_logins: float, prior_share: float) -> list[float]:
    """For each of :data:`SIGNS`, the surprise (nats, ``-ln`` of its rate) of a login that
    shows it, from the borrower's counters ``[logins, *per sign]``; a prior of
    ``prior_logins`` logins at ``prior_share`` keeps a short history from pricing a first
    novelty as a certainty.

    >>> [round(s, 2) for s in surprises([40.0, 1.0, 20.0, 4.0, 0.0, 1.0], 4.0, 0.2)]
    [3.2, 0.75, 2.22, 4.01, 3.2]
    """
    logins = counters[0] + prior_logins
    pseudo = prior_logins * prior_share
    return [-math.log(min(1.0, max(1e-9, (seen + pseudo) / logins))) for seen in counters[1:]]


def count(counters: list[float], signs: int, memory: int) -> None:
    """Count one login and its signs. Once ``2 * memory`` logins are counted every count is
    halved: the rates cover the borrower's last ``memory`` to ``2 * memory`` logins, so they
    follow what it does now, at the cost of a halving every ``memory`` logins."""
    counters[0] += 1.0
    if signs:
        for position, sign in enumerate(SIGNS, start=1):
            if signs & (sign | (REPLAY if sign == DEVICE else 0)):
                counters[position] += 1.0
    if counters[0] >= 2 * memory:
        halve(counters)


def halve(counters: list[float]) -> None:
    """Halve every count (kept to 2 decimals: a changelog record is text)."""
    counters[:] = [round(value / 2, 2) for value in counters]


@dataclass(frozen=True, slots=True)
class Session:
    """A session a novel login opened, as remembered for the actions that follow it.

    ``surprise`` holds the surprise of each of :data:`SIGNS` the login showed (0.0 for those
    it did not); ``novelty`` is their sum.
    """

    ts: float
    device: str
    ip: str
    login: str
    signs: int
    surprise: tuple[float, ...]
    failures: int
    city: str
    agent: str

    @property
    def novelty(self) -> float:
        return sum(self.surprise)

    @property
    def who(self) -> bool:
        """The device or the failures say the login is not the borrower's habit."""
        return bool(self.signs & WHO)

    @property
    def where(self) -> bool:
        """The network or the city are new to the borrower."""
        return bool(self.signs & WHERE)

    def to_json(self) -> list[Any]:
        return [
            self.ts,
            self.device,
            self.ip,
            self.login,
            self.signs,
            [round(s, 3) for s in self.surprise],
            self.failures,
            self.city,
            self.agent,
        ]

    @classmethod
    def from_json(cls, value: list[Any]) -> Session:
        ts, device, ip, login, signs, surprise, failures, city, agent = value
        return cls(ts, device, ip, login, signs, tuple(surprise), failures, city, agent)
