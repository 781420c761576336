"""Every tunable of every detector, as data: a team's live change is just a new value of these."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
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


@dataclass(frozen=True, slots=True)
class DelinquencyThresholds:
    #: An installment not fully paid this many days after its due date is missed.
    grace_days: int = 3
    #: Days before the due date at which an unpaid installment's risk is assessed.
    check_days_before_due: tuple[int, ...] = (10, 7, 5, 3)
    #: Recent inflow window, and the baseline window before it, in days.
    recent_days: int = 14
    baseline_days: int = 28
    #: Baseline days needed before an inflow trend is trusted.
    min_baseline_days: int = 7
    #: Recent daily inflow at or below this share of the baseline is a decline.
    max_inflow_ratio: float = 0.5
    #: Inflows of the last 30 days covering the installment at most this many times is low.
    max_coverage: float = 4.0
    #: Days without a successful login from which silence counts, and where it is full.
    silence_from_days: int = 7
    silence_full_days: int = 21
    #: A payout-account change this many days before a check raises the risk.
    payout_change_days: int = 14
    #: Alert when the risk score reaches this (severity follows the score).
    min_alert_score: float = 0.5
    #: Outcomes the per-partition classifier must learn before its score is blended in.
    min_labels_for_model: int = 30
    #: Weight of the classifier in the blended score once it has learnt enough.
    model_weight: float = 0.5
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
    min_lift: float = 2.5
    #: Lifted days needed within the last ``sustained_window`` days: one big contract is not
    #: fabricated turnover, weeks of it may be.
    sustained_days: int = 5
    sustained_window: int = 7
    #: Anomaly score (HalfSpaceTrees, 0..1) at or above which a sustained lift alerts.
    min_anomaly_score: float = 0.6
    #: Borrowers of a sector in the partition needed to estimate the sector's daily change.
    min_sector_peers: int = 5


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds of all detectors, with the version stamped on every alert."""

    version: str = "default-1"
    circular_flow: CircularFlowThresholds = field(default_factory=CircularFlowThresholds)
    takeover: TakeoverThresholds = field(default_factory=TakeoverThresholds)
    delinquency: DelinquencyThresholds = field(default_factory=DelinquencyThresholds)
    flow_anomaly: FlowAnomalyThresholds = field(default_factory=FlowAnomalyThresholds)
