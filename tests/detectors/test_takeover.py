"""Account takeover: a burst of failed logins, then a success from a device never used before."""

from __future__ import annotations

import pytest

from detectors.base import ABNORMAL_BEHAVIOUR, Finding, alert_id
from detectors.state import BorrowerState, day_of
from detectors.takeover import AccountTakeoverDetector
from detectors.thresholds import TakeoverThresholds
from tests.detectors.factories import at, login
from topics.records import Login

HOME_PHONE, HOME_IP = "phone-1", "10.0.0.1"
ATTACKER_DEVICE, ATTACKER_IP = "dev-x", "203.0.113.9"


def _known_borrower() -> BorrowerState:
    """A borrower who has logged in from their phone at home ten days ago."""
    state = BorrowerState(borrower_id="b-1")
    detector = AccountTakeoverDetector(TakeoverThresholds())
    assert (
        detector.on_login(login("old-1", at(days=-10), device=HOME_PHONE, ip=HOME_IP), state, ())
        == []
    )
    return state


def _failures(
    count: int, *, start_minute: float = 0, device: str = ATTACKER_DEVICE, ip: str = ATTACKER_IP
) -> list[Login]:
    return [
        login(f"fail-{i}", at(minutes=start_minute + 2 * i), device=device, ip=ip, success=False)
        for i in range(count)
    ]


def _run(
    detector: AccountTakeoverDetector, state: BorrowerState, events: list[Login]
) -> list[list[Finding]]:
    return [detector.on_login(event, state, ()) for event in events]


def test_attack_alerts_once_with_every_reason() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    success = login("win-1", at(minutes=14), device=ATTACKER_DEVICE, ip=ATTACKER_IP)

    per_event = _run(detector, state, [*_failures(7), success])

    assert per_event[:7] == [[]] * 7
    [finding] = per_event[7]
    assert finding.detector == "account_takeover"
    assert finding.category == ABNORMAL_BEHAVIOUR
    assert finding.borrower_id == "b-1"
    assert finding.episode == f"device:{ATTACKER_DEVICE}"
    assert finding.alert_id == alert_id("account_takeover", "b-1", "device:dev-x")
    assert finding.ts == success.ts
    assert [r.code for r in finding.reasons] == ["failed_login_burst", "unseen_device", "unseen_ip"]
    burst, device, ip = finding.reasons
    assert (burst.observed, burst.threshold) == (7, 5)
    assert (device.observed, ip.observed) == (ATTACKER_DEVICE, ATTACKER_IP)
    assert all(r.message for r in finding.reasons)
    assert finding.evidence == tuple(f"fail-{i}" for i in range(7)) + ("win-1",)
    # 0.75 base + 0.1 * (7 - 5) / 10 for the excess + 0.1 for the unseen IP
    assert finding.score == pytest.approx(0.87)
    assert (finding.loan_id, finding.installment, finding.due_date) == (None, None, None)

    # The attacker's device is now known: later logins from it, or a re-sent success, stay quiet.
    again = login("win-2", at(minutes=20), device=ATTACKER_DEVICE, ip=ATTACKER_IP)
    assert detector.on_login(again, state, ()) == []
    assert detector.on_login(success, state, ()) == []
    assert ATTACKER_DEVICE in state.logins.known_devices


def test_attack_from_a_known_ip_has_no_unseen_ip_reason() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    events = [*_failures(5, ip=HOME_IP), login("win", at(minutes=9), device="dev-y", ip=HOME_IP)]

    [finding] = _run(detector, state, events)[-1]

    assert [r.code for r in finding.reasons] == ["failed_login_burst", "unseen_device"]
    assert finding.score == pytest.approx(0.75)
    assert finding.episode == "device:dev-y"


