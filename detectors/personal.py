"""Personal values marked where a detector names them, so that the masker masks them by kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from topics.records import ACCOUNT, BORROWER, DEVICE, IP, PLACE, Wording

__all__ = ["Personal", "account", "borrower", "device", "fill", "ip", "place", "unwrap"]


@dataclass(frozen=True, slots=True)
class Personal:
    """A value that names a person or their account, with its kind (see
    ``topics.records.PERSONAL_KINDS``); a list of such values when ``value`` is a list.

    Detectors wrap every personal value they put in a reason, an episode or the evidence
    (:meth:`Detector.reason <detectors.base.Detector.reason>` and friends take it apart into
    a :class:`~topics.records.Wording`); anything not wrapped is published as it is, masked
    or not.
    """

    kind: str
    value: Any


def borrower(value: str | Sequence[str]) -> Personal:
    """A borrower id, or a list of them."""
    return Personal(BORROWER, _plain(value))


def device(value: str | Sequence[str]) -> Personal:
    """A device id, or a list of them."""
    return Personal(DEVICE, _plain(value))


def account(value: str | Sequence[str]) -> Personal:
    """An account or counterparty id, or a list of them (a ring of accounts)."""
    return Personal(ACCOUNT, _plain(value))


def ip(value: str) -> Personal:
    """An IP address, as the platform sent it."""
    return Personal(IP, value)


def place(city: str | None, lat: float, lon: float) -> Personal:
    """Where a login came from: its city, or its coordinates (kept to 2 decimals, as they are
    published unmasked) when the platform geolocated no city.

    >>> fill("{at}", at=place(None, 32.0712, 118.8)).render()
    '32.07,118.80'
    """
    return Personal(PLACE, {"city": city or None, "lat": round(lat, 2), "lon": round(lon, 2)})


def unwrap(value: Any) -> tuple[Any, str | None]:
    """A slot's value and its kind (None: not personal)."""
    if isinstance(value, Personal):
        return value.value, value.kind
    return value, None


def fill(template: str, **slots: Any) -> Wording:
    """A template with its slots' values, the personal ones unwrapped and their kinds noted.

    >>> wording = fill("device {device} ({known} known)", device=device("dev-9"), known=2)
    >>> wording.render(), dict(wording.personal)
    ('device dev-9 (2 known)', {'device': 'device'})
    """
    values: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    for name, slot in slots.items():
        values[name], kind = unwrap(slot)
        if kind is not None:
            kinds[name] = kind
    return Wording(template, values, kinds)


def _plain(value: str | Sequence[str]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)
