"""Delinquency in a borrower's first weeks: five weeks of history, one week of baseline.

A decline that starts in the first weeks has no baseline of its own three weeks ahead of the
check; the rank and mean tests over one lumpy baseline week cannot tell a decline from a quiet
week. The case: a sustained slide that leaves the installment uncovered is warned all the
same. Its benign twins, on the same short history: the same slide with the installment still
covered, a single quiet week, a dip that recovered, a new business ramping up, a payer a day
late in full, a bounced debit paid again inside grace, and a sector slumping together.
"""

from __future__ import annotations

from datetime import timedelta

from detectors.delinquency import DelinquencyDetector, DelinquencyThresholds
from detectors.state import BorrowerState, day_of
from tests.detectors.delinquency_cases import (
    CHECK3,
    DEADLINE,
    LUMPY_WEEK,
    MIDNIGHT,
    codes,
    flows,
    run,
    schedule,
)
from tests.detectors.factories import payment, transaction

#: Days of history before the due date: the borrower was first seen five weeks before it.
HISTORY = 35
#: A large installment, about a third of a normal month of the lumpy takings (~407 000).
LARGE = "150000"
#: A small one, a fourteenth of a month: a slide to a sixth still covers it.
SMALL = "30000"


def _slide(floor: float, days: int = 21) -> list[float]:
    """Lumpy weekday takings, sliding over the last ``days`` before the due date to
    ``floor`` of normal: the decline starts in the borrower's third week."""
    return [
        LUMPY_WEEK[back % 7] * (floor + (1.0 - floor) * back / days if back < days else 1.0)
        for back in range(HISTORY)
    ]


def _short(
    amount: str,
    takings: list[float],
    after: float = 0.0,
    detector: DelinquencyDetector | None = None,
) -> tuple[DelinquencyDetector, BorrowerState]:
    detector, state = schedule(amount, detector)
    flows(state, takings, after=after)
    return detector, state


def test_a_slide_in_the_first_weeks_that_leaves_the_installment_uncovered_is_warned() -> None:
    detector, state = _short(LARGE, _slide(0.15))

    [finding, *_] = run(detector, state, until=MIDNIGHT)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    assert codes([finding])[0][0] == "inflow_decline"
    inflow = detector._inflow(state, day_of(CHECK3.due), 150_000.0, 3.0)
    own = inflow.own
    assert own is not None and own.short and own.sustained
    # What version 4 required and a week of lumpy baseline cannot give:
    assert own.rank_z is not None and own.rank_z > -1.5
    assert inflow.coverage is not None and inflow.coverage <= 1.5


def test_a_slide_in_the_first_weeks_leaving_half_a_month_of_takings_is_warned() -> None:
    """A month at the recent rate pays the installment under twice: more than a small
    business's margin. Before version 8 it took 1.5 (``uncovered_coverage``, the bar of a
    decline its sector shares), and the slide went unwarned until the deadline."""
    detector, state = _short("75000", _slide(0.15))

    [finding, *_] = run(detector, state, until=MIDNIGHT)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    inflow = detector._inflow(state, day_of(CHECK3.due), 75_000.0, 3.0)
    assert inflow.coverage is not None and 1.5 < inflow.coverage <= 2.0
    version_7 = DelinquencyDetector(DelinquencyThresholds(young_uncovered_coverage=1.5))
    version_7, state = _short("75000", _slide(0.15), detector=version_7)
    assert run(version_7, state, until=MIDNIGHT - timedelta(days=2)) == []


def test_the_same_slide_still_covering_the_installment_is_not_alerted() -> None:
    detector, state = _short(SMALL, _slide(0.15))

    assert run(detector, state, until=MIDNIGHT) == []
    inflow = detector._inflow(state, day_of(CHECK3.due), 30_000.0, 3.0)
    assert inflow.coverage is not None and inflow.coverage > 1.5


def test_one_quiet_week_of_a_lumpy_business_is_not_a_decline() -> None:
    """Nothing came in over the week before the check; the week before that was normal."""
    takings = [0.0 if 3 <= back < 10 else LUMPY_WEEK[back % 7] for back in range(HISTORY)]
    detector, state = _short(LARGE, takings, after=LUMPY_WEEK[0])

    assert run(detector, state, until=MIDNIGHT) == []
    own = detector._inflow(state, day_of(CHECK3.due), 150_000.0, 3.0).own
    assert own is not None and own.short and own.ratio < 0.2 and not own.sustained


def test_a_dip_in_the_first_weeks_that_recovered_is_not_a_decline() -> None:
    """Down to a fifth over its second and third weeks, back to normal from twelve days
    before the due date: every check finds its latest days back at the baseline."""
    takings = [LUMPY_WEEK[back % 7] * (0.2 if 12 <= back < 26 else 1.0) for back in range(HISTORY)]
    detector, state = _short(LARGE, takings, after=LUMPY_WEEK[0])

    assert run(detector, state, until=MIDNIGHT) == []
    own = detector._inflow(state, day_of(CHECK3.due), 150_000.0, 3.0).own
    assert own is not None and own.short and own.ratio > 1.0


def test_a_new_business_ramping_up_is_not_a_decline() -> None:
    """Takings growing from a fifth of their level: the first weeks are its smallest, and a
    large installment is not yet covered; but nothing declined."""
    takings = [LUMPY_WEEK[back % 7] * (1.0 - 0.8 * back / HISTORY) for back in range(HISTORY)]
    detector, state = _short(LARGE, takings, after=LUMPY_WEEK[0])

    assert run(detector, state, until=MIDNIGHT) == []
    own = detector._inflow(state, day_of(CHECK3.due), 150_000.0, 3.0).own
    assert own is not None and own.short and own.ratio > 1.0


def test_a_payer_a_day_late_in_full_on_a_short_history_is_not_alerted() -> None:
    detector, state = _short(LARGE, [LUMPY_WEEK[b % 7] for b in range(HISTORY)], LUMPY_WEEK[0])
    late = payment("p-1", MIDNIGHT + timedelta(days=1, hours=10), LARGE)

    assert run(detector, state, [late], until=DEADLINE + timedelta(days=1)) == []


def test_a_bounced_debit_paid_again_inside_grace_on_a_short_history_is_not_alerted() -> None:
    detector, state = _short(LARGE, [LUMPY_WEEK[b % 7] for b in range(HISTORY)], LUMPY_WEEK[0])
    events = [
        payment("p-1", MIDNIGHT + timedelta(hours=10), LARGE),
        payment("r-1", MIDNIGHT + timedelta(hours=14), LARGE, kind="reversal"),
        payment("p-2", MIDNIGHT + timedelta(days=2), LARGE),
    ]

    assert run(detector, state, events, until=DEADLINE + timedelta(days=1)) == []


def test_a_sector_sliding_together_in_the_first_weeks_with_the_installment_covered() -> None:
    """Every restaurant of the partition slides to half over the same three weeks; the
    subject's installment (small) is still covered and paid on time."""
    detector, subject = schedule(SMALL)
    states = [subject]
    for i in range(12):
        state = subject if i == 0 else BorrowerState(borrower_id=f"p-{i:02d}")
        tx = transaction(
            f"t-{i}", state.borrower_id, "acc", "cust", "1", MIDNIGHT, "in", sector="restaurant"
        )
        detector.on_transaction(tx, state, ())
        flows(state, [x * (1.0 + 0.05 * (i % 3)) for x in _slide(0.5)], after=LUMPY_WEEK[0] / 2)
        if i:
            states.append(state)
    paid = payment("p-1", MIDNIGHT - timedelta(hours=20), SMALL)

    assert run(detector, subject, [paid], peers=states) == []
