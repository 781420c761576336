"""Account takeover: a login not the borrower's own (failures, a new or replayed device, from
elsewhere), then a payout change or a drawdown within the session."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from detectors import personal
from detectors.base import ABNORMAL_BEHAVIOUR, Detector, Finding, Output
from detectors.index import Found
from detectors.scenarios import at, geo, inputs, login
from detectors.sessions import (
    CITY,
    DEVICE,
    FAILURES,
    IP,
    NETWORK,
    REPLAY,
    SIGNS,
    WHERE,
    WHO,
    Session,
    app_family,
    count,
    halve,
    network,
    surprises,
)
from detectors.state import SECONDS_PER_DAY, BorrowerState
from detectors.tunables import Rules, tunable
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
    #: Minutes after a novel login in which a payout change or drawdown is judged with it: an
    #: attacker cashes out within minutes of getting in; a borrower who changes phone or
    #: travels changes the payout account, if at all, days later.
    session_minutes: float = tunable(
        120.0, 5, 1440, "minutes after a novel login in which its payout change or drawdown counts"
    )
    #: Surprise, in nats against the borrower's own logins, of what was new about a login (its
    #: device, IP, network, city, failures before it) from which a payout change in its
    #: session alerts; the login must also show a device not vouched for or failures, and a
    #: network or city new to the borrower.
    min_payout_novelty: float = tunable(
        5.0, 0.0, 50.0, "surprise of a session's login from which a payout change in it alerts"
    )
    #: The same for a drawdown without a payout change, from a device never used or a
    #: replayed id: it pays to the borrower's own account, so it needs more.
    min_drawdown_novelty: float = tunable(
        7.0, 0.0, 50.0, "surprise of a login from a new device from which a drawdown alerts alone"
    )
    #: Logins over which a borrower's rates of new devices, IPs, networks, cities and failed
    #: logins are measured (older ones weigh less): a borrower on a carrier's shared addresses
    #: gets a new IP every day, one at home almost never.
    novelty_memory_logins: int = tunable(
        60, 5, 1000, "logins over which a borrower's rate of each novelty is measured"
    )
    #: Weight, in logins, and share of the prior rate of each novelty: a borrower with a short
    #: history is not surprised by much.
    prior_logins: float = tunable(4.0, 0.5, 100.0, "logins the prior rate of a novelty weighs")
    prior_novelty_share: float = tunable(
        0.2, 0.001, 1.0, "prior share of logins that show each novelty"
    )
    #: Logins a borrower needs (after its first) before its sessions are judged; the prior
    #: keeps the surprise of a short history low, this keeps a borrower's first sessions (an
    #: app installed after signing up on a computer, the payout account bound) unjudged.
    min_history_logins: int = tunable(
        2, 1, 100, "logins after the first a borrower needs before its sessions are judged"
    )
    #: Leading bits of an address that name its network (an operator's block, an office): no
    #: platform sends the operator, and a mobile address changes within its block.
    ipv4_network_bits: int = tunable(
        16, 8, 32, "leading bits of an IPv4 address naming its network"
    )
    ipv6_network_bits: int = tunable(
        32, 16, 128, "leading bits of an IPv6 address naming its network"
    )

    #: Rules across these tunables, each with what a team is told when a change breaks it.
    CONSTRAINTS: ClassVar[Rules[TakeoverThresholds]] = (
        (
            "takeover.min_payout_novelty must not exceed takeover.min_drawdown_novelty",
            lambda t: t.min_payout_novelty <= t.min_drawdown_novelty,
        ),
        (
            "takeover.session_minutes must not exceed takeover.followup_hours (in minutes)",
            lambda t: t.session_minutes <= t.followup_hours * 60,
        ),
    )


MAX_REMEMBERED_FAILURES = 64
#: Cities and app families (user agents without version numbers) a borrower logged in from.
MAX_KNOWN_CITIES = 6
MAX_KNOWN_AGENTS = 4
#: Networks (see takeover.ipv4_network_bits) a borrower logged in from.
MAX_KNOWN_NETWORKS = 8
#: Flagged logins remembered for their follow-ups (expired ones are dropped first).
MAX_FLAGS = 2
#: Novel sessions remembered for the actions in them (expired ones are dropped first).
MAX_SESSIONS = 2
#: What a taken-over account is for, and the reason code of each when it follows a takeover.
FOLLOWUPS = {
    "payout_account_change": "payout_change_after_takeover",
    "drawdown": "drawdown_after_takeover",
}
_DEVICE, _SPOOFED, _SESSION = 0, 1, 2
#: The message of a payout change or drawdown after a flagged login (both codes of FOLLOWUPS).
_FOLLOWUP = "{what} {hours:.1f} h after the flagged login {flagged}, from its {via}"
#: The reason code of each sign of a novel session (see detectors.sessions).
_SIGN_CODES = {
    DEVICE: "session_new_device",
    REPLAY: "session_replayed_device",
    IP: "session_unseen_ip",
    NETWORK: "session_unseen_network",
    CITY: "session_unseen_city",
    FAILURES: "session_failures",
}


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def _city(event: Login) -> int | None:
    geo = event.geo
    city = geo.city if geo is not None else None
    return _crc(city) if city else None


def _memory() -> dict[str, Any]:
    # c: [crc, last day] of cities; u: [family crc, last day, crc of its last agent] of apps;
    # s: [week, city, agent crc] of the last login learnt from; r: [ts] of the last password
    # reset; f: flagged logins [ts, score, kind, device, ip, event]; n: [network, last day]
    # of networks; h: novelty counters (detectors.sessions.count); v: novel sessions
    # (detectors.sessions.Session.to_json); w: [login, ts] of a payout change in a session
    # watched for the cash-out sequence alone (absent until one).
    return {"c": [], "u": [], "s": [], "r": [], "f": [], "n": [], "h": [0.0] * 6, "v": []}


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


def _knows_agent(known: list[list[int]], agent: str, forget_before: int) -> bool | None:
    """Whether the app family of ``agent`` is remembered (its exact agent first, which spares
    the translation); None if no family is."""
    raw = zlib.crc32(agent.encode())
    if any(entry[2] == raw and entry[1] >= forget_before for entry in known):
        return True
    return _knows(known, app_family(agent), forget_before)


def _reset_during(
    memory: dict[str, Any], failures: list[tuple[float, str, str, str]], epoch: float
) -> bool:
    """Whether the password was reset between the first failure and the success: the owner's
    way back in (the reset reaches the owner's phone or mailbox). Whoever reset it from
    elsewhere is judged by the session that follows (see ``_view``)."""
    return bool(memory["r"]) and failures[0][0] <= memory["r"][0] <= epoch


def _what(event: Login) -> str:
    """A payout change or drawdown as a reason tells it: with its amount, and if it failed."""
    what = "a payout-account change" if event.action != "drawdown" else "a drawdown"
    if event.amount is not None:
        what += f" of {float(event.amount):,.2f}"
    if not event.success:
        what = f"a failed attempt at {what}"
    return what


class AccountTakeoverDetector(Detector):
    """Flags a successful login after a burst of failures from an unseen device, or from a
    known device id replayed from an unseen IP in an unseen city or app; and a payout change
    or drawdown within minutes of a login that was not the borrower's own habit, whatever
    the failures before it. Escalates a payout change or drawdown that follows a flagged login.

    An attacker with phished credentials gets in at the first try, and one who replays the
    victim's device id and app fails a few times at most; what gives both away is the
    session: a login from a device not vouched for (new, or a known id sent with an app
    family the borrower never used) or after failures, from a network or city new to the
    borrower, then the payout account changed and the loan drawn within minutes. Each
    novelty of the login is priced by how often the borrower's own logins show it (a
    borrower on a carrier's shared addresses has a new IP most days; one at home almost
    never): a payout change in a session whose login is surprising enough alerts (high), the
    drawdown after it escalates (critical), and a drawdown alone alerts when the login came
    from a new device and is more surprising still.

    A borrower who mistypes a password a few times, or forgets it and resets it (on a device
    they already use, or on a new phone), or changes phone without a failure burst, is not
    flagged at the login; nor a traveller without a failure burst, an app update, a borrower
    who resets a forgotten password while away, or a borrower's own drawdown without a
    flagged login before it. A new phone at home (its network known), a payout change days
    after a new phone, a traveller on its own phone drawing down to its own account and a
    payout change from a known device at home are ordinary sessions.
    """

    name = "account_takeover"
    category = ABNORMAL_BEHAVIOUR
    version = "3"
    writes = ("logins",)
    section = "takeover"
    thresholds_type = TakeoverThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """b-1's failures, then a success from an unseen device; at-1's phone id replayed
        from another city by a script, then used to change the payout account and draw down;
        and pw-1's password used at the first try from a new phone in another city, then the
        payout account changed and the loan drawn within minutes."""
        return inputs(
            Source.LOGINS, [*_failures_then_unseen_device(), *_replayed_phone(), *_phished()]
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
        "payout_change_in_novel_session": "{what} {minutes:.0f} min after the login {login}, "
        "whose novelties are {novelty:.1f} nats of surprise for this borrower (alerts from "
        "{minimum:g})",
        "drawdown_in_novel_session": "{what} {minutes:.0f} min after the login {login} from a "
        "device not vouched for, whose novelties are {novelty:.1f} nats of surprise for this "
        "borrower (alerts alone from {minimum:g})",
        "drawdown_after_payout_change_in_new_session": "{what} {minutes:.0f} min after the "
        "login {login} from a new device on an address never used, and after the payout "
        "account was changed in the same session ({payout_minutes:.0f} min after the login)",
        "session_new_device": "the login came from device {device}, never used by this "
        "borrower (a new device on {rate:.0%} of its logins)",
        "session_replayed_device": "the login sent the borrower's own device id {device} with "
        "app {agent}, never used by this borrower whatever the version",
        "session_unseen_ip": "the login came from IP {ip}, never used before (a new IP on "
        "{rate:.0%} of its logins)",
        "session_unseen_network": "its network was never used before (a new network on "
        "{rate:.0%} of its logins)",
        "session_unseen_city": "the login came from {city}, never logged in from (a new city "
        "on {rate:.0%} of its logins)",
        "session_failures": "{failures} failed login(s) came in the {minutes:g} minutes before "
        "it (failures come before {rate:.0%} of its logins)",
    }
    episodes = {
        "device": "device:{device}",
        "spoofed": "spoofed:{device}:{ip}",
        "session": "session:{device}:{ip}",
        "device_followup": "device:{device}:followup",
        "spoofed_followup": "spoofed:{device}:{ip}:followup",
        "session_followup": "session:{device}:{ip}:followup",
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
            return self._followup(event, state, epoch) or self._in_session(event, state, epoch)
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
        flagged = self._after_burst(event, state, memory, epoch)
        day = int(epoch // SECONDS_PER_DAY)  # day_of, inlined: this runs for every login
        forget_before = day - t.device_memory_days
        new_network = ip not in history.known_ips and self._learn_network(
            event, state, memory, day, forget_before
        )
        geo, agent = event.geo, event.user_agent
        city = geo.city if geo is not None else None
        raw = zlib.crc32(agent.encode()) if agent else 0
        seen = [day // 7, city, raw]
        if memory.get("v") and epoch - memory["v"][0][0] > t.session_minutes * 60.0:
            memory["v"] = [s for s in memory["v"] if epoch - s[0] <= t.session_minutes * 60.0]
        if history.known_devices:
            session = self._view(event, state, memory, epoch, new_network, memory["s"] == seen)
            if session is not None and flagged is None:
                horizon = epoch - t.session_minutes * 60.0
                kept = [s for s in memory.setdefault("v", []) if s[0] >= horizon]
                memory["v"] = [*kept, session.to_json()][-MAX_SESSIONS:]
        if history.known_devices.get(device) != day or history.known_ips.get(ip) != day:
            # Seen both today already: remembering again would change nothing.
            history.remember(device, ip, day, forget_before=forget_before)
        if memory["s"] != seen:
            # Not the city and agent of the last login that week (most logins are): learn
            # them. Their days are a week late at most, against months of memory.
            memory["s"] = seen
            _learn_city_and_agent(memory, city, agent, raw, day, forget_before)
        return [] if flagged is None else [flagged]

    def _after_burst(
        self, event: Login, state: BorrowerState, memory: dict[str, Any], epoch: float
    ) -> Finding | None:
        """The success that ends a burst of failures: from a device the borrower never used,
        or from its own device id replayed elsewhere; a finding is remembered as a flag, for
        the follow-ups that may raise it."""
        t = self.thresholds
        history = state.logins
        if len(history.failures) < self._min_burst or not history.known_devices:
            return None
        flagged: Finding | None = None
        kind = _DEVICE
        recent = [f for f in history.failures if f[0] <= epoch]
        if event.device_id not in history.known_devices:
            if len(recent) >= t.min_failures and not _reset_during(memory, recent, epoch):
                flagged = self._finding(event, state, recent)
        elif len(recent) >= t.min_failures_known_device:
            flagged, kind = self._spoofed(event, state, memory, recent), _SPOOFED
        if flagged is not None:
            flag = [epoch, round(flagged.score, 4), kind, event.device_id, event.ip, event.event_id]
            memory["f"] = [*memory["f"], flag][-MAX_FLAGS:]
        return flagged

    def _learn_network(
        self,
        event: Login,
        state: BorrowerState,
        memory: dict[str, Any],
        day: int,
        forget_before: int,
    ) -> bool:
        """Whether the network of a login from an unseen IP is new to the borrower (some
        being known); learns it. A known IP is on a known network: only an unseen one costs
        the prefix."""
        t = self.thresholds
        networks = memory.get("n")
        if networks is None:
            # A state from before networks were kept: seed them with the IPs it knows.
            networks = memory["n"] = []
            for known_ip, seen in state.logins.known_ips.items():
                key = network(known_ip, t.ipv4_network_bits, t.ipv6_network_bits)
                _note(networks, key, seen, MAX_KNOWN_NETWORKS, forget_before)
        key = network(event.ip, t.ipv4_network_bits, t.ipv6_network_bits)
        unseen = _knows(networks, key, forget_before) is False
        _note(networks, key, day, MAX_KNOWN_NETWORKS, forget_before)
        return unseen

    def _view(
        self,
        event: Login,
        state: BorrowerState,
        memory: dict[str, Any],
        epoch: float,
        new_network: bool,
        usual: bool,
    ) -> Session | None:
        """What is new about a successful login of a borrower with a history, counted in its
        novelty rates; the session it opens when that is novel enough to watch.

        A session is watched when the login shows a device not vouched for or failures
        before it (someone else's hands), and an address, network or city new to the
        borrower (someone else's place), with a surprise of at least ``min_payout_novelty``.
        ``usual``: the city and agent are those of the borrower's last login this week.
        """
        t = self.thresholds
        history = state.logins
        counters = memory.get("h")
        if counters is None:
            counters = memory["h"] = [0.0] * (len(SIGNS) + 1)
        device_known = event.device_id in history.known_devices
        ip_known = event.ip in history.known_ips
        if usual and device_known and ip_known and not history.failures:
            # Most logins: the phone, address, city and app of the days before.
            counters[0] += 1.0
            if counters[0] >= 2 * t.novelty_memory_logins:
                halve(counters)
            return None
        forget_before = int(epoch // SECONDS_PER_DAY) - t.device_memory_days
        signs = 0 if ip_known else IP | (NETWORK if new_network else 0)
        agent = event.user_agent or ""
        if not device_known:
            signs |= DEVICE
        elif not usual and agent and _knows_agent(memory["u"], agent, forget_before) is False:
            signs |= REPLAY
        if not usual and _knows(memory["c"], _city(event), forget_before) is False:
            signs |= CITY
        failures = sum(1 for f in history.failures if f[0] <= epoch)
        if failures:
            signs |= FAILURES
        judged = counters[0] >= t.min_history_logins and signs & WHO
        prices = surprises(counters, t.prior_logins, t.prior_novelty_share) if judged else None
        count(counters, signs, t.novelty_memory_logins)
        if prices is None:
            return None
        shown = [signs & (sign | (REPLAY if sign == DEVICE else 0)) for sign in SIGNS]
        session = Session(
            ts=epoch,
            device=event.device_id,
            ip=event.ip,
            login=event.event_id,
            signs=signs,
            surprise=tuple(p if show else 0.0 for p, show in zip(prices, shown, strict=True)),
            failures=failures,
            city=(event.geo.city or "") if event.geo is not None else "",
            agent=agent,
        )
        if self._watched(session):
            return session
        # A new device on an address never used, not surprising enough on its own (a borrower
        # who often changes phone, or on a carrier's shared addresses): watched for the
        # cash-out sequence alone, a payout change and then a drawdown (see _in_session).
        return session if signs & (DEVICE | REPLAY) and signs & IP else None

    def _watched(self, session: Session) -> bool:
        """Novel enough that a payout change in the session alerts: someone else's hands (a
        device not vouched for, failures) in someone else's place (an address, network or
        city new to the borrower: an attacker in the victim's city shares its network, not
        its addresses), with at least ``min_payout_novelty`` nats of surprise."""
        return bool(session.signs & (WHERE | IP)) and (
            session.novelty >= self.thresholds.min_payout_novelty
        )

    def _in_session(self, event: Login, state: BorrowerState, epoch: float) -> Output:
        """A payout change, or a drawdown, within ``session_minutes`` of a novel login, from
        its device or IP."""
        memory = state.slots.get(self.name)
        if not memory or not memory.get("v"):
            return []
        t = self.thresholds
        horizon = t.session_minutes * 60.0
        memory["v"] = [s for s in memory["v"] if epoch - s[0] <= horizon]
        for raw in reversed(memory["v"]):
            if raw[0] > epoch or (raw[1] != event.device_id and raw[2] != event.ip):
                continue
            session = Session.from_json(raw)
            if not self._watched(session):
                return self._cash_out(event, state, session, memory, epoch)
            if event.action == "payout_account_change":
                finding = self._session_finding(event, state, session, epoch)
                flag: list[Any] = [session.ts, round(finding.score, 4), _SESSION]
                flag += [session.device, session.ip, session.login]
                memory["f"] = [*memory["f"], flag][-MAX_FLAGS:]
                return [finding]
            if session.signs & (DEVICE | REPLAY) and session.novelty >= t.min_drawdown_novelty:
                return [self._session_finding(event, state, session, epoch)]
            return []
        return []

    def _cash_out(
        self,
        event: Login,
        state: BorrowerState,
        session: Session,
        memory: dict[str, Any],
        epoch: float,
    ) -> Output:
        """In a session of a new device on an unseen address that was not novel enough to
        watch: a payout change is remembered, and a drawdown after it in the same session is
        the cash-out of phished credentials (a borrower with a new phone changes its payout
        account, if at all, days later, and draws to the account it knows)."""
        if event.action == "payout_account_change":
            if event.success:
                memory["w"] = [session.login, epoch]
            return []
        paid_out = memory.get("w")
        if not paid_out or paid_out[0] != session.login or paid_out[1] > epoch:
            return []
        del memory["w"]
        return [self._session_finding(event, state, session, epoch, after_payout=paid_out[1])]

    def _session_finding(
        self,
        event: Login,
        state: BorrowerState,
        session: Session,
        epoch: float,
        after_payout: float | None = None,
    ) -> Finding:
        """High at a payout change in a novel session, critical at a drawdown alone, or at a
        drawdown after a payout change in a new device's session (``after_payout``)."""
        t = self.thresholds
        drawdown = event.action == "drawdown"
        minimum = t.min_drawdown_novelty if drawdown else t.min_payout_novelty
        excess = min(1.0, (session.novelty - minimum) / max(minimum, 1.0))
        if after_payout is not None:
            excess = 0.0
            first = self.reason(
                "drawdown_after_payout_change_in_new_session",
                observed=round((epoch - session.ts) / 60.0, 1),
                threshold=t.session_minutes,
                what=_what(event),
                minutes=(epoch - session.ts) / 60.0,
                payout_minutes=(after_payout - session.ts) / 60.0,
                login=session.login,
            )
        else:
            first = self.reason(
                "drawdown_in_novel_session" if drawdown else "payout_change_in_novel_session",
                observed=round(session.novelty, 2),
                threshold=minimum,
                what=_what(event),
                minutes=(epoch - session.ts) / 60.0,
                login=session.login,
                novelty=session.novelty,
                minimum=minimum,
            )
        reasons = [first, *self._signs(session)]
        device, ip = personal.device(session.device), personal.ip(session.ip)
        name = "session_followup" if drawdown else "session"
        return self.finding(
            state.borrower_id,
            episode=self.episode(name, device=device, ip=ip),
            ts=event.ts,
            score=(0.9 + 0.09 * excess) if drawdown else (0.75 + 0.14 * excess),
            reasons=reasons,
            evidence=[session.login, event.event_id],
        )

    def _signs(self, session: Session) -> list[Reason]:
        """One reason per novelty of a session's login, with the borrower's own rate of it."""
        rates = dict(zip(SIGNS, (math.exp(-s) for s in session.surprise), strict=True))
        device, ip = personal.device(session.device), personal.ip(session.ip)
        reasons = []
        for sign, code in _SIGN_CODES.items():
            if not session.signs & sign:
                continue
            rate = rates[DEVICE if sign == REPLAY else sign]
            slots: dict[str, Any] = {"rate": rate}
            observed: Any = round(rate, 4)
            if sign in (DEVICE, REPLAY):
                slots.update(device=device, agent=session.agent)
                observed = device
            elif sign == IP:
                slots["ip"] = observed = ip
            elif sign == CITY:
                slots["city"] = observed = session.city
            elif sign == FAILURES:
                slots.update(
                    failures=session.failures, minutes=self.thresholds.failure_window_minutes
                )
                observed = session.failures
            reasons.append(
                self.reason(code, observed=observed, threshold="its own logins", **slots)
            )
        return reasons

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

        A password reset between the first failure and the success clears a traveller who
        forgot the password (see ``_reset_during``); cities and apps count as unseen only once
        some are known.
        """
        if event.ip in state.logins.known_ips:
            return None
        t = self.thresholds
        forget_before = int(event.ts.timestamp() // SECONDS_PER_DAY) - t.device_memory_days
        agent = app_family(event.user_agent) if event.user_agent else None
        unseen_city = _knows(memory["c"], _city(event), forget_before) is False
        unseen_agent = _knows(memory["u"], agent, forget_before) is False
        if not (unseen_city or unseen_agent):
            return None
        if _reset_during(memory, failures, event.ts.timestamp()):
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
            what = _what(event)
            amount = None if event.amount is None else float(event.amount)
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
                    "spoofed_followup" if kind == _SPOOFED else "session_followup",
                    device=personal.device(device),
                    ip=personal.ip(ip),
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


def _learn_city_and_agent(
    memory: dict[str, Any], city: str | None, agent: str | None, raw: int, day: int, forget: int
) -> None:
    """Remember the login's city and app family as seen on ``day``."""
    if city:
        _note(memory["c"], _crc(city), day, MAX_KNOWN_CITIES, forget)
    if agent:
        # A family costs a translation of the agent: once per agent while remembered.
        family = next((e[0] for e in memory["u"] if e[2] == raw), None) or app_family(agent)
        _note(memory["u"], family, day, MAX_KNOWN_AGENTS, forget, raw)


