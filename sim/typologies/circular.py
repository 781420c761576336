"""Circular transfers: money sent round a ring of borrowers, A→B→C→A; beside it, trade partners."""

from __future__ import annotations

from sim.population import B2B_MEMOS, Borrower
from sim.typologies.base import Typology, one_per, take
from sim.world import DAY, HOUR, MINUTE, World, money
from topics.names import FALSIFIED_FLOW

#: Borrowers in a ring.
RING_SIZE = 3
#: Days of a ring with a cycle: 2–4, at least two apart.
CYCLES = (2, 4)
#: First hop of a cycle, cents; each hop keeps 98–99.9 % of the one before (fees).
HOP_CENTS = (5_000_000, 50_000_000)
HOP_FEE = (0.001, 0.02)
#: Between two hops of a cycle.
HOP_GAP = (20 * MINUTE, 6 * HOUR)
#: Share of the population that buys from another (business) borrower on the platform.
PARTNER_SHARE = 0.1


def recruit(world: World, pool: list[Borrower], count: int, reserved: int) -> list[list[Borrower]]:
    return [take(pool, RING_SIZE) for _ in range(count)]


def plant(world: World, number: int, members: list[Borrower]) -> None:
    """A→B→C→A on each ring day, every hop a little smaller (fees) and 20 min–6 h later."""
    rng = world.rng
    cycles: list[list[dict[str, str]]] = []
    first = last = 0
    for d in ring_days(world):
        t = d * DAY + rng.randint(8 * HOUR, 18 * HOUR)
        first = first or t
        cents = rng.randint(*HOP_CENTS)
        if rng.random() < 0.5:
            cents = cents // 10_000 * 10_000
        hops = []
        for i, payer in enumerate(members):
            payee = members[(i + 1) % len(members)]
            if i:
                t += rng.randint(*HOP_GAP)
                cents = round(cents * (1 - rng.uniform(*HOP_FEE)))
            world.transfer(t, payer, payee, cents, rng.choice(B2B_MEMOS))
            hops.append(
                {
                    "ts": world.iso(t),
                    "from": payer.account,
                    "to": payee.account,
                    "amount": money(cents),
                }
            )
        cycles.append(hops)
        last = t
    detail = {
        "ring": f"ring-{number:02d}",
        "members": [m.id for m in members],
        "accounts": [m.account for m in members],
        "cycles": cycles,
    }
    for member in members:
        world.label(first, member, CIRCULAR_TRANSFER, last, {**detail})


def ring_days(world: World) -> list[int]:
    """2–4 days at least two apart, each leaving room for a cycle to finish next morning."""
    candidates = world.rng.sample(range(1, world.days - 1), world.days - 2)
    wanted = world.rng.randint(*CYCLES)
    days: list[int] = []
    for d in candidates:
        if all(abs(d - other) >= 2 for other in days):
            days.append(d)
            if len(days) == wanted:
                break
    return sorted(days)


# --- the benign look-alike --------------------------------------------------------------------


def partners(world: World) -> None:
    """Borrowers that buy from a business borrower: money between borrowers, one way only.

    The purchases are made by :func:`sim.benign.flows.outflows`.
    """
    rng = world.rng
    b2b = [b for b in world.borrowers if not b.sector.consumer]
    for b in world.some(round(PARTNER_SHARE * len(world.borrowers))):
        others = [p for p in b2b if p is not b]
        if others:
            b.partner = rng.choice(others)


CIRCULAR_TRANSFER = Typology(
    name="circular_transfer",
    category=FALSIFIED_FLOW,
    plant=plant,
    recruit=recruit,
    default=one_per(150),
    min_days=7,
    need="days >= 7",
    min_borrowers=RING_SIZE,
)
