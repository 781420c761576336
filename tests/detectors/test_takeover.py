"""Account takeover: a burst of failed logins, then a success from a device never used before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from detectors.base import ABNORMAL_BEHAVIOUR, Finding, alert_id, severity_for
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.state import BorrowerState, day_of
from detectors.takeover import AccountTakeoverDetector, TakeoverThresholds
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, login
from topics.records import Geo, Login

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


# --- A known device id replayed from elsewhere, and what follows a flagged login ---------------

CITIES = {
    "Shanghai": (31.2304, 121.4737),
    "Beijing": (39.9042, 116.4074),
    "Hangzhou": (30.2741, 120.1551),
}
HOME_AGENT = "LendApp/5.2.4 (iPhone; iOS 17.4)"
UPDATED_AGENT = "LendApp/5.3.1 (iPhone; iOS 18.1)"  # the same app and phone, newer versions
BOT_AGENT = "okhttp/4.9.3"
SPOOF_EPISODE = f"spoofed:{HOME_PHONE}:{ATTACKER_IP}"


def _at(
    event_id: str,
    ts: datetime,
    *,
    device: str = HOME_PHONE,
    ip: str = HOME_IP,
    city: str | None = "Shanghai",
    agent: str | None = HOME_AGENT,
    success: bool = True,
    action: str = "login",
    amount: str | None = None,
    borrower_id: str = "b-1",
) -> Login:
    """A login with its place and app, as platforms send them."""
    geo = None if city is None else Geo(lat=CITIES[city][0], lon=CITIES[city][1], city=city)
    return login(
        event_id,
        ts,
        device=device,
        ip=ip,
        success=success,
        action=action,
        borrower_id=borrower_id,
        geo=geo,
        user_agent=agent,
        amount=amount,
    )


def _settled(detector: AccountTakeoverDetector | None = None) -> BorrowerState:
    """A borrower who logged in from its phone at home in Shanghai on three days."""
    detector = detector or AccountTakeoverDetector(TakeoverThresholds())
    state = BorrowerState(borrower_id="b-1")
    for day in (-20, -10, -2):
        assert detector.on_login(_at(f"home{day}", at(days=day)), state, ()) == []
    return state


def _burst(
    count: int,
    *,
    device: str = HOME_PHONE,
    ip: str = ATTACKER_IP,
    city: str | None = "Beijing",
    agent: str | None = BOT_AGENT,
) -> list[Login]:
    return [
        _at(f"fail-{i}", at(minutes=i), device=device, ip=ip, city=city, agent=agent, success=False)
        for i in range(count)
    ]


def _replay_attack(**success: Any) -> list[Login]:
    """Five failures and a success on the borrower's own phone id, from Beijing, by a bot."""
    fields: dict[str, Any] = {"ip": ATTACKER_IP, "city": "Beijing", "agent": BOT_AGENT}
    fields.update(success)
    return [*_burst(5), _at("win", at(minutes=7), **fields)]


def _run_all(
    detector: AccountTakeoverDetector, state: BorrowerState, events: list[Login]
) -> list[Finding]:
    return [
        f for event in events for f in detector.on_login(event, state, ()) if isinstance(f, Finding)
    ]


def test_replayed_device_id_from_an_unseen_ip_city_and_app_alerts() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)

    per_event = [detector.on_login(event, state, ()) for event in _replay_attack()]

    assert per_event[:5] == [[]] * 5
    [finding] = per_event[5]
    assert isinstance(finding, Finding)
    assert finding.episode == SPOOF_EPISODE
    assert finding.alert_id == alert_id("account_takeover", "b-1", SPOOF_EPISODE)
    assert [r.code for r in finding.reasons] == [
        "failed_login_burst",
        "spoofed_known_device",
        "unseen_ip",
        "unseen_city",
        "unseen_user_agent",
    ]
    burst, device, ip, city, agent = finding.reasons
    assert (burst.observed, burst.threshold) == (5, 4)
    assert (device.observed, ip.observed) == (HOME_PHONE, ATTACKER_IP)
    assert (city.observed, agent.observed) == ("Beijing", BOT_AGENT)
    assert all(r.message for r in finding.reasons)
    assert finding.evidence == ("fail-0", "fail-1", "fail-2", "fail-3", "fail-4", "win")
    # 0.7 + 0.05 * (5 - 4) / 10 + 0.1 for the city + 0.1 for the app
    assert finding.score == pytest.approx(0.905)
    assert finding.category == ABNORMAL_BEHAVIOUR and finding.ts == at(minutes=7)


