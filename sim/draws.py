"""Random draws shaped like people: the hours they act at, how many times, which of a few."""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate
from typing import TypeVar

from sim.world import HOUR

T = TypeVar("T")


def cum(weights: tuple[float, ...]) -> tuple[float, ...]:
    """Cumulative weights, as ``random.choices`` and :func:`pick` take them."""
    return tuple(accumulate(weights))


def hours(weights: str) -> tuple[float, ...]:
    """Cumulative weights of the 24 hours of the day (platform time), written as one line."""
    return cum(tuple(float(w) for w in weights.split()))


HOURS = range(24)
#: When people open the app: a little at night, most in the morning and the evening.
LOGIN_CUM = hours(".2 .1 .05 .05 .05 .1 .5 1.5 3 4 3 2.5 2 2 2.5 2.5 2 2 2 2.5 3 3 2 1")


@lru_cache(maxsize=8)
def login_cum(weights: tuple[float, ...] | None) -> tuple[float, ...]:
    """When a profile's borrowers open the app: its 24 hourly weights, else LOGIN_CUM."""
    return LOGIN_CUM if weights is None else cum(weights)


#: When an office pays or is paid: working hours, a dip at lunch.
OFFICE_CUM = hours("0 0 0 0 0 0 0 0 2 4 4 3 1 2 4 4 3 1 0 0 0 0 0 0")


def poisson(rng: random.Random, lam: float) -> int:
    """How many events of a day: Poisson, its normal approximation above 30."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def pick(rng: random.Random, items: Sequence[T], cum_weights: tuple[float, ...]) -> T:
    """``rng.choices(items, cum_weights=...)[0]`` without its overhead, on the hot path."""
    return items[bisect(cum_weights, rng.random() * cum_weights[-1], 0, len(items) - 1)]


def second(rng: random.Random, hours_cum: tuple[float, ...]) -> int:
    """A second of the day: an hour by its weight, then any second of that hour."""
    return pick(rng, HOURS, hours_cum) * HOUR + int(rng.random() * HOUR)


def office_second(rng: random.Random) -> int:
    """A second of office hours: when businesses pay each other."""
    return second(rng, OFFICE_CUM)
