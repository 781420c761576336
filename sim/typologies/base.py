"""What a typology is: its label, how many cases a run holds, who carries one, how it is planted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sim.population import Borrower
from sim.world import World

#: Draw the borrowers of ``count`` cases from the pool: (world, pool, count, reserved) -> cases.
#: ``reserved`` is how many borrowers the typologies recruited later need at least.
Recruit = Callable[[World, list[Borrower], int, int], list[list[Borrower]]]
#: Plant case ``number`` (from 1) on its borrowers: the events, and a label for each borrower.
Plant = Callable[[World, int, list[Borrower]], None]


def take(
    pool: list[Borrower], count: int, prefer: Callable[[Borrower], bool] | None = None
) -> list[Borrower]:
    """Remove ``count`` borrowers from the pool, those ``prefer`` likes first."""
    chosen = [b for b in pool if prefer(b)][:count] if prefer is not None else []
    chosen += [b for b in pool if b not in chosen][: count - len(chosen)]
    for b in chosen:
        pool.remove(b)
    return chosen


def singles(prefer: Callable[[Borrower], bool] | None = None) -> Recruit:
    """One borrower per case, those ``prefer`` likes first."""

    def recruit(
        world: World, pool: list[Borrower], count: int, reserved: int
    ) -> list[list[Borrower]]:
        return [[b] for b in take(pool, count, prefer)]

    return recruit


def one_per(borrowers: int, at_least: int = 1) -> Callable[[int], int]:
    """The default count: one case per so many borrowers, and at least ``at_least``."""
    return lambda n: max(at_least, n // borrowers)


def spread(bounds: tuple[float, float], factor: float, around: float) -> tuple[float, float]:
    """Bounds widened ``factor`` times away from ``around`` (1: a ratio, hops that vary; 0: a
    share, a fee); unchanged at 1, so that a profile's default draws what it always drew.

    >>> spread((0.95, 1.02), 2.0, around=1.0), spread((0.0, 0.03), 2.0, around=0.0)
    ((0.9, 1.04), (0.0, 0.06))
    """
    if factor == 1.0:
        return bounds
    low, high = (round(around + (b - around) * factor, 6) for b in bounds)
    return low, high


def stretched(bounds: tuple[int, int], factor: float) -> tuple[int, int]:
    """Bounds whose upper one is ``factor`` times as far (never under the lower one); unchanged
    at 1, so that a profile's default draws what it always drew.

    >>> stretched((600, 9000), 2.0), stretched((600, 9000), 0.01)
    ((600, 18000), (600, 600))
    """
    low, high = bounds
    return low, max(low, round(high * factor))


@dataclass(frozen=True)
class Typology:
    """One kind of injected case, and the rules of its count.

    A default count shrinks to 0 when the period is shorter than ``min_days``; an explicit
    count then is an error that quotes ``need``.
    """

    name: str
    category: str
    plant: Plant
    default: Callable[[int], int]  # population -> default count
    min_days: int
    need: str
    recruit: Recruit = singles()
    min_borrowers: int = 1  # borrowers one case needs at least
