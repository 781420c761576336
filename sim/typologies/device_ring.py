"""Device rings: one agent's device applies for many borrowers; beside it, shared devices."""

from __future__ import annotations

from typing import Any

from sim.benign.sessions import plan_application
from sim.draws import office_second
from sim.population import Borrower, broadband_ip, geo, new_device, same_city
from sim.typologies.base import Typology, one_per, take
from sim.typologies.common import attacker_agent
from sim.world import DAY, MINUTE, World, money, round_to
from topics.names import ABNORMAL_BEHAVIOUR

#: Borrowers in a ring: 3, and up to 3 more when the pool can spare them.
MIN_MEMBERS = 3
EXTRA_MEMBERS = 3
#: Days over which the agent files the applications.
SPAN_DAYS = (1, 10)
#: Share of the population that applies for a loan without drawing it; the share that shares
#: a device (never more than two people) is the profile's ``shared_device_share``.
APPLICATION_SHARE = 0.03


def recruit(world: World, pool: list[Borrower], count: int, reserved: int) -> list[list[Borrower]]:
    """An agent recruits in its own city, 3–6 borrowers, sparing those later cases need."""
    rings = []
    for left in range(count, 0, -1):
        spare = len(pool) - reserved - MIN_MEMBERS * left
        size = MIN_MEMBERS + world.rng.randint(0, max(0, min(EXTRA_MEMBERS, spare)))
        rings.append(take(pool, size, same_city(pool[0].city)))
    return rings


def plant(world: World, number: int, members: list[Borrower]) -> None:
    """An agent applies for loans in 3–6 borrowers' names from one device over 1–10 days."""
    rng = world.rng
    phone = rng.random() < 0.5
    device = new_device(world, rng, phone=phone, agent=attacker_agent(world) if phone else None)
    city = rng.choice([m.city for m in members])
    ip = broadband_ip(rng, city)
    span = rng.randint(SPAN_DAYS[0], min(SPAN_DAYS[1], world.days - 7))
    first = rng.randint(7, world.days - span)
    member_ids = [m.id for m in members]
    sessions: list[tuple[Borrower, int, int, dict[str, Any]]] = []
    for b in members:
        t = (first + rng.randrange(span)) * DAY + office_second(rng)
        where = geo(rng, city)
        world.login(t, b, "login", device, ip, where)
        asked = round_to(b.monthly_inflow * rng.uniform(0.5, 2.0), 10_000)
        end = t + rng.randint(3 * MINUTE, 25 * MINUTE)
        world.login(end, b, "loan_application", device, ip, where, amount=asked)
        if rng.random() < 0.5:
            end += rng.randint(MINUTE, 10 * MINUTE)
            world.login(end, b, "logout", device, ip, where)
        detail: dict[str, Any] = {
            "device_id": device.id,
            "ring": f"device-ring-{number:02d}",
            "members": member_ids,
            "ip": ip,
            "city": city.name,
            "application_amount": money(asked),
        }
        sessions.append((b, t, end, detail))
    # One agent's applications are one case: each member's runs from its own session to the
    # ring's last, as the ring can be told only once a third member has used the device.
    ring_end = max(end for _, _, end, _ in sessions)
    for b, t, _, detail in sessions:
        world.label(t, b, DEVICE_RING, ring_end, detail)


# --- the benign look-alikes -------------------------------------------------------------------


def shared_devices(world: World) -> None:
    """A family's tablet or an accountant's computer: two borrowers on one device, never more."""
    rng = world.rng
    sharing: set[str] = set()
    wanted = round(world.config.profile.shared_device_share * len(world.borrowers))
    for owner in world.some(wanted, lambda b: len(b.devices) == 2):
        guests = [
            g
            for g in world.borrowers
            if g.city is owner.city and g.id not in sharing and g is not owner
        ]
        if owner.id not in sharing and guests:
            guest = rng.choice(guests)
            guest.shared, guest.shared_ip = owner.devices[1], owner.home_ip
            sharing |= {owner.id, guest.id}


def applications(world: World) -> None:
    """Loan applications never drawn: the step a ring's agent stops at, made by the borrower."""
    wanted = round(APPLICATION_SHARE * len(world.borrowers))
    for b in world.some(wanted, lambda b: b.case not in ("revenue_inflation", "device_ring")):
        plan_application(b, world.rng.randrange(world.days), drawdown=False)


DEVICE_RING = Typology(
    name="device_ring",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant,
    recruit=recruit,
    default=one_per(400),
    min_days=8,
    need="days >= 8",
    min_borrowers=MIN_MEMBERS,
)