@pytest.mark.parametrize(
    ("success", "codes", "score"),
    [
        ({"agent": UPDATED_AGENT}, ["unseen_city"], 0.805),
        ({"city": "Shanghai"}, ["unseen_user_agent"], 0.805),
        ({"city": None}, ["unseen_user_agent"], 0.805),
    ],
    ids=["new-city-app-updated", "new-app-same-city", "new-app-no-geo"],
)
def test_one_unseen_place_or_app_is_enough(
    success: dict[str, Any], codes: list[str], score: float
) -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)

    [finding] = _run_all(detector, state, _replay_attack(**success))

    assert [r.code for r in finding.reasons] == [
        "failed_login_burst",
        "spoofed_known_device",
        "unseen_ip",
        *codes,
    ]
    assert finding.score == pytest.approx(score)


@pytest.mark.parametrize(
    "success",
    [
        {"ip": HOME_IP},  # typos on the own phone at home
        {"city": "Shanghai", "agent": UPDATED_AGENT},  # a new mobile address in the home city
        {"city": None, "agent": None},  # nothing to compare the place and app with
    ],
    ids=["known-ip", "only-the-ip-is-new", "no-geo-no-agent"],
)
def test_known_device_after_failures_without_an_unseen_place_or_app(
    success: dict[str, Any],
) -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)

    assert _run_all(detector, state, _replay_attack(**success)) == []


def test_traveller_who_forgets_the_password_and_resets_it() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    away: dict[str, Any] = {"ip": "111.196.1.2", "city": "Beijing", "agent": HOME_AGENT}
    events = [
        *_burst(7, **away),
        _at("reset", at(minutes=9), action="password_reset", **away),
        _at("ok", at(minutes=11), **away),
    ]

    assert _run_all(detector, state, events) == []


def test_a_reset_before_the_burst_does_not_clear_it() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    reset = _at("reset", at(minutes=-20), action="password_reset")

    [finding] = _run_all(detector, state, [reset, *_replay_attack()])

    assert finding.episode == SPOOF_EPISODE


def test_traveller_without_failures_is_not_flagged() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    trip = [
        _at(f"trip-{i}", at(hours=3 * i), ip=f"111.196.0.{i}", city="Beijing", agent=UPDATED_AGENT)
        for i in range(4)
    ]

    assert _run_all(detector, state, trip) == []


def test_a_few_typos_on_the_own_phone_abroad_are_below_the_burst() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    events = [*_burst(3), _at("win", at(minutes=4), ip=ATTACKER_IP, city="Beijing")]

    assert _run_all(detector, state, events) == []


def test_min_failures_known_device_is_data() -> None:
    strict = AccountTakeoverDetector(TakeoverThresholds(min_failures_known_device=6))
    state = _settled(strict)

    assert _run_all(strict, state, _replay_attack()) == []

    lenient = AccountTakeoverDetector(TakeoverThresholds(min_failures_known_device=2))
    state = _settled(lenient)
    [finding] = _run_all(lenient, state, _replay_attack())
    assert finding.reasons[0].threshold == 2


