"""The plan of a run: how many cases, who carries them, then every trap and case, in draw order."""

from __future__ import annotations

from collections.abc import Callable

from sim.benign.repayments import ordinary_loans, schedule
from sim.benign.sessions import new_loans
from sim.config import SimulationConfig
from sim.population import Borrower, populate
from sim.typologies import (
    ALL,
    BY_NAME,
    TYPOLOGIES,
    circular,
    delinquency,
    device_ring,
    impossible_travel,
    machine_flow,
    pass_through,
    revenue_inflation,
    takeover,
    wash_trading,
)
from sim.world import World

# Everything is drawn up front, before the first day is generated. The order of the steps below
# is the order of the random draws: reordering them, or drawing more in a step, changes every
# run (the same seed then gives another, equally valid, population).

#: Default case counts stop before more than this share of the borrowers carries a case.
DEFAULT_CASE_SHARE = 0.35
#: The config's own fields for some typologies' counts, kept beside ``cases``.
LEGACY = {
    "circular_transfer": "circular_rings",
    "account_takeover": "takeovers",
    "missed_installment": "delinquents",
}
#: The order the cases' borrowers are drawn from the shuffled pool.
RECRUITED = (
    "circular_transfer",
    "device_ring",
    "wash_trading",
    "revenue_inflation",
    "machine_generated",
    "account_takeover",
    "account_takeover_device_replay",
    "account_takeover_phished",
    "impossible_travel",
    "missed_installment",
    "credential_stuffing",
    "pass_through",
)
#: Planted before the other borrowers' loans are drawn: the delinquents' own loans.
PLANTED_FIRST = ("missed_installment",)
#: Planted after the benign plan: they read each borrower's devices on the day.
PLANTED = (
    "circular_transfer",
    "device_ring",
    "wash_trading",
    "revenue_inflation",
    "machine_generated",
    "account_takeover",
    "account_takeover_device_replay",
    "account_takeover_phished",
    "impossible_travel",
    "credential_stuffing",
    "pass_through",
)
#: The benign look-alikes of every case, spread over labelled borrowers too; each lives in the
#: module of the case it resembles.
TRAPS: tuple[Callable[[World], None], ...] = (
    takeover.new_phones,
    takeover.app_updates,
    takeover.forgotten_passwords,
    impossible_travel.trips,
    impossible_travel.frequent_flyers,
    delinquency.holidays,
    device_ring.shared_devices,
    takeover.payout_changes,
    takeover.held_drawdowns,
    new_loans,
    device_ring.applications,
    revenue_inflation.genuine_growth,
    revenue_inflation.big_contracts,
    circular.partners,
    wash_trading.traders,
    wash_trading.deposits,
    machine_flow.settlements,
    delinquency.seasonal_declines,
    pass_through.wholesalers,
    pass_through.sweeps,
)


def plan(world: World) -> None:
    """Draw the population, every injected case and every benign episode up front."""
    counts = case_counts(world.config)
    populate(world)
    pool = world.rng.sample(world.borrowers, len(world.borrowers))
    cases = recruit(world, pool, counts)
    for name, groups in cases.items():
        for group in groups:
            for b in group:
                b.case = name
    plant(world, cases, PLANTED_FIRST)
    ordinary_loans(world, delinquents=counts["missed_installment"])
    delinquency.pay_habits(world)
    for trap in TRAPS:
        trap(world)
    plant(world, cases, PLANTED)
    for b in world.borrowers:
        for loan in b.loans:
            schedule(world, b, loan)


def recruit(
    world: World, pool: list[Borrower], counts: dict[str, int]
) -> dict[str, list[list[Borrower]]]:
    """Each typology's cases, their borrowers taken from ``pool`` in the order of RECRUITED."""
    cases = {}
    for i, name in enumerate(RECRUITED):
        later = RECRUITED[i + 1 :]
        reserved = sum(counts[t] * BY_NAME[t].min_borrowers for t in later)
        cases[name] = BY_NAME[name].recruit(world, pool, counts[name], reserved)
    return cases


def plant(world: World, cases: dict[str, list[list[Borrower]]], names: tuple[str, ...]) -> None:
    """Plant every case of these typologies, numbered from 1 within its typology."""
    for name in names:
        for number, borrowers in enumerate(cases[name], start=1):
            BY_NAME[name].plant(world, number, borrowers)


def case_counts(config: SimulationConfig) -> dict[str, int]:
    """Resolve every typology's count: explicit counts must be possible, defaults shrink to 0.

    Default cases are added in the order of :data:`TYPOLOGIES` while they leave at least
    ``1 - DEFAULT_CASE_SHARE`` of the population without a case.
    """
    cases = _explicit(config)
    counts: dict[str, int] = {}
    defaults: list[str] = []
    for typology in ALL:
        explicit = cases.get(typology.name)
        feasible = config.days >= typology.min_days
        name = LEGACY.get(typology.name, f"cases[{typology.name!r}]")
        if explicit is None:
            counts[typology.name] = 0
            if feasible:
                defaults.append(typology.name)
        elif explicit < 0:
            raise ValueError(f"{name} must not be negative, got {explicit}")
        elif explicit and not feasible:
            raise ValueError(f"{name}={explicit} needs {typology.need}")
        else:
            counts[typology.name] = explicit
    needed = sum(counts[t.name] * t.min_borrowers for t in ALL)
    if needed > config.borrowers:
        raise ValueError(
            f"{config.borrowers} borrowers cannot hold the cases {counts} "
            f"(at least {needed} borrowers); set the counts explicitly"
        )
    budget = DEFAULT_CASE_SHARE * config.borrowers
    for name in defaults:
        typology = BY_NAME[name]
        count = round(typology.default(config.borrowers) * config.profile.case_rate(name))
        if needed + count * typology.min_borrowers <= budget:
            counts[name] = count
            needed += count * typology.min_borrowers
    return counts


def _explicit(config: SimulationConfig) -> dict[str, int]:
    """The counts the config sets, by ``cases`` or by a legacy field; they must agree."""
    cases = dict(config.cases or {})
    unknown = sorted(set(cases) - set(TYPOLOGIES))
    if unknown:
        raise ValueError(f"unknown typologies {unknown}; known: {sorted(TYPOLOGIES)}")
    for typology, name in LEGACY.items():
        legacy = getattr(config, name)
        if legacy is not None:
            if typology in cases and cases[typology] != legacy:
                raise ValueError(f"{name}={legacy} contradicts cases[{typology!r}]")
            cases[typology] = legacy
    return cases
