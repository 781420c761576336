"""Impossible travel: a login far from home within the hour; beside it, trips and sales reps."""

from __future__ import annotations

from dataclasses import replace

from sim.population import CITIES, Borrower, City, away, device_on, geo, km, mobile_ip, new_device
from sim.typologies.base import Typology, one_per
from sim.typologies.common import attacker_agent, session
from sim.world import DAY, HOUR, MINUTE, World
from topics.names import ABNORMAL_BEHAVIOUR

#: The far city is at least this far from home, and the far login this soon after.
MIN_KM = 1000
GAP = (10 * MINUTE, 55 * MINUTE)
#: Chance the far login comes from the borrower's own phone (a stolen session, a replay).
SAME_DEVICE_SHARE = 0.4
#: How fast a real traveller goes: gate to gate by plane, or by train under 350 km.
AIRLINER_KMH = 800.0
TRAIN_KMH = 250.0
#: Share of the population of sales reps who fly every week or two; the share on a trip of a
#: few days is the profile's ``trip_share``.
FLYER_SHARE = 0.02


def plant(world: World, number: int, borrowers: list[Borrower]) -> None:
    """A login at home, then within the hour a login from a city over 1,000 km away."""
    (b,) = borrowers
    rng = world.rng
    far = [c for c in CITIES if km(b.city, c) > MIN_KM]
    city = rng.choice(far)
    day = rng.randint(7, world.days - 1)
    home_t = day * DAY + rng.randint(7 * HOUR, 21 * HOUR)
    session(world, b, home_t, [])
    remote_t = home_t + rng.randint(*GAP)
    same = rng.random() < SAME_DEVICE_SHARE
    device = device_on(b, day) if same else new_device(world, rng, phone=True)
    if not same:
        device = replace(device, user_agent=attacker_agent(world))
    ip = mobile_ip(rng, city) if rng.random() < 0.5 else rng.choice(world.cgnat[city.name])
    where = geo(rng, city)
    world.login(remote_t, b, "login", device, ip, where)
    if rng.random() < 0.5:
        world.login(remote_t + rng.randint(MINUTE, 30 * MINUTE), b, "logout", device, ip, where)
    detail = {
        "home_city": b.city.name,
        "city": city.name,
        "distance_km": round(km(b.city, city)),
        "minutes": round((remote_t - home_t) / MINUTE),
        "same_device": same,
        "device_id": device.id,
        "ip": ip,
    }
    world.label(home_t, b, IMPOSSIBLE_TRAVEL, remote_t, detail)


# --- the benign look-alikes -------------------------------------------------------------------


def journey(a: City, b: City) -> int:
    """Gate-to-gate seconds: a train under 350 km, otherwise a flight with boarding and taxi."""
    distance = km(a, b)
    if distance < 350:
        return round((distance / TRAIN_KMH + 0.3) * HOUR)
    return round((distance / AIRLINER_KMH + 0.4) * HOUR)


def trip(b: Borrower, first: int, back: int, city: City, forced: bool) -> None:
    """Out on ``first``, home on ``back``; a sales rep logs in at both ends of each flight."""
    rng = b.rng
    for day, origin, to, hours in (
        (first, b.city, city, (6, 12)),
        (back, city, b.city, (14, 20)),
    ):
        depart = day * DAY + rng.randint(hours[0] * HOUR, hours[1] * HOUR)
        arrive = depart + journey(origin, to)
        b.legs.append((depart, arrive, to))
        if forced:
            before = depart - rng.randint(10 * MINUTE, 60 * MINUTE)
            after = arrive + rng.randint(5 * MINUTE, 40 * MINUTE)
            for t in (before, after):
                b.forced.setdefault(t // DAY, []).append(t)
    b.legs.sort(key=lambda leg: leg[0])


def trips(world: World) -> None:
    """Trips of a few days to another city: logins from there, after a plausible journey."""
    rng = world.rng
    share = world.config.profile.trip_share
    wanted = max(1, round(share * len(world.borrowers))) if share else 0
    for b in world.some(wanted, lambda b: b.case != "impossible_travel"):
        first = rng.randrange(world.days)
        trip(b, first, first + rng.randint(2, 4), rng.choice(away(b)), forced=False)


def frequent_flyers(world: World) -> None:
    """Sales reps who fly every week or two and log in right before boarding and after landing."""
    rng = world.rng
    wanted = max(1, round(FLYER_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: b.case != "impossible_travel" and not b.legs):
        day = rng.randrange(7)
        while day < world.days:
            length = rng.randint(1, 3)
            trip(b, day, day + length, rng.choice(away(b)), forced=True)
            day += length + rng.randint(3, 10)


IMPOSSIBLE_TRAVEL = Typology(
    name="impossible_travel",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant,
    default=one_per(100),
    min_days=8,
    need="days >= 8",
)
