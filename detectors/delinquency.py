"""Delinquency early warning: the risk an open installment is not paid by due date + grace."""

from __future__ import annotations

import math
import pickle
from bisect import insort
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from detectors.base import DELINQUENCY_RISK, Detector, Finding, Output, severity_for
from detectors.clock import Timer
from detectors.delinquency_inflow import Inflow, InflowJudge
from detectors.index import Found
from detectors.scenarios import T0, inputs, payment, scheduled
from detectors.state import (
    SECONDS_PER_DAY,
    BorrowerState,
    InflowHistory,
    Installment,
    day_of,
    installment_key,
)
from detectors.tunables import Rules, tunable
from topics.names import Source
from topics.records import Login, Reason, Repayment, Transaction

if TYPE_CHECKING:
    from detectors.engine import Input

__all__ = ["DelinquencyDetector", "DelinquencyThresholds", "risk_view"]


@dataclass(frozen=True, slots=True)
class DelinquencyThresholds:
    """Tunables of :class:`~detectors.delinquency.DelinquencyDetector`.

    Signals combine as a noisy-or and an alert needs a score of ``min_alert_score``. The
    strong signals reach it alone (an earlier installment missed, part-paid past due, a long
    silence, a payout change right before the due date, a deep and sustained decline beyond
    the peers' move); the others need company.
    Precision against warning is set mostly by ``max_inflow_ratio`` and
    ``min_silence_surprise``: a lower ratio or a higher surprise alerts less and earlier.
    """

    #: An installment not fully paid this many days after its due date is missed.
    grace_days: int = tunable(
        3, 0, 30, "days after the due date before an unpaid installment is missed"
    )
    #: Days before the due date at which an unpaid installment's risk is assessed.
    check_days_before_due: tuple[int, ...] = tunable(
        (10, 7, 5, 3), 1, 30, "days before the due date at which risk is assessed"
    )
    #: Recent inflow window (days); the rank test compares twice this with the baseline.
    recent_days: int = tunable(7, 1, 28, "days of recent inflow compared with the baseline")
    #: The baseline ends this many days before a check (a decline under way must not drag
    #: its own baseline down) and covers this many days before that.
    baseline_gap_days: int = tunable(21, 0, 42, "days between the end of the baseline and a check")
    baseline_days: int = tunable(42, 7, 60, "days the inflow baseline covers")
    #: Baseline days needed before an inflow trend is trusted.
    min_baseline_days: int = tunable(
        7, 1, 60, "baseline days needed before an inflow trend is trusted"
    )
    #: Recent trimmed daily inflow at or below this share of the baseline is a decline (it
    #: alerts alone from 0.15 below) ...
    max_inflow_ratio: float = tunable(
        0.65, 0.01, 1.0, "recent inflow at or below this share of the baseline is a decline"
    )
    #: ... when the last two weeks' days also rank below the baseline days (Mann-Whitney z at
    #: or below this): one quiet week of a lumpy business is not a decline.
    max_inflow_rank_z: float = tunable(
        -1.5, -10.0, 0.0, "Mann-Whitney z at or below which recent days rank below the baseline"
    )
    #: ... and their mean lies this many standard errors below the baseline days' mean (at
    #: the baseline's own day-to-day spread): a lumpy business one invoice short of its
    #: usual fortnight ranks low on its zero days, but is within what its takings vary by.
    max_inflow_mean_z: float = tunable(
        -2.0, -10.0, 0.0, "standard errors the last two weeks' mean lies below the baseline's"
    )
    #: The latest days back near the baseline (their plain mean at this share of it or more,
    #: after the peers' move) mean a dip has recovered by the check: no decline.
    recovery_days: int = tunable(3, 1, 14, "latest days that tell whether a dip has recovered")
    recovered_ratio: float = tunable(
        0.75, 0.0, 2.0, "latest days at or above this share of the baseline: the dip recovered"
    )
    #: A decline is sustained when the week before the recent one was already at or below
    #: this share of the baseline (after the peers' move); one week of a decline (a closure,
    #: a lumpy week) weighs ``brief_decline_weight`` of a sustained one.
    sustained_ratio: float = tunable(
        0.9, 0.0, 2.0, "the week before the recent one at or below this share: a sustained decline"
    )
    brief_decline_weight: float = tunable(
        0.5, 0.0, 1.0, "weight of a decline of the recent week only, against a sustained one"
    )
    #: A sustained decline still falling (the median slope between the fortnight's days, which
    #: a single step down does not make) is judged at the level its trend reaches this many
    #: days after the recent week's middle, at most at the due date: a steady slide is money
    #: missing at the due date, not at last week's level.
    trend_days: float = tunable(
        7.0, 0.0, 30.0, "days ahead a falling decline is projected (at most to the due date)"
    )
    #: A month of inflow at the recent rate covering the installment at most this often is low.
    max_coverage: float = tunable(
        4.0, 0.1, 100.0, "months of inflow covering the installment at most this often is low"
    )
    #: ... at most this often, it no longer covers it: a decline the peers share still counts.
    uncovered_coverage: float = tunable(
        1.5, 0.01, 100.0, "months of inflow covering the installment at most this often: uncovered"
    )
    #: In a borrower's first weeks (a baseline too short for the rank tests) a sustained
    #: decline counts when a month at the recent rate covers the installment at most this
    #: often. Higher than ``uncovered_coverage``: a decline its sector shares has a cause that
    #: passes (a lockdown ends), a young borrower's own has none known, and an installment of
    #: half a month's takings is more than a small business's margin pays.
    young_uncovered_coverage: float = tunable(
        2.0, 0.01, 100.0, "in a borrower's first weeks, coverage at most this: a decline counts"
    )
    #: A decline whose inflows still cover the installment many times weighs less: in full up
    #: to ``max_coverage``, down to ``ample_coverage_weight`` from ``ample_coverage`` on.
    ample_coverage: float = tunable(
        12.0, 0.1, 1000.0, "coverage from which a decline weighs ample_coverage_weight"
    )
    ample_coverage_weight: float = tunable(
        0.6, 0.0, 1.0, "weight of a decline whose inflows cover the installment amply"
    )
    #: Peers: a decline is judged against the move of the borrower's sector in the partition
    #: over the same days, or of all the partition's borrowers when the sector is unknown or
    #: has fewer than this many borrowers with a baseline.
    min_sector_peers: int = tunable(
        8, 2, 100000, "borrowers of a sector (else of the partition) to judge a decline against"
    )
    #: Peers that fell as far at once beyond this share (and at least ``min_shared_decliners``
    #: of them) are a shared slump the median missed: the decline weighs that share of them.
    typical_decline_share: float = tunable(
        0.05, 0.0, 1.0, "share of the peers declining at once in ordinary times"
    )
    min_shared_decliners: int = tunable(
        3, 1, 100000, "other peers declining at once before a decline is read as shared"
    )
    #: Login silence counts (and alerts alone) from this surprise, -ln P(a silence this long
    #: at the borrower's own login rate): 8 is about one chance in 3,000; its weight grows
    #: until ``full_silence_surprise``.
    min_silence_surprise: float = tunable(
        8.0, 1.0, 100.0, "surprise of a login silence from which it counts"
    )
    full_silence_surprise: float = tunable(
        34.0, 1.0, 200.0, "surprise at which a login silence counts in full"
    )
    #: A silence shorter than this never counts, however regular the borrower was: a few
    #: days away are no sign of a default.
    min_silence_days: int = tunable(7, 1, 90, "days without a login before a silence can count")
    #: A silence under ``min_silence_surprise`` but still unusual for the borrower (from this
    #: surprise: 3 is about one chance in 20 at its own login rate) does not alert alone: it
    #: corroborates a decline of the inflow, weighing ``unusual_silence_weight``, under the
    #: alert bar. An owner who stops looking at the account while the takings fall is a
    #: business let go; a holiday alone, or a weekly user's usual week away, is not.
    unusual_silence_surprise: float = tunable(
        3.0, 0.0, 100.0, "surprise of a login silence from which it corroborates a decline"
    )
    unusual_silence_weight: float = tunable(
        0.25, 0.0, 1.0, "weight of an unusual silence (under min_silence_surprise): never alone"
    )
    #: Days over which the borrower's login rate is measured, and the least history for it.
    login_rate_days: int = tunable(
        42, 7, 180, "days over which the borrower's login rate is measured"
    )
    min_login_history_days: int = tunable(
        7, 1, 90, "days of login history needed before silence is judged"
    )
    #: A payout-account change at most this many days before a check raises the risk ...
    payout_change_days: int = tunable(
        3, 0, 30, "days before a check in which a payout-account change raises risk"
    )
    #: ... with this weight in the noisy-or (from 0.5 it alerts alone).
    payout_change_weight: float = tunable(
        0.5, 0.0, 1.0, "weight of a recent payout-account change in the risk score"
    )
    #: An installment unpaid after its due date weighs this for a borrower who was never
    #: late; the share of its earlier installments it paid late within grace takes it away.
    past_due_weight: float = tunable(
        0.2, 0.0, 1.0, "weight of an installment unpaid past due, for a borrower never late"
    )
    #: An earlier installment not paid in full by the end of its grace alerts alone while it
    #: is still owed (0.6). Made good since (paid in full after its grace: a cured delinquency)
    #: it weighs this, by default as much: paying one installment a week late is one of the
    #: commonest ways to a default of the next (under the bar, 0.3, it lost warnings; see
    #: docs/evaluation.md). A platform whose labelled history says its cured borrowers pay on
    #: fits it down, and a decline, a silence or a payout change beside it still alerts.
    cured_installment_weight: float = tunable(
        0.6, 0.0, 1.0, "weight of an earlier installment missed, then paid in full after its grace"
    )
    #: A reversed payment (a bounced debit) paid again within this many days is nothing; not
    #: paid again, it counts with ``reversal_weight`` before the due date (less at the early
    #: checks) and with ``past_due_reversal_weight`` after it. A period that would end after
    #: the due date runs to the end of the grace period: paying again in grace is no default.
    #: So, by default, does one that ended just before the due date: a debit bounced two or
    #: three days before it and not yet made good when the due date ends weighs nothing more
    #: until the grace ends (``past_due_reversal_weight`` 0), as one bounced a day later does.
    #: A platform whose labelled history says such borrowers default fits the weight up.
    reversal_cure_days: float = tunable(
        2.0, 0.0, 14.0, "days a reversed payment has to be paid again before it counts"
    )
    reversal_weight: float = tunable(
        0.45, 0.0, 1.0, "weight of a reversal not paid again, before the due date"
    )
    past_due_reversal_weight: float = tunable(
        0.0, 0.0, 1.0, "weight of a reversal not paid again, after the due date (grace left)"
    )
    #: Inflow decline, silence and a payout change count in full this many days or fewer
    #: before the due date, and with this weight at earlier checks (time to recover).
    near_due_days: int = tunable(
        3, 0, 30, "days before the due date from which signals count in full"
    )
    early_signal_weight: float = tunable(0.7, 0.0, 1.0, "weight of signals at earlier checks")
    #: Alert when the risk score reaches this (severity follows the score).
    min_alert_score: float = tunable(
        0.5, 0.05, 1.0, "risk score at which a collections alert is raised"
    )
    #: Due dates are calendar days in the platform's time zone (hours east of UTC).
    platform_utc_offset_hours: int = tunable(
        8, -12, 14, "hours east of UTC of the platform's calendar days"
    )

    #: Rules across these tunables, each with what a team is told when a change breaks it
    #: (a borrower's inflow history holds 96 days: detectors.state.INFLOW_HISTORY_DAYS).
    CONSTRAINTS: ClassVar[Rules[DelinquencyThresholds]] = (
        (
            "delinquency.min_baseline_days must not exceed delinquency.baseline_days",
            lambda t: t.min_baseline_days <= t.baseline_days,
        ),
        (
            "delinquency.baseline_gap_days + baseline_days + the earliest check day must fit in "
            "the 96 days of inflow history",
            lambda t: t.baseline_gap_days + t.baseline_days + max(t.check_days_before_due) <= 96,
        ),
        (
            "delinquency.min_silence_surprise must not exceed delinquency.full_silence_surprise",
            lambda t: t.min_silence_surprise <= t.full_silence_surprise,
        ),
        (
            "delinquency.unusual_silence_surprise must not exceed delinquency.min_silence_surprise",
            lambda t: t.unusual_silence_surprise <= t.min_silence_surprise,
        ),
        (
            "delinquency.unusual_silence_weight must stay under delinquency.min_alert_score: an "
            "unusual silence corroborates, it never alerts alone",
            lambda t: t.unusual_silence_weight < t.min_alert_score,
        ),
        (
            "delinquency.min_login_history_days must not exceed delinquency.login_rate_days",
            lambda t: t.min_login_history_days <= t.login_rate_days,
        ),
        (
            "delinquency.recovery_days must not exceed delinquency.recent_days",
            lambda t: t.recovery_days <= t.recent_days,
        ),
        (
            "delinquency.uncovered_coverage must not exceed delinquency.max_coverage, nor that "
            "delinquency.ample_coverage",
            lambda t: t.uncovered_coverage <= t.max_coverage <= t.ample_coverage,
        ),
        (
            "delinquency.young_uncovered_coverage must not exceed delinquency.max_coverage",
            lambda t: t.young_uncovered_coverage <= t.max_coverage,
        ),
    )


