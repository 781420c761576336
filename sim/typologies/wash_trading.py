"""Wash trading: the same sum in and out with one accomplice; beside it, traders and deposits."""

from __future__ import annotations

import math

from sim.draws import office_second
from sim.population import B2B_MEMOS, Borrower
from sim.typologies.base import Typology, one_per
from sim.world import DAY, HOUR, MINUTE, World, money, round_to
from topics.names import FALSIFIED_FLOW

#: Days the round trips are spread over, and how many of them have one.
SPAN_DAYS = (14, 21)
ROUND_TRIPS = (4, 8)
#: A typical round trip, yuan; each one is 70–130 % of it, within the bounds.
TYPICAL = (20_000, 200_000)
BOUNDS = (21_000, 199_000)
#: The sum back keeps up to 0.5 % (a fee), or is the same to the cent.
KEEP = 0.005
#: Between the two legs of a round trip.
GAP = (5 * MINUTE, 8 * HOUR)
#: Shares of the population that buy from and sell to one partner, or pay and get back a deposit.
TRADER_SHARE = 0.03
DEPOSIT_SHARE = 0.03


def plant(world: World, number: int, borrowers: list[Borrower]) -> None:
    """The same sum in and out with one accomplice, the same day, on 4–8 days of 2–3 weeks."""
    (b,) = borrowers
    rng = world.rng
    kind = "supp" if rng.random() < 0.3 else "corp"
    accomplice = f"{kind}-{rng.randrange(10**6):06d}"
    span = rng.randint(SPAN_DAYS[0], min(SPAN_DAYS[1], world.days - 7))
    first = rng.randint(7, world.days - span)
    wanted = rng.randint(ROUND_TRIPS[0], min(ROUND_TRIPS[1], span))
    days = sorted(rng.sample(range(first, first + span), wanted))
    typical = math.exp(rng.uniform(math.log(TYPICAL[0]), math.log(TYPICAL[1])))
    memo = rng.choice(B2B_MEMOS)
    pairs = []
    start = end = 0
    for d in days:
        cents = round(min(BOUNDS[1], max(BOUNDS[0], typical * rng.uniform(0.7, 1.3))) * 100)
        if rng.random() < 0.5:
            cents = round_to(cents, 1000)
        back = cents if rng.random() < 0.4 else round(cents * (1 - rng.uniform(0, KEEP)))
        t = d * DAY + rng.randint(8 * HOUR, 15 * HOUR)
        gap = rng.randint(*GAP)
        inward = rng.random() < 0.6
        legs = [("in", cents), ("out", back)] if inward else [("out", cents), ("in", back)]
        for (direction, amount), at in zip(legs, (t, t + gap), strict=True):
            world.tx(at, b, b.account, accomplice, direction, amount, "bank_transfer", memo=memo)
        pairs.append(
            {
                "date": world.dates[d].isoformat(),
                "first": legs[0][0],
                "amounts": [money(cents), money(back)],
                "gap_minutes": round(gap / MINUTE),
            }
        )
        start, end = start or t, t + gap
    detail = {"counterparty": accomplice, "pairs": pairs}
    world.label(start, b, WASH_TRADING, end, detail)


# --- the benign look-alikes -------------------------------------------------------------------


def traders(world: World) -> None:
    """Businesses that buy from and sell to one partner: in and out with one counterparty.

    The trades are made by :mod:`sim.benign.flows`, on about one weekday in four or five.
    """
    rng = world.rng
    wanted = max(1, round(TRADER_SHARE * len(world.borrowers)))
    for b in world.some(
        wanted,
        lambda b: (
            b.case not in ("wash_trading", "missed_installment") and b.sector.name != "ecommerce"
        ),
    ):
        ticket = min(200_000_00, max(20_000_00, round(b.monthly_inflow * rng.uniform(0.1, 0.4))))
        b.trader = (rng.choice((b.suppliers[0], b.clients[0])), ticket)


def deposits(world: World) -> None:
    """A deposit paid out and returned whole, days later or the same day."""
    wanted = max(1, round(DEPOSIT_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: b.case != "missed_installment"):
        rng = b.rng
        for _ in range(rng.randint(1, 2)):
            day = rng.randrange(world.days)
            cents = round_to(b.monthly_inflow * rng.uniform(0.1, 0.6), 100)
            counterparty = rng.choice((*b.suppliers, *b.clients))
            out = day * DAY + office_second(rng)
            back = out + rng.randint(5 * MINUTE, 8 * HOUR)
            if rng.random() < 0.75:
                back += rng.randint(1, 10) * DAY
            memo = rng.choice(B2B_MEMOS)
            world.tx(out, b, b.account, counterparty, "out", cents, "bank_transfer", memo=memo)
            world.tx(back, b, b.account, counterparty, "in", cents, "bank_transfer", memo=memo)


WASH_TRADING = Typology(
    name="wash_trading",
    category=FALSIFIED_FLOW,
    plant=plant,
    default=one_per(100),
    min_days=21,
    need="days >= 21 (a week, then 2-3)",
)
