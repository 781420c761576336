"""Credential stuffing: one address tries leaked passwords on many borrowers."""

from __future__ import annotations

from sim.population import CITIES, Borrower, geo, mobile_ip, new_device
from sim.typologies.base import Typology, one_per, take
from sim.typologies.common import attacker_agent
from sim.world import DAY, HOUR, MINUTE, World
from topics.names import ABNORMAL_BEHAVIOUR

# The benign look-alikes come with the population and the sessions, not from here: carriers'
# shared NAT addresses (sim.population.CGNAT_PER_CITY) and offices, behind which a few
# borrowers mistype their passwords the same day (sim.benign.sessions.TYPO_RATE).

#: Borrowers one campaign targets.
TARGETS = (20, 60)
#: A burst within half an hour, or a slow campaign over most of a day, and their shares.
BURST_SHARE = 0.5
BURST_SPAN = (5 * MINUTE, 29 * MINUTE)
SLOW_SPAN = (6 * HOUR, 20 * HOUR)
#: Chance the attacker hides behind a carrier's shared address, and rotates device ids.
BEHIND_NAT_SHARE = 0.3
ROTATING_SHARE = 0.6


def recruit(world: World, pool: list[Borrower], count: int, reserved: int) -> list[list[Borrower]]:
    """20–60 targets per campaign, leaving enough for the campaigns after it."""
    campaigns = []
    for left in range(count, 0, -1):
        most = min(TARGETS[1], len(pool) - TARGETS[0] * (left - 1))
        campaigns.append(take(pool, world.rng.randint(TARGETS[0], most)))
    return campaigns


def plant(world: World, number: int, targets: list[Borrower]) -> None:
    """One address tries leaked passwords on 20–60 borrowers, once or twice each."""
    rng = world.rng
    city = rng.choice(CITIES)
    ip = (
        rng.choice(world.cgnat[city.name])
        if rng.random() < BEHIND_NAT_SHARE
        else mobile_ip(rng, city)
    )
    burst = rng.random() < BURST_SHARE
    span = rng.randint(*BURST_SPAN) if burst else rng.randint(*SLOW_SPAN)
    start = rng.randint(1, world.days - 1) * DAY + rng.randint(0, 20 * HOUR)
    start = min(start, world.end - span - 10 * MINUTE)
    rotating = rng.random() < ROTATING_SHARE
    agent = attacker_agent(world)
    fixed = new_device(world, rng, phone=True, agent=agent)
    winners = set(rng.sample(range(len(targets)), rng.choice((0, 0, 1, 1, 2))))
    order = rng.sample(targets, len(targets))
    times = sorted(start + rng.randint(0, span) for _ in order)
    mode = "burst" if burst else "slow"
    for i, (b, t) in enumerate(zip(order, times, strict=True)):
        where = geo(rng, city)
        attempts = rng.choice((1, 1, 2))
        first = t
        for k in range(attempts):
            device = new_device(world, rng, True, agent) if rotating else fixed
            success = i in winners and k == attempts - 1
            world.login(t, b, "login", device, ip, where, success=success)
            if k < attempts - 1:
                t += rng.randint(3, 40) if burst else rng.randint(20, 600)
        detail = {
            "ip": ip,
            "mode": mode,
            "campaign": f"stuffing-{number:02d}",
            "targets": len(targets),
            "attempts": attempts,
            "success": i in winners,
            "campaign_start": world.iso(times[0]),
            "campaign_end": world.iso(times[-1]),
        }
        world.label(first, b, CREDENTIAL_STUFFING, t, detail)


CREDENTIAL_STUFFING = Typology(
    name="credential_stuffing",
    category=ABNORMAL_BEHAVIOUR,
    plant=plant,
    recruit=recruit,
    default=one_per(1000, at_least=0),
    min_days=2,
    need="days >= 2",
    min_borrowers=TARGETS[0],
)
