"""Revenue inflation: new payers ramp up before a loan application; beside it, genuine growth."""

from __future__ import annotations

import math
import random

from sim.benign.repayments import disburse, new_loan
from sim.benign.sessions import plan_application
from sim.draws import OFFICE_CUM, office_second, second
from sim.population import B2B_MEMOS, Borrower, Loan
from sim.typologies.base import Typology, one_per
from sim.typologies.common import session
from sim.world import DAY, HOUR, MINUTE, World, money, monthly_dues, round_to, shift_months
from topics.names import FALSIFIED_FLOW

#: Days of the ramp (3–6 weeks) and its extra inflow are the profile's ``ramp_days`` and
#: ``ramp_boost``.
#: Chance the ramp stops 1–2 weeks before the application rather than at it.
EARLY_END_SHARE = 0.3
EARLY_END_DAYS = (7, 14)
#: Bounds of one forged transfer, cents: large enough to matter, below a review's notice.
TRANSFER_CENTS = (10_000_00, 150_000_00)
#: Few large payers, or many smaller ones: the chance of many, and the payer counts.
MANY_PAYERS_SHARE = 0.35
FEW_PAYERS = (2, 5)
MANY_PAYERS = (8, 15)
#: Chance the forged money is sent on (to repay whoever lent it) to 1–3 new payees,
#: keeping 85–100 % of each transfer sent on, the share of transfers sent on, and how soon.
RECYCLE_SHARE = 0.7
RECYCLED_TRANSFERS = (0.5, 1.0)
RECYCLE_DELAY = (1 * HOUR, 3 * DAY)
#: Days from the application to the drawdown (0: within hours of it), by weight.
DRAW_LATER = (0, 0, 0, 1, 2, 3)
#: Share of the population with a genuine growth (new big clients, then an application).
GROWTH_SHARE = 0.015
#: Chance a genuine growth buys its extra stock from a new supplier: money out to a payee
#: never paid before, soon after the new clients' money came in.
NEW_SUPPLIER_SHARE = 0.5


def plant(world: World, number: int, borrowers: list[Borrower]) -> None:
    """Inflows from new payers ramp up for 3–6 weeks, ending at a loan application or 1–2
    weeks before it, then stop; the money is often sent on. Every trait is drawn per case."""
    (b,) = borrowers
    rng = world.rng
    gap = rng.randint(*EARLY_END_DAYS) if rng.random() < EARLY_END_SHARE else 0
    gap = min(gap, world.days - 42)  # a short run leaves no room for an early end
    apply_day = rng.randint(35 + gap, world.days - 7)
    ramp_end = apply_day - gap
    shortest, longest = world.config.profile.ramp_days
    ramp = rng.randint(shortest, min(longest, ramp_end - 14))
    boost = rng.uniform(*world.config.profile.ramp_boost)
    many = rng.random() < MANY_PAYERS_SHARE
    payers = rng.randint(*(MANY_PAYERS if many else FEW_PAYERS))
    amounts = _amounts(rng, b.monthly_inflow * boost, ramp, payers)
    transfers = len(amounts)
    sources = [f"corp-{rng.randrange(10**6):06d}" for _ in range(payers)][:transfers]
    # The density grows linearly over the ramp: more and more money as its end nears.
    ramp_start = ramp_end - ramp
    days = [
        min(ramp_end - 1, ramp_start + int(ramp * math.sqrt(rng.random())))
        for _ in range(transfers)
    ]
    times = sorted(d * DAY + office_second(rng) for d in days)
    recycle, used, added = _pay_in(world, b, times, amounts, sources)
    apply_t, asked, draw_t, loan = _borrow(world, b, apply_day, boost)
    detail = {
        "counterparties": used,
        "transfers": transfers,
        "added_inflow": money(added),
        "monthly_inflow": money(b.monthly_inflow),
        "ramp_days": ramp,
        "ramp_ends_days_before_application": gap,
        "application_ts": world.iso(apply_t),
        "application_amount": money(asked),
        "drawdown_ts": world.iso(draw_t),
        "loan_id": loan.loan_id,
        "recycled": recycle,
    }
    world.label(times[0], b, REVENUE_INFLATION, draw_t, detail)


def _amounts(rng: random.Random, extra: float, ramp: int, payers: int) -> list[int]:
    """The forged transfers, cents: each payer's at least once, adding up to ``extra`` in the
    ramp's last month; many payers send smaller sums."""
    in_last_month = 1.0 - (max(0, ramp - 30) / ramp) ** 2
    total = extra / in_last_month
    low, high = TRANSFER_CENTS
    size = min(high, max(low, round(total / rng.randint(max(6, payers), max(25, 2 * payers)))))
    amounts: list[int] = []
    while sum(amounts) < total or len(amounts) < payers:
        cents = min(high, max(low, round(size * rng.lognormvariate(0, 0.35))))
        amounts.append(round_to(cents, 1000) if rng.random() < 0.6 else cents)
    return amounts


