"""Faust Records of the event contract: what platforms send and what the pipeline publishes."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import faust

from topics.names import CONTRACT_VERSION

__all__ = [
    "ACCOUNT",
    "BORROWER",
    "DEVICE",
    "IP",
    "PERSONAL_KINDS",
    "PLACE",
    "Alert",
    "DeadLetter",
    "Feedback",
    "Geo",
    "Login",
    "Reason",
    "Repayment",
    "Transaction",
    "Wording",
    "show_raw",
]

# Records are built by ``topics.validate`` after it has checked every field, so Faust's own
# validation and coercion are off: they would only repeat the work at ~3 µs per event.
_RECORD_OPTIONS = {"serializer": "json", "validation": False, "coerce": False}


class Transaction(faust.Record, **_RECORD_OPTIONS):
    """A movement of money on one of the borrower's accounts."""

    event_id: str
    ts: datetime
    borrower_id: str
    account_id: str
    counterparty_id: str
    direction: str  # "in": money into the borrower's account; "out": money leaving it
    amount: Decimal
    currency: str = "CNY"
    channel: str | None = None
    counterparty_name: str | None = None
    memo: str | None = None
    #: The borrower's sector (contract 1.1), as the platform knows it from the business licence:
    #: detectors compare a borrower with its sector's borrowers on the same day.
    sector: str | None = None


class Geo(faust.Record, **_RECORD_OPTIONS):
    """Where a session came from, as the platform geolocated it."""

    lat: float
    lon: float
    city: str | None = None


class Login(faust.Record, **_RECORD_OPTIONS):
    """A login or another account action (payout change, loan application, drawdown)."""

    event_id: str
    ts: datetime
    borrower_id: str
    action: str
    device_id: str
    ip: str
    success: bool = True
    user_id: str | None = None
    geo: Geo | None = None
    user_agent: str | None = None
    amount: Decimal | None = None


class Repayment(faust.Record, **_RECORD_OPTIONS):
    """An installment being scheduled, paid or reversed."""

    event_id: str
    ts: datetime
    borrower_id: str
    loan_id: str
    installment: int
    kind: str  # "scheduled" | "payment" | "reversal"
    due_date: date | None = None
    amount_due: Decimal | None = None
    amount: Decimal | None = None
    currency: str = "CNY"


#: Kinds of personal values, as detectors mark them in a :class:`Wording` (see
#: ``detectors.personal``): a borrower id, a device id, an account or counterparty id, an IP,
#: and a place (a city, or coordinates when the platform geolocated no city).
BORROWER, DEVICE, ACCOUNT, IP, PLACE = "borrower", "device", "account", "ip", "place"
PERSONAL_KINDS = frozenset({BORROWER, DEVICE, ACCOUNT, IP, PLACE})


def show_raw(kind: str, value: Any) -> str:
    """A personal value as a detector publishes it unmasked: a place as its city, or as its
    coordinates to 2 decimals; any other kind as it is.

    >>> show_raw(PLACE, {"city": None, "lat": 32.07, "lon": 118.8})
    '32.07,118.80'
    """
    if kind == PLACE:
        return str(value["city"] or f"{value['lat']:.2f},{value['lon']:.2f}")
    return str(value)


