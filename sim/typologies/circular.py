"""Circular transfers: money sent round a ring of accounts, A→B→C→A; beside it, trade partners."""

from __future__ import annotations

from sim.population import B2B_MEMOS, Borrower
from sim.typologies.base import Typology, one_per, spread, stretched, take
from sim.world import DAY, HOUR, MINUTE, World, money
from topics.names import FALSIFIED_FLOW

#: Borrowers in a ring.
RING_SIZE = 3
#: Days of a ring with a cycle: 2–4, at least two apart.
CYCLES = (2, 4)
#: First hop of a cycle, cents; each hop keeps 98–99.9 % of the one before (fees).
HOP_CENTS = (5_000_000, 50_000_000)
HOP_FEE = (0.001, 0.02)
#: ... or varies either way (hop amounts of a ring that do not simply shrink).
HOP_VARY = (0.97, 1.03)
#: Between two hops of a cycle (the profile's ``hand_on_scale`` stretches the upper bound; its
#: ``hop_spread`` widens the fees and the variation).
HOP_GAP = (20 * MINUTE, 6 * HOUR)
#: Share of rings moving small sums, cents, on more days within a few weeks.
SMALL_SHARE = 0.3
SMALL_HOP_CENTS = (50_000, 450_000)
SMALL_CYCLES = (4, 7)
SMALL_SPAN = 21
#: Share of rings whose third account is off the platform (its two hops on one statement each).
OUTSIDE_SHARE = 0.3
#: Share of the population that buys from another (business) borrower on the platform.
PARTNER_SHARE = 0.1


def recruit(world: World, pool: list[Borrower], count: int, reserved: int) -> list[list[Borrower]]:
    return [take(pool, RING_SIZE) for _ in range(count)]


def plant(world: World, number: int, members: list[Borrower]) -> None:
    """A→B→C→A on each ring day, 20 min–6 h a hop, styled per ring from the rng: every hop a
    little smaller (fees) or varying either way; large sums on a few days, or small sums on
    many; all three accounts borrowers, or one of them an account off the platform."""
    rng = world.rng
    varying = rng.random() < 0.5
    small = rng.random() < SMALL_SHARE
    outside = rng.random() < OUTSIDE_SHARE
    accounts = [m.account for m in members]
    profile = world.config.profile
    fee = spread(HOP_FEE, profile.hop_spread, around=0.0)
    vary = spread(HOP_VARY, profile.hop_spread, around=1.0)
    gap = stretched(HOP_GAP, profile.hand_on_scale)
    if outside:
        accounts[-1] = f"corp-{rng.randrange(10**6):06d}"
    cycles: list[list[dict[str, str]]] = []
    first = last = 0
    for d in ring_days(world, small):
        t = d * DAY + rng.randint(8 * HOUR, 18 * HOUR)
        first = first or t
        cents = rng.randint(*(SMALL_HOP_CENTS if small else HOP_CENTS))
        if rng.random() < 0.5:
            cents = cents // 10_000 * 10_000 or cents
        hops = []
        for i, payer in enumerate(accounts):
            payee = accounts[(i + 1) % len(accounts)]
            if i:
                t += rng.randint(*gap)
                change = rng.uniform(*vary) if varying else 1 - rng.uniform(*fee)
                cents = round(cents * change)
            _hop(world, t, members, payer, payee, cents)
            hops.append({"ts": world.iso(t), "from": payer, "to": payee, "amount": money(cents)})
        cycles.append(hops)
        last = t
    detail = {
        "ring": f"ring-{number:02d}",
        "members": [m.id for m in members if m.account in accounts],
        "accounts": accounts,
        "varying": varying,
        "small": small,
        "cycles": cycles,
    }
    for member in members:
        if member.account in accounts:
            world.label(first, member, CIRCULAR_TRANSFER, last, {**detail})


def _hop(world: World, t: int, members: list[Borrower], payer: str, payee: str, cents: int) -> None:
    """One hop: on both statements between two borrowers, on one when the other is outside."""
    by_account = {m.account: m for m in members}
    memo = world.rng.choice(B2B_MEMOS)
    if payer in by_account and payee in by_account:
        world.transfer(t, by_account[payer], by_account[payee], cents, memo)
    elif payer in by_account:
        b = by_account[payer]
        world.tx(t, b, payer, payee, "out", cents, "bank_transfer", memo=memo)
    else:
        b = by_account[payee]
        world.tx(t, b, payee, payer, "in", cents, "bank_transfer", memo=memo)


def ring_days(world: World, small: bool = False) -> list[int]:
    """2–4 days at least two apart (small sums: 4–7 days within three weeks, a day apart),
    each leaving room for a cycle to finish next morning."""
    rng = world.rng
    if small:
        span = min(SMALL_SPAN, world.days - 2)
        start = rng.randint(1, world.days - 1 - span)
        return sorted(rng.sample(range(start, start + span), min(span, rng.randint(*SMALL_CYCLES))))
    candidates = rng.sample(range(1, world.days - 1), world.days - 2)
    wanted = rng.randint(*CYCLES)
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
