"""Missed installments and their pre-signals; beside them, slumps, holidays and late-but-paid."""

from __future__ import annotations

import random
from typing import Any

from sim.benign.repayments import new_loan
from sim.draws import LOGIN_CUM, second
from sim.population import Borrower, Loan
from sim.typologies.base import Typology, one_per
from sim.typologies.common import session
from sim.world import DAY, MINUTE, World, money, monthly_dues, shift_months
from topics.names import DELINQUENCY_RISK

#: Days of the missed due date: from day 30 (a baseline first) to 5 days before the end.
FIRST_DUE_DAY = 30
#: Chance a case has no pre-signal but at most a mild decline (a weak-signal case).
WEAK_SHARE = 0.25
#: The pre-signals a strong case draws 1–3 from; a decline twice as likely as the others.
SIGNALS = ("decline", "decline", "quiet", "payout_change")
#: Inflows fall to this share of normal by the due date: a decline, or a mild one.
DECLINE_FLOOR = (0.15, 0.30)
MILD_FLOOR = (0.6, 0.8)
#: Chance part of the installment is paid anyway, and that the rest comes a week or more late.
PARTLY_PAID_SHARE = 0.5
CURED_SHARE = 0.2
#: Shares of the borrowers with a loan that habitually pay early, and of the population on a
#: holiday without logins. Late payers (within grace) and seasonal dips that recover are the
#: profile's ``late_payer_share`` and ``dip_share`` (sim/profiles.py).
EARLY_PAYER_SHARE = 0.1
HOLIDAY_SHARE = 0.04


def plant(world: World, number: int, borrowers: list[Borrower]) -> None:
    """A loan whose installment due on day 30..days-5 is not paid by the end of the grace.

    Pre-signals vary: a decline of inflows, late or partial payments of the installment
    before, silence (no logins), a payout-account change days before the due date, several
    of these, or none at all (a weak-signal case).
    """
    (b,) = borrowers
    rng = world.rng
    due_day = rng.randint(FIRST_DUE_DAY, world.days - 5)
    loan, installment = _loan(world, b, due_day)
    dues = loan.dues
    previous_day = (dues[installment - 2] - world.dates[0]).days if installment > 1 else -1
    weak, signals = _signals(rng, previous_day)
    detail: dict[str, Any] = {
        "loan_id": loan.loan_id,
        "installment": installment,
        "due_date": world.dates[due_day].isoformat(),
        "amount_due": money(loan.amount_due),
    }
    starts = [(due_day - 7) * DAY]
    if "decline" in signals or "mild_decline" in signals:
        starts.append(_decline(world, b, due_day, "decline" in signals, detail))
    if "quiet" in signals:
        b.quiet_from = due_day - rng.randint(14, 21)
        detail["quiet_from"] = world.dates[b.quiet_from].isoformat()
        starts.append(b.quiet_from * DAY)
    if "late_earlier" in signals:
        starts.append(_late_earlier(world, loan, installment - 1, previous_day, detail))
    if "payout_change" in signals:
        day = due_day - rng.randint(2, 6)
        action = [("payout_account_change", 0)]
        (t,) = session(world, b, day * DAY + second(rng, LOGIN_CUM), action)
        detail["payout_change_ts"] = world.iso(t)
        starts.append(t)
    _pay_part_or_cure(world, loan, installment, due_day, detail)
    detail["signals"] = signals
    detail["strength"] = "weak" if weak else "strong"
    end = (due_day + 3) * DAY + DAY - 1
    if loan.missed_from is not None:
        # Not cured: every later installment goes unpaid too, so the borrower stays a
        # delinquent to the end of the period; alerts on those installments are right.
        detail["later_installments_missed"] = True
        end = max(end, world.days * DAY - 1)
    world.label(min(starts), b, MISSED_INSTALLMENT, end, detail)


def _loan(world: World, b: Borrower, due_day: int) -> tuple[Loan, int]:
    """A loan booked on day 0 with an installment due on ``due_day``, missed from that one."""
    rng = world.rng
    due = world.dates[due_day]
    installment = 1
    while (shift_months(due, 1 - installment) - world.dates[0]).days > 40:
        installment += 1
    first_due = shift_months(due, 1 - installment)
    count = max(installment + 2, rng.choice((6, 12)))
    dues = monthly_dues(first_due, count, dom=due.day)
    loan = new_loan(b, rng.randint(MINUTE, 59 * MINUTE), dues)
    loan.missed_from = installment
    b.loans.append(loan)
    b.pay_style = "normal"
    return loan, installment


