"""Every tunable of every detector, as data: a team's live change is just a new value of these.

Each tunable is declared once, where its detector's thresholds are, with :func:`tunable`: its
default, the range a team may set and a one-line meaning. Its key is ``section.name``
(``takeover.min_failures``) and its type is the field's. :data:`TUNABLES` lists them all;
:meth:`Thresholds.with_changes` is the one way to change values, and it refuses anything
invalid (unknown key, wrong type, out of range, inconsistent with another tunable).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors.tunables import InvalidThreshold, Tunable, Value, declare, format_value, tunable

__all__ = [
    "CONSTRAINTS",
    "DEFAULT_VERSION",
    "InvalidThreshold",
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
    "TUNABLES",
    "Thresholds",
    "Tunable",
    "Value",
    "format_value",
    "tunable",
]

#: The version stamped on alerts while no team has changed a threshold: the shipped defaults.
DEFAULT_VERSION = "v0"


@dataclass(frozen=True, slots=True)
class CircularFlowThresholds:
    #: A cycle's hops must all fall within this many hours.
    window_hours: float = tunable(48.0, 1, 720, "hours within which all hops of a cycle must fall")
    #: Each hop may be smaller than the one before by at most this share (fees, skimming).
    max_fee_ratio: float = tunable(
        0.05, 0, 0.5, "share by which a hop may be smaller than the one before"
    )
    #: Cycles whose first hop moves less than this (major units) are ignored.
    min_amount: float = tunable(
        5000.0, 0, 10000000, "smallest first hop of a cycle that counts (major units)"
    )
    #: Edges kept per account in the cross-borrower index (bounds memory on hub accounts).
    max_edges_per_account: int = tunable(
        200, 10, 10000, "edges kept per account in the cross-borrower index"
    )


@dataclass(frozen=True, slots=True)
class TakeoverThresholds:
    #: Failed logins counted within this many minutes before a success.
    failure_window_minutes: float = tunable(
        30.0, 1, 1440, "minutes before a success in which failed logins count"
    )
    #: This many failures, then a success from an unseen device, is a takeover.
    min_failures: int = tunable(
        5, 1, 100, "failures before a success from an unseen device that make a takeover"
    )
    #: Devices unused for this many days are forgotten.
    device_memory_days: int = tunable(90, 1, 730, "days after which an unused device is forgotten")
    #: A payout-account change or drawdown from a flagged login's device or IP within this
    #: many hours of it escalates the takeover.
    followup_hours: float = tunable(
        24.0, 1, 720, "hours after a flagged login in which a payout change or drawdown escalates"
    )
    #: Failures in the window before a success from a known device id replayed from an unseen
    #: IP, city or app (fewer than min_failures: the other signs are strong, typos are 1–3).
    min_failures_known_device: int = tunable(
        4, 1, 100, "failures before a known device id replayed from an unseen IP, city or app"
    )


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
    #: A month of inflow at the recent rate covering the installment at most this often is low.
    max_coverage: float = tunable(
        4.0, 0.1, 100.0, "months of inflow covering the installment at most this often is low"
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
    #: Outcomes (feature snapshots), and misses among them, the per-partition classifier
    #: must learn before its score is blended in.
    min_labels_for_model: int = tunable(
        300, 10, 100000, "outcomes the classifier learns before it is blended in"
    )
    min_model_misses: int = tunable(10, 1, 10000, "missed installments among them needed as well")
    #: A snapshot of a missed installment weighs this many paid ones in the classifier.
    positive_weight: float = tunable(
        30.0, 1.0, 1000.0, "paid installments a missed one weighs in the classifier"
    )
    #: The classifier adds evidence when its probability is this many times its running mean
    #: over the partition's installments ...
    min_model_lift: float = tunable(
        4.0, 1.0, 100.0, "classifier probability over its running mean that adds evidence"
    )
    #: ... and this much: it ranks, it does not tip a single weak signal into an alert. With
    #: a few dozen misses per partition it adds little (evaluate: 0.1 moves precision by
    #: -0.006 and warned by 0; 0.45 in version 2 gave 70 % warned at precision 0.29).
    max_model_strength: float = tunable(
        0.1, 0.0, 1.0, "most evidence the classifier adds to the score"
    )
    #: Due dates are calendar days in the platform's time zone (hours east of UTC).
    platform_utc_offset_hours: int = tunable(
        8, -12, 14, "hours east of UTC of the platform's calendar days"
    )


@dataclass(frozen=True, slots=True)
class FlowAnomalyThresholds:
    #: Days of the borrower's own history its daily inflow is compared with.
    baseline_days: int = tunable(
        28, 7, 90, "days of the borrower's history its daily inflow is compared with"
    )
    #: Days of history needed before a borrower is scored.
    min_baseline_days: int = tunable(
        14, 1, 90, "days of history needed before a borrower is scored"
    )
    #: A day counts as lifted when inflow, after the sector's own change, is this many times
    #: the borrower's baseline.
    min_lift: float = tunable(
        4.0, 1.0, 100.0, "inflow over the baseline, after the sector's change, that lifts a day"
    )
    #: Lifted days needed within the last ``sustained_window`` days: one big contract is not
    #: fabricated turnover, weeks of it may be.
    sustained_days: int = tunable(6, 1, 60, "lifted days needed within the sustained window")
    sustained_window: int = tunable(7, 1, 60, "days in which lifted days are counted")
    #: Anomaly score (HalfSpaceTrees, 0..1) at or above which a sustained lift alerts.
    min_anomaly_score: float = tunable(
        0.75, 0.0, 1.0, "anomaly score at or above which a sustained lift alerts"
    )
    #: Borrowers of a sector in the partition needed to estimate the sector's daily change.
    min_sector_peers: int = tunable(
        5, 1, 1000, "borrowers of a sector needed to estimate its daily change"
    )
    #: Days on which the sector as a whole moved below this share of its baseline (a B2B
    #: weekend) are not judged: dividing by a near-zero move would inflate every lift.
    min_sector_move: float = tunable(
        0.3, 0.0, 1.0, "sector moves below this share of its baseline are not judged"
    )


@dataclass(frozen=True, slots=True)
class CredentialStuffingThresholds:
    #: The failures must all fall within a span of this many hours (an attack may be slow).
    window_hours: float = tunable(12.0, 0.1, 168.0, "hours within which the failures fall")
    #: This many distinct borrowers failing from one IP, each on a device new to them (count).
    min_borrowers: int = tunable(
        8, 2, 10000, "distinct borrowers failing from one IP on new devices"
    )
    #: Share of the IP's failing borrowers who were on a new device at or above which the
    #: failures are the attacker's alone; raises the score (typos come from known devices).
    min_failure_ratio: float = tunable(
        0.8, 0.0, 1.0, "share on a new device from which the failures are an attacker's"
    )


@dataclass(frozen=True, slots=True)
class DeviceRingThresholds:
    #: The borrowers must all have used the device within a span of this many days.
    window_days: float = tunable(
        30.0, 1.0, 365.0, "days within which the borrowers used the device"
    )
    #: This many distinct borrowers on one device within the span is a ring (count).
    min_borrowers: int = tunable(3, 2, 1000, "distinct borrowers on one device that make a ring")


@dataclass(frozen=True, slots=True)
class ImpossibleTravelThresholds:
    #: Faster than this between two logins (km/h) is impossible; an airliner does ~900.
    max_speed_kmh: float = tunable(
        1000.0, 100.0, 20000.0, "speed between two logins above which travel is impossible"
    )
    #: Closer than this (km) is never flagged: geolocation of one city varies this much.
    min_distance_km: float = tunable(
        500.0, 0.0, 20000.0, "jumps shorter than this are never flagged"
    )
    #: A flagged jump's way back, to within min_distance_km of where it started, is part of
    #: the same episode for this many hours.
    return_hours: float = tunable(
        24.0, 0.0, 720.0, "hours in which the way back is part of the same episode"
    )


@dataclass(frozen=True, slots=True)
class WashTradingThresholds:
    #: In and out legs match when they differ by at most this share of the larger one.
    amount_tolerance: float = tunable(
        0.005, 0.0, 0.5, "share by which in and out legs may differ and still match"
    )
    #: ... and are at most this many hours apart.
    pair_window_hours: float = tunable(24.0, 1, 720, "hours within which in and out legs match")
    #: Legs smaller than this (major units) are ignored.
    min_amount: float = tunable(
        10_000.0, 0.0, 10000000.0, "legs smaller than this are ignored (major units)"
    )
    #: Alert when round trips with one counterparty happen on at least this many distinct days
    min_pair_days: int = tunable(
        3, 1, 60, "distinct days of round trips with one counterparty that alert"
    )
    #: ... within this many days (first to last round-trip day, inclusive).
    lookback_days: int = tunable(21, 1, 90, "days from first to last round-trip day")


@dataclass(frozen=True, slots=True)
class RevenueInflationThresholds:
    """Tunables of :class:`~detectors.revenue_inflation.RevenueInflationDetector`.

    A ramp is judged over two windows ending at the application's UTC day, ``recent_days``
    and ``ramp_days`` long (a forged ramp runs three to six weeks), each against the
    ``baseline_days`` before it. The verdict comes ``quiet_days`` after the application:
    genuine new clients keep paying after a loan, forged payers stop.
    """

    #: Recent window: this many days before the application's UTC day.
    recent_days: int = tunable(28, 7, 60, "days before the application judged as the recent window")
    #: Longest ramp: a payer first seen this many days before the application is still new,
    #: and a second window this long is judged too.
    ramp_days: int = tunable(
        42, 7, 60, "days before the application a payer first seen is still new"
    )
    #: Baseline window: at most this many days before a window (the inflow ring holds 96).
    baseline_days: int = tunable(56, 7, 56, "days before a window its baseline covers")
    #: Days of history the baseline needs: a shorter history is compared with what it has.
    min_baseline_days: int = tunable(7, 1, 56, "days of history the baseline needs")
    #: A counterparty is tracked from its first single inflow of at least this (major units).
    large_inflow: float = tunable(
        10_000.0,
        0.0,
        10000000.0,
        "single inflow from which a counterparty is tracked (major units)",
    )
    #: Alert when a window's daily turnover is at least this multiple of the baseline's ...
    min_growth: float = tunable(
        1.4, 1.0, 100.0, "window turnover over the baseline at which growth counts"
    )
    #: ... and new payers that then went quiet sent at least this share of the window's
    #: turnover ...
    min_new_share: float = tunable(
        0.45, 0.0, 1.0, "share of the window's turnover from new payers gone quiet"
    )
    #: ... and there are at least this many such payers.
    min_new_counterparties: int = tunable(3, 1, 100, "new payers gone quiet needed")
    #: Days from the application's UTC day in which those payers must have paid nothing.
    quiet_days: int = tunable(
        7, 1, 60, "days after the application in which those payers paid nothing"
    )
    #: A new payer's later inflow of at least this (major units) shows it is still paying.
    min_followup_inflow: float = tunable(
        5_000.0, 0.0, 10000000.0, "later inflow that shows a new payer is still paying"
    )
    #: A counterparty the borrower sent at least this (major units) is a trading partner:
    #: its inflows are not turnover (returned deposits, goods bought and sold back).
    min_two_way_outflow: float = tunable(
        5_000.0, 0.0, 10000000.0, "outflow to a counterparty that makes it a trading partner"
    )


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
    min_amount: float = tunable(
        100.0, 0.0, 1000000.0, "inflows smaller than this are left out (major units)"
    )
    #: Memory of the statistics, in inflows: a weight shrinks by 1 - 1/window per later inflow.
    window: int = tunable(60, 10, 1000, "memory of the statistics, in inflows")
    #: No verdict before this many inflows of at least ``min_amount`` have been seen.
    min_samples: int = tunable(40, 5, 1000, "inflows seen before any verdict")
    #: An amount is round when it is a whole multiple of this (major units).
    round_unit: float = tunable(
        100.0, 1.0, 100000.0, "an amount is round when a whole multiple of this"
    )
    #: Round signal: the decayed share of round inflows is above this share (0..1).
    max_round_share: float = tunable(
        0.5, 0.0, 1.0, "decayed share of round inflows above which the round signal holds"
    )
    #: Regular signal: coefficient of variation of the times between inflows is at most this ...
    max_interval_cv: float = tunable(
        0.15, 0.0, 2.0, "variation of the times between inflows at or below which they are regular"
    )
    #: ... or at least this share of inflows come one fixed period (+-45 s) after an earlier one.
    min_clock_share: float = tunable(
        0.3, 0.0, 1.0, "share of inflows one fixed period after another that is regular"
    )
    #: Benford signal: first-digit mean absolute deviation at least this (and the noise bound).
    min_benford_mad: float = tunable(
        0.1, 0.0, 1.0, "first-digit deviation from Benford's law that signals"
    )
    #: Benford is tested only when log10(amount) has at least this standard deviation (decades).
    min_benford_spread: float = tunable(
        0.3, 0.0, 5.0, "decades of spread needed before Benford is tested"
    )
    #: Rotating-payers signal (counted only with the clock): for every lag k up to PAYER_LAGS,
    #: at most this share of the inflows on the clock have the payer of the one k before ...
    max_payer_repeat_share: float = tunable(
        0.5, 0.0, 1.0, "payer repeat share at every lag at most which payers rotate"
    )
    #: ... judged once this many inflows on the clock have been compared with their PAYER_LAGS
    #: predecessors on it ...
    min_payer_samples: int = tunable(
        10, 1, 1000, "inflows on the clock compared before rotation is judged"
    )
    #: ... and at most this share come within CLOCK_MIN (5 min) of another on the clock.
    max_batched_share: float = tunable(
        0.02, 0.0, 1.0, "share of clock inflows within 5 minutes of another, at most"
    )
    #: Alert when at least this many of the four signals hold.
    min_signals: int = tunable(2, 1, 4, "signals of the four that must hold for an alert")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds of all detectors, with the version stamped on every alert."""

    version: str = DEFAULT_VERSION
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

    def values(self) -> dict[str, Value]:
        """Every tunable's value, by key, in declaration order."""
        return {key: getattr(getattr(self, t.section), t.name) for key, t in TUNABLES.items()}

    def with_changes(self, changes: Mapping[str, object], version: str) -> Thresholds:
        """These thresholds with ``changes`` (key to value, or to its text) applied, as
        ``version``. Refuses the whole change, naming the first problem, if any key is
        unknown, any value of the wrong type or out of range, or the result breaks one of
        the :data:`CONSTRAINTS`."""
        values = self.values()
        for key, value in changes.items():
            declared = TUNABLES.get(key)
            if declared is None:
                raise InvalidThreshold(f"{key}: no such threshold ({_closest(key)})")
            values[key] = declared.parse(value) if isinstance(value, str) else declared.check(value)
        return Thresholds.from_values(values, version)

    @classmethod
    def from_values(cls, values: Mapping[str, object], version: str) -> Thresholds:
        """Thresholds from stored values; a key this release does not know is refused, a key
        it has added since takes its default."""
        sections: dict[str, dict[str, object]] = {}
        for key, value in values.items():
            declared = TUNABLES.get(key)
            if declared is None:
                raise InvalidThreshold(f"{key}: no such threshold ({_closest(key)})")
            sections.setdefault(declared.section, {})[declared.name] = declared.check(value)
        built = cls(
            version=version,
            **{name: _SECTION_TYPES[name](**fields) for name, fields in sections.items()},
        )
        for rule, holds in CONSTRAINTS:
            if not holds(built):
                raise InvalidThreshold(f"refused: {rule}")
        return built


