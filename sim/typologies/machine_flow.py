"""Machine-generated flows: a script pays in like clockwork; beside it, settlements and top-ups."""

from __future__ import annotations

from sim.population import ACQUIRERS, B2B_MEMOS, Borrower
from sim.typologies.base import Typology, one_per
from sim.world import DAY, HOUR, MINUTE, World, round_to
from topics.names import FALSIFIED_FLOW

#: Between two payments of the script (its jitter in seconds either way is the profile's
#: ``script_jitter``).
INTERVAL = (37 * MINUTE, 90 * MINUTE)
#: Days the script runs.
LENGTH_DAYS = (14, 28)
#: Chance the script keeps office hours (else it runs day and night), and pays round sums.
OFFICE_SHARE = 0.7
ROUND_SHARE = 0.5
#: Benign regularity: e-commerce settlement batches, card acquirers' batches, round top-ups.
BATCH_SHARE = 0.5
ACQUIRER_SHARE = 0.4
TOPUP_SHARE = 0.3


def plant(world: World, number: int, borrowers: list[Borrower]) -> None:
    """A script pays in every 37–90 minutes, to the second, round or uniform sums."""
    (b,) = borrowers
    rng = world.rng
    length = rng.randint(LENGTH_DAYS[0], min(LENGTH_DAYS[1], world.days - 7))
    first = rng.randint(7, world.days - length)
    interval = rng.randint(*INTERVAL)
    jitter = rng.randint(*world.config.profile.script_jitter)
    office = rng.random() < OFFICE_SHARE
    hours = (rng.randint(7, 9) * HOUR, rng.randint(20, 23) * HOUR) if office else (0, DAY)
    rounded = rng.random() < ROUND_SHARE
    channel = next(c for c in b.sector.channels if c != "ecommerce")
    prefix, digits = ("cust", 8) if b.sector.consumer else ("corp", 6)
    payers = [f"{prefix}-{rng.randrange(10**digits):0{digits}d}" for _ in range(rng.randint(3, 6))]
    per_day = (hours[1] - hours[0]) / interval
    mean = b.monthly_inflow * rng.uniform(1.0, 2.0) / 30 / per_day
    unit = 1000 if mean >= 5_000_00 else 100
    t = first * DAY + hours[0] + rng.randrange(interval)
    end = (first + length) * DAY
    count = 0
    last = t
    while t < end:
        second = t % DAY
        if hours[0] <= second < hours[1]:
            if rounded:
                cents = round_to(mean * rng.uniform(0.3, 1.7), unit)
            else:
                cents = max(100, round(rng.uniform(0.2, 1.8) * mean))
            memo = None if b.sector.consumer else rng.choice(B2B_MEMOS)
            world.tx(t, b, b.account, rng.choice(payers), "in", cents, channel, memo=memo)
            count += 1
            last = t
        t += interval + rng.randint(-jitter, jitter)
    detail = {
        "interval_seconds": interval,
        "jitter_seconds": jitter,
        "amounts": "round" if rounded else "uniform",
        "counterparties": payers,
        "channel": channel,
        "hours": [hours[0] // HOUR, hours[1] // HOUR],
        "transfers": count,
    }
    world.label(first * DAY + hours[0], b, MACHINE_GENERATED, last, detail)


# --- the benign look-alikes -------------------------------------------------------------------


def settlements(world: World) -> None:
    """Payments at one time of day in batches, and members' round top-ups.

    Half the e-commerce borrowers are paid by their platforms in batches (daily or every few
    hours, net of a fee); 40 % of the shops and restaurants get their card receipts from an
    acquirer each morning; 30 % take prepaid top-ups in round sums. :mod:`sim.benign.flows`
    makes the payments.
    """
    for b in world.borrowers:
        rng = b.rng
        if b.sector.name == "ecommerce" and rng.random() < BATCH_SHARE:
            period = rng.choice((DAY, DAY, DAY, 12 * HOUR, 6 * HOUR, 4 * HOUR))
            first = rng.choice((1, 2, 3, 6, 9)) * HOUR + rng.randrange(60) * MINUTE
            b.batch = (first % period, period)
            b.platform_fee = rng.uniform(0.006, 0.05)
        elif b.sector.name in ("restaurant", "retail"):
            if rng.random() < ACQUIRER_SHARE:
                b.acquirer = rng.choice(ACQUIRERS)
                b.acquirer_second = rng.randint(7 * HOUR, 11 * HOUR)
                b.mdr = rng.uniform(0.0038, 0.006)
            b.topups = rng.random() < TOPUP_SHARE


MACHINE_GENERATED = Typology(
    name="machine_generated",
    category=FALSIFIED_FLOW,
    plant=plant,
    default=one_per(100),
    min_days=21,
    need="days >= 21 (a week, then 2+)",
)
