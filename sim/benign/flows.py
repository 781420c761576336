"""Money flows of a day: sales, settlements, suppliers, expenses, rent, payroll, and the shocks."""

from __future__ import annotations

import math
from collections import defaultdict

from sim.draws import HOURS, hours, office_second, pick, poisson, second
from sim.population import B2B_MEMOS, Borrower
from sim.profiles import RESTAURANT_SLUMP
from sim.world import DAY, HOUR, MINUTE, World, round_to

# Sector-wide shocks: the same for every borrower of the sector, so a detector that compares a
# borrower with its sector sees nothing unusual (the seeds' sale day and lockdown).
#: Day of the e-commerce sale: every e-commerce borrower's inflows triple (a sector-wide boom).
SALE_DAY = 20
SALE_BOOST = 3.0
#: The sale opens at midnight: a burst in the first hours, then the evening as usual.
SALE_CUM = hours("9 6 3 1 .5 .3 .4 .8 1.5 2.5 3 3 3 3 3 3 3 3.5 4 5 6 7 6 4")
#: Days of the baseline's restaurant slump: every restaurant's inflows drop by 40 % (a
#: sector-wide shock). A profile's ``shocks`` say which sectors a run's shocks hit, when and how.
SLUMP_DAYS = RESTAURANT_SLUMP.span
SLUMP_INFLOW = RESTAURANT_SLUMP.inflow
SLUMP_OUTFLOW = RESTAURANT_SLUMP.outflow

#: Chance a day has a transfer between the borrower's own two accounts.
OWN_TRANSFER_RATE = 0.15
#: Chance a weekday has a purchase from the borrower's partner on the platform.
PARTNER_PAYMENT_RATE = 0.25


def decline(b: Borrower, d: int) -> float:
    """Share of its normal business the borrower does on day ``d``: a decline, a recovery."""
    if b.decline is None or d < b.decline[0]:
        return 1.0
    start, bottom, floor, recover = b.decline
    if d < bottom:
        return 1.0 - (1.0 - floor) * (d - start) / (bottom - start)
    if recover is None or d < recover:
        return floor
    return min(1.0, floor + (1.0 - floor) * (d - recover) / 14)


def growth(b: Borrower, d: int) -> float:
    """Extra business of a genuine growth on day ``d``, in shares of the usual."""
    if b.growth_span is None or d < b.growth_span[0]:
        return 0.0
    first, full, extra = b.growth_span
    return extra * min(1.0, (d - first) / max(1, full - first))


# --- money in ---------------------------------------------------------------------------------


def inflows(world: World, b: Borrower, d: int) -> None:
    """A day of money in: customers, settlements, clients, top-ups, and the rare big sums."""
    rng = b.rng
    weekend = world.weekend(d)
    # A failing business sees fewer and smaller payments: split the decline between the two,
    # so that even a borrower with one or two large inflows a day shows it.
    shrink = math.sqrt(decline(b, d))
    if b.acquirer is not None and b.pos_pending:
        _card_receipts(world, b, d)
    _customer_payments(world, b, d, weekend, shrink)
    if b.batch is not None:
        settle(world, b, d)
    if b.sector.consumer and not weekend and rng.random() < 0.08 * shrink:
        _corporate_order(world, b, d, shrink)
    if b.topups and rng.random() < 0.35 * shrink:
        # Members top up their prepaid cards in round sums.
        cents = rng.choice((100, 200, 200, 300, 500, 500, 1000)) * 100
        t = d * DAY + second(rng, b.sector.hours_cum)
        world.tx(t, b, b.account, rng.choice(b.regulars), "in", cents, "wallet")
    for first, client, ticket, chance in b.growth:
        if d >= first and not weekend and rng.random() < chance:
            _client_invoice(world, b, d, client, ticket)
    if b.trader is not None and not weekend and rng.random() < 0.2:
        _trader_sale(world, b, d)
    if d == b.big_contract_day:
        _big_contract(world, b, d)


