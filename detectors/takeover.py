"""Account takeover: a burst of failed logins, then a success from a device never used before."""

from __future__ import annotations

from detectors.base import ABNORMAL_BEHAVIOUR, Detector, Finding, Output
from detectors.index import Found
from detectors.state import BorrowerState, day_of
from detectors.thresholds import TakeoverThresholds
from topics.records import Login, Reason

__all__ = ["AccountTakeoverDetector"]

MAX_REMEMBERED_FAILURES = 64


class AccountTakeoverDetector(Detector):
    """Flags a successful login from an unseen device after a burst of failures.

    A borrower who mistypes a password a few times, or forgets it and succeeds on a device
    they already use, or changes phone without a failure burst, is not flagged.
    """

    name = "account_takeover"
    category = ABNORMAL_BEHAVIOUR
    version = "1"

    def __init__(self, thresholds: TakeoverThresholds) -> None:
        self.thresholds = thresholds

    def on_login(self, event: Login, state: BorrowerState, found: Found) -> Output:
        t = self.thresholds
        history = state.logins
        epoch = event.ts.timestamp()
        window_start = epoch - t.failure_window_minutes * 60.0
        history.failures = [f for f in history.failures if f[0] >= window_start]
        if not event.success:
            if event.action == "login":
                history.failures.append((epoch, event.event_id, event.ip, event.device_id))
                del history.failures[:-MAX_REMEMBERED_FAILURES]
            return []
        if event.action != "login":
            # Only a successful login vouches for a device: a password reset or a payout
            # change from an unseen device must not make the attacker's device "known".
            return []
        findings: Output = []
        recent = [f for f in history.failures if f[0] <= epoch]
        if (
            len(recent) >= t.min_failures
            and history.known_devices
            and event.device_id not in history.known_devices
        ):
            findings.append(self._finding(event, state, recent))
        day = day_of(epoch)
        history.remember(event.device_id, event.ip, day, forget_before=day - t.device_memory_days)
        return findings

    def _finding(
        self, event: Login, state: BorrowerState, failures: list[tuple[float, str, str, str]]
    ) -> Finding:
        t = self.thresholds
        new_ip = event.ip not in state.logins.known_ips
        excess = min(1.0, (len(failures) - t.min_failures) / 10.0)
        score = 0.75 + 0.1 * excess + (0.1 if new_ip else 0.0)
        reasons = [
            Reason(
                code="failed_login_burst",
                message=f"{len(failures)} failed logins in the {t.failure_window_minutes:g} "
                "minutes before the success",
                observed=len(failures),
                threshold=t.min_failures,
            ),
            Reason(
                code="unseen_device",
                message=f"device {event.device_id} was never used by this borrower "
                f"({len(state.logins.known_devices)} known)",
                observed=event.device_id,
                threshold="known devices",
            ),
        ]
        if new_ip:
            reasons.append(
                Reason(
                    code="unseen_ip",
                    message=f"IP {event.ip} never used before",
                    observed=event.ip,
                    threshold="known IPs",
                )
            )
        return self.finding(
            state,
            episode=f"device:{event.device_id}",
            ts=event.ts,
            score=score,
            reasons=reasons,
            evidence=[f[1] for f in failures] + [event.event_id],
        )