def _pay_in(
    world: World, b: Borrower, times: list[int], amounts: list[int], sources: list[str]
) -> tuple[bool, list[str], int]:
    """The forged inflows, payers joining one by one; whether recycled, the payers, the sum."""
    rng = world.rng
    memo = rng.choice(B2B_MEMOS)
    recycle = rng.random() < RECYCLE_SHARE
    sent_on = rng.uniform(*RECYCLED_TRANSFERS)
    sinks = [f"supp-{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 3))]
    added = 0
    used: list[str] = []
    for i, (t, cents) in enumerate(zip(times, amounts, strict=True)):
        # Payers join one by one as the ramp goes on; each pays at least once.
        unlocked = 1 + i * len(sources) // len(times)
        source = sources[len(used)] if unlocked > len(used) else rng.choice(used)
        if source not in used:
            used.append(source)
        world.tx(t, b, b.account, source, "in", cents, "bank_transfer", memo=memo)
        added += cents
        if recycle and rng.random() < sent_on:
            back = t + rng.randint(*RECYCLE_DELAY)
            out = round(cents * rng.uniform(0.85, 1.0))
            world.tx(back, b, b.account, rng.choice(sinks), "out", out, "bank_transfer")
    return recycle, used, added


def _borrow(world: World, b: Borrower, apply_day: int, boost: float) -> tuple[int, int, int, Loan]:
    """Apply on the inflated turnover, draw the same session or days later, get paid out."""
    rng = world.rng
    inflated = b.monthly_inflow * (1 + boost)
    asked = round_to(inflated * rng.uniform(1.0, 3.0), 10_000)
    drawn = round_to(asked * rng.uniform(0.6, 1.0), 1000)
    session_t = apply_day * DAY + second(rng, OFFICE_CUM)
    later = rng.choice(DRAW_LATER)
    hours_later = rng.random() < 0.5
    if later or hours_later:
        (apply_t,) = session(world, b, session_t, [("loan_application", asked)])
        if later:
            session_t = (apply_day + later) * DAY + second(rng, OFFICE_CUM)
        else:  # a second session within hours
            session_t = apply_t + rng.randint(1 * HOUR, 5 * HOUR)
        (draw_t,) = session(world, b, session_t, [("drawdown", drawn)])
    else:
        actions = [("loan_application", asked), ("drawdown", drawn)]
        apply_t, draw_t = session(world, b, session_t, actions)
    loan = new_loan(b, draw_t + MINUTE, [], 0)
    count = rng.choice((6, 12))
    loan.dues = monthly_dues(shift_months(world.dates[draw_t // DAY], 1), count)
    loan.amount_due = round(drawn * (1 + 0.012 * count) / count)
    b.loans.append(loan)
    disburse(world, b, draw_t + 2 * MINUTE, loan, drawn)
    return apply_t, asked, draw_t, loan


# --- the benign look-alikes -------------------------------------------------------------------


def genuine_growth(world: World) -> None:
    """New big clients over weeks, then a loan application; unlike a forgery, the clients stay.

    Their invoices are paid by :mod:`sim.benign.flows`; the suppliers grow with them.
    """
    if world.days < 45:
        return
    wanted = max(1, round(GROWTH_SHARE * len(world.borrowers)))
    for b in world.some(wanted, lambda b: b.case is None and not b.loans and not b.actions):
        _grow(world, b)


def _grow(world: World, b: Borrower) -> None:
    """New big clients arrive over 3–6 weeks; the borrower applies and the clients stay."""
    rng = b.rng
    ramp = rng.randint(21, min(42, world.days - 24))
    apply_day = rng.randint(ramp + 14, world.days - 10)
    first = apply_day - ramp
    extra = b.monthly_inflow * rng.uniform(0.6, 1.5)
    # Big clients pay large invoices (10k+); a small business's growth is then as steep as
    # a forged one, which is what makes it a hard case.
    clients = rng.randint(2, 6)
    ticket = min(150_000_00, max(10_000_00, round(extra / clients / (30 * 5 / 7 * 0.3))))
    sales = 0.0  # what the new clients are expected to pay a month, cents
    for k in range(clients):
        start = first + round(k * ramp / clients) + rng.randint(0, 3)
        chance = max(0.2, min(0.35, extra / clients / ticket / (30 * 5 / 7)))
        b.growth.append((start, f"corp-{rng.randrange(10**6):06d}", ticket, chance))
        sales += ticket * chance * 30 * 5 / 7
    # The business buys for the sales it makes, not for the growth it meant: with invoices of
    # 10k at least, a small business's new clients pay several times ``extra``, and its
    # suppliers grow with what they pay (a shop selling three times more buys more stock).
    b.growth_span = (first, apply_day, sales / b.monthly_inflow)
    if rng.random() < NEW_SUPPLIER_SHARE:
        b.growth_supplier = f"supp-{rng.randrange(10**6):06d}"
    plan_application(b, apply_day, drawdown=True)


def big_contracts(world: World) -> None:
    """One manufacturer in ten gets a contract prepayment: a lump from a new client, once.

    Not on a case of declining inflows, where a lump would hide the decline.
    """
    rng = world.rng
    makers = [b for b in world.borrowers if b.sector.name == "manufacturing"]
    makers = [b for b in makers if b.case != "missed_installment"]
    for b in rng.sample(makers, max(1, len(makers) // 10) if makers else 0):
        b.big_contract_day = rng.randrange(world.days)


REVENUE_INFLATION = Typology(
    name="revenue_inflation",
    category=FALSIFIED_FLOW,
    plant=plant,
    default=one_per(100),
    min_days=42,
    need="days >= 42 (a ramp of 3+ weeks)",
)
