"""Credential stuffing: one IP failing to log into many borrowers, on devices new to each."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import pytest

from detectors.base import ABNORMAL_BEHAVIOUR, Finding, alert_id
from detectors.credential_stuffing import (
    KNOWN_FAILURE,
    NEW_FAILURE,
    NEW_SUCCESS,
    CredentialStuffingDetector,
    CredentialStuffingThresholds,
)
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex, Read, Write
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, engine_alert_ids, feed_logins, interleaved, login
from topics.names import Source
from topics.records import Login

IP = "203.0.113.77"
CGNAT = "117.136.0.1"
EPISODE = f"ip:{IP}"


def _victim_ids(count: int) -> list[str]:
    return [f"v-{i}" for i in range(1, count + 1)]


def _history(borrowers: Sequence[str], *, days: float = -5) -> list[Login]:
    """Each borrower logged in from its own phone at home some days before."""
    return [
        login(f"home-{b}", at(days=days), device=f"phone-{b}", ip=f"10.1.{i}.1", borrower_id=b)
        for i, b in enumerate(borrowers)
    ]


def _attack(borrowers: Sequence[str], *, every_minutes: float = 10, ip: str = IP) -> list[Login]:
    """One failed try per borrower from ``ip``, each from a fresh bot device."""
    return [
        login(
            f"try-{b}",
            at(minutes=every_minutes * i),
            device=f"bot-{i}",
            ip=ip,
            success=False,
            borrower_id=b,
        )
        for i, b in enumerate(borrowers)
    ]


async def _feed(
    detector: CredentialStuffingDetector,
    events: Sequence[Login],
    index: MemoryCrossIndex | None = None,
) -> list[Finding]:
    return await feed_logins(detector, events, index)


async def _alert_ids(
    events: Sequence[Login], batch: int = 1, thresholds: CredentialStuffingThresholds | None = None
) -> set[str]:
    return await engine_alert_ids(
        CredentialStuffingDetector(thresholds or CredentialStuffingThresholds()), events, batch
    )


def _interleaved(events: Sequence[Login], seed: int) -> list[Login]:
    return interleaved(events, seed)


def _ids(borrowers: Sequence[str]) -> set[str]:
    return {alert_id("credential_stuffing", b, EPISODE) for b in borrowers}


async def test_one_ip_failing_on_nine_borrowers_alerts_each_of_them() -> None:
    victims = _victim_ids(9)
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())

    findings = await _feed(detector, _history(victims) + _attack(victims))

    # The eighth victim's failure tips it and names all eight; the ninth adds itself.
    assert {f.alert_id for f in findings} == _ids(victims)
    first = {f.borrower_id: f for f in reversed(findings)}
    finding = first["v-1"]
    assert finding.detector == "credential_stuffing" and finding.category == ABNORMAL_BEHAVIOUR
    assert finding.episode == EPISODE
    assert finding.evidence == ("try-v-1",)
    assert finding.ts == at()
    spread, ratio = finding.reasons
    assert (spread.code, spread.observed, spread.threshold) == (
        "ip_failures_across_borrowers",
        8,
        8,
    )
    assert "within 1.2 h" in spread.message
    assert (ratio.code, ratio.observed, ratio.threshold) == ("ip_failure_ratio", 1.0, 0.8)
    assert finding.score == pytest.approx(0.8)  # 0.75, no excess, + 0.05 for the ratio
    assert findings[-1].borrower_id == "v-9" and findings[-1].reasons[0].observed == 9


async def test_the_same_alert_ids_whatever_the_arrival_order_and_batches() -> None:
    victims = _victim_ids(9)
    events = _history(victims) + _attack(victims)
    orders = [
        events,
        list(reversed(events[9:])) + list(reversed(events[:9])),  # history first still
        _interleaved(events, 1),
        _interleaved(events, 2),
        _interleaved(events, 3),
    ]

    for order in orders:
        for batch in (1, 4, len(order)):
            assert await _alert_ids(order, batch) == _ids(victims)


async def test_a_borrower_the_ip_got_into_is_alerted_as_well() -> None:
    victims = _victim_ids(8)
    # v-9 logs in from a bot device on its first try; v-10 logs in from its own phone.
    entered = login("in-v-9", at(minutes=35), device="bot-9", ip=IP, borrower_id="v-9")
    own = login("in-v-10", at(minutes=36), device="phone-v-10", ip=IP, borrower_id="v-10")
    events = _history([*victims, "v-9", "v-10"]) + _attack(victims) + [entered, own]
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())

    findings = await _feed(detector, sorted(events, key=lambda e: e.ts))

    assert {f.alert_id for f in findings} == _ids([*victims, "v-9"])
    [got_in] = [f for f in findings if f.borrower_id == "v-9"]
    assert [r.code for r in got_in.reasons] == [
        "ip_failures_across_borrowers",
        "ip_failure_ratio",
        "login_during_stuffing",
    ]
    assert got_in.evidence == ("in-v-9",)
    assert got_in.score == pytest.approx(0.9)
    # The same whichever arrives first.
    for seed in (1, 2, 3):
        assert await _alert_ids(_interleaved(events, seed), 3) == _ids([*victims, "v-9"])


async def test_a_login_outside_the_attack_span_is_not_counted() -> None:
    victims = _victim_ids(8)
    later = login("in-v-9", at(hours=20), device="bot-9", ip=IP, borrower_id="v-9")

    ids = await _alert_ids(_history([*victims, "v-9"]) + _attack(victims) + [later])

    assert ids == _ids(victims)


async def test_carrier_nat_with_many_logins_and_a_few_typos_stays_quiet() -> None:
    borrowers = [f"n-{i}" for i in range(40)]
    events = _history(borrowers)
    for i, b in enumerate(borrowers):
        if i % 13 == 0:  # three of them mistype on their own phone first
            events += [
                login(
                    f"typo-{b}-{k}",
                    at(hours=i / 4, seconds=k),
                    device=f"phone-{b}",
                    ip=CGNAT,
                    success=False,
                    borrower_id=b,
                )
                for k in range(3)
            ]
        events.append(
            login(
                f"ok-{b}", at(hours=i / 4, minutes=1), device=f"phone-{b}", ip=CGNAT, borrower_id=b
            )
        )

    assert await _alert_ids(events) == set()


async def test_many_typos_on_own_phones_behind_one_address_stay_quiet() -> None:
    borrowers = [f"n-{i}" for i in range(12)]
    typos = [
        login(
            f"typo-{b}",
            at(minutes=20 * i),
            device=f"phone-{b}",
            ip=CGNAT,
            success=False,
            borrower_id=b,
        )
        for i, b in enumerate(borrowers)
    ]

    assert await _alert_ids(_history(borrowers) + typos) == set()


MODELS = ["iPhone; iOS 17.4", "Android 14; Xiaomi 14", "Android 13; HUAWEI Mate 60"]


def _phones(borrowers: Sequence[str]) -> dict[str, str]:
    """Each borrower's phone: the app on one of a few phone models."""
    return {b: f"LendApp/5.2.{i % 7} ({MODELS[i % 3]})" for i, b in enumerate(borrowers)}