def test_many_failures_raise_the_score_to_its_cap() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    events = [*_failures(15), login("win", at(minutes=29), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]

    [finding] = _run(detector, state, events)[-1]

    assert finding.reasons[0].observed == 15
    assert finding.score == pytest.approx(0.95)
    assert len(finding.evidence) == 16


def test_a_few_typos_then_success_on_a_known_device() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    events = [
        *_failures(3, device=HOME_PHONE, ip=HOME_IP),
        login("ok", at(minutes=7), device=HOME_PHONE, ip=HOME_IP),
    ]

    assert _run(detector, state, events) == [[]] * 4


def test_a_few_typos_then_success_on_a_new_device_is_below_the_burst() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    events = [*_failures(4), login("ok", at(minutes=9), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]

    assert _run(detector, state, events) == [[]] * 5


def test_forgotten_password_reset_then_success_on_a_known_device() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    events = [
        *_failures(7, device=HOME_PHONE, ip=HOME_IP),
        login("reset", at(minutes=15), device=HOME_PHONE, ip=HOME_IP, action="password_reset"),
        login("ok", at(minutes=17), device=HOME_PHONE, ip=HOME_IP),
    ]

    assert _run(detector, state, events) == [[]] * 9
    assert list(state.logins.known_devices) == [HOME_PHONE]


def test_new_phone_without_a_failure_burst() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()

    findings = detector.on_login(login("new", at(), device="phone-2", ip="10.0.0.2"), state, ())

    assert findings == []
    assert set(state.logins.known_devices) == {HOME_PHONE, "phone-2"}
    assert state.logins.known_devices["phone-2"] == day_of(at().timestamp())


def test_failures_older_than_the_window_do_not_count() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    # Seven failures between 45 and 33 minutes before the success.
    events = [
        *_failures(7, start_minute=-45),
        login("win", at(), device=ATTACKER_DEVICE, ip=ATTACKER_IP),
    ]

    assert _run(detector, state, events) == [[]] * 8
    assert state.logins.failures == []


@pytest.mark.parametrize(
    ("oldest_minutes_before", "alerts"),
    [(30.0, True), (30.0 + 1 / 60, False)],
    ids=["oldest-exactly-30-min-counts", "oldest-30-min-1-s-too-old"],
)
def test_window_boundary(oldest_minutes_before: float, alerts: bool) -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    oldest = login("old", at(minutes=-oldest_minutes_before), device="d", ip="i", success=False)
    events = [
        oldest,
        *_failures(4, start_minute=-8),
        login("win", at(), device=ATTACKER_DEVICE, ip=ATTACKER_IP),
    ]

    findings = _run(detector, state, events)[-1]

    assert [f.episode for f in findings] == (["device:dev-x"] if alerts else [])


def test_brand_new_borrower_without_history() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = BorrowerState(borrower_id="b-1")
    events = [*_failures(7), login("first", at(minutes=14), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]

    assert _run(detector, state, events) == [[]] * 8
    assert list(state.logins.known_devices) == [ATTACKER_DEVICE]


def test_failed_non_login_actions_are_not_a_login_burst() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    events = [
        login(
            f"r{i}",
            at(minutes=i),
            device=ATTACKER_DEVICE,
            ip=ATTACKER_IP,
            success=False,
            action="password_reset",
        )
        for i in range(7)
    ] + [login("win", at(minutes=8), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]

    assert _run(detector, state, events) == [[]] * 8
    assert state.logins.failures == []


def test_min_failures_is_data() -> None:
    strict = AccountTakeoverDetector(TakeoverThresholds(min_failures=10))
    state = _known_borrower()
    attack = [*_failures(7), login("win", at(minutes=14), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]

    assert _run(strict, state, attack) == [[]] * 8


def test_min_failures_is_data_and_still_alerts_above_it() -> None:
    strict = AccountTakeoverDetector(TakeoverThresholds(min_failures=10))
    state = _known_borrower()
    attack = [*_failures(10), login("win", at(minutes=20), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]

    [finding] = _run(strict, state, attack)[-1]

    assert (finding.reasons[0].observed, finding.reasons[0].threshold) == (10, 10)
    assert finding.score == pytest.approx(0.85)


def test_failure_window_is_data() -> None:
    wide = AccountTakeoverDetector(TakeoverThresholds(failure_window_minutes=60))
    state = _known_borrower()
    events = [*_failures(7, start_minute=-45), login("win", at(), device="dev-x", ip=ATTACKER_IP)]

    [finding] = _run(wide, state, events)[-1]

    assert finding.reasons[0].observed == 7
    assert "60 minutes" in finding.reasons[0].message