def _card_receipts(world: World, b: Borrower, d: int) -> None:
    """Yesterday's card receipts, net of the acquirer's fee, at the acquirer's hour."""
    assert b.acquirer is not None
    cents = round(b.pos_pending * (1 - b.mdr))
    t = d * DAY + b.acquirer_second + b.rng.randint(0, 40)
    counterparty, name = b.acquirer
    world.tx(t, b, b.account, counterparty, "in", cents, "pos", name=name)
    b.pos_pending = 0


def _customer_payments(world: World, b: Borrower, d: int, weekend: bool, shrink: float) -> None:
    """Customers' or clients' payments over the sector's hours, some of them refunded."""
    rng, s = b.rng, b.sector
    base = d * DAY
    lam = s.inflows_per_day * b.count_scale * (s.weekend if weekend else 1.0)
    sale = s.name == "ecommerce" and d == SALE_DAY
    if sale:
        lam *= SALE_BOOST
    shock = world.shocks.get((s.name, d))
    if shock is not None:
        lam *= shock[0]
    lam *= shrink
    # Returns follow a sale: refunds double in the week after it.
    refund_rate = s.refund_rate * (2 if s.name == "ecommerce" and 0 < d - SALE_DAY <= 7 else 1)
    for hour in rng.choices(
        HOURS, cum_weights=SALE_CUM if sale else s.hours_cum, k=poisson(rng, lam)
    ):
        t = base + hour * HOUR + int(rng.random() * HOUR)
        channel = pick(rng, s.channels, s.channel_cum)
        x = rng.lognormvariate(b.log_ticket, s.sigma) * shrink
        cents = max(1, round(x)) * 100 if rng.random() < 0.4 else max(100, round(x * 100))
        if channel == "ecommerce":
            i = rng.randrange(len(b.platforms))
            if b.batch is not None:
                b.unsettled.append((t, i, cents))
            else:
                counterparty, name = b.platforms[i]
                world.tx(t, b, b.account, counterparty, "in", cents, channel, name=name)
        elif channel == "pos" and b.acquirer is not None:
            b.pos_pending += cents
        else:
            _direct_payment(world, b, t, channel, cents, refund_rate)


def _direct_payment(
    world: World, b: Borrower, t: int, channel: str, cents: int, refund_rate: float
) -> None:
    """A payment straight to the account: a regular or a passer-by, sometimes refunded."""
    rng, s = b.rng, b.sector
    if rng.random() < s.regular_share:
        counterparty = rng.choice(b.regulars)
    elif s.consumer:
        counterparty = f"cust-{rng.randrange(10**8):08d}"
    else:
        counterparty = f"corp-{rng.randrange(10**6):06d}"
    memo = None if s.consumer else rng.choice(B2B_MEMOS)
    world.tx(t, b, b.account, counterparty, "in", cents, channel, memo=memo)
    if rng.random() < refund_rate:
        back = t + rng.randint(30 * MINUTE, 20 * HOUR)
        world.tx(back, b, b.account, counterparty, "out", cents, channel, memo="refund")


def settle(world: World, b: Borrower, d: int) -> None:
    """Platform settlement batches at fixed times: orders until an hour before, net of fees."""
    assert b.batch is not None
    first, period = b.batch
    rng = b.rng
    t = d * DAY + first
    while t < (d + 1) * DAY:
        cutoff = t - HOUR
        sums: dict[int, int] = defaultdict(int)
        keep = []
        for order in b.unsettled:
            if order[0] < cutoff:
                sums[order[1]] += order[2]
            else:
                keep.append(order)
        b.unsettled = keep
        for i in sorted(sums):
            counterparty, name = b.platforms[i]
            cents = round(sums[i] * (1 - b.platform_fee))
            at = t + rng.randint(0, 25)
            world.tx(at, b, b.account, counterparty, "in", cents, "ecommerce", name=name)
        t += period


def _corporate_order(world: World, b: Borrower, d: int, shrink: float) -> None:
    """A catering order or a wholesale buyer pays a consumer business by bank transfer."""
    rng = b.rng
    cents = round(math.exp(b.log_ticket) * 100 * rng.uniform(10, 60) * shrink)
    cents = round_to(cents, 100) if rng.random() < 0.5 else cents
    memo = rng.choice(B2B_MEMOS)
    t = d * DAY + office_second(rng)
    world.tx(t, b, b.account, rng.choice(b.clients), "in", cents, "bank_transfer", memo=memo)


