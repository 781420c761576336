"""What several cases share: a planned session on the borrower's phone, an attacker's phone."""

from __future__ import annotations

from sim.benign.sessions import LOGOUT_RATE
from sim.population import APP_VERSIONS, PHONE_MODELS, Borrower, Device, device_on, geo
from sim.world import DAY, MINUTE, World


def session(
    world: World,
    b: Borrower,
    t: int,
    actions: list[tuple[str, int]],
    device: Device | None = None,
) -> list[int]:
    """A planned session on the borrower's usual phone and network; the actions' instants."""
    rng = world.rng
    device = device or device_on(b, t // DAY)
    ip = b.home_ip if rng.random() < 0.5 else rng.choice(world.cgnat[b.city.name])
    where = geo(rng, b.city)
    world.login(t, b, "login", device, ip, where)
    instants = []
    for action, cents in actions:
        t += rng.randint(2 * MINUTE, 20 * MINUTE)
        world.login(t, b, action, device, ip, where, amount=cents or None)
        instants.append(t)
    if rng.random() < LOGOUT_RATE:
        world.login(t + rng.randint(3 * MINUTE, 40 * MINUTE), b, "logout", device, ip, where)
    return instants


def attacker_agent(world: World, not_this: str | None = None) -> str:
    """An attacker's phone is an ordinary phone: the agent of some borrower's phone."""
    ordinary = [b for b in world.borrowers if b.case is None] or world.borrowers
    agents = [b.devices[0].user_agent for b in ordinary]
    agents = [agent for agent in agents if agent != not_this] or [
        f"LendApp/{version} ({model})"
        for version in APP_VERSIONS
        for model in PHONE_MODELS
        if f"LendApp/{version} ({model})" != not_this
    ]
    return world.rng.choice(agents)
