"""Account takeover, with or without a replayed device id; beside it, new phones and resets."""

from __future__ import annotations

from typing import Any

from sim.draws import LOGIN_CUM, login_cum, second
from sim.population import (
    Borrower,
    Device,
    away,
    broadband_ip,
    device_on,
    geo,
    mobile_ip,
    new_device,
    phone_agent,
    upgraded,
)
from sim.typologies.base import Typology, one_per, singles
from sim.typologies.common import attacker_agent, session
from sim.world import DAY, HOUR, MINUTE, World, money, round_to
from topics.names import ABNORMAL_BEHAVIOUR

#: Failed logins before the attacker gets in from a fresh device, and over how long; the
#: failures of a replay are the profile's ``replay_failures``, over REPLAY_FAILURE_WINDOW.
FAILURES = (6, 15)
FAILURE_WINDOW = (5 * MINUTE, 20 * MINUTE)
REPLAY_FAILURE_WINDOW = (3 * MINUTE, 20 * MINUTE)
#: Chance a phished login comes from the victim's own city (a local proxy), not another.
PHISHED_SAME_CITY = 0.5
#: The drawdown, yuan, rounded to thousands.
DRAWDOWN_YUAN = (20_000, 300_000)
#: Shares of the population that update the app, forget their password, change payout
#: account, or change it right before a drawdown (held for a review, then paid); the share that
#: changes phones is the profile's ``new_phone_share``.
APP_UPDATE_SHARE = 0.15
FORGOT_PASSWORD_SHARE = 0.02
PAYOUT_CHANGE_SHARE = 0.03
HELD_DRAWDOWN_SHARE = 0.005


def plant_takeover(world: World, number: int, borrowers: list[Borrower]) -> None:
    """A failure burst from a new device in another city, then a payout change and a drawdown."""
    (victim,) = borrowers
    _take_over(world, victim, replay=False)


def plant_replay(world: World, number: int, borrowers: list[Borrower]) -> None:
    """A takeover on the victim's own phone id: only the address, city, agent and hour are new."""
    (victim,) = borrowers
    _take_over(world, victim, replay=True)


def _take_over(world: World, victim: Borrower, replay: bool) -> None:
    """Failure burst from another city, success, payout change within 1 h, drawdown within 2 h.

    With ``replay`` the attacker spoofs the victim's own phone id, so the device is known;
    the address, city, app agent and hour are new. The profile says how: from the attacker's
    mobile or a residential (broadband) address, after a burst or only a few failures, before
    dawn or at any hour. The drawdown follows a payout change, so it is held and never
    released: no disbursement, no schedule.
    """
    rng = world.rng
    profile = world.config.profile
    city = rng.choice(away(victim))
    residential = replay and profile.replay_network == "broadband"
    ip = broadband_ip(rng, city) if residential else mobile_ip(rng, city)
    where = geo(rng, city)
    day = rng.randint(7, world.days - 1)
    known = _history(world, victim, day)
    if replay:
        device = Device(known.id, attacker_agent(world, known.user_agent), True)
        first, last = profile.replay_hours
        start = day * DAY + rng.randint(first * HOUR, last * HOUR)
        failures = rng.randint(*profile.replay_failures)
        window = rng.randint(*REPLAY_FAILURE_WINDOW)
    else:
        device = new_device(world, rng, phone=True, agent=attacker_agent(world))
        start = day * DAY + rng.randint(0, 20 * HOUR)
        failures = rng.randint(*FAILURES)
        window = rng.randint(*FAILURE_WINDOW)
    offsets = [0, *sorted(rng.randint(1, window - 1) for _ in range(failures - 2)), window]
    for offset in offsets:
        world.login(start + offset, victim, "login", device, ip, where, success=False)
    success = start + window + rng.randint(20, 180)
    world.login(success, victim, "login", device, ip, where)
    drawdown, cash_out = _cash_out(world, victim, success, (device, ip, where))
    detail = {"device_id": device.id, "ip": ip, "city": city.name, "failed_logins": failures}
    detail |= cash_out
    if replay:
        detail["user_agent"] = device.user_agent
        detail["victim_user_agent"] = known.user_agent
    typology = DEVICE_REPLAY if replay else ACCOUNT_TAKEOVER
    world.label(start, victim, typology, drawdown, detail)


def plant_phished(world: World, number: int, borrowers: list[Borrower]) -> None:
    """Phished credentials: success at the first try from a new phone and an unseen address.

    No failed login gives it away; the attacker is in the victim's city (a local proxy) or in
    another, on a home or a mobile address, at an hour people use the app, then changes the
    payout account and draws down within minutes.
    """
    (victim,) = borrowers
    rng = world.rng
    day = rng.randint(7, world.days - 1)
    _history(world, victim, day)
    city = victim.city if rng.random() < PHISHED_SAME_CITY else rng.choice(away(victim))
    residential = rng.random() < 0.5
    ip = broadband_ip(rng, city) if residential else mobile_ip(rng, city)
    where = geo(rng, city)
    device = new_device(world, rng, phone=True, agent=attacker_agent(world))
    success = day * DAY + second(rng, login_cum(world.config.profile.login_hours))
    world.login(success, victim, "login", device, ip, where)
    drawdown, cash_out = _cash_out(world, victim, success, (device, ip, where))
    detail = {"device_id": device.id, "ip": ip, "city": city.name, "failed_logins": 0}
    detail |= {"network": "broadband" if residential else "mobile", **cash_out}
    world.label(success, victim, PHISHED, drawdown, detail)


