"""Delinquency: an unusual silence corroborates a decline, and is no sign alone.

The case: a borrower who logs in every third day goes quiet for eleven days (about one chance
in 100 at its own rate: unusual, but under the surprise that alerts alone) while its takings
fall to under half, the installment still covered several times (a decline weighed down, under
the alert bar alone). Together they are an owner who stopped looking at a falling business:
warned three days ahead. Its benign twins: the same decline with the borrower logging in as
usual; the same silence with steady takings (a holiday); a weekly user's usual week or two
away with the same decline; the silence beside a dip that recovered; a payer a day late in
full, silent the same way; a bounced debit made good by an owner back from away.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from detectors.delinquency import DelinquencyDetector, DelinquencyThresholds
from detectors.state import BorrowerState, day_of
from detectors.thresholds import InvalidThreshold, Thresholds
from tests.detectors.delinquency_cases import (
    CHECK3,
    DEADLINE,
    MIDNIGHT,
    PAST_DUE,
    codes,
    collapse,
    flows,
    logins,
    run,
    schedule,
    steady,
)
from tests.detectors.factories import payment

#: A month at the falling rate (4 500 a day) covers it 6.75 times: a decline weighed down by
#: the cover, under the alert bar alone.
AMOUNT = "20000"
#: Every third day up to 15 days before the due date: eleven silent days at the check three
#: days before it.
EVERY_THIRD_DAY = range(15, 60, 3)
#: Every day up to the check: no silence.
DAILY = range(3, 60)
#: Once a week: twelve silent days are routine.
WEEKLY = range(15, 60, 7)


def _borrower(
    days: range, takings: str = "decline", amount: str = AMOUNT
) -> tuple[DelinquencyDetector, BorrowerState]:
    detector, state = schedule(amount)
    if takings == "decline":
        collapse(state, 4_500.0)
    elif takings == "recovered":
        # Down to a fifth for two weeks, back to normal from ten days before the due date.
        flows(state, [10_000.0] * 10 + [2_000.0] * 14 + [10_000.0] * 56, after=10_000.0)
    else:
        steady(state)
    logins(detector, state, days)
    return detector, state


def _surprise(detector: DelinquencyDetector, state: BorrowerState) -> float:
    memory = detector.slot(state, dict)
    return detector._silence(memory["logins"], state.inflows, day_of(CHECK3.due)).surprise


def test_a_decline_with_an_unusual_silence_is_warned_three_days_ahead() -> None:
    detector, state = _borrower(EVERY_THIRD_DAY)

    [finding, *_] = run(detector, state, until=MIDNIGHT)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    assert codes([finding])[0] == ["inflow_decline", "login_silence"]
    silence = finding.reasons[1]
    assert silence.threshold == 3.0 and 3.0 <= float(silence.observed) < 8.0  # type: ignore[arg-type]
    assert "no login for 11 days" in silence.message
    assert "unusual beside the decline, no sign alone" in silence.message


def test_the_same_decline_with_logins_as_usual_is_not_alerted() -> None:
    detector, state = _borrower(DAILY)

    assert run(detector, state, until=MIDNIGHT) == []
    # The decline counts, but under the bar alone.
    _, reasons, score = detector._assess(CHECK3.due, state.installments["loan-1#1"], state, False)
    assert [r.code for r in reasons] == ["inflow_decline"] and 0.33 < score < 0.5


def test_the_same_silence_with_steady_takings_is_no_sign_alone() -> None:
    """A holiday: eleven unusual silent days, takings as ever."""
    detector, state = _borrower(EVERY_THIRD_DAY, takings="steady")

    assert run(detector, state, until=MIDNIGHT) == []
    _, reasons, score = detector._assess(CHECK3.due, state.installments["loan-1#1"], state, False)
    assert reasons == [] and score == 0.0
    assert 3.0 <= _surprise(detector, state) < 8.0


def test_a_bounced_debit_made_good_by_an_owner_back_from_away_is_not_alerted() -> None:
    """The debit bounces four days before the due date while the owner is away (the same
    silence); not paid again when its two-day cure ends it weighs under the bar alone, and
    the silence does not add to it: the owner pays it again on return, before the due date."""
    detector, state = _borrower(EVERY_THIRD_DAY, takings="steady")
    events = [
        payment("p-1", MIDNIGHT - timedelta(days=5), AMOUNT),
        payment("r-1", MIDNIGHT - timedelta(days=4, hours=12), AMOUNT, kind="reversal"),
        payment("p-2", MIDNIGHT - timedelta(hours=20), AMOUNT),
    ]

    assert run(detector, state, events, until=DEADLINE + timedelta(days=1)) == []
    at = (MIDNIGHT - timedelta(days=2, hours=11)).timestamp()
    _, reasons, score = detector._assess(at, state.installments["loan-1#1"], state, False)
    assert [r.code for r in reasons] == ["payment_reversed"] and score < 0.5


def test_a_weekly_users_usual_absence_does_not_corroborate_the_decline() -> None:
    detector, state = _borrower(WEEKLY)

    assert run(detector, state, until=MIDNIGHT) == []
    assert _surprise(detector, state) < 3.0


def test_an_unusual_silence_beside_a_dip_that_recovered_is_not_alerted() -> None:
    detector, state = _borrower(EVERY_THIRD_DAY, takings="recovered")

    assert run(detector, state, until=MIDNIGHT) == []
    assert 3.0 <= _surprise(detector, state) < 8.0


def test_a_payer_a_day_late_in_full_silent_the_same_way_is_not_alerted() -> None:
    """Past due and unpaid weighs little for a borrower never late; with the silence it
    stays under the bar, and the payment the next day settles it."""
    detector, state = _borrower(EVERY_THIRD_DAY, takings="steady")
    late = payment("p-1", MIDNIGHT + timedelta(days=1, hours=10), AMOUNT)

    assert run(detector, state, [late], until=DEADLINE + timedelta(days=1)) == []
    assert detector._assess(PAST_DUE.due, state.installments["loan-1#1"], state, True)[2] < 0.5


def test_an_unusual_silence_never_alerts_alone_by_its_rules() -> None:
    with pytest.raises(InvalidThreshold, match="never alerts alone"):
        Thresholds().with_changes({"delinquency.unusual_silence_weight": 0.5}, "v1")
    with pytest.raises(InvalidThreshold, match="must not exceed"):
        Thresholds().with_changes({"delinquency.unusual_silence_surprise": 9.0}, "v1")
    assert DelinquencyThresholds().unusual_silence_weight < DelinquencyThresholds().min_alert_score
