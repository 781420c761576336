"""App sessions: when borrowers log in, from which device and address, and what they do there."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sim.benign.repayments import book, disburse
from sim.draws import cum, login_cum, pick, second
from sim.population import Borrower, City, Device, geo, mobile_ip
from sim.world import DAY, HOUR, MINUTE, World, round_to

#: Sessions on a day the borrower opens the app, and their weights.
SESSION_COUNTS = (1, 2, 3, 4)
SESSION_CUM = cum((35, 35, 20, 10))
#: Chance a login is preceded by 1–3 mistyped passwords.
TYPO_RATE = 0.03
#: Chance a session ends with a logout rather than timing out.
LOGOUT_RATE = 0.6
#: Mobile sessions that leave through one of the carrier's shared NAT addresses.
CGNAT_SHARE = 0.5
#: A drawdown within this long of a payout-account change is held for a manual review.
HOLD_AFTER_PAYOUT_CHANGE = DAY

#: What a session does besides logging in: (action, cents or 0), in order.
Actions = list[tuple[str, int]]


def plan_application(b: Borrower, day: int, drawdown: bool) -> None:
    """A loan application; if approved, a drawdown the same session or a few days later."""
    rng = b.rng
    asked = round_to(b.monthly_inflow * rng.uniform(0.3, 2.0), 1000, minimum_units=10)
    b.actions.setdefault(day, []).append(("loan_application", asked))
    if drawdown:
        cents = min(asked, round_to(asked * rng.uniform(0.5, 1.0), 1000, minimum_units=10))
        later = day + rng.choice((0, 0, 1, 2, 3, 5))
        b.actions.setdefault(later, []).append(("drawdown", cents))


#: Cases whose borrowers draw no benign new loan: the ramp-up's own application, the takeover's.
NO_NEW_LOAN = ("revenue_inflation", "account_takeover", "account_takeover_device_replay")


def new_loans(world: World) -> None:
    """Borrowers without a loan apply and draw one during the period, like most borrowers do;
    not a takeover's victim, whose held drawdown must not meet a booked one by chance."""
    wanted = round(0.08 * len(world.borrowers))
    for b in world.some(wanted, lambda b: not b.loans and b.case not in NO_NEW_LOAN):
        plan_application(b, world.rng.randrange(world.days), drawdown=True)


def city_at(b: Borrower, t: int) -> City | None:
    """Where the borrower is at ``t``; None while on a plane or a train."""
    city = b.city
    for depart, arrive, to in b.legs:
        if t < depart:
            break
        if t < arrive:
            return None
        city = to
    return city


def sessions(world: World, b: Borrower, d: int) -> None:
    """The borrower's sessions of day ``d``: the planned ones and, on an active day, its own."""
    times, actions = _session_times(b, d, login_cum(world.config.profile.login_hours))
    if not times:
        return
    if b.app_update is not None and d == b.app_update[0]:
        b.devices[0] = replace(b.devices[0], user_agent=b.app_update[1])
    first = True
    for t in times:
        city = city_at(b, t)
        if city is None:
            continue  # on a plane or a train
        _session(world, b, d, t, city, actions, first)
        first = False


def _session_times(b: Borrower, d: int, hours_cum: tuple[float, ...]) -> tuple[list[int], Actions]:
    """The day's login instants, sorted, and the actions planned for its first session; the
    borrower's own sessions fall on the hours ``hours_cum`` weighs (the profile's)."""
    rng = b.rng
    forced = b.forced.pop(d, [])
    actions = b.actions.pop(d, [])
    active = rng.random() < b.activity
    if b.quiet_from is not None and d >= b.quiet_from:
        return [], actions
    if b.dormant is not None and b.dormant[0] <= d < b.dormant[1]:
        active = False  # on holiday: only planned sessions
    times = forced
    if active or actions:
        count = pick(rng, SESSION_COUNTS, SESSION_CUM)
        times = forced + [d * DAY + second(rng, hours_cum) for _ in range(count)]
    times.sort()
    return times, actions


