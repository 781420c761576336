"""Every tunable of every detector, as data: a team's live change is just a new value of these."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "MachineFlowThresholds",
    "RevenueInflationThresholds",
    "WashTradingThresholds",
    "ImpossibleTravelThresholds",
    "DeviceRingThresholds",
    "CredentialStuffingThresholds",
    "CircularFlowThresholds",
    "DelinquencyThresholds",
    "FlowAnomalyThresholds",
    "TakeoverThresholds",
    "Thresholds",
]


@dataclass(frozen=True, slots=True)
class CircularFlowThresholds:
    #: A cycle's hops must all fall within this many hours.
    window_hours: float = 48.0
    #: Each hop may be smaller than the one before by at most this share (fees, skimming).
    max_fee_ratio: float = 0.05
    #: Cycles whose first hop moves less than this (major units) are ignored.
    min_amount: float = 5000.0
    #: Edges kept per account in the cross-borrower index (bounds memory on hub accounts).
    max_edges_per_account: int = 200


@dataclass(frozen=True, slots=True)
class TakeoverThresholds:
    #: Failed logins counted within this many minutes before a success.
    failure_window_minutes: float = 30.0
    #: This many failures, then a success from an unseen device, is a takeover.
    min_failures: int = 5
    #: Devices unused for this many days are forgotten.
    device_memory_days: int = 90
    #: A payout-account change or drawdown from a flagged login's device or IP within this
    #: many hours of it escalates the takeover.
    followup_hours: float = 24.0
    #: Failures in the window before a success from a known device id replayed from an unseen
    #: IP, city or app (fewer than min_failures: the other signs are strong, typos are 1–3).
    min_failures_known_device: int = 4


@dataclass(frozen=True, slots=True)
class DelinquencyThresholds:
    """Tunables of :class:`~detectors.delinquency.DelinquencyDetector`.

    Signals combine as a noisy-or and an alert needs a score of ``min_alert_score``. The
    strong signals reach it alone (an earlier installment missed, part-paid past due, a long
    silence, a payout change right before the due date, a deep decline); the others need
    company. Precision against warning is set mostly by ``max_inflow_ratio`` and
    ``min_silence_surprise``: a lower ratio or a higher surprise alerts less and earlier.
    """

    #: An installment not fully paid this many days after its due date is missed.
    grace_days: int = 3
    #: Days before the due date at which an unpaid installment's risk is assessed.
    check_days_before_due: tuple[int, ...] = (10, 7, 5, 3)
    #: Recent inflow window (days); the rank test compares twice this with the baseline.
    recent_days: int = 7
    #: The baseline ends this many days before a check (a decline under way must not drag
    #: its own baseline down) and covers this many days before that.
    baseline_gap_days: int = 21
    baseline_days: int = 42
    #: Baseline days needed before an inflow trend is trusted.
    min_baseline_days: int = 7
    #: Recent trimmed daily inflow at or below this share of the baseline is a decline (it
    #: alerts alone from 0.15 below) ...
    max_inflow_ratio: float = 0.65
    #: ... when the last two weeks' days also rank below the baseline days (Mann-Whitney z at
    #: or below this): one quiet week of a lumpy business is not a decline.
    max_inflow_rank_z: float = -1.5
    #: A month of inflow at the recent rate covering the installment at most this often is low.
    max_coverage: float = 4.0
    #: Login silence counts (and alerts alone) from this surprise, -ln P(a silence this long
    #: at the borrower's own login rate): 8 is about one chance in 3,000; its weight grows
    #: until ``full_silence_surprise``.
    min_silence_surprise: float = 8.0
    full_silence_surprise: float = 34.0
    #: Days over which the borrower's login rate is measured, and the least history for it.
    login_rate_days: int = 42
    min_login_history_days: int = 7
    #: A payout-account change at most this many days before a check raises the risk ...
    payout_change_days: int = 3
    #: ... with this weight in the noisy-or (from 0.5 it alerts alone).
    payout_change_weight: float = 0.5
    #: Inflow decline, silence and a payout change count in full this many days or fewer
    #: before the due date, and with this weight at earlier checks (time to recover).
    near_due_days: int = 3
    early_signal_weight: float = 0.7
    #: Alert when the risk score reaches this (severity follows the score).
    min_alert_score: float = 0.5
    #: Outcomes (feature snapshots), and misses among them, the per-partition classifier
    #: must learn before its score is blended in.
    min_labels_for_model: int = 300
    min_model_misses: int = 10
    #: A snapshot of a missed installment weighs this many paid ones in the classifier.
    positive_weight: float = 30.0
    #: The classifier adds evidence when its probability is this many times its running mean
    #: over the partition's installments ...
    min_model_lift: float = 4.0
    #: ... and this much: it ranks, it does not tip a single weak signal into an alert. With
    #: a few dozen misses per partition it adds little (evaluate: 0.1 moves precision by
    #: -0.006 and warned by 0; 0.45 in version 2 gave 70 % warned at precision 0.29).
    max_model_strength: float = 0.1
    #: Due dates are calendar days in the platform's time zone (hours east of UTC).
    platform_utc_offset_hours: int = 8


@dataclass(frozen=True, slots=True)
class FlowAnomalyThresholds:
    #: Days of the borrower's own history its daily inflow is compared with.
    baseline_days: int = 28
    #: Days of history needed before a borrower is scored.
    min_baseline_days: int = 14
    #: A day counts as lifted when inflow, after the sector's own change, is this many times
    #: the borrower's baseline.
    min_lift: float = 4.0
    #: Lifted days needed within the last ``sustained_window`` days: one big contract is not
    #: fabricated turnover, weeks of it may be.
    sustained_days: int = 6
    sustained_window: int = 7
    #: Anomaly score (HalfSpaceTrees, 0..1) at or above which a sustained lift alerts.
    min_anomaly_score: float = 0.75
    #: Borrowers of a sector in the partition needed to estimate the sector's daily change.
    min_sector_peers: int = 5
    #: Days on which the sector as a whole moved below this share of its baseline (a B2B
    #: weekend) are not judged: dividing by a near-zero move would inflate every lift.
    min_sector_move: float = 0.3


@dataclass(frozen=True, slots=True)
class CredentialStuffingThresholds:
    #: The failures must all fall within a span of this many hours (an attack may be slow).
    window_hours: float = 12.0
    #: This many distinct borrowers failing from one IP, each on a device new to them (count).
    min_borrowers: int = 8
    #: Share of the IP's failing borrowers who were on a new device at or above which the
    #: failures are the attacker's alone; raises the score (typos come from known devices).
    min_failure_ratio: float = 0.8


@dataclass(frozen=True, slots=True)
class DeviceRingThresholds:
    #: The borrowers must all have used the device within a span of this many days.
    window_days: float = 30.0
    #: This many distinct borrowers on one device within the span is a ring (count).
    min_borrowers: int = 3


@dataclass(frozen=True, slots=True)
class ImpossibleTravelThresholds:
    #: Faster than this between two logins (km/h) is impossible; an airliner does ~900.
    max_speed_kmh: float = 1000.0
    #: Closer than this (km) is never flagged: geolocation of one city varies this much.
    min_distance_km: float = 500.0
    #: A flagged jump's way back, to within min_distance_km of where it started, is part of
    #: the same episode for this many hours.
    return_hours: float = 24.0


@dataclass(frozen=True, slots=True)
class WashTradingThresholds:
    #: In and out legs match when they differ by at most this share of the larger one.
    amount_tolerance: float = 0.005
    #: ... and are at most this many hours apart.
    pair_window_hours: float = 24.0
    #: Legs smaller than this (major units) are ignored.
    min_amount: float = 10_000.0
    #: Alert when round trips with one counterparty happen on at least this many distinct days
    min_pair_days: int = 3
    #: ... within this many days (first to last round-trip day, inclusive).
    lookback_days: int = 21


@dataclass(frozen=True, slots=True)
class RevenueInflationThresholds:
    """Tunables of :class:`~detectors.revenue_inflation.RevenueInflationDetector`.

    A ramp is judged over two windows ending at the application's UTC day, ``recent_days``
    and ``ramp_days`` long (a forged ramp runs three to six weeks), each against the
    ``baseline_days`` before it. The verdict comes ``quiet_days`` after the application:
    genuine new clients keep paying after a loan, forged payers stop.
    """

    #: Recent window: this many days before the application's UTC day.
    recent_days: int = 28
    #: Longest ramp: a payer first seen this many days before the application is still new,
    #: and a second window this long is judged too.
    ramp_days: int = 42
    #: Baseline window: at most this many days before a window (the inflow ring holds 96).
    baseline_days: int = 56
    #: Days of history the baseline needs: a shorter history is compared with what it has.
    min_baseline_days: int = 7
    #: A counterparty is tracked from its first single inflow of at least this (major units).
    large_inflow: float = 10_000.0
    #: Alert when a window's daily turnover is at least this multiple of the baseline's ...
    min_growth: float = 1.4
    #: ... and new payers that then went quiet sent at least this share of the window's
    #: turnover ...
    min_new_share: float = 0.45
    #: ... and there are at least this many such payers.
    min_new_counterparties: int = 3
    #: Days from the application's UTC day in which those payers must have paid nothing.
    quiet_days: int = 7
    #: A new payer's later inflow of at least this (major units) shows it is still paying.
    min_followup_inflow: float = 5_000.0
    #: A counterparty the borrower sent at least this (major units) is a trading partner:
    #: its inflows are not turnover (returned deposits, goods bought and sold back).
    min_two_way_outflow: float = 5_000.0


@dataclass(frozen=True, slots=True)
class MachineFlowThresholds:
    """Tunables of :class:`MachineFlowDetector`.

    Benford's law is tested on the amounts that are not round: round sums are the round test's
    business, and a few denominations (top-ups of 100, 200, 500) would otherwise fail both
    tests for one reason. Their first-digit mean absolute deviation (MAD) is compared with two
    allowances combined in quadrature (independent sources of deviation). Sampling noise: the
    MAD of amounts drawn from Benford's law falls as 1/sqrt(n); at 60 amounts its 99.9th
    percentile is 0.059 (simulated), hence ``BENFORD_NOISE_AT_60`` scaled by
    sqrt(60 / effective sample size). And ``min_benford_mad``, what a real business shows for
    want of spread or because of its price points: Nigrini's 0.015 "nonconformity" is meant
    for thousands of accounting amounts, while one merchant's takings commonly sit at 0.05-0.13
    (simulated SME flows). The bound is 0.125 at 40 amounts and 0.109 at the 119 of a full
    decayed window: only crude scripts (digits confined to a few values across orders of
    magnitude) fail; uniform amounts (about 0.06) pass, as real flows do. The spread gate
    keeps amounts within about one order of magnitude (a daily settlement) out of the test,
    to which the law does not apply, real or not.

    Payers on the clock are in no fixed order when, at every lag k up to PAYER_LAGS, at most
    ``max_payer_repeat_share`` of the inflows on the clock have the payer of the one k before
    them on it. A script that picks one of n accounts at random repeats each lag about 1/n of
    the time (0.33 with three); settlement schedules repeat one lag nearly always (one payer:
    lag 1; an acquirer at 02:00 and a platform at 14:00: lag 2). Simulated, after the first
    ``min_payer_samples``: scripts reach 0.1-0.38 (median 0.2), settlement clocks never go
    below 0.79. Sellers on several platforms that settle at the same hours, one or another
    with nothing to pay on some ticks, can look unordered too, but a share of their inflows
    on the clock come within minutes of another (never below 0.067, simulated), where a
    script's come one a tick (at most 0.005, crossed by chance customers):
    ``max_batched_share`` sits between.
    """

    #: Inflows smaller than this (major units) are left out of every statistic.
    min_amount: float = 100.0
    #: Memory of the statistics, in inflows: a weight shrinks by 1 - 1/window per later inflow.
    window: int = 60
    #: No verdict before this many inflows of at least ``min_amount`` have been seen.
    min_samples: int = 40
    #: An amount is round when it is a whole multiple of this (major units).
    round_unit: float = 100.0
    #: Round signal: the decayed share of round inflows is above this share (0..1).
    max_round_share: float = 0.5
    #: Regular signal: coefficient of variation of the times between inflows is at most this ...
    max_interval_cv: float = 0.15
    #: ... or at least this share of inflows come one fixed period (+-45 s) after an earlier one.
    min_clock_share: float = 0.3
    #: Benford signal: first-digit mean absolute deviation at least this (and the noise bound).
    min_benford_mad: float = 0.1
    #: Benford is tested only when log10(amount) has at least this standard deviation (decades).
    min_benford_spread: float = 0.3
    #: Rotating-payers signal (counted only with the clock): for every lag k up to PAYER_LAGS,
    #: at most this share of the inflows on the clock have the payer of the one k before ...
    max_payer_repeat_share: float = 0.5
    #: ... judged once this many inflows on the clock have been compared with their PAYER_LAGS
    #: predecessors on it ...
    min_payer_samples: int = 10
    #: ... and at most this share come within CLOCK_MIN (5 min) of another on the clock.
    max_batched_share: float = 0.02
    #: Alert when at least this many of the four signals hold.
    min_signals: int = 2


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds of all detectors, with the version stamped on every alert."""

    version: str = "default-1"
    circular_flow: CircularFlowThresholds = field(default_factory=CircularFlowThresholds)
    takeover: TakeoverThresholds = field(default_factory=TakeoverThresholds)
    delinquency: DelinquencyThresholds = field(default_factory=DelinquencyThresholds)
    flow_anomaly: FlowAnomalyThresholds = field(default_factory=FlowAnomalyThresholds)
    machine_flow: MachineFlowThresholds = field(default_factory=MachineFlowThresholds)
    revenue_inflation: RevenueInflationThresholds = field(
        default_factory=RevenueInflationThresholds
    )
    wash_trading: WashTradingThresholds = field(default_factory=WashTradingThresholds)
    impossible_travel: ImpossibleTravelThresholds = field(
        default_factory=ImpossibleTravelThresholds
    )
    device_ring: DeviceRingThresholds = field(default_factory=DeviceRingThresholds)
    credential_stuffing: CredentialStuffingThresholds = field(
        default_factory=CredentialStuffingThresholds
    )