CHECK, PAST_DUE, DEADLINE = "check", "past_due", "deadline"
#: Stage of the end of a reversal's cure period: ``cure<n>`` for the installment's n-th reversal.
CURE = "cure"
SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
#: Login days remembered: enough for the login-rate window of any sensible threshold.
MAX_REMEMBERED_DAYS = 60


@dataclass(frozen=True, slots=True)
class _Silence:
    days: int  # whole days since the last successful login
    rate: float  # the borrower's own share of days with a login before the silence
    surprise: float  # -ln P(a silence this long at that rate); 0 when unknown


@dataclass(frozen=True, slots=True)
class _Observed:
    """What an assessment reads of a borrower at one time, for one installment."""

    inflow: Inflow
    silence: _Silence
    payout_ago: int | None  # days since the latest payout-account change (None: none seen)
    payout_change: bool  # ... within ``payout_change_days``
    missed: int  # earlier installments not paid in full by the end of their grace, still owed
    cured: int  # ... paid in full since (after their grace)
    late: int  # earlier installments paid in full, but after the day after their due date
    settled: int  # earlier installments whose grace has ended, paid or not
    paid: float  # paid of this installment by then


#: The message of an installment not paid in full by the end of its grace, paid in part or not.
_UNPAID = "{paid} of {due} paid by the end of the {grace}-day grace period"


