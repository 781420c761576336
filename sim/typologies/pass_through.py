"""Pass-through turnover (走账): money in and straight out to others, or out and back from
elsewhere, through accounts off the platform; beside it, wholesalers and owners' sweeps."""

from __future__ import annotations

import random
from typing import cast

from sim.population import B2B_MEMOS, Borrower
from sim.typologies.base import Typology, one_per, spread, stretched
from sim.world import DAY, HOUR, MINUTE, World, money, round_to
from topics.names import FALSIFIED_FLOW

#: Days the pass-throughs are spread over, and how many of those days have some.
SPAN_DAYS = (14, 24)
ACTIVE_DAYS = (5, 10)
#: Pass-throughs on an active day.
PER_DAY = (1, 3)
#: A pass-through's sum against the borrower's usual daily inflow (a larger share inflates more),
#: and the share of cases that move small sums instead, yuan, more often.
SIZE_OF_DAILY = (0.4, 3.0)
SMALL_SHARE = 0.3
SMALL_YUAN = (150, 2_500)
#: Small sums on an active day: as many as it takes to move 0.3-1.5 times the day's inflow.
SMALL_WEIGHT = (0.3, 1.5)
SMALL_PER_DAY = (2, 8)
#: ... in businesses whose usual daily inflow is at most this, yuan.
SMALL_BUSINESS = 15_000
#: How the far side compares with the near side: a fee taken (fee-shrinking), or amounts that
#: vary either way (a ring whose hops do not simply shrink); the profile's ``hop_spread``
#: widens both.
FEE = (0.0, 0.03)
VARY = (0.95, 1.02)
#: Legs the money leaves (or comes back) in.
LEGS = (1, 3)
#: Slowest hand-on of a case: some conduits forward within minutes, others within hours (the
#: profile's ``hand_on_scale`` stretches the upper bound).
SLOWEST = (10 * MINUTE, 150 * MINUTE)
#: Accounts of the network off the platform: a few mules used again and again.
NETWORK = (3, 8)
#: Shares of the population that trade wholesale, and that sweep their takings to savings.
WHOLESALE_SHARE = 0.05
SWEEP_SHARE = 0.05


def plant(world: World, number: int, borrowers: list[Borrower]) -> None:
    """Money through the borrower on 5-10 days of 2-3 weeks, styled per case from the rng:
    forwarded or round trips, fee-shrinking or varying, small or large, fast or slow."""
    (b,) = borrowers
    rng = world.rng
    style = rng.choice(("forward", "round_trip", "mixed"))
    varying = rng.random() < 0.5
    # Small sums serve small businesses: a few hundred yuan at a time inflate nothing else.
    small = rng.random() < SMALL_SHARE and b.monthly_inflow / 30 <= SMALL_BUSINESS * 100
    profile = world.config.profile
    slowest = rng.randint(*stretched(SLOWEST, profile.hand_on_scale))
    vary = spread(VARY, profile.hop_spread, around=1.0)
    fee = spread(FEE, profile.hop_spread, around=0.0)
    network = [_outsider(rng) for _ in range(rng.randint(*NETWORK))]
    span = rng.randint(SPAN_DAYS[0], min(SPAN_DAYS[1], world.days - 2))
    first_day = rng.randint(1, world.days - span - 1)
    days = sorted(rng.sample(range(first_day, first_day + span), rng.randint(*ACTIVE_DAYS)))
    moves: list[dict[str, object]] = []
    for d in days:
        for _ in range(_count(rng, b, small)):
            cents = _size(rng, b, small)
            ratio = rng.uniform(*vary) if varying else 1.0 - rng.uniform(*fee)
            forward = style == "forward" or (style == "mixed" and rng.random() < 0.5)
            t = d * DAY + rng.randint(8 * HOUR, 17 * HOUR)
            moves.append(_move(world, b, t, cents, ratio, forward, network, slowest))
    detail = {
        "style": style,
        "varying": varying,
        "small": small,
        "slowest_minutes": slowest // MINUTE,
        "counterparties": network,
        "moves": moves,
    }
    # The case runs from its earliest move to its latest: a day's moves are drawn unordered.
    start = min(cast(int, move["start"]) for move in moves)
    end = max(cast(int, move["end"]) for move in moves)
    world.label(start, b, PASS_THROUGH, end, detail)