def _client_invoice(world: World, b: Borrower, d: int, client: str, ticket: int) -> None:
    """A new big client of a genuine growth pays an invoice."""
    rng = b.rng
    cents = round(ticket * rng.lognormvariate(0, 0.3))
    cents = round_to(cents, 1000) if rng.random() < 0.4 else cents
    memo = rng.choice(B2B_MEMOS)
    t = d * DAY + office_second(rng)
    world.tx(t, b, b.account, client, "in", cents, "bank_transfer", memo=memo)


def _trader_sale(world: World, b: Borrower, d: int) -> None:
    """A trader sells back to the partner it buys from, at a margin."""
    assert b.trader is not None
    rng = b.rng
    counterparty, ticket = b.trader
    cents = round(ticket * rng.lognormvariate(0, 0.3) * rng.uniform(1.05, 1.4))
    cents = round_to(cents, 100) if rng.random() < 0.3 else cents
    memo = rng.choice(B2B_MEMOS)
    t = d * DAY + office_second(rng)
    world.tx(t, b, b.account, counterparty, "in", cents, "bank_transfer", memo=memo)


def _big_contract(world: World, b: Borrower, d: int) -> None:
    """A manufacturer's one-off contract prepayment from a client never seen before."""
    rng = b.rng
    cents = round_to(math.exp(b.log_ticket) * 100 * rng.uniform(15, 40), 1000)
    t = d * DAY + office_second(rng)
    client = f"corp-{rng.randrange(10**6):06d}"
    memo = "contract prepayment"
    world.tx(t, b, b.account, client, "in", cents, "bank_transfer", memo=memo)


# --- money out --------------------------------------------------------------------------------


def outflows(world: World, b: Borrower, d: int) -> None:
    """A day of money out: suppliers, expenses, a partner, own transfers, rent and payroll;
    a wholesaler's trades and an owner's sweeps to savings."""
    rng = b.rng
    weekend = world.weekend(d)
    _suppliers_and_expenses(world, b, d, weekend)
    if b.partner is not None and not weekend and rng.random() < PARTNER_PAYMENT_RATE:
        cents = max(100, round(b.supplier_ticket * rng.lognormvariate(0, 0.5) * 100))
        t = d * DAY + office_second(rng)
        world.transfer(t, b, b.partner, cents, rng.choice(B2B_MEMOS))
    if b.trader is not None and not weekend and rng.random() < 0.25:
        _trader_purchase(world, b, d)
    if rng.random() < OWN_TRANSFER_RATE:
        _own_transfer(world, b, d)
    _rent_and_payroll(world, b, d)
    if b.wholesale is not None:
        wholesale_day(world, b, d)
    if b.savings is not None:
        sweep_day(world, b, d)


def _suppliers_and_expenses(world: World, b: Borrower, d: int, weekend: bool) -> None:
    """Supplier invoices, which follow the business up and down, and small running expenses."""
    rng, s = b.rng, b.sector
    base = d * DAY
    scale = (s.supplier_weekend if weekend else 1.0) * (1 + decline(b, d)) / 2
    more = 0.6 * growth(b, d)
    scale *= 1 + more
    shock = world.shocks.get((s.name, d))
    if shock is not None:
        scale *= shock[1]
    for _ in range(poisson(rng, s.suppliers_per_day * scale)):
        cents = b.supplier_ticket * rng.lognormvariate(0, 0.5) * 100
        cents = round_to(cents, 100) if rng.random() < 0.25 else max(100, round(cents))
        t = base + office_second(rng)
        supplier = rng.choice(b.suppliers)
        if b.growth_supplier is not None and rng.random() < more / (1 + more):
            supplier = b.growth_supplier  # the growth's stock, from its new supplier
        memo = rng.choice(B2B_MEMOS)
        world.tx(t, b, b.account, supplier, "out", cents, "bank_transfer", memo=memo)
    for _ in range(poisson(rng, s.expenses_per_day * (0.5 if weekend else 1.0))):
        cents = max(100, round(rng.lognormvariate(math.log(s.expense_ticket), 0.6) * 100))
        t = base + second(rng, s.hours_cum)
        payee = f"{s.expense_prefix}-{rng.randrange(500):04d}"
        world.tx(t, b, b.account, payee, "out", cents, s.expense_channel)