def _session(
    world: World, b: Borrower, d: int, t: int, city: City, actions: Actions, first: bool
) -> None:
    """One session in ``city``: a login (after typos or a reset), the actions, maybe a logout."""
    rng = b.rng
    away = city is not b.city
    changing_phone = False
    if first and d == b.phone_change_day and b.new_phone is not None:
        b.devices[0], changing_phone = b.new_phone, True
    device, home_ip = _device(b, away)
    forgetting = first and d == b.forgot_password_day
    if forgetting and device.id not in b.seen_devices:
        device = next((dv for dv in b.devices if dv.id in b.seen_devices), device)
    ip = _address(world, b, device, city, away, home_ip)
    where = geo(rng, city)
    if forgetting:
        t = forgot_password(world, b, t, device, ip, where)
    elif not changing_phone and rng.random() < TYPO_RATE:
        failed = t
        for _ in range(rng.randint(1, 3)):
            failed -= rng.randint(8, 40)
            world.login(failed, b, "login", device, ip, where, success=False)
    world.login(t, b, "login", device, ip, where)
    b.seen_devices.add(device.id)
    last = t
    if first:
        last = _actions(world, b, last, city, actions, device, ip, where)
    if rng.random() < LOGOUT_RATE:
        last += rng.randint(3 * MINUTE, 90 * MINUTE)
        if b.legs and city_at(b, last) is not city:
            return  # boarded meanwhile: the session times out instead
        world.login(last, b, "logout", device, ip, where)


def _device(b: Borrower, away: bool) -> tuple[Device, str]:
    """The device of a session and the home address it would use: mostly the phone."""
    rng = b.rng
    home_ip = b.home_ip
    if away or len(b.devices) == 1 or rng.random() < 0.75:
        device = b.devices[0]
    else:
        device = b.devices[1]
    if b.shared is not None and not away and rng.random() < 0.3:
        device, home_ip = b.shared, b.shared_ip or b.home_ip
    return device, home_ip


def _address(
    world: World, b: Borrower, device: Device, city: City, away: bool, home_ip: str
) -> str:
    """A phone is on the mobile network away and half the time at home; else the broadband."""
    rng = b.rng
    if device.phone and (away or rng.random() < 0.5):
        if rng.random() < CGNAT_SHARE:
            return rng.choice(world.cgnat[city.name])
        return mobile_ip(rng, city)
    return home_ip


def _actions(
    world: World,
    b: Borrower,
    last: int,
    city: City,
    actions: Actions,
    device: Device,
    ip: str,
    where: dict[str, Any],
) -> int:
    """The planned actions, minutes apart, until the borrower boards; the last one's instant."""
    rng = b.rng
    for action, cents in actions:
        last += rng.randint(2 * MINUTE, 20 * MINUTE)
        if b.legs and city_at(b, last) is not city:
            break
        if action == "drawdown":
            benign_drawdown(world, b, last, cents, device, ip, where)
        else:
            world.login(last, b, action, device, ip, where, amount=cents or None)
            if action == "payout_account_change":
                b.last_payout_change = last
    return last


def forgot_password(
    world: World, b: Borrower, t: int, device: Device, ip: str, where: dict[str, Any]
) -> int:
    """5–7 failures, a reset and a success, all on a device the borrower already uses."""
    rng = b.rng
    for _ in range(rng.randint(5, 7)):
        world.login(t, b, "login", device, ip, where, success=False)
        t += rng.randint(15, 60)
    t += rng.randint(MINUTE, 4 * MINUTE)
    world.login(t, b, "password_reset", device, ip, where)
    return t + rng.randint(30, 180)


def benign_drawdown(
    world: World, b: Borrower, t: int, cents: int, device: Device, ip: str, where: dict[str, Any]
) -> None:
    """Funds land on the borrower's account and a schedule is booked; held after a payout
    change, the loan is released to the new payout account a few days later."""
    rng = b.rng
    world.login(t, b, "drawdown", device, ip, where, amount=cents)
    if t - b.last_payout_change <= HOLD_AFTER_PAYOUT_CHANGE:
        book(world, b, t + rng.randint(1, 3) * DAY + rng.randint(0, 8 * HOUR), cents)
        return
    loan = book(world, b, t + MINUTE, cents)
    disburse(world, b, t + 2 * MINUTE, loan, cents)
