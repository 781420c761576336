"""Per-borrower state: small, plain, and serialisable to JSON for the changelog."""

from __future__ import annotations

import zlib
from array import array
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import zstandard

__all__ = [
    "BorrowerState",
    "InflowHistory",
    "Installment",
    "LoginHistory",
    "day_of",
    "installment_key",
]

SECONDS_PER_DAY = 86_400
INFLOW_HISTORY_DAYS = 96
MAX_KNOWN_DEVICES = 16
MAX_KNOWN_IPS = 16
MAX_OWN_ACCOUNTS = 8
#: First bytes of an encoded state (:meth:`BorrowerState.to_bytes`). The format includes the
#: compression dictionary: a new dictionary, a new tag, and the old ones kept to read.
STATE_FORMAT = b"LS3"
#: zstd level: 13 made records 3 % smaller than 12 and took 1.7 times as long, 19 another 3 %
#: and four times as long again (seed 7's states, 2026-12-07). A state is compressed when it
#: goes cold or a flush writes it, not once an event.
STATE_COMPRESSION = 13


def state_compressor(dictionary: zstandard.ZstdCompressionDict) -> zstandard.ZstdCompressor:
    """The compressor of LS3 records against ``dictionary`` (the records' own, or one being
    trained: ``benchmarks.state_dictionary`` measures a candidate as records would be)."""
    return zstandard.ZstdCompressor(
        level=STATE_COMPRESSION,
        dict_data=dictionary,
        write_checksum=False,  # Kafka's record batches carry their own CRC
        write_dict_id=False,  # the format tag names the dictionary
    )


#: LS3: zstd against a dictionary trained on typical states (``python -m
#: benchmarks.state_dictionary``: simulation seed 3, 200 borrowers, 90 days; not seed 7, which
#: the memory benchmark measures). A state repeats the keys, shapes and common values every
#: other one has. Against LS2 (zlib at level 9) it is 10 % smaller (2,009 B against 1,801 B a
#: state), compresses in 80-90 % of the time (457-511 µs against 573 µs) and reads in less
#: than half (8 µs against 22 µs; seed 7's states, one script, 2026-12-07).
_ZSTD_DICTIONARY = zstandard.ZstdCompressionDict(
    (Path(__file__).parent / "state_dictionary_3.zstd").read_bytes()
)
_COMPRESSOR = state_compressor(_ZSTD_DICTIONARY)
_DECOMPRESSOR = zstandard.ZstdDecompressor(dict_data=_ZSTD_DICTIONARY)
#: The formats before LS3, still read: zlib (raw deflate) against a preset dictionary, the
#: JSON of typical states (seed 3). LS1: the state of median size (2026-11). LS2: five states,
#: at the 10th to 90th percentiles of size, once detectors had grown new slots (2026-12-07).
_ZLIB_DICTIONARIES = {
    b"LS1": (Path(__file__).parent / "state_dictionary_1.json").read_bytes(),
    b"LS2": (Path(__file__).parent / "state_dictionary_2.json").read_bytes(),
}