class DelinquencyDetector(Detector):
    """Ranks open installments by the risk of not being paid by due date + grace.

    At each check (``check_days_before_due``), the day after the due date and at the end of
    the grace period, an event-time timer assesses an unpaid installment from data stamped no
    later than that time. Each signal compares the borrower with its own history, and a
    decline with its peers' move over the same days, so that a small business with lumpy
    flows, a sector in a slump or a rarely used app is not read as a failing borrower:

    - inflow decline: the last week's trimmed daily inflow against the borrower's own
      baseline, *and* a rank test that the last two weeks sit consistently below the baseline
      days (one quiet week of a lumpy B2B business is not a decline), the baseline first moved
      as the borrower's peers moved (its sector in the partition, else the whole partition;
      see :meth:`on_day_close`): a restaurant that fell with every restaurant is not singled
      out, unless the installment is no longer covered; peers falling as far at once do not
      damp the decline of an owner gone unusually quiet beside it. A dip whose latest days are
      back near the baseline is over; a decline of the last week alone weighs less than a
      sustained one, and one whose inflows still cover the installment many times weighs
      less. In a borrower's first weeks (a baseline under two weeks) the rank test is waived
      for a sustained decline that leaves the installment uncovered;
    - coverage: a month of inflow at the recent rate against the installment;
    - silence: days without a login, priced by the borrower's own login rate
      (``-ln P``: eleven silent days are routine for a weekly user, not for a daily one);
      merely unusual (``unusual_silence_surprise``), it only corroborates a decline;
    - a payout-account change in the few days before a check, the installment unpaid;
    - earlier installments missed (not paid by the end of their grace): still owed, or paid
      in full since (``cured_installment_weight``, as much by default);
    - a reversed payment (a bounced debit): nothing while the borrower may still pay it
      again (``reversal_cure_days``), a signal once that has passed before the due date;
      after the due date the grace period is the borrower's to make it good, and the
      deadline decides (``past_due_reversal_weight``, 0 unless a platform fits it up);
    - past due: part-paid is a strong sign, unpaid is weak, and weighs nothing for a
      borrower who paid its earlier installments late within grace.

    Rules combine the signals as a noisy-or. The strong ones alert alone (an earlier miss, a
    part-paid installment, a long silence of a habitually active borrower, a payout change or
    a deep sustained decline in the last days before the due date); the others need company.
    Decline, silence, a payout change and a reversal weigh less at the early checks, when
    there is still time to recover. One alert per installment and severity: a new one only
    when the severity rises. (Version 4's River classifier was removed in version 5: by
    ablation over two profiles and two seeds, one classifier per worker changed no alert; see
    docs/evaluation.md. Version 7 leaves a reversal not made good by the due date to the
    grace period; version 8 lets no shared slump damp the decline of an owner gone quiet, and
    asks a young borrower's decline for a cover under ``young_uncovered_coverage``; version
    9 names an earlier miss paid in full since apart, weighed by ``cured_installment_weight``
    for a platform to fit.)
    """

    name = "delinquency"
    category = DELINQUENCY_RISK
    version = "9"
    writes = ("installments",)
    section = "delinquency"
    thresholds_type = DelinquencyThresholds

    @classmethod
    def contract_events(cls) -> list[Input]:
        """b-1's installments due on 10 April: a large one missed, a small one paid then
        reversed (the contract test gives b-1 an inflow history that collapses in March)."""
        due = date(2024, 4, 10)
        day_before, day_after = datetime(2024, 4, 9, tzinfo=UTC), datetime(2024, 4, 11, tzinfo=UTC)
        return inputs(
            Source.REPAYMENTS,
            [
                scheduled("rp-s1", T0, due, "70000"),
                scheduled("rp-s2", T0, due, "3000", installment=2),
                payment("rp-p1", day_before, "3000", installment=2),
                payment("rp-p2", day_before, "100"),
                payment("rp-r1", day_after, "3000", kind="reversal", installment=2),
            ],
        )

    messages = {
        "payment_reversed": "{amount} of a payment on installment {installment} reversed "
        "{days:.1f} day(s) before and not paid again",
        "partial_payment": _UNPAID,
        "installment_missed": _UNPAID,
        "past_due": "{paid} of {due} paid after the due date {due_date}",
        "past_due/late": "{paid} of {due} paid after the due date {due_date}; {late} of {settled} "
        "earlier installment(s) paid late within grace",
        "earlier_installments_unpaid": "{missed} earlier installment(s) not paid in full by the "
        "end of their grace period",
        "earlier_installments_cured": "{cured} earlier installment(s) not paid in full by the "
        "end of their grace period, paid in full since",
        "login_silence": "no login for {days} days by a borrower who logs in on {rate:.0%} of "
        "days: a chance of {chance:.1g} at that rate (observed: -ln of it)",
        "login_silence/unusual": "no login for {days} days by a borrower who logs in on "
        "{rate:.0%} of days: a chance of {chance:.1g} at that rate (observed: -ln of it), "
        "unusual beside the decline, no sign alone",
        "payout_account_changed": "payout account changed {days} day(s) before, with the "
        "installment unpaid",
        "inflow_decline": "daily inflow over the last {days} days is {ratio:.0%} of the "
        "borrower's own baseline ({recent:,.0f} against {baseline:,.0f}), {projected:.0%} by "
        "the due date at its trend; its last two weeks rank below the baseline days "
        "(z = {z:.1f})",
        "inflow_decline/peers": "daily inflow over the last {days} days is {own:.0%} of the "
        "borrower's own baseline ({recent:,.0f} against {baseline:,.0f}) while its {peers} "
        "peers of the {scope} moved to {move:.0%}: {ratio:.0%} of their move, {projected:.0%} "
        "by the due date at its trend, {others} other peer(s) falling as far; its last two "
        "weeks rank below the baseline days moved so (z = {z:.1f})",
        "inflow_decline/shared": "daily inflow over the last {days} days is {ratio:.0%} of the "
        "borrower's own baseline ({recent:,.0f} against {baseline:,.0f}), {projected:.0%} by "
        "the due date at its trend, and its {peers} peers of the {scope} moved to {move:.0%}; "
        "but a month at the recent rate covers the installment only {coverage:.1f} times "
        "(z = {z:.1f})",
        "low_installment_coverage": "a month of inflow at the recent rate covers the "
        "installment {coverage:.1f} times",
    }
    episodes = {"installment": "{installment}:{severity}"}

    def __init__(self, thresholds: DelinquencyThresholds) -> None:
        self.thresholds = thresholds
        self._zone = timezone(timedelta(hours=thresholds.platform_utc_offset_hours))
        #: The inflow side, and the peers' move over each day's windows, per partition (see
        #: :meth:`on_day_close`).
        self._judge = InflowJudge(thresholds)
        self._peers = self._judge.peers

    # Hooks -----------------------------------------------------------------------------

    def on_transaction(self, event: Transaction, state: BorrowerState, found: Found) -> Output:
        # The sector the platform gives (contract 1.1) names the borrower's peers; one
        # comparison per transaction, a write only when it changes.
        sector = event.sector
        if sector:
            memory = state.slots.get(self.name) or self.slot(state, _memory)
            if memory.get("sector") != sector:
                memory["sector"] = sector
        return []

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        if not event.success or event.action == "logout":
            return []
        # The hot path of this detector (one call per login): no helper calls.
        memory = state.slots.get(self.name) or self.slot(state, _memory)
        day = int(event.ts.timestamp() // SECONDS_PER_DAY)
        days: list[int] = memory["payouts" if event.action == "payout_account_change" else "logins"]
        # Events come in time order: appending is the common case, an insert the rare one.
        if not days or day > days[-1]:
            days.append(day)
            if len(days) > MAX_REMEMBERED_DAYS:
                del days[0]
        elif day not in days:
            insort(days, day)
            del days[:-MAX_REMEMBERED_DAYS]
        return []

    def on_repayment(self, event: Repayment, state: BorrowerState, found: Found) -> Output:
        key = installment_key(event.loan_id, event.installment)
        installment = state.installments.get(key)
        if installment is None:
            installment = state.installments[key] = Installment(event.loan_id, event.installment)
        epoch = event.ts.timestamp()
        if event.kind == "scheduled":
            installment.due_date = event.due_date
            installment.amount_due = event.amount_due
            installment.scheduled_event = event.event_id
            return list(self.pending_timers(state, only=key))
        assert event.amount is not None  # the contract requires it on payments and reversals
        if event.kind == "payment":
            installment.payments.append((epoch, event.amount, event.event_id))
            return []
        # A bounced debit is evidence to weigh, not a default: whether the borrower pays it
        # again within the cure period decides (see :meth:`_reversal_signal`).
        installment.reversals.append((epoch, event.amount, event.event_id))
        if installment.due_date is None:
            return []  # armed with the schedule
        stage = f"{CURE}{len(installment.reversals) - 1}"
        cure = self._cure_time(epoch, installment.due_date)
        return [Timer(cure, state.borrower_id, self.name, f"{stage}|{key}")]

    def pending_timers(self, state: BorrowerState, only: str | None = None) -> list[Timer]:
        timers = []
        for key, installment in state.installments.items():
            if installment.due_date is None or (only is not None and key != only):
                continue
            for stage, at in self._stages(installment):
                if stage not in installment.stages_done:
                    timers.append(Timer(at, state.borrower_id, self.name, f"{stage}|{key}"))
        return timers

    def on_timer(self, timer: Timer, state: BorrowerState) -> Output:
        stage, key = timer.key.split("|", 1)
        installment = state.installments.get(key)
        if installment is None or installment.due_date is None or installment.amount_due is None:
            return []
        if stage in installment.stages_done:
            return []
        installment.stages_done.append(stage)
        if stage == DEADLINE:
            return self._deadline(timer.due, installment, state)
        if installment.paid_in_full_by(timer.due):
            self._note_risk(state, timer.due, 0.0, key)
            return []
        if stage.startswith(CURE):
            return self._cure(timer.due, installment, state)
        _, reasons, score = self._assess(timer.due, installment, state, stage == PAST_DUE)
        self._note_risk(state, timer.due, score, key)
        return self._escalate(state, installment, timer.due, score, reasons)

    def on_day_close(
        self, partition: int, day: int, states: Sequence[BorrowerState]
    ) -> list[Finding]:
        """Record how the partition's borrowers moved over the windows of a check the next
        day: per sector and for the whole partition, the median ratio of each borrower's
        recent and older week to its own baseline, and how many fell to ``max_inflow_ratio``
        of that median. A check then judges a borrower against its peers over the same days
        (see :meth:`_inflow`, :class:`~detectors.delinquency_inflow.InflowJudge`)."""
        name = self.name
        self._judge.close_day(
            partition,
            day,
            ((state.inflows, (state.slots.get(name) or {}).get("sector")) for state in states),
        )
        return []

    def _note_risk(self, state: BorrowerState, at: float, score: float, key: str) -> None:
        """The latest assessment, for the borrower's risk view (:func:`risk_view`)."""
        self.slot(state, _memory)["risk"] = [at, round(min(1.0, max(0.0, score)), 4), key]

    def snapshot(self, partition: int) -> bytes | None:
        peers = self._peers.closes.get(partition)
        if not peers:
            return None
        # Version 4's layout, its classifier's slots empty: either version restores it.
        return pickle.dumps((None, 0, 0, None, peers))

    def restore(self, partition: int, snapshot: bytes) -> None:
        # Snapshots come from this process's own checkpoints (the worker's changelog).
        # Checkpoints up to version 4 carried a classifier first (dropped: removed in version
        # 5), those of version 3 no peers.
        _, _, _, *rest = pickle.loads(snapshot)  # noqa: S301
        peers = rest[1] if len(rest) > 1 else None
        if peers:
            self._peers.closes[partition] = peers

    # Decisions ---------------------------------------------------------------------------

    def _deadline(self, at: float, installment: Installment, state: BorrowerState) -> Output:
        """The outcome is known: flag a miss."""
        assert installment.amount_due is not None
        missed = not installment.paid_in_full_by(at)
        key = installment_key(installment.loan_id, installment.number)
        if not missed:
            self._note_risk(state, at, 0.0, key)
            return []
        paid = installment.paid_by(at)
        code, score = ("partial_payment", 0.9) if paid > 0 else ("installment_missed", 0.95)
        self._note_risk(state, at, score, key)
        reasons = [
            self.reason(
                code,
                observed=str(paid),
                threshold=str(installment.amount_due),
                paid=paid,
                due=installment.amount_due,
                grace=self.thresholds.grace_days,
            )
        ]
        _, signals, _ = self._assess(at, installment, state, past_due=False)
        return self._escalate(state, installment, at, score, reasons + signals)

    def _cure(self, at: float, installment: Installment, state: BorrowerState) -> Output:
        """A reversal's cure period has ended: the rules assess the installment then."""
        assert installment.due_date is not None
        if at >= self._deadline_time(installment.due_date):
            return []  # the deadline decides
        past_due = at >= self._past_due_time(installment.due_date)
        _, reasons, rule = self._assess(at, installment, state, past_due)
        self._note_risk(state, at, rule, installment_key(installment.loan_id, installment.number))
        return self._escalate(state, installment, at, rule, reasons)

    def _assess(
        self, at: float, installment: Installment, state: BorrowerState, past_due: bool
    ) -> tuple[float, list[Reason], float]:
        """Days from ``at`` to the due date, the reasons that hold, and the rules' score."""
        t = self.thresholds
        seen = self._observe(at, installment, state)
        assert installment.due_date is not None
        ahead = (self._midnight(installment.due_date) - at) / SECONDS_PER_DAY
        # A sign well before the due date leaves time to recover; in the last days before it, it
        # is money or attention missing for this installment. Earlier checks weigh it less.
        urgency = 1.0 if ahead <= t.near_due_days else t.early_signal_weight
        signals: list[tuple[float, Reason]] = []
        if past_due:
            signals.append(self._past_due_signal(at, installment, seen))
        reversal = self._reversal_signal(at, installment, past_due, urgency)
        if reversal is not None:
            signals.append(reversal)
        # A slump the peers share explains the takings' fall, not an owner gone quiet beside it.
        silent = self._unusual_silence(seen.silence)
        inflow = self._inflow_signals(seen.inflow, urgency, undamped=silent)
        declined = any(reason.code == "inflow_decline" for _, reason in inflow)
        signals += self._conduct_signals(seen, urgency, declined)
        signals += inflow
        # Independent signals combine as a noisy-or.
        rule = 1.0 - math.prod(1.0 - strength for strength, _ in signals)
        ranked = sorted(signals, key=lambda signal: -signal[0])
        return ahead, [reason for _, reason in ranked], rule

    def _observe(self, at: float, installment: Installment, state: BorrowerState) -> _Observed:
        """What the borrower's history shows at ``at``, from data stamped no later."""
        t = self.thresholds
        assert installment.amount_due is not None
        today = day_of(at)
        assert installment.due_date is not None
        ahead = (self._midnight(installment.due_date) - at) / SECONDS_PER_DAY
        memory = self.slot(state, _memory)
        payout_days = [today - d for d in memory["payouts"] if d <= today]
        payout_ago = payout_days[-1] if payout_days else None
        missed, cured, late, settled = self._history(at, installment, state)
        return _Observed(
            inflow=self._inflow(state, today, float(installment.amount_due) or 1.0, ahead),
            silence=self._silence(memory["logins"], state.inflows, today),
            payout_ago=payout_ago,
            payout_change=payout_ago is not None and payout_ago <= t.payout_change_days,
            missed=missed,
            cured=cured,
            late=late,
            settled=settled,
            paid=float(installment.paid_by(at)),
        )

    def _conduct_signals(
        self, seen: _Observed, urgency: float, declined: bool = False
    ) -> list[tuple[float, Reason]]:
        """Earlier installments missed, a silence, a payout change: with their strengths;
        ``declined``: the inflow has declined, which an unusual silence corroborates."""
        t = self.thresholds
        signals: list[tuple[float, Reason]] = []
        if seen.missed:
            signals.append(
                (
                    0.6,
                    self.reason(
                        "earlier_installments_unpaid",
                        observed=seen.missed,
                        threshold=0,
                        missed=seen.missed,
                    ),
                )
            )
        elif seen.cured:
            signals.append(
                (
                    t.cured_installment_weight,
                    self.reason(
                        "earlier_installments_cured",
                        observed=seen.cured,
                        threshold=0,
                        cured=seen.cured,
                    ),
                )
            )
        silence = self._silence_signal(seen.silence, urgency, declined)
        if silence is not None:
            signals.append(silence)
        if seen.payout_change:
            signals.append(
                (
                    t.payout_change_weight * urgency,
                    self.reason(
                        "payout_account_changed",
                        observed=seen.payout_ago,
                        threshold=t.payout_change_days,
                        days=seen.payout_ago,
                    ),
                )
            )
        return signals

    def _unusual_silence(self, silence: _Silence) -> bool:
        """A silence of ``min_silence_days`` or more, from ``unusual_silence_surprise`` at the
        borrower's own login rate (``min_silence_surprise``, which alerts alone, is never
        under it)."""
        t = self.thresholds
        return (
            silence.days >= t.min_silence_days
            and silence.surprise > 0
            and silence.surprise >= t.unusual_silence_surprise
        )

    def _silence_signal(
        self, silence: _Silence, urgency: float, declined: bool
    ) -> tuple[float, Reason] | None:
        """A silence of ``min_silence_days`` or more, by how unlikely it is at the borrower's
        own login rate: from ``min_silence_surprise`` it alerts alone (more, the more unlikely);
        from ``unusual_silence_surprise``, beside a decline of the inflow (``declined``), it
        weighs ``unusual_silence_weight``, under the bar: the owner gone quiet while the
        takings fall. Beside a bounced debit or a payout change alone it adds nothing: a debit
        bounced while the owner is away is made good on return as often as not."""
        t = self.thresholds
        if not self._unusual_silence(silence):
            return None
        if silence.surprise >= t.min_silence_surprise:
            span = max(1.0, t.full_silence_surprise - t.min_silence_surprise)
            strength = 0.5 + 0.1 * min(1.0, (silence.surprise - t.min_silence_surprise) / span)
            code, threshold = "login_silence", t.min_silence_surprise
        elif declined:
            strength = t.unusual_silence_weight
            code, threshold = "login_silence/unusual", t.unusual_silence_surprise
        else:
            return None
        return strength * urgency, self.reason(
            code,
            observed=round(silence.surprise, 1),
            threshold=threshold,
            days=silence.days,
            rate=silence.rate,
            chance=math.exp(-silence.surprise),
        )

    def _inflow_signals(
        self, inflow: Inflow, urgency: float, undamped: bool
    ) -> list[tuple[float, Reason]]:
        """A decline beyond the peers' move, a low coverage: with their strengths;
        ``undamped``: peers falling as far at once do not damp the decline."""
        t = self.thresholds
        signals = [self._decline_signal(inflow, urgency, undamped)]
        if inflow.coverage is not None and inflow.coverage <= t.max_coverage:
            signals.append(
                (
                    0.1,
                    self.reason(
                        "low_installment_coverage",
                        observed=round(inflow.coverage, 2),
                        threshold=t.max_coverage,
                        coverage=inflow.coverage,
                    ),
                )
            )
        return [signal for signal in signals if signal is not None]

    def _decline_signal(
        self, inflow: Inflow, urgency: float, undamped: bool
    ) -> tuple[float, Reason] | None:
        """The borrower's decline, judged against its peers' move when they are known.

        Peers that fell together (the median of the sector, or an unusual share of them at
        once) make a borrower who fell with them one of many, not a failing borrower; unless
        its own inflow no longer covers the installment, when its own decline counts. An
        unusual share of peers falling as far at once does not damp it when ``undamped`` (the
        owner has gone unusually quiet beside the fall: the slump does not explain that).
        """
        t = self.thresholds
        own, relative, peer = inflow.own, inflow.relative, inflow.peer
        candidates: list[tuple[float, Reason]] = []
        judged = relative if relative is not None else own
        if judged is not None and self._judge.declined(judged, inflow.coverage):
            strength = self._judge.strength(judged) * self._judge.cover_weight(inflow.coverage)
            if peer is None:
                reason = self.reason(
                    "inflow_decline",
                    observed=round(judged.projected, 3),
                    threshold=t.max_inflow_ratio,
                    days=t.recent_days,
                    ratio=judged.ratio,
                    projected=judged.projected,
                    recent=inflow.recent,
                    baseline=inflow.baseline,
                    z=judged.rank_z,
                )
            else:
                others = max(0, peer.decliners - 1)  # the borrower itself fell as far
                if not undamped:
                    strength *= self._judge.shared_weight(peer, others)
                reason = self.reason(
                    "inflow_decline/peers",
                    observed=round(judged.projected, 3),
                    threshold=t.max_inflow_ratio,
                    days=t.recent_days,
                    own=inflow.recent / inflow.baseline if inflow.baseline else 0.0,
                    recent=inflow.recent,
                    baseline=inflow.baseline,
                    peers=peer.peers - 1,
                    scope=peer.scope,
                    move=peer.week,
                    ratio=judged.ratio,
                    projected=judged.projected,
                    others=others,
                    z=judged.rank_z,
                )
            candidates.append((strength * urgency, reason))
        shared = self._uncovered_despite_peers(inflow)
        if shared is not None:
            candidates.append((shared[0] * urgency, shared[1]))
        return max(candidates, key=lambda c: c[0]) if candidates else None

    def _uncovered_despite_peers(self, inflow: Inflow) -> tuple[float, Reason] | None:
        """A borrower whose own decline leaves the installment uncovered, however many peers
        fell with it: the shared slump explains the fall, not the missing cover."""
        t = self.thresholds
        own, peer = inflow.own, inflow.peer
        if (
            peer is None
            or own is None
            or inflow.coverage is None
            or inflow.coverage > t.uncovered_coverage
            or not self._judge.declined(own, inflow.coverage)
        ):
            return None
        reason = self.reason(
            "inflow_decline/shared",
            observed=round(own.projected, 3),
            threshold=t.max_inflow_ratio,
            days=t.recent_days,
            ratio=own.ratio,
            projected=own.projected,
            recent=inflow.recent,
            baseline=inflow.baseline,
            peers=peer.peers - 1,
            scope=peer.scope,
            move=peer.week,
            coverage=inflow.coverage,
            z=own.rank_z,
        )
        return self._judge.strength(own), reason

    def _reversal_signal(
        self, at: float, installment: Installment, past_due: bool, urgency: float
    ) -> tuple[float, Reason] | None:
        """A reversed payment not paid again by ``at``, once its cure period has passed.

        A bounced debit is common and mostly made good within days: paid again, it is
        nothing. Not paid again within ``reversal_cure_days``, the money is missing: before
        the due date that is a strong sign (weaker at the early checks). After it, paying
        again within grace is still no default: it weighs ``past_due_reversal_weight`` (by
        default nothing until the deadline, which counts it among the miss's reasons).
        """
        t = self.thresholds
        owed, since = _unrecovered(installment, at)
        assert installment.due_date is not None
        if owed <= 0 or at < self._cure_time(since, installment.due_date):
            return None
        weight = t.past_due_reversal_weight if past_due else t.reversal_weight * urgency
        return weight, self.reason(
            "payment_reversed",
            observed=str(owed),
            threshold="0",
            amount=owed,
            installment=installment_key(installment.loan_id, installment.number),
            days=(at - since) / SECONDS_PER_DAY,
        )

    def _past_due_signal(
        self, at: float, installment: Installment, seen: _Observed
    ) -> tuple[float, Reason]:
        """Past due weighs by what was paid and by the borrower's own habit.

        Part of the installment paid, then nothing by the due date, is a borrower who tried and
        ran short: that alerts alone. Nothing paid is weak, since many pay a day or two late
        within grace; and it weighs less by the share of its earlier installments the borrower
        paid so (nothing for one who always did and never missed: it is simply on schedule).
        """
        t = self.thresholds
        if seen.paid > 0:
            strength = 0.6
        elif seen.settled and not seen.missed and not seen.cured:
            strength = t.past_due_weight * (1.0 - seen.late / seen.settled)
        else:
            strength = t.past_due_weight
        reason = self.reason(
            "past_due/late" if seen.late else "past_due",
            observed=str(installment.paid_by(at)),
            threshold=str(installment.amount_due),
            paid=installment.paid_by(at),
            due=installment.amount_due,
            due_date=installment.due_date,
            late=seen.late,
            settled=seen.settled,
        )
        return strength, reason

    def _inflow(
        self, state: BorrowerState, today: int, amount_due: float, ahead: float = 0.0
    ) -> Inflow:
        """The borrower's inflow before ``today`` against its own past and its peers' (its
        sector as the platform gave it)."""
        sector = (state.slots.get(self.name) or {}).get("sector")
        return self._judge.inflow(state.inflows, state.partition, sector, today, amount_due, ahead)

    def _silence(self, logins: list[int], inflows: InflowHistory, today: int) -> _Silence:
        """Days without a login, and how unlikely that is at the borrower's own login rate.

        The rate is the share of days with a login over ``login_rate_days`` before the last
        one (since the borrower was first seen, whichever is shorter), smoothed by half a day
        either way so that a short history does not claim certainty.
        """
        t = self.thresholds
        seen = [d for d in logins if d <= today]
        if not seen:
            return _Silence(0, 0.0, 0.0)
        last = seen[-1]
        first = min(seen[0], inflows.first_day) if inflows.first_day >= 0 else seen[0]
        span = min(t.login_rate_days, last - first + 1)
        quiet = today - last - 1
        if span < t.min_login_history_days or quiet <= 0:
            return _Silence(max(quiet, 0), 0.0, 0.0)
        active = sum(1 for d in seen if d > last - t.login_rate_days)
        rate = min((active + 0.5) / (span + 1), 0.99)
        return _Silence(quiet, rate, -quiet * math.log(1.0 - rate))

    def _history(
        self, at: float, current: Installment, state: BorrowerState
    ) -> tuple[int, int, int, int]:
        """Earlier installments settled by ``at``: how many went unpaid and are still owed,
        how many went unpaid and were paid in full since, how many were paid late within
        grace, and how many there were."""
        bad = cured = late = settled = 0
        for installment in state.installments.values():
            if installment is current or installment.due_date is None:
                continue
            deadline = self._deadline_time(installment.due_date)
            if deadline > at or installment.amount_due is None:
                continue
            settled += 1
            if not installment.paid_in_full_by(deadline):
                if installment.paid_in_full_by(at):
                    cured += 1
                else:
                    bad += 1
            elif not installment.paid_in_full_by(self._past_due_time(installment.due_date)):
                late += 1
        return bad, cured, late, settled

    def _escalate(
        self,
        state: BorrowerState,
        installment: Installment,
        at: float,
        score: float,
        reasons: list[Reason],
    ) -> Output:
        """Alert only when the installment's severity rises above what was already sent."""
        score = min(1.0, max(0.0, score))
        if score < self.thresholds.min_alert_score or not reasons:
            return []
        severity = severity_for(score)
        rank = SEVERITY_RANK[severity]
        if rank <= installment.alerted:
            return []
        installment.alerted = rank
        key = installment_key(installment.loan_id, installment.number)
        return [
            self.finding(
                state.borrower_id,
                episode=self.episode("installment", installment=key, severity=severity),
                ts=datetime.fromtimestamp(at, UTC),
                score=score,
                reasons=reasons,
                evidence=installment.evidence_until(at) or [key],
                loan_id=installment.loan_id,
                installment=installment.number,
                due_date=installment.due_date,
            )
        ]

    # Event time of the stages ----------------------------------------------------------------

    def _stages(self, installment: Installment) -> list[tuple[str, float]]:
        """The checks, past due and the deadline; then the end of each reversal's cure."""
        assert installment.due_date is not None
        midnight = self._midnight(installment.due_date)
        stages = [
            (f"{CHECK}{days}", midnight - days * SECONDS_PER_DAY)
            for days in self.thresholds.check_days_before_due
        ]
        return [
            *stages,
            (PAST_DUE, self._past_due_time(installment.due_date)),
            (DEADLINE, self._deadline_time(installment.due_date)),
            *(
                (f"{CURE}{number}", self._cure_time(ts, installment.due_date))
                for number, (ts, _, _) in enumerate(installment.reversals)
            ),
        ]

    def _cure_time(self, reversed_at: float, due: date) -> float:
        """When a reversal not paid again starts to count: ``reversal_cure_days`` after it,
        or, when that falls after the due date, the end of the grace period. Paying again
        inside the grace period is the borrower's right and no default, so a debit that
        bounces near the due date is judged by whether it is made good in grace."""
        cure = reversed_at + self.thresholds.reversal_cure_days * SECONDS_PER_DAY
        if cure < self._past_due_time(due):
            return cure
        return max(cure, self._deadline_time(due))

    def _midnight(self, day: date) -> float:
        return datetime(day.year, day.month, day.day, tzinfo=self._zone).timestamp()

    def _past_due_time(self, due: date) -> float:
        """End of the due date: midnight after it in platform time."""
        return self._midnight(due) + SECONDS_PER_DAY

    def _deadline_time(self, due: date) -> float:
        """End of the grace period: midnight after ``due + grace_days`` in platform time."""
        return self._midnight(due + timedelta(days=1 + self.thresholds.grace_days))


def risk_view(state: BorrowerState) -> dict[str, Any]:
    """What a collections team ranks a borrower by: the latest risk assessment (score, when,
    of which installment) and the installments not yet paid in full, by every payment and
    reversal received so far.

    >>> risk_view(BorrowerState("b-1"))
    {'score': 0.0, 'scored_at': None, 'scored_installment': None, 'open_installments': []}
    """
    memory = state.slots.get(DelinquencyDetector.name) or {}
    scored_at, score, scored = memory.get("risk") or (None, 0.0, None)
    still_open = [
        {
            "loan_id": i.loan_id,
            "installment": i.number,
            "due_date": i.due_date.isoformat(),
            "amount_due": str(i.amount_due),
            "paid": str(i.paid_by(math.inf)),
        }
        # A payment that came before its schedule leaves an installment with no due date yet.
        for i in sorted(
            state.installments.values(), key=lambda i: (i.due_date or date.min, i.loan_id)
        )
        if i.due_date is not None and i.amount_due is not None and not i.paid_in_full_by(math.inf)
    ]
    return {
        "score": score,
        "scored_at": None
        if scored_at is None
        else datetime.fromtimestamp(scored_at, UTC).isoformat(),
        "scored_installment": scored,
        "open_installments": still_open,
    }


def _memory() -> dict[str, Any]:
    """Days of successful logins and of payout-account changes (event time), newest last; the
    latest risk assessment (``risk``) and the borrower's sector (``sector``) once known."""
    return {"logins": [], "payouts": []}


def _unrecovered(installment: Installment, at: float) -> tuple[Decimal, float]:
    """Reversed money not paid again by ``at``, and since when some has been missing.

    Payments after a reversal make it good; payments before it are what it took back. What
    is still owed never exceeds what the installment still misses (a reversal of an
    overpayment leaves nothing missing).

    >>> from detectors.state import Installment
    >>> i = Installment("ln", 1, amount_due=Decimal(300))
    >>> i.payments.append((10.0, Decimal(300), "p1"))
    >>> i.reversals.append((20.0, Decimal(300), "r1"))
    >>> _unrecovered(i, 25.0), _unrecovered(i, 15.0)
    ((Decimal('300'), 20.0), (Decimal('0'), 0.0))
    >>> i.payments.append((30.0, Decimal(300), "p2"))
    >>> _unrecovered(i, 35.0)
    (Decimal('0'), 0.0)
    """
    if not installment.reversals or installment.amount_due is None:
        return Decimal(0), 0.0
    missing = installment.amount_due - installment.paid_by(at)
    if missing <= 0:
        return Decimal(0), 0.0
    moves = sorted(
        [(ts, 0, amount) for ts, amount, _ in installment.reversals if ts <= at]
        + [(ts, 1, amount) for ts, amount, _ in installment.payments if ts <= at]
    )
    owed, since = Decimal(0), 0.0
    for ts, kind, amount in moves:
        if kind == 0:
            if owed <= 0:
                since = ts
            owed += amount
        elif owed > 0:
            owed = max(Decimal(0), owed - amount)
    owed = min(owed, missing)
    return (owed, since) if owed > 0 else (Decimal(0), 0.0)