def _closest(key: str) -> str:
    section = key.split(".", 1)[0]
    same = [k for k in TUNABLES if k.startswith(section + ".")]
    if same:
        return "its section has " + ", ".join(k.split(".", 1)[1] for k in same)
    return "sections are " + ", ".join(_SECTION_TYPES)


_SECTION_TYPES: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Thresholds)[f.name]
    for f in dataclasses.fields(Thresholds)
    if f.name != "version"
}


def _declare() -> dict[str, Tunable]:
    declared: dict[str, Tunable] = {}
    for section, kind in _SECTION_TYPES.items():
        declared.update(declare(section, kind))
    return declared


#: Every tunable of every detector, by key (``section.name``).
TUNABLES: dict[str, Tunable] = _declare()

#: Rules across tunables, each with what a team is told when a change breaks it. The inflow
#: history of a borrower holds 96 days (``detectors.state.INFLOW_HISTORY_DAYS``).
CONSTRAINTS: tuple[tuple[str, Callable[[Thresholds], bool]], ...] = (
    (
        "delinquency.min_baseline_days must not exceed delinquency.baseline_days",
        lambda t: t.delinquency.min_baseline_days <= t.delinquency.baseline_days,
    ),
    (
        "delinquency.baseline_gap_days + baseline_days + the earliest check day must fit in "
        "the 96 days of inflow history",
        lambda t: (
            t.delinquency.baseline_gap_days
            + t.delinquency.baseline_days
            + max(t.delinquency.check_days_before_due)
            <= 96
        ),
    ),
    (
        "delinquency.min_silence_surprise must not exceed delinquency.full_silence_surprise",
        lambda t: t.delinquency.min_silence_surprise <= t.delinquency.full_silence_surprise,
    ),
    (
        "delinquency.min_login_history_days must not exceed delinquency.login_rate_days",
        lambda t: t.delinquency.min_login_history_days <= t.delinquency.login_rate_days,
    ),
    (
        "flow_anomaly.sustained_days must not exceed flow_anomaly.sustained_window",
        lambda t: t.flow_anomaly.sustained_days <= t.flow_anomaly.sustained_window,
    ),
    (
        "flow_anomaly.min_baseline_days must not exceed flow_anomaly.baseline_days",
        lambda t: t.flow_anomaly.min_baseline_days <= t.flow_anomaly.baseline_days,
    ),
    (
        "flow_anomaly.baseline_days + sustained_window must fit in the 96 days of inflow history",
        lambda t: t.flow_anomaly.baseline_days + t.flow_anomaly.sustained_window <= 96,
    ),
    (
        "revenue_inflation.min_baseline_days must not exceed revenue_inflation.baseline_days",
        lambda t: t.revenue_inflation.min_baseline_days <= t.revenue_inflation.baseline_days,
    ),
)