def day_of(epoch: float) -> int:
    """UTC day number of an event time (days since 1970-01-01)."""
    return int(epoch // SECONDS_PER_DAY)


@dataclass(slots=True)
class InflowHistory:
    """Daily inflow sums over a ring of the last ``INFLOW_HISTORY_DAYS`` days of event time.

    A ring of doubles (~800 bytes) instead of a dict of days keeps state small; sums are used
    for ratios and trends only, so float is exact enough here (money itself stays Decimal).
    """

    sums: array[float] = field(default_factory=lambda: array("d", [0.0] * INFLOW_HISTORY_DAYS))
    first_day: int = -1
    last_day: int = -1

    def add(self, day: int, amount: float) -> None:
        if self.first_day < 0:
            self.first_day = self.last_day = day
        if day > self.last_day:
            # The day just closed keeps whole units: its sum is read only in ratios over days,
            # where a fraction of a yuan is nothing, and 96 such sums cost the changelog three
            # characters each fewer (rounded once: the cents of each payment still add up).
            closed = self.last_day % INFLOW_HISTORY_DAYS
            self.sums[closed] = round(self.sums[closed])
            for stale in range(max(self.last_day + 1, day - INFLOW_HISTORY_DAYS + 1), day + 1):
                self.sums[stale % INFLOW_HISTORY_DAYS] = 0.0
            self.last_day = day
        if day <= self.last_day - INFLOW_HISTORY_DAYS:
            return  # older than the ring: too late to count
        self.first_day = min(self.first_day, day)
        # Kept to the cent: money has no more, and a sum like 2580.3399999999997 would cost
        # the changelog 18 characters where 7 do.
        slot = day % INFLOW_HISTORY_DAYS
        self.sums[slot] = round(self.sums[slot] + amount, 2)

    def compact(self) -> list[float | int]:
        """The sums for JSON, whole ones as integers (``1105``, not ``1105.0``): read back as
        floats, the same values."""
        return [whole if (whole := int(v)) == v else v for v in self.sums]

    def total(self, start_day: int, end_day: int) -> tuple[float, int]:
        """Sum and number of days in ``[start_day, end_day)`` since the first inflow.

        Days after the last inflow count as zero: callers ask at an event time every stream
        has passed, so a day with no inflow recorded had none.
        """
        if self.first_day < 0:
            return 0.0, 0
        start = max(start_day, self.first_day, self.last_day - INFLOW_HISTORY_DAYS + 1)
        if end_day <= start:
            return 0.0, 0
        recorded_end = min(end_day, self.last_day + 1)
        total = sum(self.sums[d % INFLOW_HISTORY_DAYS] for d in range(start, recorded_end))
        return total, end_day - start


@dataclass(slots=True)
class LoginHistory:
    """Devices and IPs a borrower has succeeded from, and the recent failed attempts."""

    known_devices: dict[str, int] = field(default_factory=dict)  # device -> last day seen
    known_ips: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[float, str, str, str]] = field(default_factory=list)  # ts, event, ip, dev

    def remember(self, device_id: str, ip: str, day: int, forget_before: int) -> None:
        for known, key, cap in (
            (self.known_devices, device_id, MAX_KNOWN_DEVICES),
            (self.known_ips, ip, MAX_KNOWN_IPS),
        ):
            known[key] = max(day, known.get(key, day))
            for stale in [k for k, seen in known.items() if seen < forget_before]:
                del known[stale]
            while len(known) > cap:
                del known[min(known, key=known.__getitem__)]


@dataclass(slots=True)
class Installment:
    """One installment of a loan: what is due, and what was paid and reversed, with times."""

    loan_id: str
    number: int
    # Unknown until the "scheduled" event arrives (a payment may come first).
    due_date: date | None = None
    amount_due: Decimal | None = None
    scheduled_event: str | None = None
    payments: list[tuple[float, Decimal, str]] = field(default_factory=list)
    reversals: list[tuple[float, Decimal, str]] = field(default_factory=list)
    stages_done: list[str] = field(default_factory=list)
    #: Highest severity rank alerted for this installment (0 none, 1 low … 4 critical).
    alerted: int = 0

    def paid_by(self, epoch: float) -> Decimal:
        """Net amount paid up to and including ``epoch`` (event time), reversals deducted."""
        paid = sum((amount for ts, amount, _ in self.payments if ts <= epoch), Decimal(0))
        reversed_ = sum((amount for ts, amount, _ in self.reversals if ts <= epoch), Decimal(0))
        return paid - reversed_

    def paid_in_full_by(self, epoch: float) -> bool:
        return self.amount_due is not None and self.paid_by(epoch) >= self.amount_due

    def evidence_until(self, epoch: float) -> list[str]:
        scheduled = [self.scheduled_event] if self.scheduled_event else []
        return scheduled + [event for ts, _, event in self.payments + self.reversals if ts <= epoch]