@pytest.mark.parametrize(
    ("action", "amount", "code", "observed", "score"),
    [
        ("payout_account_change", None, "payout_change_after_takeover", 0.5, 0.97),
        ("drawdown", "50000", "drawdown_after_takeover", 50_000.0, 1.0),
    ],
    ids=["payout-change", "drawdown"],
)
def test_payout_change_or_drawdown_after_a_takeover_escalates(
    action: str, amount: str | None, code: str, observed: float, score: float
) -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _known_borrower()
    attack = [*_failures(7), login("win-1", at(minutes=14), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]
    [flagged] = _run(detector, state, attack)[-1]
    follow = _at(
        "follow",
        at(minutes=44),
        device=ATTACKER_DEVICE,
        ip=ATTACKER_IP,
        action=action,
        amount=amount,
    )

    [finding] = detector.on_login(follow, state, ())

    assert isinstance(finding, Finding) and isinstance(flagged, Finding)
    assert finding.episode == "device:dev-x:followup"
    assert finding.alert_id != flagged.alert_id
    assert finding.score > flagged.score
    assert finding.score == pytest.approx(score)
    [reason] = finding.reasons
    assert (reason.code, reason.observed, reason.threshold) == (code, observed, 24.0)
    assert "win-1" in reason.message
    assert finding.evidence == ("win-1", "follow")


def test_followup_of_a_replayed_device_from_its_ip_on_another_device() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    [flagged] = _run_all(detector, state, _replay_attack())
    drawdown = _at("dd", at(hours=2), device="other", ip=ATTACKER_IP, action="drawdown", amount="9")

    [finding] = detector.on_login(drawdown, state, ())

    assert isinstance(finding, Finding)
    assert finding.episode == f"{SPOOF_EPISODE}:followup"
    assert finding.score == pytest.approx(min(1.0, flagged.score + 0.15))
    assert finding.reasons[0].observed == 9.0


def test_a_failed_payout_change_after_a_takeover_escalates_too() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    _run_all(detector, state, _replay_attack())
    attempt = _at("try", at(hours=1), ip=ATTACKER_IP, action="payout_account_change", success=False)

    [finding] = detector.on_login(attempt, state, ())

    assert isinstance(finding, Finding)
    assert "failed attempt" in finding.reasons[0].message


@pytest.mark.parametrize(
    ("hours", "device", "ip", "thresholds", "alerts"),
    [
        (25, ATTACKER_DEVICE, ATTACKER_IP, TakeoverThresholds(), False),
        (25, ATTACKER_DEVICE, ATTACKER_IP, TakeoverThresholds(followup_hours=48), True),
        (1, HOME_PHONE, HOME_IP, TakeoverThresholds(), False),
        (1, HOME_PHONE, ATTACKER_IP, TakeoverThresholds(), True),
    ],
    ids=["after-the-hours", "hours-are-data", "owners-device-and-ip", "attackers-ip"],
)
def test_followup_needs_the_flagged_device_or_ip_within_the_hours(
    hours: float, device: str, ip: str, thresholds: TakeoverThresholds, alerts: bool
) -> None:
    detector = AccountTakeoverDetector(thresholds)
    state = _known_borrower()
    attack = [*_failures(7), login("win-1", at(minutes=14), device=ATTACKER_DEVICE, ip=ATTACKER_IP)]
    _run(detector, state, attack)
    change = _at("chg", at(hours=hours), device=device, ip=ip, action="payout_account_change")

    findings = detector.on_login(change, state, ())

    assert len(findings) == (1 if alerts else 0)


def test_own_drawdown_and_payout_change_without_a_flag_stay_quiet() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    events = [
        _at("in", at()),
        _at("chg", at(minutes=5), action="payout_account_change"),
        _at("dd", at(minutes=9), action="drawdown", amount="50000"),
        # even from a new place and phone: nothing was flagged before
        _at("dd2", at(hours=1), device="phone-new", ip="1.2.3.4", action="drawdown", amount="9"),
    ]

    assert _run_all(detector, state, events) == []


def test_memory_round_trips_through_orjson_with_the_same_behaviour() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    live = _settled(detector)
    events = _replay_attack() + [
        _at("chg", at(minutes=30), ip=ATTACKER_IP, action="payout_account_change")
    ]
    _run_all(detector, live, events[:3])
    restored = BorrowerState.from_dict(orjson.loads(orjson.dumps(live.to_dict())))

    rest_live = _run_all(detector, live, events[3:])
    rest_restored = _run_all(detector, restored, events[3:])

    assert [f.alert_id for f in rest_restored] == [f.alert_id for f in rest_live]
    assert [f.episode for f in rest_live] == [SPOOF_EPISODE, f"{SPOOF_EPISODE}:followup"]
    assert restored.to_dict() == live.to_dict()


def test_memory_of_places_apps_and_flags_is_bounded() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _settled(detector)
    for i in range(60):
        city = ("Shanghai", "Beijing", "Hangzhou")[i % 3]
        geo = Geo(lat=30.0, lon=120.0, city=f"{city}-{i}")
        agent = f"App{'x' * (i % 7)}/{i} (model {chr(65 + i % 26)})"
        when = at(days=i)
        burst = [
            _at(f"f{i}-{k}", when, device=f"d{i}", ip=f"ip{i}", success=False) for k in range(6)
        ]
        win = _at(f"w{i}", when, device=f"d{i}", ip=f"ip{i}", agent=agent)
        win = Login(**{**win.asdict(), "geo": geo})
        _run_all(detector, state, [*burst, win])

    memory = state.slots["account_takeover"]
    assert len(memory["c"]) <= 6 and len(memory["u"]) <= 4 and len(memory["f"]) <= 2
    assert len(memory["n"]) <= 8 and len(memory["h"]) == 6 and memory["v"] == []
    # 400 bytes before version 3, plus the networks (8 at most) and the novelty counters.
    assert len(orjson.dumps(memory)) < 600


#: Of the detector's own contract events, those of at-1, whose phone id is replayed from another
#: city, then used to change the payout account and draw down.
CONTRACT_EVENTS: list[Input] = [
    item for item in AccountTakeoverDetector.contract_events() if item.record.borrower_id == "at-1"
]


async def test_contract_events_alert_through_an_engine() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([detector])

    episodes = []
    for item in sorted(CONTRACT_EVENTS, key=lambda item: item.record.ts):
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        episodes += [(a.borrower_id, a.episode, a.severity) for a in result.alerts]

    spoofed = "spoofed:at-phone:198.51.100.23"
    assert episodes == [
        ("at-1", spoofed, "critical"),
        ("at-1", f"{spoofed}:followup", "critical"),
    ]


# --- The session: a novel login, then a payout change or drawdown within minutes ----------------

MOBILE = "117.136.{}.{}"  # the home city's carrier: a new address most days, one network
PHISHER_DEVICE, PHISHER_IP = "dev-p", "198.51.100.200"
PHISHER_AGENT = "LendApp/5.3.0 (Android 14; Pixel 8)"
SESSION_EPISODE = f"session:{PHISHER_DEVICE}:{PHISHER_IP}"
SIGN_CODES = ["session_new_device", "session_unseen_ip", "session_unseen_network"]


def _habitual(detector: AccountTakeoverDetector, logins: int = 12) -> BorrowerState:
    """A borrower who logs in from its phone in Shanghai every few days, at home on its
    broadband or out on its carrier's network (a new address each time)."""
    state = BorrowerState(borrower_id="b-1")
    for i in range(logins):
        ip = HOME_IP if i % 2 == 0 else MOBILE.format(i, 7 * i + 1)
        event = _at(f"usual-{i}", at(days=-3 * (logins - i), hours=2), ip=ip)
        assert detector.on_login(event, state, ()) == []
    return state


def _session(
    *actions: tuple[str, float],
    device: str = PHISHER_DEVICE,
    ip: str = PHISHER_IP,
    city: str | None = "Beijing",
    agent: str | None = PHISHER_AGENT,
    failures: int = 0,
) -> list[Login]:
    """Failed logins, a successful one at minute 10, then each action at its minute."""
    where: dict[str, Any] = {"device": device, "ip": ip, "city": city, "agent": agent}
    tries = [_at(f"try-{i}", at(minutes=2 * i), success=False, **where) for i in range(failures)]
    steps = [
        _at(f"s-{action}-{minutes:g}", at(minutes=minutes), action=action, **where)
        if action != "drawdown"
        else _at(
            f"s-{action}-{minutes:g}", at(minutes=minutes), action=action, amount="90000", **where
        )
        for action, minutes in actions
    ]
    return [*tries, _at("s-login", at(minutes=10), **where), *steps]


def test_phished_password_from_a_new_phone_elsewhere_then_payout_change_and_drawdown() -> None:
    """The right password at the first try from a new device, an unseen network, another city:
    high at the payout change, critical at the drawdown."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    events = _session(("payout_account_change", 16), ("drawdown", 22))

    per_event = [detector.on_login(event, state, ()) for event in events]

    assert per_event[0] == []  # the login alone: nothing yet
    [payout] = per_event[1]
    [drawdown] = per_event[2]
    assert isinstance(payout, Finding) and isinstance(drawdown, Finding)
    assert payout.episode == SESSION_EPISODE
    assert (payout.category, payout.ts, payout.evidence) == (
        ABNORMAL_BEHAVIOUR,
        at(minutes=16),
        ("s-login", "s-payout_account_change-16"),
    )
    assert [r.code for r in payout.reasons] == [
        "payout_change_in_novel_session",
        *SIGN_CODES,
        "session_unseen_city",
    ]
    action, new_device, new_ip, _, city = payout.reasons
    assert action.threshold == 5.0 and action.observed > 7.0
    assert "6 min after the login s-login" in action.message
    assert (new_device.observed, new_ip.observed, city.observed) == (
        PHISHER_DEVICE,
        PHISHER_IP,
        "Beijing",
    )
    assert "a new IP on 4" in new_ip.message  # about half its logins come from a new address
    assert 0.75 <= payout.score < 0.9  # high
    assert drawdown.episode == f"{SESSION_EPISODE}:followup"
    assert drawdown.score >= 0.95  # critical
    assert drawdown.reasons[0].code == "drawdown_after_takeover"
    assert drawdown.evidence == ("s-login", "s-drawdown-22")


def test_phished_password_in_the_home_city_from_another_network_alerts_at_the_payout() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)

    [finding] = _run_all(detector, state, _session(("payout_account_change", 14), city="Shanghai"))

    assert finding.episode == SESSION_EPISODE
    assert [r.code for r in finding.reasons] == ["payout_change_in_novel_session", *SIGN_CODES]


def test_replayed_device_id_and_app_after_two_failures_then_payout_change_and_drawdown() -> None:
    """The victim's own phone id and app, from a residential IP in another city, after fewer
    failures than a burst: the session gives it away."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    events = _session(
        ("payout_account_change", 15),
        ("drawdown", 25),
        device=HOME_PHONE,
        ip="36.110.5.8",
        agent=HOME_AGENT,
        failures=2,
    )

    payout, drawdown = _run_all(detector, state, events)

    assert payout.episode == f"session:{HOME_PHONE}:36.110.5.8"
    assert [r.code for r in payout.reasons] == [
        "payout_change_in_novel_session",
        "session_unseen_ip",
        "session_unseen_network",
        "session_unseen_city",
        "session_failures",
    ]
    assert payout.reasons[-1].observed == 2
    assert drawdown.episode == f"session:{HOME_PHONE}:36.110.5.8:followup"
    assert severity_for(payout.score) == "high" and severity_for(drawdown.score) == "critical"