async def test_an_app_release_that_resets_device_ids_behind_a_carrier_nat_stays_quiet() -> None:
    """A release makes every phone that installs it report a new device id; behind one carrier
    address, ten borrowers update, mistype once on the new id, then get in. Their phones still
    send the app and model they always did."""
    borrowers = [f"n-{i}" for i in range(10)]
    phones = _phones(borrowers)
    events = [
        login(f"home-{b}", at(days=-5), device=f"phone-{b}", ip=CGNAT, borrower_id=b, user_agent=ua)
        for b, ua in phones.items()
    ]
    for i, (b, ua) in enumerate(phones.items()):
        updated = ua.replace("5.2.", "5.3.")
        for k, success in enumerate((False, True)):
            events.append(
                login(
                    f"upd-{b}-{k}",
                    at(minutes=20 * i, seconds=30 * k),
                    device=f"reinstalled-{b}",
                    ip=CGNAT,
                    success=success,
                    borrower_id=b,
                    user_agent=updated,
                )
            )

    assert await _alert_ids(events) == set()


async def test_an_attacker_on_a_victims_phone_model_loses_that_victim_only() -> None:
    victims = _victim_ids(10)
    phones = _phones(victims)
    events = [
        login(
            f"home-{b}",
            at(days=-5),
            device=f"phone-{b}",
            ip=f"10.1.{i}.1",
            borrower_id=b,
            user_agent=ua,
        )
        for i, (b, ua) in enumerate(phones.items())
    ]
    bot = "LendApp/5.3.0 (Android 13; HUAWEI Mate 60)"  # the model of v-3, v-6 and v-9
    attack = [Login(**{**e.asdict(), "user_agent": bot}) for e in _attack(victims)]

    ids = await _alert_ids(
        events + attack, thresholds=CredentialStuffingThresholds(min_borrowers=6)
    )

    assert ids == _ids([v for v in victims if v not in ("v-3", "v-6", "v-9")])