def _history(world: World, victim: Borrower, day: int) -> Device:
    """An ordinary session in the week before ``day``: a history to stand out from; its phone."""
    rng = world.rng
    before = rng.randint(day - 7, day - 1)
    session(world, victim, before * DAY + second(rng, LOGIN_CUM), [])
    return device_on(victim, before)


def _cash_out(
    world: World, victim: Borrower, success: int, on: tuple[Device, str, dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    """The payout change and the drawdown after an attacker's success, within the profile's
    ``takeover_minutes``; the drawdown's instant and what the label says of them."""
    rng = world.rng
    device, ip, where = on
    to_change, to_drawdown = world.config.profile.takeover_minutes
    change = success + rng.randint(2 * MINUTE, to_change * MINUTE)
    world.login(change, victim, "payout_account_change", device, ip, where)
    drawdown = rng.randint(change + MINUTE, success + to_drawdown * MINUTE)
    cents = round_to(rng.uniform(*DRAWDOWN_YUAN) * 100, 1000)
    world.login(drawdown, victim, "drawdown", device, ip, where, amount=cents)
    return drawdown, {"success_ts": world.iso(success), "drawdown_amount": money(cents)}


def active(b: Borrower) -> bool:
    """Victims with a login history to stand out from."""
    return b.activity >= 0.4


# --- the benign look-alikes -------------------------------------------------------------------


def new_phones(world: World) -> None:
    """A new phone, first used on its day: a device never seen, with the latest app.

    With the profile's ``new_phone_drawdown``, the first session on it applies for a loan and
    draws it at once: a new device, often an unseen address, then money, and all benign.
    """
    days = world.days
    profile = world.config.profile
    share, busy = profile.new_phone_share, profile.new_phone_drawdown
    wanted = max(1, round(share * len(world.borrowers))) if share else 0
    for b in world.some(wanted, lambda b: days > 1):
        b.new_phone = new_device(world, b.rng, phone=True, agent=phone_agent(b.rng, "5.3.1"))
        b.phone_change_day = 1 + world.rng.randrange(max(1, days - 1))
        b.forced.setdefault(b.phone_change_day, []).append(
            b.phone_change_day * DAY + second(b.rng, login_cum(profile.login_hours))
        )
        if busy and world.rng.random() < busy:
            cents = round_to(b.monthly_inflow * world.rng.uniform(0.3, 1.5), 1000, 10)
            b.actions.setdefault(b.phone_change_day, []).extend(
                [("loan_application", cents), ("drawdown", cents)]
            )


def app_updates(world: World) -> None:
    """An app update: the known phone sends a new user agent from that day on."""
    wanted = round(APP_UPDATE_SHARE * len(world.borrowers))
    for b in world.some(wanted, lambda b: b.new_phone is None):
        agent = upgraded(b.devices[0].user_agent)
        if agent is not None:
            b.app_update = (world.rng.randrange(world.days), agent)


def forgotten_passwords(world: World) -> None:
    """A forgotten password: failures, a reset and a success on a device used some days before."""
    days = world.days
    rng = world.rng
    wanted = max(1, round(FORGOT_PASSWORD_SHARE * len(world.borrowers)))
    hours = world.config.profile.login_hours
    for b in world.some(wanted, lambda b: days > 1 and b.new_phone is None):
        b.forgot_password_day = 1 + rng.randrange(max(1, days - 1))
        # A password is forgotten on a device used before: a session some days earlier.
        for day in (rng.randrange(b.forgot_password_day), b.forgot_password_day):
            b.forced.setdefault(day, []).append(day * DAY + second(b.rng, login_cum(hours)))


def payout_changes(world: World) -> None:
    """A payout-account change on some day, in an ordinary session."""
    for b in world.some(round(PAYOUT_CHANGE_SHARE * len(world.borrowers))):
        b.actions.setdefault(world.rng.randrange(world.days), []).append(
            ("payout_account_change", 0)
        )


def held_drawdowns(world: World) -> None:
    """A new bank account, then a loan drawn in the same session: held for a review, then paid."""
    rng = world.rng
    wanted = max(1, round(HELD_DRAWDOWN_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: not b.loans and b.case is None):
        day = rng.randrange(world.days)
        cents = round_to(b.monthly_inflow * rng.uniform(0.3, 1.5), 1000, minimum_units=10)
        b.actions.setdefault(day, []).extend(
            [("payout_account_change", 0), ("loan_application", cents), ("drawdown", cents)]
        )


ACCOUNT_TAKEOVER = Typology(
    name="account_takeover",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant_takeover,
    recruit=singles(prefer=active),
    default=one_per(100),
    min_days=8,
    need="days >= 8 (a week of normal logins first)",
)
PHISHED = Typology(
    name="account_takeover_phished",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant_phished,
    recruit=singles(prefer=active),
    default=one_per(100),
    min_days=8,
    need="days >= 8 (a week of normal logins first)",
)
DEVICE_REPLAY = Typology(
    name="account_takeover_device_replay",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant_replay,
    recruit=singles(prefer=active),
    default=one_per(100),
    min_days=8,
    need="days >= 8 (a week of normal logins first)",
)
