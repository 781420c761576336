"""Credential stuffing: one IP failing to log into many borrowers, on devices new to each."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from detectors import personal
from detectors.base import ABNORMAL_BEHAVIOUR, Detector, Finding, Output
from detectors.device_ring import crowded
from detectors.index import Found, Lookups, Read, Write
from detectors.scenarios import at, inputs, login
from detectors.sessions import app_family
from detectors.state import SECONDS_PER_DAY, BorrowerState
from detectors.tunables import tunable
from topics.names import Source
from topics.records import Login, Reason
from topics.validate import InputRecord

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["CredentialStuffingDetector", "CredentialStuffingThresholds"]


@dataclass(frozen=True, slots=True)
class CredentialStuffingThresholds:
    #: The failures must all fall within a span of this many hours (an attack may be slow).
    window_hours: float = tunable(12.0, 0.1, 168.0, "hours within which the failures fall")
    #: This many distinct borrowers failing from one IP, each on a device new to them (count).
    min_borrowers: int = tunable(
        8, 2, 10000, "distinct borrowers failing from one IP on new devices"
    )
    #: Share of the IP's failing borrowers who were on a new device at or above which the
    #: failures are the attacker's alone; raises the score (typos come from known devices).
    min_failure_ratio: float = tunable(
        0.8, 0.0, 1.0, "share on a new device from which the failures are an attacker's"
    )


HOUR = 3600.0
#: Devices a borrower has logged in from, remembered to tell its typos from an attacker's tries.
MAX_KNOWN_DEVICES = 8
#: App families (user agents without version numbers) a borrower logged in with.
MAX_FAMILIES = 4
#: (IP, time bucket, kind) marks a borrower remembers, to write each to the index once.
MAX_WRITTEN = 4
#: Buckets per window: a borrower writes at most one attempt of each kind per IP per bucket.
BUCKETS_PER_WINDOW = 12
#: Kinds of members: a failure on a device the borrower used before, on a new device, and a
#: success on a new device (only the last two are written for successes).
KNOWN_FAILURE, NEW_FAILURE, NEW_SUCCESS = 0, 1, 2


def _known_devices(state: BorrowerState) -> dict[str, Any]:
    """Memory of a borrower first met: seeded with the devices it logged in from before."""
    known = sorted(state.logins.known_devices.items(), key=lambda item: (-item[1], item[0]))
    return {
        "d": [[zlib.crc32(device.encode()), day] for device, day in known[:MAX_KNOWN_DEVICES]],
        "w": [],
        "a": [],
    }


class CredentialStuffingDetector(Detector):
    """Flags every borrower of a span of ``window_hours`` in which one IP failed to log into
    ``min_borrowers`` distinct borrowers, each time from a device the borrower never logged in
    from; and the borrowers the IP got into from a new device within that span.

    An attacker replaying leaked passwords has none of the victims' devices; borrowers behind a
    carrier-grade NAT or an office address who mistype do so on their own phones, and when an
    app release or a reset gives their phones new ids, those phones still send the app and
    model (the app family) the borrower logged in with: a new id of a known family is not an
    attacker's device. Counting only
    failures on new devices keeps the condition one that only grows with the events seen, so
    every arrival order yields the same alert ids (see :func:`detectors.device_ring.crowded`);
    a failure share against the IP's successes would shrink as successes arrive and could not
    (and a NAT address the attacker shares with hundreds of users has a low one). One borrower
    failing many times is a takeover attempt, not stuffing: it counts once.

    Failed logins write ``[borrower, event, kind, ts]`` to ``ipfail:{ip}``, successful ones from
    a device new to the borrower to ``ipok:{ip}``, scored by event time; both read the two sets
    ``±window_hours`` around the event.
    """

    name = "credential_stuffing"
    category = ABNORMAL_BEHAVIOUR
    version = "2"
    section = "credential_stuffing"
    thresholds_type = CredentialStuffingThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """Nine borrowers who each fail once from one address on a bot phone within 45 minutes."""
        return inputs(
            Source.LOGINS,
            [
                login(
                    f"cs-try-{i}",
                    at(days=3, minutes=5 * i),
                    device="cs-bot",
                    ip="198.51.100.77",
                    success=False,
                    borrower_id=f"cs-{i}",
                )
                for i in range(1, 10)
            ],
        )

    messages = {
        "ip_failures_across_borrowers": "IP {ip} failed to log into {victims} borrowers within "
        "{hours:.1f} h, each time from a device the borrower never logged in from",
        "ip_failure_ratio": "{victims} of the {failing} borrowers failing from this IP then were "
        "on a device new to them: not their own typos",
        "login_during_stuffing": "the IP then logged into this borrower from a device new to it",
    }
    episodes = {"ip": "ip:{ip}"}

    def __init__(self, thresholds: CredentialStuffingThresholds) -> None:
        self.thresholds = thresholds

    def lookups(self, event: InputRecord, state: BorrowerState) -> Lookups | None:
        """Learn devices from successes; write and read for a failure or a new device.

        The engine asks every event's lookups, in order, before any hook of the batch runs, so
        what decides the member written (is the device new to the borrower?) is learnt here:
        the same members are written whatever the batch sizes.
        """
        if not isinstance(event, Login) or event.action != "login":
            return None
        memory: dict[str, Any] = self.slot(state, lambda: _known_devices(state))
        known: list[list[int]] = memory["d"]
        families: list[int] = memory.setdefault("a", [])
        device = zlib.crc32(event.device_id.encode())
        epoch = event.ts.timestamp()
        seen = any(entry[0] == device for entry in known)
        agent = event.user_agent
        if event.success:
            day = int(epoch // SECONDS_PER_DAY)
            if seen:
                for entry in known:
                    if entry[0] == device and entry[1] < day:
                        entry[1] = day
                if agent and not families:  # a borrower met before families were kept
                    families.append(app_family(agent))
                return None  # the common case: a login from a device the borrower uses
            known.append([device, day])
            if len(known) > MAX_KNOWN_DEVICES:
                known.remove(min(known, key=lambda entry: entry[1]))
            family = app_family(agent) if agent else None
            if family in families:
                return None  # its own phone model with a new id: a reinstall, a reset
            if family is not None:
                families.append(family)
                del families[:-MAX_FAMILIES]
            kind = NEW_SUCCESS
        elif seen or (agent and app_family(agent) in families):
            kind = KNOWN_FAILURE
        else:
            kind = NEW_FAILURE
        span = self.thresholds.window_hours * HOUR
        bucket = int(epoch // max(60.0, span / BUCKETS_PER_WINDOW))
        ip = event.ip
        mark = [zlib.crc32(ip.encode()), bucket, kind]
        written: list[list[int]] = memory["w"]
        if mark in written:
            return None
        written.append(mark)
        del written[:-MAX_WRITTEN]
        failures, successes = f"ipfail:{ip}", f"ipok:{ip}"
        member = orjson.dumps([event.borrower_id, event.event_id, kind, epoch])
        low, high = epoch - span, epoch + span
        return Lookups(
            (Write(successes if kind == NEW_SUCCESS else failures, member, epoch),),
            (Read(failures, low, high), Read(successes, low, high)),
            undo=partial(_forget, written, mark),
        )

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if not found:  # nothing written for this event, or the index is down
            return []
        failures, successes = found
        if len(failures) < self.thresholds.min_borrowers:
            return []
        return list(
            self.close(
                event.ip,
                [orjson.loads(m) for m in failures],
                [orjson.loads(m) for m in successes],
            )
        )

    def close(
        self, ip: str, failures: Sequence[list[Any]], successes: Sequence[list[Any]] = ()
    ) -> list[Finding]:
        """Findings for every borrower of a crowded span of failures on new devices from
        ``ip``, and for those it logged into from a new device within such a span.

        >>> detector = CredentialStuffingDetector(CredentialStuffingThresholds(min_borrowers=3))
        >>> tries = [[b, f"e-{b}", 1, 60.0 * i] for i, b in enumerate("ABC")]
        >>> [(f.borrower_id, f.episode) for f in detector.close("203.0.113.7", tries)]
        [('A', 'ip:203.0.113.7'), ('B', 'ip:203.0.113.7'), ('C', 'ip:203.0.113.7')]
        """
        t = self.thresholds
        strangers = sorted(
            (m for m in failures if m[2] == NEW_FAILURE), key=lambda m: (m[3], m[0], m[1])
        )
        stretches = self._stretches(strangers)
        if not stretches:
            return []

        def inside(member: list[Any]) -> bool:
            return any(start <= member[3] <= end for start, end in stretches)

        tried = [m for m in strangers if inside(m)]
        got_in = sorted(
            (m for m in successes if m[2] == NEW_SUCCESS and inside(m)),
            key=lambda m: (m[3], m[0], m[1]),
        )
        victims = {m[0] for m in tried}
        failing = {m[0] for m in failures if inside(m)}
        share = len(victims) / len(failing)
        hours = max(end - start for start, end in stretches) / HOUR
        reasons = self._ip_reasons(ip, len(victims), len(failing), hours)
        excess = min(1.0, (len(victims) - t.min_borrowers) / t.min_borrowers)
        score = 0.75 + 0.15 * excess + (0.05 if share >= t.min_failure_ratio else 0.0)
        return [
            self._finding(
                borrower,
                ip,
                [m for m in tried if m[0] == borrower],
                [m for m in got_in if m[0] == borrower],
                reasons,
                score,
            )
            for borrower in sorted(victims | {m[0] for m in got_in})
        ]

    def _stretches(self, strangers: list[list[Any]]) -> list[tuple[float, float]]:
        """Spans (first and last time) of failures on new devices, sorted by time, in which
        enough distinct borrowers failed within ``window_hours``."""
        t = self.thresholds
        return [
            (strangers[first][3], strangers[last][3])
            for first, last in crowded(
                [(m[3], m[0]) for m in strangers], t.window_hours * HOUR, t.min_borrowers
            )
        ]

    def _ip_reasons(self, ip: str, victims: int, failing: int, hours: float) -> list[Reason]:
        """What every borrower of the IP's crowded spans is told about the IP."""
        t = self.thresholds
        reasons = [
            self.reason(
                "ip_failures_across_borrowers",
                observed=victims,
                threshold=t.min_borrowers,
                ip=personal.ip(ip),
                victims=victims,
                hours=hours,
            )
        ]
        share = victims / failing
        if share >= t.min_failure_ratio:
            reasons.append(
                self.reason(
                    "ip_failure_ratio",
                    observed=round(share, 3),
                    threshold=t.min_failure_ratio,
                    victims=victims,
                    failing=failing,
                )
            )
        return reasons

    def _finding(
        self,
        borrower: str,
        ip: str,
        own: list[list[Any]],
        entered: list[list[Any]],
        reasons: list[Reason],
        score: float,
    ) -> Finding:
        """One borrower's finding: its failures from the IP, and its logins the IP got in by."""
        extra: list[Reason] = []
        if entered:
            extra.append(
                self.reason(
                    "login_during_stuffing", observed=entered[0][1], threshold="a new device"
                )
            )
        return self.finding(
            borrower,
            episode=self.episode("ip", ip=personal.ip(ip)),
            ts=datetime.fromtimestamp(max(m[3] for m in own + entered), UTC),
            score=min(1.0, score + (0.1 if entered else 0.0)),
            reasons=reasons + extra,
            evidence=[m[1] for m in sorted(own + entered, key=lambda m: m[3])],
        )


def _forget(written: list[list[int]], mark: list[int]) -> None:
    """The exchange that was to write ``mark``'s member failed: write it next time."""
    if mark in written:
        written.remove(mark)