def test_a_bot_replaying_the_device_id_without_failures() -> None:
    """A known device id sent with an app family the borrower never used is not its phone."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    events = _session(("payout_account_change", 15), device=HOME_PHONE, agent=BOT_AGENT)

    [finding] = _run_all(detector, state, events)

    assert finding.reasons[1].code == "session_replayed_device"
    assert BOT_AGENT in finding.reasons[1].message


def test_drawdown_straight_after_a_novel_login_without_a_payout_change() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)

    [finding] = _run_all(detector, state, _session(("drawdown", 18)))

    assert finding.episode == f"{SESSION_EPISODE}:followup"
    assert finding.reasons[0].code == "drawdown_in_novel_session"
    assert finding.reasons[0].threshold == 7.0
    assert severity_for(finding.score) == "critical"


def test_a_second_login_of_the_attacker_in_the_session_still_belongs_to_it() -> None:
    """The device is known after its first login; the session it opened is still watched."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    events = _session()
    again = _at("again", at(minutes=50), device=PHISHER_DEVICE, ip=PHISHER_IP, city="Beijing")
    change = _at(
        "chg",
        at(minutes=55),
        device=PHISHER_DEVICE,
        ip=PHISHER_IP,
        city="Beijing",
        action="payout_account_change",
    )

    [finding] = _run_all(detector, state, [*events, again, change])

    assert finding.evidence == ("s-login", "chg")