def _outsider(rng: random.Random) -> str:
    """An account off the platform, named as any company's or person's account is."""
    if rng.random() < 0.5:
        return f"corp-{rng.randrange(10**6):06d}"
    return f"cust-{rng.randrange(10**8):08d}"


def _count(rng: random.Random, b: Borrower, small: bool) -> int:
    """Pass-throughs on an active day: small sums are repeated until they weigh in the day's
    turnover as larger ones do (turnover is what they are made for)."""
    if not small:
        return rng.randint(*PER_DAY)
    wanted = b.monthly_inflow / 30 * rng.uniform(*SMALL_WEIGHT)
    return min(SMALL_PER_DAY[1], max(SMALL_PER_DAY[0], round(wanted / 100 / SMALL_YUAN[1])))


def _size(rng: random.Random, b: Borrower, small: bool) -> int:
    """A pass-through's sum in cents: against the business's daily inflow, or a small sum."""
    if small:
        cents = round(rng.uniform(*SMALL_YUAN) * 100)
    else:
        cents = round(b.monthly_inflow / 30 * rng.uniform(*SIZE_OF_DAILY))
        cents = max(cents, 1_000_00)
    return round_to(cents, 100) if rng.random() < 0.4 else cents


def _move(
    world: World,
    b: Borrower,
    t: int,
    cents: int,
    ratio: float,
    forward: bool,
    network: list[str],
    slowest: int,
) -> dict[str, object]:
    """One pass-through: the near leg at ``t``, the far legs within ``slowest``."""
    rng = world.rng
    near, *far = rng.sample(network, min(len(network), 1 + rng.randint(*LEGS)))
    near_direction, far_direction = ("in", "out") if forward else ("out", "in")
    memo = rng.choice(B2B_MEMOS)
    world.tx(t, b, b.account, near, near_direction, cents, "bank_transfer", memo=memo)
    total = round(cents * ratio)
    shares = [rng.uniform(0.5, 1.5) for _ in far]
    parts = [round(total * s / sum(shares)) for s in shares]
    parts[-1] = total - sum(parts[:-1])
    at = t
    for counterparty, part in zip(far, parts, strict=True):
        at = min(t + slowest, at + rng.randint(2 * MINUTE, max(3 * MINUTE, slowest // len(far))))
        world.tx(at, b, b.account, counterparty, far_direction, part, "bank_transfer", memo=memo)
    return {
        "ts": world.iso(t),
        "first": near_direction,
        "amounts": [money(cents), money(total)],
        "legs": len(far),
        "minutes": round((at - t) / MINUTE),
        "start": t,
        "end": at,
    }


# --- the benign look-alikes -------------------------------------------------------------------


def wholesalers(world: World) -> None:
    """Traders paid by their clients who pay their suppliers the same day: high velocity,
    many counterparties, sums that do not meet. The trades are made by
    :func:`sim.benign.flows.wholesale_day`."""
    rng = world.rng
    wanted = max(1, round(WHOLESALE_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: b.case is None and not b.sector.consumer):
        b.wholesale = rng.uniform(0.5, 0.95)  # what the stock costs, against the sale


def sweeps(world: World) -> None:
    """Owners who sweep the day's takings to their savings elsewhere in round sums, and take
    some back when the business needs it. The sweeps are made by
    :func:`sim.benign.flows.sweep_day`."""
    rng = world.rng
    wanted = max(1, round(SWEEP_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: b.case is None):
        b.savings = f"sav-{rng.randrange(10**7):07d}"


PASS_THROUGH = Typology(
    name="pass_through",
    category=FALSIFIED_FLOW,
    plant=plant,
    default=one_per(60),
    min_days=21,
    need="days >= 21 (pass-throughs over 2-3 weeks)",
)