async def test_one_borrower_failing_many_times_is_not_stuffing() -> None:
    tries = [
        login(f"t-{i}", at(minutes=i), device=f"bot-{i}", ip=IP, success=False, borrower_id="v-1")
        for i in range(30)
    ]

    assert await _alert_ids(_history(["v-1"]) + tries) == set()


async def test_typos_dilute_the_ratio_but_not_the_alert() -> None:
    victims = _victim_ids(8)
    locals_ = [f"n-{i}" for i in range(3)]
    typos = [
        login(
            f"typo-{b}", at(minutes=5 + i), device=f"phone-{b}", ip=IP, success=False, borrower_id=b
        )
        for i, b in enumerate(locals_)
    ]
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())

    findings = await _feed(
        detector, sorted(_history(victims + locals_) + _attack(victims) + typos, key=lambda e: e.ts)
    )

    assert {f.borrower_id for f in findings} == set(victims)
    assert all([r.code for r in f.reasons] == ["ip_failures_across_borrowers"] for f in findings)
    assert findings[0].score == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("every_minutes", "thresholds", "alerts"),
    [
        (60, CredentialStuffingThresholds(), True),  # nine tries over eight hours
        (210, CredentialStuffingThresholds(), False),  # over 28 hours: 4 in any 12 h
        (210, CredentialStuffingThresholds(window_hours=30), True),
        (10, CredentialStuffingThresholds(min_borrowers=10), False),
        (10, CredentialStuffingThresholds(min_borrowers=3), True),
    ],
    ids=["slow", "too-slow", "window-is-data", "min-borrowers-is-data", "fewer-needed"],
)
async def test_thresholds_are_data(
    every_minutes: float, thresholds: CredentialStuffingThresholds, alerts: bool
) -> None:
    victims = _victim_ids(9)
    events = _history(victims) + _attack(victims, every_minutes=every_minutes)

    ids = await _alert_ids(events, thresholds=thresholds)

    assert ids == (_ids(victims) if alerts else set())


def test_a_failure_writes_its_try_and_reads_both_sets_around_it() -> None:
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    state = BorrowerState(borrower_id="v-1")
    [event] = _attack(["v-1"])

    lookups = detector.lookups(event, state)

    assert lookups is not None
    epoch = event.ts.timestamp()
    member = orjson.dumps(["v-1", "try-v-1", NEW_FAILURE, epoch])
    assert lookups.writes == (Write(f"ipfail:{IP}", member, epoch),)
    span = 12 * 3600.0
    assert lookups.reads == (
        Read(f"ipfail:{IP}", epoch - span, epoch + span),
        Read(f"ipok:{IP}", epoch - span, epoch + span),
    )


def test_a_try_whose_exchange_failed_is_written_by_the_next_one_like_it() -> None:
    """The engine undoes the mark of a write the index refused: the next failure from that IP
    in the same bucket writes, instead of the borrower missing from the set for good."""
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    state = BorrowerState(borrower_id="v-1")
    [event] = _attack(["v-1"])
    again = login(
        "again", event.ts, device=event.device_id, ip=IP, success=False, borrower_id="v-1"
    )

    lookups = detector.lookups(event, state)
    assert lookups is not None and lookups.undo is not None
    lookups.undo()

    assert detector.lookups(again, state) is not None


def test_a_try_written_is_not_written_again_by_the_next_one_like_it() -> None:
    """The benign twin: the exchange succeeded (no undo), so the same try is written once."""
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    state = BorrowerState(borrower_id="v-1")
    [event] = _attack(["v-1"])
    again = login(
        "again", event.ts, device=event.device_id, ip=IP, success=False, borrower_id="v-1"
    )

    assert detector.lookups(event, state) is not None
    assert detector.lookups(again, state) is None