def test_a_flagged_burst_then_payout_change_alerts_once_as_its_followup() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    events = _session(("payout_account_change", 30), failures=6)

    flagged, followup = _run_all(detector, state, events)

    assert flagged.episode == f"device:{PHISHER_DEVICE}"
    assert followup.episode == f"device:{PHISHER_DEVICE}:followup"


@pytest.mark.parametrize(
    "session",
    [
        # a new phone at home: its broadband, then a payout change within minutes
        {"ip": HOME_IP, "city": "Shanghai", "actions": [("payout_account_change", 15)]},
        # a new phone out in the home city on the carrier's network, drawing down at once
        {"ip": MOBILE.format(250, 3), "city": "Shanghai", "actions": [("drawdown", 15)]},
        # a family tablet at home, to look at the account and apply for a loan
        {
            "ip": HOME_IP,
            "city": "Shanghai",
            "agent": "Mozilla/5.0 (iPad; CPU OS 17_4)",
            "actions": [("loan_application", 15)],
        },
        # the traveller on its own phone, drawing down as usual, after a typo or not
        {"device": HOME_PHONE, "agent": HOME_AGENT, "actions": [("drawdown", 15)]},
        {"device": HOME_PHONE, "agent": HOME_AGENT, "actions": [("drawdown", 15)], "failures": 1},
        # an app update on the trip, and a payout change on it: the app family is its own
        {"device": HOME_PHONE, "agent": UPDATED_AGENT, "actions": [("payout_account_change", 15)]},
        # the borrower's own payout change, from its phone at home and on its carrier
        {
            "device": HOME_PHONE,
            "ip": HOME_IP,
            "city": "Shanghai",
            "agent": HOME_AGENT,
            "actions": [("payout_account_change", 15), ("drawdown", 20)],
        },
        {
            "device": HOME_PHONE,
            "ip": MOBILE.format(99, 99),
            "city": "Shanghai",
            "agent": UPDATED_AGENT,
            "actions": [("payout_account_change", 15)],
            "failures": 2,
        },
    ],
    ids=[
        "new-phone-at-home-payout-change",
        "new-phone-on-the-carrier-drawdown",
        "family-tablet-at-home",
        "traveller-drawdown",
        "traveller-typo-drawdown",
        "app-update-on-a-trip-payout-change",
        "own-payout-change-at-home",
        "own-payout-change-on-the-carrier-after-typos",
    ],
)
def test_ordinary_sessions_stay_quiet(session: dict[str, Any]) -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    actions = session.pop("actions")

    assert _run_all(detector, state, _session(*actions, **session)) == []