class _SlotFormatter(string.Formatter):
    """Python's format syntax, with a list slot joined by its format spec (``{ring:→}``),
    or by ", " when it has none."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, list):
            return (format_spec or ", ").join(str(item) for item in value)
        return format(value, format_spec)


_FORMATTER = _SlotFormatter()


@dataclass(frozen=True, slots=True)
class Wording:
    """A text the pipeline publishes (a reason's message, an episode, an evidence entry) as
    its template and the values of its slots, with the kind of each slot that holds a
    personal value (see :data:`PERSONAL_KINDS`).

    Internal, never published: detectors make it (``Detector.reason``, ``Detector.episode``)
    and publish its raw rendering; ``streams.privacy.Masker`` renders it again with the
    personal slots masked by their kind. It exists so that masking never depends on how a
    text is worded: a detector's message can be reworded without publishing a raw id.

    A template uses Python's format syntax; a slot holding a list of values is joined by its
    format spec. A place is ``{"city": ..., "lat": ..., "lon": ...}`` (see :func:`show_raw`).

    >>> ring = Wording("went {ring:→} in {hours:.1f} h", {"ring": ["a", "b", "a"], "hours": 2},
    ...                {"ring": ACCOUNT})
    >>> ring.render()
    'went a→b→a in 2.0 h'
    >>> ring.render(lambda kind, value: f"<{kind} {value}>")
    'went <account a>→<account b>→<account a> in 2.0 h'
    """

    template: str
    slots: Mapping[str, Any]
    personal: Mapping[str, str] = field(default_factory=dict)

    def render(self, show: Callable[[str, Any], str] = show_raw) -> str:
        """The text, each personal slot (each item of a list) shown by ``show(kind, value)``:
        raw by default, masked by the masker."""
        values = dict(self.slots)
        for name, kind in self.personal.items():
            value = values[name]
            if isinstance(value, list):
                values[name] = [show(kind, item) for item in value]
            else:
                values[name] = show(kind, value)
        return _FORMATTER.vformat(self.template, (), values)


class Reason(faust.Record, **_RECORD_OPTIONS):
    """Why an alert fired: the observed value and what it was compared with.

    ``wording``, ``observed_kind`` and ``threshold_kind`` are internal, never published
    (``topics.codec.alert_to_dict`` leaves them out): the message as its template and slots,
    and the kind of ``observed`` and of ``threshold`` when they are personal values. Detectors
    set them (``Detector.reason``); ``streams.privacy.Masker`` reads them to mask each value
    by what it is rather than by how the message reads. A reason built by hand has none and
    names no one.
    """

    code: str
    message: str
    observed: float | str | None = None
    threshold: float | str | None = None
    wording: Wording | None = None
    observed_kind: str | None = None
    threshold_kind: str | None = None


class Alert(faust.Record, **_RECORD_OPTIONS):
    """What the pipeline publishes to the three alert topics (``alerts.*``).

    ``episode_wording`` and ``evidence_wording`` are internal, never published
    (``topics.codec.alert_to_dict`` leaves them out): the episode as its template and slots,
    and, when some evidence entries name someone (``flow_anomaly``'s borrower when it has no
    event ids), the wording of each entry in order (None for an event id, the platform's
    record id). Detectors set them (``Detector.finding``); ``streams.privacy.Masker`` reads
    them to mask the episode and the evidence by what their values are, never by parsing
    them. An alert built by hand has none and names no one but its borrower.
    """

    alert_id: str
    ts: datetime
    emitted_at: datetime
    category: str
    detector: str
    severity: str
    score: float
    borrower_id: str
    reasons: list[Reason]
    evidence: list[str]
    detector_version: str
    thresholds_version: str
    episode: str
    loan_id: str | None = None
    installment: int | None = None
    due_date: date | None = None
    schema_version: str = CONTRACT_VERSION
    episode_wording: Wording | None = None
    evidence_wording: list[Wording | None] | None = None


class Feedback(faust.Record, **_RECORD_OPTIONS):
    """A team's verdict on a published alert (``lending.feedback``, contract 2.2).

    ``alert_id`` is the id as published (masked when personal data is masked): the teams only
    ever see that one. The message key is the alert's ``borrower_id`` as published.
    """

    event_id: str
    ts: datetime
    alert_id: str
    verdict: str  # one of topics.validate.VERDICTS
    author: str
    note: str | None = None


class DeadLetter(faust.Record, **_RECORD_OPTIONS):
    """An input record the pipeline refused, kept whole with the reason."""

    source_topic: str
    partition: int
    offset: int
    reason: str
    value_b64: str
    key_b64: str | None
    received_at: datetime
    schema_version: str = CONTRACT_VERSION