def _failures_then_unseen_device() -> list[Login]:
    """b-1: six failures from an unseen device and IP, then a success from them."""
    return [
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
    ]


def _replayed_phone() -> list[Login]:
    """at-1: its phone id replayed by a script from Beijing after failures, then the payout
    account changed and the loan drawn down."""

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

    return [
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
    ]


def _phished() -> list[Login]:
    """pw-1: its password right at the first try from a new phone in Shenzhen, then the payout
    account changed and the loan drawn within minutes."""
    home = [
        login(
            f"pw-home-{day}",
            at(days=day, hours=2),
            device="pw-phone",
            ip="192.0.2.10",
            borrower_id="pw-1",
            geo=geo("Shanghai"),
            user_agent="LendApp/5.3.0 (iPhone; iOS 17.4)",
        )
        for day in (-6, -5, -4, -3)
    ]
    session = [
        login(
            f"pw-{action}",
            at(days=2, minutes=minutes),
            device="pw-new",
            ip="198.51.100.200",
            action=action,
            borrower_id="pw-1",
            geo=geo("Shenzhen"),
            user_agent="LendApp/5.3.0 (Android 14; Pixel 8)",
            amount=amount,
        )
        for action, minutes, amount in (
            ("login", 0, None),
            ("payout_account_change", 6, None),
            ("drawdown", 13, "150000"),
        )
    ]
    return home + session