def test_new_phone_then_a_payout_change_days_later() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    new_phone = _session(city="Shanghai", ip="101.80.1.2")  # a new phone on a new provider
    later = _at(
        "chg",
        at(days=3),
        device=PHISHER_DEVICE,
        ip="101.80.1.2",
        city="Shanghai",
        agent=PHISHER_AGENT,
        action="payout_account_change",
    )

    assert _run_all(detector, state, [*new_phone, later]) == []


def test_a_frequent_flyer_on_a_new_phone_drawing_down_on_landing() -> None:
    """The same session is ordinary for a borrower whose logins often come from new places:
    its novelties are priced by its own rates, not the same for every borrower."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = BorrowerState(borrower_id="b-1")
    # A sales rep: a flight every few days, a new airport network and a new city each time.
    cities = ["Shanghai", "Beijing", "Hangzhou"]
    for i in range(20):
        city = cities[i % 3]
        ip = f"{40 + i}.{i}.0.1" if i % 2 else HOME_IP
        event = _at(f"rep-{i}", at(days=-2 * (20 - i)), ip=ip, city=city if i % 2 else "Shanghai")
        event = Login(**{**event.asdict(), "geo": Geo(lat=30.0 + i, lon=110.0 + i, city=f"c{i}")})
        assert detector.on_login(event, state, ()) == []
    landing = _session(("drawdown", 20))

    assert _run_all(detector, state, landing) == []
    # The same landing at a borrower who never leaves home is a takeover.
    home = AccountTakeoverDetector(TakeoverThresholds())
    assert [f.reasons[0].code for f in _run_all(home, _habitual(home), landing)] == [
        "drawdown_in_novel_session"
    ]


def test_a_short_history_is_not_judged() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector, logins=2)  # one login after the first

    assert _run_all(detector, state, _session(("payout_account_change", 15))) == []


def test_a_short_history_is_surprised_by_less() -> None:
    """Two logins after the first: the prior keeps each novelty cheap, so a new phone on a
    new network is not enough, the same from another city after failures is."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector, logins=3)
    assert _run_all(detector, state, _session(("payout_account_change", 15), city="Shanghai")) == []

    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector, logins=3)
    events = _session(("payout_account_change", 15), failures=2)
    [finding] = _run_all(detector, state, events)
    assert finding.reasons[0].observed < 9.0