def _signals(rng: random.Random, previous_day: int) -> tuple[bool, list[str]]:
    """Whether the case is weak, and its pre-signals, sorted."""
    weak = rng.random() < WEAK_SHARE
    if weak:
        return weak, ["mild_decline"] if rng.random() < 0.5 else []
    options = list(SIGNALS)
    if previous_day >= 3:
        options.append("late_earlier")
    return weak, sorted(set(rng.sample(options, rng.randint(1, 3))))


def _decline(world: World, b: Borrower, due_day: int, strong: bool, detail: dict[str, Any]) -> int:
    """Inflows decline from 3–5 weeks before the due date to its floor; when that starts."""
    rng = world.rng
    # Keep a week of normal inflows before the decline: a baseline to decline from.
    start_day = due_day - rng.randint(21, min(35, due_day - 7))
    floor = rng.uniform(*DECLINE_FLOOR) if strong else rng.uniform(*MILD_FLOOR)
    b.decline = (start_day, due_day, floor, None)
    detail["decline_start"] = world.dates[start_day].isoformat()
    detail["inflow_floor"] = round(floor, 3)
    return start_day * DAY


def _late_earlier(
    world: World, loan: Loan, earlier: int, previous_day: int, detail: dict[str, Any]
) -> int:
    """The installment before paid late, whole or in two parts; when it fell due."""
    rng = world.rng
    part = round(loan.amount_due * rng.uniform(0.3, 0.7))
    if rng.random() < 0.5:
        plan = [(previous_day + rng.randint(4, 10), loan.amount_due)]
    else:
        plan = [
            (previous_day, part),
            (previous_day + rng.randint(5, 12), loan.amount_due - part),
        ]
    loan.plan[earlier] = plan
    detail["earlier_payments"] = [
        {"date": world.dates[day].isoformat(), "amount": money(cents)}
        for day, cents in plan
        if day < world.days
    ]
    return previous_day * DAY


def _pay_part_or_cure(
    world: World, loan: Loan, installment: int, due_day: int, detail: dict[str, Any]
) -> None:
    """Maybe a part paid by the due date; maybe the rest a week or more after the grace."""
    rng = world.rng
    paid = 0
    if rng.random() < PARTLY_PAID_SHARE:
        paid = round(loan.amount_due * rng.uniform(0.1, 0.45))
        loan.plan[installment] = [(due_day - rng.randint(0, 2), paid)]
    if rng.random() < CURED_SHARE:
        # Cured late: the rest comes a week or more after the grace, and the loan goes on.
        cure = due_day + rng.randint(7, 20)
        loan.plan.setdefault(installment, []).append((cure, loan.amount_due - paid))
        loan.missed_from = None
        detail["cured"] = world.dates[cure].isoformat() if cure < world.days else "after period"
    detail["paid"] = money(paid)


# --- the benign look-alikes -------------------------------------------------------------------


def pay_habits(world: World) -> None:
    """Some borrowers with a loan pay a day or two late, always in full; some a week early."""
    payers = [b for b in world.borrowers if b.case != "missed_installment" and b.loans]
    styles = world.rng.sample(payers, len(payers))
    share = world.config.profile.late_payer_share
    late = max(1, round(share * len(payers))) if share else 0
    early = round((share + EARLY_PAYER_SHARE) * len(payers))
    for b in styles[:late]:
        b.pay_style = "late"
    for b in styles[late:early]:
        b.pay_style = "early"


def holidays(world: World) -> None:
    """A week to three without logins, then back: silence that is not a delinquency."""
    rng = world.rng
    days = world.days
    for b in world.some(round(HOLIDAY_SHARE * len(world.borrowers)), lambda b: days >= 20):
        first = rng.randrange(days - 7)
        b.dormant = (first, first + rng.randint(7, 20))


def seasonal_declines(world: World) -> None:
    """Seasonal businesses decline for weeks and recover, paying every installment."""
    rng = world.rng
    profile = world.config.profile
    wanted = max(1, round(profile.dip_share * len(world.borrowers))) if profile.dip_share else 0
    for b in world.some(wanted, lambda b: bool(b.loans) and b.case is None):
        start = rng.randrange(max(1, world.days - 30))
        bottom = start + rng.randint(21, 35)
        b.decline = (start, bottom, rng.uniform(*profile.dip_floor), bottom + rng.randint(5, 20))


MISSED_INSTALLMENT = Typology(
    name="missed_installment",
    category=DELINQUENCY_RISK,
    plant=plant,
    default=one_per(50),
    min_days=35,
    need="days >= 35 (a due date on day 30..days-5)",
)