def _trader_purchase(world: World, b: Borrower, d: int) -> None:
    """A trader buys from the partner it also sells to."""
    assert b.trader is not None
    rng = b.rng
    counterparty, ticket = b.trader
    cents = round(ticket * rng.lognormvariate(0, 0.3))
    cents = round_to(cents, 100) if rng.random() < 0.3 else cents
    memo = rng.choice(B2B_MEMOS)
    t = d * DAY + office_second(rng)
    world.tx(t, b, b.account, counterparty, "out", cents, "bank_transfer", memo=memo)


def _own_transfer(world: World, b: Borrower, d: int) -> None:
    """Money between the borrower's two accounts: an out on one, the same in on the other."""
    rng = b.rng
    cents = b.monthly_inflow / 30 * rng.uniform(1, 5)
    cents = round_to(cents, 1000) if rng.random() < 0.6 else max(100, round(cents))
    src, dst = (b.account, b.second_account)
    if rng.random() < 0.25:
        src, dst = dst, src
    t = d * DAY + office_second(rng)
    world.tx(t, b, src, dst, "out", cents, "bank_transfer", memo="own transfer")
    world.tx(t, b, dst, src, "in", cents, "bank_transfer", memo="own transfer")


def _rent_and_payroll(world: World, b: Borrower, d: int) -> None:
    """Rent and payroll on their day of the month, in round sums."""
    rng = b.rng
    dom = world.dates[d].day
    if dom == b.rent_dom:
        t = d * DAY + rng.randint(9 * HOUR, 11 * HOUR)
        world.tx(t, b, b.account, b.landlord, "out", b.rent, "bank_transfer", memo="rent")
    if dom == b.payroll_dom:
        t = d * DAY + rng.randint(9 * HOUR, 12 * HOUR)
        world.tx(
            t,
            b,
            b.account,
            f"payroll-{b.number}",
            "out",
            b.payroll,
            "bank_transfer",
            name="Payroll agent",
            memo="payroll",
        )


# --- the look-alikes of pass-through (sim/typologies/pass_through.py) ---------------------------


def wholesale_day(world: World, b: Borrower, d: int) -> None:
    """A wholesaler's day: a few clients pay for orders, suppliers are paid for their stock."""
    rng = b.rng
    if world.weekend(d) or b.wholesale is None:
        return
    for _ in range(rng.randint(1, 3)):
        sale = round(b.monthly_inflow / 20 * rng.lognormvariate(0, 0.5))
        t = d * DAY + office_second(rng)
        memo = rng.choice(B2B_MEMOS)
        world.tx(t, b, b.account, rng.choice(b.clients), "in", sale, "bank_transfer", memo=memo)
        for _ in range(rng.randint(1, 4)):
            cents = round(sale * b.wholesale * rng.uniform(0.2, 0.6))
            at = t + rng.randint(20 * MINUTE, 6 * HOUR)
            supplier = rng.choice(b.suppliers)
            world.tx(at, b, b.account, supplier, "out", cents, "bank_transfer", memo=memo)


def sweep_day(world: World, b: Borrower, d: int) -> None:
    """At the close of a weekday, the takings swept to savings; now and then some back."""
    rng = b.rng
    if b.savings is None or world.weekend(d):
        return
    t = d * DAY + rng.randint(17 * HOUR, 20 * HOUR)
    cents = round_to(b.monthly_inflow / 22 * rng.uniform(0.6, 1.0), 1000)
    world.tx(t, b, b.account, b.savings, "out", cents, "bank_transfer", memo="to savings")
    if rng.random() < 0.2:
        back = d * DAY + rng.randint(8 * HOUR, 10 * HOUR)
        cents = round_to(b.monthly_inflow / 10 * rng.uniform(0.5, 1.5), 1000)
        world.tx(back, b, b.account, b.savings, "in", cents, "bank_transfer", memo="from savings")