@pytest.mark.parametrize(
    ("thresholds", "alerts"),
    [
        (TakeoverThresholds(), True),
        (TakeoverThresholds(session_minutes=5), False),
        (TakeoverThresholds(min_payout_novelty=12.0, min_drawdown_novelty=12.0), False),
        (TakeoverThresholds(ipv4_network_bits=8), True),
        (TakeoverThresholds(min_history_logins=30), False),
    ],
    ids=["defaults", "session-minutes", "min-novelty", "network-bits", "history"],
)
def test_session_tunables_are_data(thresholds: TakeoverThresholds, alerts: bool) -> None:
    detector = AccountTakeoverDetector(thresholds)
    state = _habitual(detector)

    findings = _run_all(detector, state, _session(("payout_account_change", 30)))

    assert len(findings) == (1 if alerts else 0)


def test_a_state_from_before_sessions_learns_its_networks_from_its_ips() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    memory = state.slots["account_takeover"]
    for key in ("n", "v"):
        del memory[key]
    memory["h"] = [12.0, 0.0, 6.0, 0.0, 0.0, 0.0]

    # Its carrier's network is known from the IPs: a new phone out on it is ordinary.
    own = _session(("drawdown", 15), ip=MOBILE.format(200, 1), city="Shanghai")
    assert _run_all(detector, state, own) == []
    assert len(memory["n"]) == 2


def test_sessions_are_few_and_expire() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    for i in range(5):
        login_ = _at(f"far-{i}", at(minutes=i), device=f"d{i}", ip=f"203.{i}.0.1", city="Beijing")
        far = Login(**{**login_.asdict(), "geo": Geo(lat=40.0, lon=116.0 + i, city=f"far-{i}")})
        detector.on_login(far, state, ())
    memory = state.slots["account_takeover"]
    assert len(memory["v"]) == 2

    detector.on_login(_at("home", at(hours=3)), state, ())

    assert memory["v"] == []


async def test_contract_events_of_the_right_password_alert_through_an_engine() -> None:
    """pw-1's password used at the first try from a new phone in another city, then the payout
    account changed and the loan drawn within minutes."""
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([AccountTakeoverDetector(TakeoverThresholds())])
    events = [
        item
        for item in AccountTakeoverDetector.contract_events()
        if item.record.borrower_id == "pw-1"
    ]

    alerts = []
    for item in sorted(events, key=lambda item: item.record.ts):
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += [(a.episode, a.severity) for a in result.alerts]

    session = "session:pw-new:198.51.100.200"
    assert alerts == [(session, "high"), (f"{session}:followup", "critical")]


