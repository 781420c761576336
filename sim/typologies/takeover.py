"""Account takeover, with or without a replayed device id; beside it, new phones and resets."""

from __future__ import annotations

from sim.draws import LOGIN_CUM, second
from sim.population import (
    Borrower,
    Device,
    away,
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

#: Failed logins before the attacker gets in, and over how long: a fresh device, or a replay.
FAILURES = (6, 15)
FAILURE_WINDOW = (5 * MINUTE, 20 * MINUTE)
REPLAY_FAILURES = (4, 12)
REPLAY_FAILURE_WINDOW = (3 * MINUTE, 20 * MINUTE)
#: The drawdown, yuan, rounded to thousands.
DRAWDOWN_YUAN = (20_000, 300_000)
#: Shares of the population that change phones, update the app, forget their password, change
#: payout account, or change it right before a drawdown (held for a review, then paid).
NEW_PHONE_SHARE = 0.05
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
    the address, city, app agent and hour (before dawn) are new. The drawdown follows a
    payout change, so it is held and never released: no disbursement, no schedule.
    """
    rng = world.rng
    city = rng.choice(away(victim))
    ip = mobile_ip(rng, city)
    where = geo(rng, city)
    day = rng.randint(7, world.days - 1)
    # An ordinary session in the week before: the victim has a history to stand out from.
    before = rng.randint(day - 7, day - 1)
    session(world, victim, before * DAY + second(rng, LOGIN_CUM), [])
    known = device_on(victim, before)  # the phone of that session
    if replay:
        device = Device(known.id, attacker_agent(world, known.user_agent), True)
        start = day * DAY + rng.randint(0, 5 * HOUR)
        failures = rng.randint(*REPLAY_FAILURES)
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
    change = success + rng.randint(2 * MINUTE, 55 * MINUTE)
    world.login(change, victim, "payout_account_change", device, ip, where)
    drawdown = rng.randint(change + MINUTE, success + 115 * MINUTE)
    cents = round_to(rng.uniform(*DRAWDOWN_YUAN) * 100, 1000)
    world.login(drawdown, victim, "drawdown", device, ip, where, amount=cents)
    detail = {
        "device_id": device.id,
        "ip": ip,
        "city": city.name,
        "failed_logins": failures,
        "success_ts": world.iso(success),
        "drawdown_amount": money(cents),
    }
    if replay:
        detail["user_agent"] = device.user_agent
        detail["victim_user_agent"] = known.user_agent
    typology = DEVICE_REPLAY if replay else ACCOUNT_TAKEOVER
    world.label(start, victim, typology, drawdown, detail)


def active(b: Borrower) -> bool:
    """Victims with a login history to stand out from."""
    return b.activity >= 0.4


# --- the benign look-alikes -------------------------------------------------------------------


def new_phones(world: World) -> None:
    """A new phone, first used on its day: a device never seen, with the latest app."""
    days = world.days
    wanted = max(1, round(NEW_PHONE_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: days > 1):
        b.new_phone = new_device(world, b.rng, phone=True, agent=phone_agent(b.rng, "5.3.1"))
        b.phone_change_day = 1 + world.rng.randrange(max(1, days - 1))
        b.forced.setdefault(b.phone_change_day, []).append(
            b.phone_change_day * DAY + second(b.rng, LOGIN_CUM)
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
    for b in world.some(wanted, lambda b: days > 1 and b.new_phone is None):
        b.forgot_password_day = 1 + rng.randrange(max(1, days - 1))
        # A password is forgotten on a device used before: a session some days earlier.
        for day in (rng.randrange(b.forgot_password_day), b.forgot_password_day):
            b.forced.setdefault(day, []).append(day * DAY + second(b.rng, LOGIN_CUM))


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
DEVICE_REPLAY = Typology(
    name="account_takeover_device_replay",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant_replay,
    recruit=singles(prefer=active),
    default=one_per(100),
    min_days=8,
    need="days >= 8 (a week of normal logins first)",
)
