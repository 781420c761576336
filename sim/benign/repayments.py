"""Loans and their repayments: ordinary loans, booked drawdowns, and each borrower's pay habit."""

from __future__ import annotations

from datetime import date, timedelta

from sim.population import Borrower, Loan
from sim.world import DAY, HOUR, MINUTE, World, money, monthly_dues, shift_months

#: Share of the population with a loan running from day 0 (the delinquents' count among them).
LOAN_SHARE = 0.6
#: Days after the due date a payment still counts as on time (the detectors' default grace).
GRACE_DAYS = 3
#: Chance an installment is paid in two parts on consecutive days.
SPLIT_PAYMENT_RATE = 0.05
LENDER_REPAY = ("lender-repay", "Loan repayment")
LENDER_DISBURSE = ("lender-disburse", "Loan disbursement")


def new_loan(b: Borrower, booked: int, dues: list[date], amount_due: int = 0) -> Loan:
    """A loan whose installment is, unless given, 5–15 % of the borrower's monthly inflow."""
    amount_due = amount_due or round(b.monthly_inflow * b.rng.uniform(0.05, 0.15))
    return Loan(f"ln-{b.number}-{len(b.loans) + 1}", booked, dues, amount_due)


def book(world: World, b: Borrower, booked: int, principal: int) -> Loan:
    """The schedule of a drawdown: 6 or 12 monthly installments from a month later."""
    count = b.rng.choice((6, 12))
    first_due = shift_months(world.dates[0] + timedelta(days=booked // DAY), 1)
    due = round(principal * (1 + 0.012 * count) / count)
    loan = new_loan(b, booked, monthly_dues(first_due, count), due)
    b.loans.append(loan)
    schedule(world, b, loan)
    return loan


def ordinary_loans(world: World, delinquents: int) -> None:
    """Loans running from day 0, booked in its first hour, for LOAN_SHARE of the population.

    The delinquents' loans count towards the share; a revenue inflation borrows only at the
    end of its ramp, so it has no loan before.
    """
    rng = world.rng
    others = [b for b in world.borrowers if b.case != "missed_installment"]
    share = (LOAN_SHARE * len(world.borrowers) - delinquents) / max(1, len(others))
    for b in others:
        if b.case != "revenue_inflation" and rng.random() < share:
            first_due = world.dates[0] + timedelta(days=rng.randint(10, 40))
            dues = monthly_dues(first_due, rng.choice((6, 12)))
            b.loans.append(new_loan(b, rng.randint(MINUTE, 59 * MINUTE), dues))


def disburse(world: World, b: Borrower, t: int, loan: Loan, cents: int) -> None:
    """The lender pays the drawdown onto the borrower's account."""
    name = LENDER_DISBURSE[1]
    memo = loan.loan_id
    world.tx(
        t, b, b.account, LENDER_DISBURSE[0], "in", cents, "bank_transfer", name=name, memo=memo
    )


def schedule(world: World, b: Borrower, loan: Loan) -> None:
    """Publish the loan's schedule, then pay each installment due in the period by habit."""
    for k, due in enumerate(loan.dues, start=1):
        world.repayment(
            loan.booked,
            b,
            loan,
            k,
            kind="scheduled",
            due_date=due.isoformat(),
            amount_due=money(loan.amount_due),
        )
    start = world.dates[0]
    for k, due in enumerate(loan.dues, start=1):
        due_day = (due - start).days
        if due_day * DAY - 12 * DAY > world.end:
            break
        if k in loan.plan:
            for day, cents in loan.plan[k]:
                pay(world, b, loan, k, day, cents)
            continue
        if loan.missed_from is not None and k >= loan.missed_from:
            continue
        by_habit(world, b, loan, k, due_day)


def by_habit(world: World, b: Borrower, loan: Loan, k: int, due_day: int) -> None:
    """Installment ``k`` as the borrower pays: late within grace, early, or about on time."""
    rng = b.rng
    profile = world.config.profile
    if b.pay_style == "late":
        t = pay(world, b, loan, k, due_day + rng.choice(profile.late_days), loan.amount_due)
        _maybe_bounce(world, b, loan, k, t, due_day, loan.amount_due)
        return
    if b.pay_style == "early":
        pay_day = due_day - rng.randint(4, 12)
    else:
        pay_day = due_day - rng.choices((0, 1, 2, 3), cum_weights=(35, 65, 85, 100))[0]
    if rng.random() < SPLIT_PAYMENT_RATE:
        part = round(loan.amount_due * rng.uniform(0.4, 0.7))
        pay(world, b, loan, k, pay_day - 1, part)
        pay(world, b, loan, k, pay_day, loan.amount_due - part)
    else:
        t = pay(world, b, loan, k, pay_day, loan.amount_due)
        _maybe_bounce(world, b, loan, k, t, due_day, loan.amount_due)


def _maybe_bounce(
    world: World, b: Borrower, loan: Loan, k: int, paid: int, due_day: int, cents: int
) -> None:
    """With the profile's ``reversal_rate``, the debit bounces and is paid again within grace.

    The bank returns the debit hours to a day later (a ``reversal``, and the money back on the
    statement); the borrower tops the account up and pays again before the grace period ends.
    """
    rate = world.config.profile.reversal_rate
    if not rate or b.rng.random() >= rate:
        return  # at rate 0 nothing is drawn: the baseline's draws stay as they were
    rng = b.rng
    back = paid + rng.randint(4 * HOUR, 30 * HOUR)
    last = (due_day + GRACE_DAYS) * DAY + 20 * HOUR
    if back + HOUR >= last:
        return  # paid too close to the end of grace for a bounce to be made good
    world.repayment(back, b, loan, k, kind="reversal", amount=money(cents))
    memo = f"{loan.loan_id} #{k} returned"
    lender, name = LENDER_REPAY
    world.tx(back, b, b.account, lender, "in", cents, "bank_transfer", name=name, memo=memo)
    again = min(back + rng.randint(2 * HOUR, 48 * HOUR), last - rng.randint(0, 4 * HOUR))
    debit(world, b, loan, k, max(again, back + HOUR), cents)


def pay(world: World, b: Borrower, loan: Loan, installment: int, day: int, cents: int) -> int:
    """A payment shows in the repayment stream and as a debit on the borrower's account; its
    instant."""
    t = day * DAY + b.rng.randint(8 * HOUR, 22 * HOUR)
    if t <= loan.booked:
        # An early payer cannot pay before the schedule exists: right after it, then.
        t = loan.booked + b.rng.randint(HOUR, 6 * HOUR)
    debit(world, b, loan, installment, t, cents)
    return t


def debit(world: World, b: Borrower, loan: Loan, installment: int, t: int, cents: int) -> None:
    """A payment of ``cents`` at ``t``: in the repayment stream and on the account."""
    world.repayment(t, b, loan, installment, kind="payment", amount=money(cents))
    world.tx(
        t,
        b,
        b.account,
        LENDER_REPAY[0],
        "out",
        cents,
        "bank_transfer",
        name=LENDER_REPAY[1],
        memo=f"{loan.loan_id} #{installment}",
    )