def test_what_is_written_follows_the_borrowers_own_order_not_the_batches() -> None:
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    state = BorrowerState(borrower_id="b-1")
    known = login("ok", at(), device="phone-b", ip="10.0.0.1", borrower_id="b-1")
    new_phone = login("ok-2", at(minutes=1), device="phone-c", ip=CGNAT, borrower_id="b-1")
    typo = login(
        "typo", at(minutes=2), device="phone-c", ip=CGNAT, success=False, borrower_id="b-1"
    )
    repeat = login(
        "typo-2", at(minutes=3), device="phone-c", ip=CGNAT, success=False, borrower_id="b-1"
    )

    # lookups run in order before any hook: the device is learnt there, not in a hook
    assert detector.lookups(known, state) is not None  # a first device: new to the borrower
    written = detector.lookups(new_phone, state)
    typo_lookups = detector.lookups(typo, state)

    assert written is not None and orjson.loads(written.writes[0].member)[2] == NEW_SUCCESS
    assert written.writes[0].key == f"ipok:{CGNAT}"
    assert typo_lookups is not None
    assert orjson.loads(typo_lookups.writes[0].member)[2] == KNOWN_FAILURE
    assert detector.lookups(repeat, state) is None  # one per IP, hour and kind
    assert (
        detector.lookups(
            login("again", at(minutes=9), device="phone-b", ip="10.0.0.1", borrower_id="b-1"), state
        )
        is None
    )


def test_devices_known_before_the_detector_are_not_new() -> None:
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    state = BorrowerState(borrower_id="b-1")
    state.logins.known_devices["phone-b"] = day_of(at(days=-3).timestamp())
    typo = login("typo", at(), device="phone-b", ip=CGNAT, success=False, borrower_id="b-1")

    lookups = detector.lookups(typo, state)

    assert lookups is not None and orjson.loads(lookups.writes[0].member)[2] == KNOWN_FAILURE


async def test_index_down_gives_no_alert_and_no_error() -> None:
    victims = _victim_ids(9)
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    state = BorrowerState(borrower_id="v-1")
    [event] = _attack(["v-1"])
    assert detector.lookups(event, state) is not None

    assert detector.on_login(event, state, None) == []

    class Down:
        async def exchange(
            self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
        ) -> list[list[bytes]]:
            raise ConnectionError("redis is down")

    engine = Engine(Thresholds(), MemoryStateStore(), Down())
    engine.use([CredentialStuffingDetector(CredentialStuffingThresholds())])
    result = await engine.process(
        [Input(0, Source.LOGINS, e) for e in _history(victims) + _attack(victims)]
    )
    assert result.alerts == [] and result.failed == []
    assert result.degraded and "credential_stuffing" in result.degraded[0]


def test_memory_is_bounded_and_round_trips_through_orjson() -> None:
    detector = CredentialStuffingDetector(CredentialStuffingThresholds())
    live = BorrowerState(borrower_id="b-1")
    for i in range(50):
        detector.lookups(
            login(
                f"ok-{i}", at(days=i), device=f"device-{i:03d}", ip="10.0.0.1", borrower_id="b-1"
            ),
            live,
        )
        detector.lookups(
            login(
                f"bad-{i}",
                at(days=i, hours=1),
                device=f"bot-{i}",
                ip=f"1.2.3.{i}",
                success=False,
                borrower_id="b-1",
            ),
            live,
        )
    memory = live.slots["credential_stuffing"]
    assert len(memory["d"]) == 8 and len(memory["w"]) == 4
    assert len(orjson.dumps(memory)) < 400

    restored = BorrowerState.from_dict(orjson.loads(orjson.dumps(live.to_dict())))
    for event in [
        login(
            "x",
            at(days=49, hours=2),
            device="device-049",
            ip="1.2.3.49",
            success=False,
            borrower_id="b-1",
        ),
        login(
            "y",
            at(days=49, hours=2),
            device="device-001",
            ip="1.2.3.49",
            success=False,
            borrower_id="b-1",
        ),
    ]:
        assert detector.lookups(event, restored) == detector.lookups(event, live)
    assert restored.to_dict() == live.to_dict()


#: The detector's own contract events (nine borrowers who each fail once from one address on
#: a bot phone within 45 minutes), which the shared contract test runs every detector over.
CONTRACT_EVENTS: list[Input] = CredentialStuffingDetector.contract_events()


async def test_contract_events_alert_through_an_engine() -> None:
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([CredentialStuffingDetector(CredentialStuffingThresholds())])

    alerts = []
    for item in CONTRACT_EVENTS:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts

    assert sorted(a.borrower_id for a in alerts) == [f"cs-{i}" for i in range(1, 10)]
    assert {a.episode for a in alerts} == {"ip:198.51.100.77"}