def test_a_new_phone_whose_owner_forgot_the_password_and_reset_it_at_home() -> None:
    """The password was saved on the old phone: failures on the new one, a reset (a code to
    the owner's phone number), a success, then a look at the payout account."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    home: dict[str, Any] = {"device": "phone-new", "city": "Shanghai", "agent": PHISHER_AGENT}
    events = [
        *[_at(f"try-{i}", at(minutes=i), success=False, **home) for i in range(7)],
        _at("reset", at(minutes=9), action="password_reset", **home),
        _at("in", at(minutes=10), **home),
        _at("chg", at(minutes=15), action="payout_account_change", **home),
    ]

    assert _run_all(detector, state, events) == []


def test_a_sim_swap_resets_the_password_from_elsewhere_and_cashes_out() -> None:
    """The reset reached the attacker's SIM: not flagged at the login, but the session gives
    it away."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _habitual(detector)
    away: dict[str, Any] = {"device": PHISHER_DEVICE, "ip": PHISHER_IP, "city": "Beijing"}
    events = [
        *[_at(f"try-{i}", at(minutes=i), success=False, **away) for i in range(6)],
        _at("reset", at(minutes=8), action="password_reset", **away),
        _at("in", at(minutes=10), **away),
        _at("chg", at(minutes=14), action="payout_account_change", **away),
        _at("dd", at(minutes=20), action="drawdown", amount="50000", **away),
    ]

    payout, drawdown = _run_all(detector, state, events)

    assert payout.episode == SESSION_EPISODE
    assert payout.reasons[-1].code == "session_failures" and payout.reasons[-1].observed == 6
    assert severity_for(drawdown.score) == "critical"


# --- The cash-out sequence in a new device's session, novel or not ------------------------------

ON_HER_CARRIER = MOBILE.format(200, 9)  # the victim's own carrier block: a known network


def _phone_changer(detector: AccountTakeoverDetector) -> BorrowerState:
    """A borrower whose logins often come from a new phone and a new carrier address: a new
    device and an unseen IP on their own are a few nats of surprise, below any session bar."""
    state = BorrowerState(borrower_id="b-1")
    for i in range(12):
        event = _at(
            f"usual-{i}",
            at(days=-3 * (12 - i), hours=2),
            device=f"phone-{i // 2}",
            ip=MOBILE.format(i, 7 * i + 1),
        )
        assert detector.on_login(event, state, ()) == []
    return state


def test_phished_on_the_victims_own_carrier_alerts_at_the_drawdown_after_the_payout_change() -> (
    None
):
    """The right password at the first try from a new phone on an address of the victim's own
    carrier, in its city: no novelty to speak of, but the payout account changed and the loan
    drawn within minutes is the cash-out."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _phone_changer(detector)
    events = _session(
        ("payout_account_change", 14), ("drawdown", 21), ip=ON_HER_CARRIER, city="Shanghai"
    )

    [finding] = _run_all(detector, state, events)

    assert finding.episode == f"session:{PHISHER_DEVICE}:{ON_HER_CARRIER}:followup"
    assert finding.reasons[0].code == "drawdown_after_payout_change_in_new_session"
    assert "after the payout account was changed in the same session (4 min" in (
        finding.reasons[0].message
    )
    assert [r.code for r in finding.reasons[1:]] == ["session_new_device", "session_unseen_ip"]
    assert finding.score >= 0.9 and finding.evidence == ("s-login", "s-drawdown-21")


def test_a_payout_change_alone_in_such_a_session_waits_for_the_drawdown() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _phone_changer(detector)
    events = _session(("payout_account_change", 14), ip=ON_HER_CARRIER, city="Shanghai")

    assert _run_all(detector, state, events) == []


def test_a_new_phone_at_home_that_changes_payout_and_draws_down_stays_quiet() -> None:
    """The benign twin: the owner's new phone on the home broadband (an address it knows)
    binds a new bank account and draws down at once."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _phone_changer(detector)
    home = MOBILE.format(11, 78)  # the address of its last login
    events = _session(("payout_account_change", 14), ("drawdown", 21), ip=home, city="Shanghai")

    assert _run_all(detector, state, events) == []


def test_a_new_phone_on_the_carrier_that_draws_down_to_its_own_account_stays_quiet() -> None:
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _phone_changer(detector)
    events = _session(("drawdown", 12), ip=ON_HER_CARRIER, city="Shanghai")

    assert _run_all(detector, state, events) == []


def test_a_drawdown_hours_after_the_payout_change_of_such_a_session_stays_quiet() -> None:
    """Outside the session (``session_minutes``), a drawdown is the owner's ordinary use."""
    detector = AccountTakeoverDetector(TakeoverThresholds())
    state = _phone_changer(detector)
    events = _session(
        ("payout_account_change", 14), ("drawdown", 14 + 180), ip=ON_HER_CARRIER, city="Shanghai"
    )

    assert _run_all(detector, state, events) == []
