"""Account takeover: a burst of failed logins, then a success from a device never used before."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors import personal
from detectors.base import ABNORMAL_BEHAVIOUR, Detector, Finding, Output
from detectors.index import Found
from detectors.scenarios import at, geo, inputs, login
from detectors.state import SECONDS_PER_DAY, BorrowerState
from detectors.tunables import tunable
from topics.names import Source
from topics.records import Login, Reason

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["AccountTakeoverDetector", "TakeoverThresholds"]


@dataclass(frozen=True, slots=True)
class TakeoverThresholds:
    #: Failed logins counted within this many minutes before a success.
    failure_window_minutes: float = tunable(
        30.0, 1, 1440, "minutes before a success in which failed logins count"
    )
    #: This many failures, then a success from an unseen device, is a takeover.
    min_failures: int = tunable(
        5, 1, 100, "failures before a success from an unseen device that make a takeover"
    )
    #: Devices unused for this many days are forgotten.
    device_memory_days: int = tunable(90, 1, 730, "days after which an unused device is forgotten")
    #: A payout-account change or drawdown from a flagged login's device or IP within this
    #: many hours of it escalates the takeover.
    followup_hours: float = tunable(
        24.0, 1, 720, "hours after a flagged login in which a payout change or drawdown escalates"
    )
    #: Failures in the window before a success from a known device id replayed from an unseen
    #: IP, city or app (fewer than min_failures: the other signs are strong, typos are 1–3).
    min_failures_known_device: int = tunable(
        4, 1, 100, "failures before a known device id replayed from an unseen IP, city or app"
    )


MAX_REMEMBERED_FAILURES = 64
#: Cities and app families (user agents without version numbers) a borrower logged in from.
MAX_KNOWN_CITIES = 6
MAX_KNOWN_AGENTS = 4
#: Flagged logins remembered for their follow-ups (expired ones are dropped first).
MAX_FLAGS = 2
#: What a taken-over account is for, and the reason code of each when it follows a takeover.
FOLLOWUPS = {
    "payout_account_change": "payout_change_after_takeover",
    "drawdown": "drawdown_after_takeover",
}
# An app update changes the version numbers of its user agent, not the app or the phone model.
_VERSION_CHARACTERS = str.maketrans("", "", "0123456789._")

_DEVICE, _SPOOFED = 0, 1
#: The message of a payout change or drawdown after a flagged login (both codes of FOLLOWUPS).
_FOLLOWUP = "{what} {hours:.1f} h after the flagged login {flagged}, from its {via}"


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _city(event: Login) -> int | None:
    geo = event.geo
    city = geo.city if geo is not None else None
    return _crc(city) if city else None


def _agent(agent: str) -> int:
    """The app and phone model of a user agent, whatever its version numbers.

    >>> _agent("LendApp/5.2.4 (Android 14; Xiaomi 14)") == _agent("LendApp/5.3.1 (Android 14)")
    False
    >>> _agent("LendApp/5.2.4 (iPhone; iOS 17.4)") == _agent("LendApp/5.3.1 (iPhone; iOS 18.1)")
    True
    """
    return _crc(agent.translate(_VERSION_CHARACTERS))


def _memory() -> dict[str, Any]:
    # c: [crc, last day] of cities; u: [family crc, last day, crc of its last agent] of apps;
    # s: [week, city, agent crc] of the last login learnt from; r: [ts] of the last password
    # reset; f: flagged logins [ts, score, kind, device, ip, event].
    return {"c": [], "u": [], "s": [], "r": [], "f": []}


def _note(
    known: list[list[int]], key: int, day: int, cap: int, forget_before: int, *extra: int
) -> None:
    """Remember ``key`` (with ``extra``) as seen on ``day``; make room by forgetting what is
    oldest or unused since before ``forget_before`` (lookups skip those too)."""
    for entry in known:
        if entry[0] == key:
            entry[1:] = [max(entry[1], day), *extra]
            return
    known.append([key, day, *extra])
    known[:] = [entry for entry in known if entry[1] >= forget_before]
    while len(known) > cap:
        known.remove(min(known, key=lambda entry: entry[1]))


def _knows(known: list[list[int]], key: int | None, forget_before: int) -> bool | None:
    """Whether ``key`` is remembered; None if nothing to compare with is remembered."""
    recent = [entry[0] for entry in known if entry[1] >= forget_before]
    if key is None or not recent:
        return None
    return key in recent


class AccountTakeoverDetector(Detector):
    """Flags a successful login after a burst of failures from an unseen device, or from a
    known device id replayed from an unseen IP in an unseen city or app; escalates a payout
    change or drawdown that follows a flagged login.

    A borrower who mistypes a password a few times, or forgets it and succeeds on a device
    they already use, or changes phone without a failure burst, is not flagged; nor a traveller
    without a failure burst, an app update, a borrower who resets a forgotten password while
    away, or a borrower's own drawdown without a flagged login before it.
    """

    name = "account_takeover"
    category = ABNORMAL_BEHAVIOUR
    version = "2"
    writes = ("logins",)
    section = "takeover"
    thresholds_type = TakeoverThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """b-1's failures, then a success from an unseen device; and at-1's phone id replayed
        from another city by a script, then used to change the payout account and draw down."""

        def from_beijing(
            event_id: str, minutes: float, *, success: bool = True, **details: str
        ) -> Login:
            return login(
                event_id,
                at(days=1, minutes=minutes),
                device="at-phone",
                ip="198.51.100.23",
                success=success,
                borrower_id="at-1",
                geo=geo("Beijing"),
                user_agent="okhttp/4.9.3",
                **details,
            )

        return inputs(
            Source.LOGINS,
            [
                login("lg-home", at(days=-3), device="phone-1", ip="10.0.0.1"),
                *[
                    login(
                        f"lg-fail-{i}",
                        at(hours=6, minutes=i),
                        device="dev-x",
                        ip="203.0.113.9",
                        success=False,
                    )
                    for i in range(6)
                ],
                login("lg-win", at(hours=6, minutes=8), device="dev-x", ip="203.0.113.9"),
                login(
                    "at-home-1",
                    at(days=-2, hours=1),
                    device="at-phone",
                    ip="10.9.9.9",
                    borrower_id="at-1",
                    geo=geo("Shanghai"),
                    user_agent="LendApp/5.2.4 (iPhone; iOS 17.4)",
                ),
                *[from_beijing(f"at-fail-{i}", i, success=False) for i in range(5)],
                from_beijing("at-win", 6),
                from_beijing("at-payout", 20, action="payout_account_change"),
                from_beijing("at-drawdown", 35, action="drawdown", amount="180000"),
            ],
        )

    messages = {
        "failed_login_burst": "{failures} failed logins in the {minutes:g} minutes before the "
        "success",
        "unseen_device": "device {device} was never used by this borrower ({known} known)",
        "unseen_ip": "IP {ip} never used before",
        "spoofed_known_device": "device {device} is the borrower's own, but the login after the "
        "failures came from elsewhere",
        "unseen_city": "city {city} never logged in from ({known} known)",
        "unseen_user_agent": "app {agent} never used by this borrower, whatever the version "
        "({known} known)",
        **{code: _FOLLOWUP for code in FOLLOWUPS.values()},
    }
    episodes = {
        "device": "device:{device}",
        "spoofed": "spoofed:{device}:{ip}",
        "device_followup": "device:{device}:followup",
        "spoofed_followup": "spoofed:{device}:{ip}:followup",
    }

    def __init__(self, thresholds: TakeoverThresholds) -> None:
        self.thresholds = thresholds
        self._min_burst = min(thresholds.min_failures, thresholds.min_failures_known_device)

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        t = self.thresholds
        history = state.logins
        epoch = event.ts.timestamp()
        if history.failures:
            window_start = epoch - t.failure_window_minutes * 60.0
            history.failures = [f for f in history.failures if f[0] >= window_start]
        action = event.action
        if action in FOLLOWUPS:
            return self._followup(event, state, epoch)
        if not event.success:
            if action == "login":
                history.failures.append((epoch, event.event_id, event.ip, event.device_id))
                del history.failures[:-MAX_REMEMBERED_FAILURES]
            return []
        if action == "password_reset":
            self.slot(state, _memory)["r"] = [epoch]
            return []
        if action != "login":
            # Only a successful login vouches for a device: a password reset or a payout
            # change from an unseen device must not make the attacker's device "known".
            return []
        memory: dict[str, Any] = self.slot(state, _memory)
        device, ip = event.device_id, event.ip
        flagged: Finding | None = None
        kind = _DEVICE
        if len(history.failures) >= self._min_burst and history.known_devices:
            recent = [f for f in history.failures if f[0] <= epoch]
            if device not in history.known_devices:
                if len(recent) >= t.min_failures:
                    flagged = self._finding(event, state, recent)
            elif len(recent) >= t.min_failures_known_device:
                flagged, kind = self._spoofed(event, state, memory, recent), _SPOOFED
        if flagged is not None:
            flag = [epoch, round(flagged.score, 4), kind, device, ip, event.event_id]
            memory["f"] = [*memory["f"], flag][-MAX_FLAGS:]
        day = int(epoch // SECONDS_PER_DAY)  # day_of, inlined: this runs for every login
        forget_before = day - t.device_memory_days
        if history.known_devices.get(device) != day or history.known_ips.get(ip) != day:
            # Seen both today already: remembering again would change nothing.
            history.remember(device, ip, day, forget_before=forget_before)
        geo, agent = event.geo, event.user_agent
        city = geo.city if geo is not None else None
        raw = zlib.crc32(agent.encode()) if agent else 0
        seen = [day // 7, city, raw]
        if memory["s"] != seen:
            # Not the city and agent of the last login that week (most logins are): learn
            # them. Their days are a week late at most, against months of memory.
            memory["s"] = seen
            if city:
                _note(memory["c"], _crc(city), day, MAX_KNOWN_CITIES, forget_before)
            if agent:
                # A family costs a translation of the agent: once per agent while remembered.
                family = next((e[0] for e in memory["u"] if e[2] == raw), None) or _agent(agent)
                _note(memory["u"], family, day, MAX_KNOWN_AGENTS, forget_before, raw)
        return [] if flagged is None else [flagged]

    def _finding(
        self, event: Login, state: BorrowerState, failures: list[tuple[float, str, str, str]]
    ) -> Finding:
        t = self.thresholds
        new_ip = event.ip not in state.logins.known_ips
        excess = min(1.0, (len(failures) - t.min_failures) / 10.0)
        score = 0.75 + 0.1 * excess + (0.1 if new_ip else 0.0)
        device = personal.device(event.device_id)
        reasons = [
            self._burst(failures, t.min_failures),
            self.reason(
                "unseen_device",
                observed=device,
                threshold="known devices",
                device=device,
                known=len(state.logins.known_devices),
            ),
        ]
        if new_ip:
            reasons.append(self._unseen_ip(event))
        return self.finding(
            state.borrower_id,
            episode=self.episode("device", device=device),
            ts=event.ts,
            score=score,
            reasons=reasons,
            evidence=[f[1] for f in failures] + [event.event_id],
        )

    def _spoofed(
        self,
        event: Login,
        state: BorrowerState,
        memory: dict[str, Any],
        failures: list[tuple[float, str, str, str]],
    ) -> Finding | None:
        """A known device id from an unseen IP, in an unseen city or app: the id is replayed.

        A password reset between the first failure and the success is the owner's way back in
        (the reset reaches the owner's phone or mailbox), so it clears a traveller who forgot
        the password; cities and apps count as unseen only once some are known.
        """
        if event.ip in state.logins.known_ips:
            return None
        t = self.thresholds
        forget_before = int(event.ts.timestamp() // SECONDS_PER_DAY) - t.device_memory_days
        agent = _agent(event.user_agent) if event.user_agent else None
        unseen_city = _knows(memory["c"], _city(event), forget_before) is False
        unseen_agent = _knows(memory["u"], agent, forget_before) is False
        if not (unseen_city or unseen_agent):
            return None
        if memory["r"] and failures[0][0] <= memory["r"][0] <= event.ts.timestamp():
            return None
        device = personal.device(event.device_id)
        reasons = [
            self._burst(failures, t.min_failures_known_device),
            self.reason(
                "spoofed_known_device", observed=device, threshold="known devices", device=device
            ),
            self._unseen_ip(event),
        ]
        if unseen_city:
            # A city names no one (see streams.privacy): published as it is.
            reasons.append(
                self.reason(
                    "unseen_city",
                    observed=event.geo.city if event.geo else None,
                    threshold="known cities",
                    city=event.geo.city if event.geo else "",
                    known=len(memory["c"]),
                )
            )
        if unseen_agent:
            reasons.append(
                self.reason(
                    "unseen_user_agent",
                    observed=event.user_agent,
                    threshold="known user agents",
                    agent=event.user_agent,
                    known=len(memory["u"]),
                )
            )
        excess = min(1.0, (len(failures) - t.min_failures_known_device) / 10.0)
        score = 0.7 + 0.05 * excess + (0.1 if unseen_city else 0) + (0.1 if unseen_agent else 0)
        return self.finding(
            state.borrower_id,
            episode=self.episode("spoofed", device=device, ip=personal.ip(event.ip)),
            ts=event.ts,
            score=score,
            reasons=reasons,
            evidence=[f[1] for f in failures] + [event.event_id],
        )

    def _followup(self, event: Login, state: BorrowerState, epoch: float) -> Output:
        """A payout change or drawdown from a flagged login's device or IP within the hours."""
        memory = state.slots.get(self.name)
        if not memory or not memory["f"]:
            return []
        horizon = self.thresholds.followup_hours * 3600.0
        memory["f"] = [f for f in memory["f"] if epoch - f[0] <= horizon]
        for ts, score, kind, device, ip, flagged in reversed(memory["f"]):
            if ts > epoch or (device != event.device_id and ip != event.ip):
                continue
            hours = (epoch - ts) / 3600.0
            what = "a payout-account change" if event.action != "drawdown" else "a drawdown"
            amount = None if event.amount is None else float(event.amount)
            if amount is not None:
                what += f" of {amount:,.2f}"
            if not event.success:
                what = f"a failed attempt at {what}"
            drawdown = event.action == "drawdown"
            reason = self.reason(
                FOLLOWUPS[event.action],
                observed=amount if drawdown else round(hours, 2),
                threshold=self.thresholds.followup_hours,
                what=what,
                hours=hours,
                flagged=flagged,
                via="device" if device == event.device_id else "IP",
            )
            if kind == _DEVICE:
                episode = self.episode("device_followup", device=personal.device(device))
            else:
                episode = self.episode(
                    "spoofed_followup", device=personal.device(device), ip=personal.ip(ip)
                )
            return [
                self.finding(
                    state.borrower_id,
                    episode=episode,
                    ts=event.ts,
                    score=min(1.0, max(0.95, score + 0.15) if drawdown else max(0.9, score + 0.1)),
                    reasons=[reason],
                    evidence=[flagged, event.event_id],
                )
            ]
        return []

    def _burst(self, failures: list[tuple[float, str, str, str]], minimum: int) -> Reason:
        t = self.thresholds
        return self.reason(
            "failed_login_burst",
            observed=len(failures),
            threshold=minimum,
            failures=len(failures),
            minutes=t.failure_window_minutes,
        )

    def _unseen_ip(self, event: Login) -> Reason:
        address = personal.ip(event.ip)
        return self.reason("unseen_ip", observed=address, threshold="known IPs", ip=address)
