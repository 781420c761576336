"""Every tunable of every detector, as data: a team's live change is just a new value of these."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CircularFlowThresholds", "DelinquencyThresholds", "TakeoverThresholds", "Thresholds"]


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
    #: The early warning is evaluated this many days before the due date.
    warn_days_before_due: int = 5
    #: Recent inflow window, and the baseline window before it, in days.
    recent_days: int = 14
    baseline_days: int = 28
    #: Warn when recent daily inflow is at most this share of the baseline ...
    max_inflow_ratio: float = 0.5
    #: ... and the last 30 days of inflow cover the installment at most this many times.
    max_coverage: float = 4.0
    #: Baseline days needed before the decline is trusted.
    min_baseline_days: int = 7
    #: Due dates are calendar days in the platform's time zone (hours east of UTC).
    platform_utc_offset_hours: int = 8


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds of all detectors, with the version stamped on every alert."""

    version: str = "default-1"
    circular_flow: CircularFlowThresholds = field(default_factory=CircularFlowThresholds)
    takeover: TakeoverThresholds = field(default_factory=TakeoverThresholds)
    delinquency: DelinquencyThresholds = field(default_factory=DelinquencyThresholds)