@dataclass(slots=True)
class BorrowerState:
    """Everything the detectors remember about one borrower."""

    borrower_id: str
    partition: int = 0
    own_accounts: list[str] = field(default_factory=list)
    inflows: InflowHistory = field(default_factory=InflowHistory)
    logins: LoginHistory = field(default_factory=LoginHistory)
    installments: dict[str, Installment] = field(default_factory=dict)
    #: Each detector's own memory of the borrower, by detector name; JSON-compatible values.
    slots: dict[str, Any] = field(default_factory=dict)

    def note_own_account(self, account_id: str) -> None:
        """An account that appears as the borrower's ``account_id`` belongs to the borrower."""
        if account_id not in self.own_accounts:
            self.own_accounts.append(account_id)
            del self.own_accounts[:-MAX_OWN_ACCOUNTS]

    def to_bytes(self) -> bytes:
        """The changelog record: a header (format, partition) and the compressed JSON.

        JSON because the changelog is data other tools may read; compressed against a
        dictionary of typical states because a state is small and repeats the keys and shapes
        every other one has: under a third of the JSON.
        """
        body = _COMPRESSOR.compress(orjson.dumps(self.to_dict()))
        return STATE_FORMAT + self.partition.to_bytes(2, "big") + body

    @classmethod
    def from_bytes(cls, blob: bytes) -> BorrowerState:
        """Read :meth:`to_bytes` (this format or an earlier one), or the plain JSON that
        changelogs held before it."""
        if blob[:1] == b"{":
            return cls.from_dict(orjson.loads(blob))
        tag, body = blob[: len(STATE_FORMAT)], blob[len(STATE_FORMAT) + 2 :]
        if tag == STATE_FORMAT:
            return cls.from_dict(orjson.loads(_DECOMPRESSOR.decompress(body)))
        dictionary = _ZLIB_DICTIONARIES.get(tag)
        if dictionary is None:
            raise ValueError(f"not a borrower state record: {blob[:8]!r}")
        decompressor = zlib.decompressobj(-15, dictionary)
        return cls.from_dict(orjson.loads(decompressor.decompress(body) + decompressor.flush()))

    @staticmethod
    def partition_of(blob: bytes) -> int:
        """The partition of an encoded state, read from its header alone."""
        if blob[:1] == b"{":
            return int(orjson.loads(blob)["partition"])
        start = len(STATE_FORMAT)
        return int.from_bytes(blob[start : start + 2], "big")

    def to_dict(self) -> dict[str, Any]:
        return {
            "borrower_id": self.borrower_id,
            "partition": self.partition,
            "own_accounts": self.own_accounts,
            "inflows": [self.inflows.first_day, self.inflows.last_day, self.inflows.compact()],
            "devices": self.logins.known_devices,
            "ips": self.logins.known_ips,
            "failures": self.logins.failures,
            "slots": self.slots,
            "installments": installments_to_json(self.installments),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BorrowerState:
        first_day, last_day, sums = data["inflows"]
        state = cls(
            borrower_id=data["borrower_id"],
            partition=data["partition"],
            own_accounts=list(data["own_accounts"]),
            inflows=InflowHistory(array("d", sums), first_day, last_day),
            logins=LoginHistory(
                dict(data["devices"]), dict(data["ips"]), [tuple(f) for f in data["failures"]]
            ),
            slots=dict(data.get("slots", {})),
        )
        state.installments = installments_from_json(data["installments"])
        return state


def installments_to_json(installments: dict[str, Installment]) -> list[dict[str, Any]]:
    """Installments as JSON-compatible values (a changelog record holds them so)."""
    return [
        {
            "loan_id": i.loan_id,
            "number": i.number,
            "due_date": i.due_date.isoformat() if i.due_date else None,
            "amount_due": None if i.amount_due is None else str(i.amount_due),
            "scheduled_event": i.scheduled_event,
            "payments": [[ts, str(a), e] for ts, a, e in i.payments],
            "reversals": [[ts, str(a), e] for ts, a, e in i.reversals],
            "stages_done": i.stages_done,
            "alerted": i.alerted,
        }
        for i in installments.values()
    ]


def installments_from_json(values: list[dict[str, Any]]) -> dict[str, Installment]:
    installments = {}
    for raw in values:
        installment = Installment(
            loan_id=raw["loan_id"],
            number=raw["number"],
            due_date=date.fromisoformat(raw["due_date"]) if raw["due_date"] else None,
            amount_due=None if raw["amount_due"] is None else Decimal(raw["amount_due"]),
            scheduled_event=raw["scheduled_event"],
            payments=[(ts, Decimal(a), e) for ts, a, e in raw["payments"]],
            reversals=[(ts, Decimal(a), e) for ts, a, e in raw["reversals"]],
            stages_done=list(raw["stages_done"]),
            alerted=raw.get("alerted", 0),
        )
        installments[installment_key(installment.loan_id, installment.number)] = installment
    return installments


def logins_to_json(logins: LoginHistory) -> dict[str, Any]:
    """A login history as JSON-compatible values; shares its containers (no copy)."""
    return {"devices": logins.known_devices, "ips": logins.known_ips, "failures": logins.failures}


def logins_from_json(value: dict[str, Any]) -> LoginHistory:
    """The inverse of :func:`logins_to_json`; shares the containers too."""
    return LoginHistory(value["devices"], value["ips"], value["failures"])


def installment_key(loan_id: str, number: int) -> str:
    return f"{loan_id}#{number}"
