"""Device rings: one device used by several borrowers, whatever order their events arrive in."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations

import orjson
import pytest

from detectors.base import ABNORMAL_BEHAVIOUR, Finding, alert_id
from detectors.device_ring import DeviceRingDetector, DeviceRingThresholds, crowded
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex, Read, Write
from detectors.state import BorrowerState
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, engine_alert_ids, feed_logins, interleaved, login
from topics.names import Source
from topics.records import Login

TABLET = "tablet-9"
EPISODE = f"device:{TABLET}"
DAY = 86_400.0


def _uses(
    borrower: str,
    days: float,
    *,
    apply: bool = True,
    device: str = TABLET,
    action: str = "loan_application",
) -> list[Login]:
    """A login on ``device``, and ``action`` (a loan application) from it a few minutes later."""
    events = [
        login(f"{borrower}-in", at(days=days), device=device, ip="10.0.0.9", borrower_id=borrower)
    ]
    if apply:
        events.append(
            login(
                f"{borrower}-apply",
                at(days=days, minutes=8),
                device=device,
                ip="10.0.0.9",
                action=action,
                borrower_id=borrower,
            )
        )
    return events


RING = [*_uses("r-1", 0), *_uses("r-2", 1.5), *_uses("r-3", 3)]
RING_IDS = {alert_id("device_ring", b, EPISODE) for b in ("r-1", "r-2", "r-3")}


async def _feed(
    detector: DeviceRingDetector, events: Sequence[Login], index: MemoryCrossIndex | None = None
) -> list[Finding]:
    return await feed_logins(detector, events, index)


async def _alert_ids(
    events: Sequence[Login], batch: int = 1, thresholds: DeviceRingThresholds | None = None
) -> set[str]:
    return await engine_alert_ids(
        DeviceRingDetector(thresholds or DeviceRingThresholds()), events, batch
    )


def _interleaved(events: Sequence[Login], seed: int) -> list[Login]:
    return interleaved(events, seed)


def test_crowded_spans() -> None:
    points = [(0.0, "a"), (1.0, "a"), (2.0, "b"), (5.0, "c"), (20.0, "d"), (21.0, "e")]

    assert crowded(points, 10.0, 3) == [(0, 3)]
    assert crowded(points, 10.0, 4) == []
    # [0, 20] and [1, 21] each hold four owners and overlap: one stretch
    assert crowded(points, 20.0, 4) == [(0, 5)]
    apart = [(0.0, "a"), (1.0, "b"), (2.0, "c"), (30.0, "d"), (31.0, "e"), (32.0, "f")]
    assert crowded(apart, 10.0, 3) == [(0, 2), (3, 5)]
    assert crowded([], 10.0, 1) == []
    # ... and with at least two distinct owners of marked points in each span
    marked = [True, False, False, False, True, True]
    assert crowded(apart, 10.0, 3, marked, 2) == [(3, 5)]
    assert crowded(points, 10.0, 3, [False, True, False, True, False, False], 2) == [(0, 3)]
    assert crowded(points, 10.0, 3, [True, True, False, False, False, False], 2) == []


async def test_three_borrowers_applying_from_one_tablet_are_each_alerted() -> None:
    detector = DeviceRingDetector(DeviceRingThresholds())

    findings = await _feed(detector, RING)

    # r-3's login completes the ring; its application is the same episode again.
    assert {f.alert_id for f in findings} == RING_IDS
    first = {}
    for finding in findings:
        first.setdefault(finding.borrower_id, finding)
    assert list(first) == ["r-1", "r-2", "r-3"]
    finding = first["r-2"]
    assert finding.detector == "device_ring" and finding.category == ABNORMAL_BEHAVIOUR
    assert finding.episode == EPISODE
    assert finding.ts == at(days=3)
    shared, applied = finding.reasons
    assert (shared.code, shared.observed, shared.threshold) == ("shared_device", 3, 3)
    assert "r-1, r-2, r-3" in shared.message and "3.0 days" in shared.message
    # r-3 has only logged in yet when its login tips the ring (two applicants are needed)
    assert (applied.code, applied.observed, applied.threshold) == (
        "loan_applications_from_shared_device",
        2,
        2,
    )
    assert finding.evidence == ("r-2-in", "r-2-apply", "r-1-in", "r-1-apply", "r-3-in")
    assert finding.score == pytest.approx(0.8)


async def test_logins_only_by_five_borrowers_are_a_medium_alert() -> None:
    """An account farm: five borrowers on one device, none applying from it."""
    events = [e for i in range(5) for e in _uses(f"r-{i}", i / 2, apply=False)]

    findings = await _feed(DeviceRingDetector(DeviceRingThresholds()), events)

    assert {f.borrower_id for f in findings} == {f"r-{i}" for i in range(5)}
    assert all([r.code for r in f.reasons] == ["shared_device"] for f in findings)
    assert findings[0].reasons[0].threshold == 5
    assert findings[0].score == pytest.approx(0.6)


async def test_a_family_tablet_of_three_small_businesses_stays_quiet() -> None:
    """A couple and a son, each running a small business, look at their accounts on the
    family's tablet every few days; one of them applies for a loan from it once."""
    events = [
        e
        for day in range(0, 40, 3)
        for offset, b in enumerate(("mum", "dad", "son"))
        for e in _uses(b, day + offset / 10, apply=(b, day) == ("dad", 9), device="family-tab")
    ]

    assert await _alert_ids(events, batch=5) == set()


async def test_an_accountants_computer_for_four_clients_stays_quiet() -> None:
    """A bookkeeper logs into four clients' accounts from its office computer each week."""
    events = [
        e
        for week in range(6)
        for i in range(4)
        for e in _uses(f"client-{i}", 7 * week + i / 24, apply=False, device="office-pc")
    ]

    assert await _alert_ids(events) == set()


async def test_an_accountant_applying_for_three_clients_is_an_agent_run_application() -> None:
    events = [e for i in range(3) for e in _uses(f"client-{i}", 2 * i, device="office-pc")]

    assert len(await _alert_ids(events)) == 3


async def test_logins_and_applications_give_the_same_ids_whatever_the_order() -> None:
    """Two applicants and a borrower who only logged in: the ring needs the applications,
    whenever they arrive."""
    events = [*_uses("r-1", 0), *_uses("r-2", 1, apply=False), *_uses("r-3", 2)]
    expected = {alert_id("device_ring", b, EPISODE) for b in ("r-1", "r-2", "r-3")}

    for order in [events, events[::-1], *(_interleaved(events, seed) for seed in (4, 5, 6))]:
        for batch in (1, 3, len(order)):
            assert await _alert_ids(order, batch) == expected


@pytest.mark.parametrize(
    ("thresholds", "alerts"),
    [
        (DeviceRingThresholds(), False),
        (DeviceRingThresholds(min_applicants=0), True),
        (DeviceRingThresholds(min_borrowers_logins_only=3), True),
    ],
    ids=["defaults", "no-applicants-needed", "three-without-applications"],
)
async def test_applicants_and_logins_only_are_data(
    thresholds: DeviceRingThresholds, alerts: bool
) -> None:
    events = [e for i in range(3) for e in _uses(f"r-{i}", i, apply=False)]

    assert len(await _alert_ids(events, thresholds=thresholds)) == (3 if alerts else 0)


async def test_more_borrowers_score_higher() -> None:
    events = [e for i in range(6) for e in _uses(f"r-{i}", i)]

    findings = await _feed(DeviceRingDetector(DeviceRingThresholds()), events)

    assert {f.borrower_id for f in findings} == {f"r-{i}" for i in range(6)}
    assert max(f.score for f in findings) == pytest.approx(0.95)


async def test_the_same_alert_ids_whatever_the_arrival_order_and_batches() -> None:
    blocks = [_uses("r-1", 0), _uses("r-2", 1.5), _uses("r-3", 3)]
    orders = [[e for block in order for e in block] for order in permutations(blocks)]
    orders += [_interleaved(RING, seed) for seed in (1, 2, 3)]

    for order in orders:
        for batch in (1, 2, len(order)):
            assert await _alert_ids(order, batch) == RING_IDS


async def test_no_thirty_day_span_holds_three_borrowers_in_any_order() -> None:
    # r-2's ±30 days see all three, but no 30 days hold all three: never a ring.
    blocks = [_uses("r-1", 0), _uses("r-2", 25), _uses("r-3", 50)]

    for order in permutations(blocks):
        assert await _alert_ids([e for block in order for e in block]) == set()
    assert (
        await _alert_ids(
            [e for block in blocks for e in block], thresholds=DeviceRingThresholds(window_days=50)
        )
        == RING_IDS
    )


async def test_a_family_device_shared_by_two_borrowers_stays_quiet() -> None:
    events = [
        e
        for day in range(40)
        for b in ("mum", "son")
        for e in _uses(b, day + (0.1 if b == "son" else 0), apply=day == 5, device="family-tab")
    ]

    assert await _alert_ids(events, batch=7) == set()


async def test_one_borrower_with_several_devices_stays_quiet() -> None:
    events = [
        e for day in range(10) for d in ("phone", "pc", "tab") for e in _uses("b-1", day, device=d)
    ]

    assert await _alert_ids(events) == set()


async def test_min_borrowers_is_data() -> None:
    assert await _alert_ids(RING, thresholds=DeviceRingThresholds(min_borrowers=4)) == set()
    pair = [*_uses("r-1", 0), *_uses("r-2", 1)]
    assert len(await _alert_ids(pair, thresholds=DeviceRingThresholds(min_borrowers=2))) == 2


@pytest.mark.parametrize("action", ["drawdown", "payout_account_change"])
async def test_a_mule_ring_whose_money_is_moved_from_one_phone_is_alerted(action: str) -> None:
    """A mule network: the handler's phone draws down (or redirects the payout of) three
    members' loans; none of them applied from it, the money still moves from one device."""
    events = [e for i in range(3) for e in _uses(f"mule-{i}", i / 3, action=action)]

    findings = await _feed(DeviceRingDetector(DeviceRingThresholds()), events)

    assert {f.borrower_id for f in findings} == {"mule-0", "mule-1", "mule-2"}
    assert findings[-1].reasons[1].code == "loan_applications_from_shared_device"


async def test_a_family_tablet_where_one_owner_draws_down_stays_quiet() -> None:
    """The family's tablet again: the father draws his loan down from it, the others only look."""
    events = [
        e
        for day in range(0, 40, 3)
        for offset, b in enumerate(("mum", "dad", "son"))
        for e in _uses(
            b, day + offset / 10, apply=b == "dad", device="family-tab", action="drawdown"
        )
    ]

    assert await _alert_ids(events, batch=5) == set()


def test_failures_and_other_actions_do_not_count() -> None:
    detector = DeviceRingDetector(DeviceRingThresholds())
    state = BorrowerState(borrower_id="r-1")

    for action, success in (("login", False), ("logout", True), ("password_reset", True)):
        event = login("e", at(), device=TABLET, ip="i", action=action, success=success)
        assert detector.lookups(event, state) is None


def test_a_borrower_writes_each_device_once_a_day() -> None:
    detector = DeviceRingDetector(DeviceRingThresholds())
    state = BorrowerState(borrower_id="b-1")
    first = login("in-1", at(), device=TABLET, ip="i")

    lookups = detector.lookups(first, state)

    assert lookups is not None
    epoch = at().timestamp()
    member = orjson.dumps(["b-1", "in-1", 0, epoch])
    assert lookups.writes == (Write(EPISODE, member, epoch),)
    assert lookups.reads == (Read(EPISODE, epoch - 30 * DAY, epoch + 30 * DAY),)
    assert detector.lookups(login("in-2", at(hours=3), device=TABLET, ip="i"), state) is None
    application = login("ap", at(hours=4), device=TABLET, ip="i", action="loan_application")
    assert detector.lookups(application, state) is not None
    assert detector.lookups(login("in-3", at(days=1), device=TABLET, ip="i"), state) is not None


async def test_index_down_gives_no_alert_and_no_error() -> None:
    detector = DeviceRingDetector(DeviceRingThresholds())
    state = BorrowerState(borrower_id="r-3")
    event = RING[4]
    assert detector.lookups(event, state) is not None

    assert detector.on_login(event, state, None) == []

    class Down:
        async def exchange(
            self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
        ) -> list[list[bytes]]:
            raise ConnectionError("redis is down")

    engine = Engine(Thresholds(), MemoryStateStore(), Down())
    engine.use([DeviceRingDetector(DeviceRingThresholds())])
    result = await engine.process([Input(0, Source.LOGINS, e) for e in RING])
    assert result.alerts == [] and result.failed == []
    assert result.degraded and "device_ring" in result.degraded[0]


class _FailsFirst:
    """The index (Redis) refuses the first exchange, then answers as it should."""

    def __init__(self) -> None:
        self.index = MemoryCrossIndex()
        self.failed = False

    async def exchange(
        self, writes: Sequence[Write], reads: Sequence[Read], max_members: int
    ) -> list[list[bytes]]:
        if not self.failed:
            self.failed = True
            raise ConnectionError("redis is down")
        return await self.index.exchange(writes, reads, max_members)


async def _ring_ids_with_first_exchange(index: object) -> set[str]:
    """r-1 logs in twice on day 0 (the first login's exchange is the one that may fail), then
    r-2 and r-3 log in and apply from the tablet: three borrowers, two applicants."""
    again = login("r-1-again", at(hours=2), device=TABLET, ip="10.0.0.9", borrower_id="r-1")
    events = [*_uses("r-1", 0, apply=False), again, *_uses("r-2", 1.5), *_uses("r-3", 3)]
    engine = Engine(Thresholds(), MemoryStateStore(), index)  # type: ignore[arg-type]
    engine.use([DeviceRingDetector(DeviceRingThresholds())])
    ids = set()
    for event in events:
        result = await engine.process([Input(0, Source.LOGINS, event)])
        ids |= {alert.alert_id for alert in result.alerts}
    return ids


async def test_a_use_whose_index_write_failed_is_written_at_the_next_use_that_day() -> None:
    """The mark that a (device, day) was written is kept only once the exchange succeeded:
    r-1's first login is lost with Redis, its second one the same day puts it in the ring."""
    assert await _ring_ids_with_first_exchange(_FailsFirst()) == RING_IDS


async def test_a_use_written_is_not_written_again_that_day() -> None:
    """The benign twin: with every exchange answered, r-1's second login of the day writes
    nothing (the mark holds) and the ring is the same."""
    index = MemoryCrossIndex()
    assert await _ring_ids_with_first_exchange(index) == RING_IDS
    r1_members = [m for m in await _members(index) if m.startswith(b'["r-1"')]
    assert len(r1_members) == 1


async def _members(index: MemoryCrossIndex) -> list[bytes]:
    [members] = await index.exchange([], [Read(EPISODE, 0.0, 1e12)], 1000)
    return list(members)


def test_memory_is_bounded_and_round_trips_through_orjson() -> None:
    detector = DeviceRingDetector(DeviceRingThresholds())
    live = BorrowerState(borrower_id="b-1")
    for i in range(30):
        for device in ("phone", "pc", "d" * 200):
            detector.lookups(login(f"e{i}", at(days=i), device=device, ip="i"), live)
    assert len(live.slots["device_ring"]) == 4
    assert len(orjson.dumps(live.slots["device_ring"])) < 120

    restored = BorrowerState.from_dict(orjson.loads(orjson.dumps(live.to_dict())))
    for event in (
        login("x", at(days=29, hours=1), device="pc", ip="i"),
        login("y", at(days=29, hours=1), device="tab", ip="i"),
    ):
        assert detector.lookups(event, restored) == detector.lookups(event, live)
    assert restored.to_dict() == live.to_dict()


#: The detector's own contract events (three borrowers logging in and applying for loans from
#: one tablet over two days), which the shared contract test runs every detector over.
CONTRACT_EVENTS: list[Input] = DeviceRingDetector.contract_events()


async def test_contract_events_alert_through_an_engine() -> None:
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    engine.use([DeviceRingDetector(DeviceRingThresholds())])

    alerts = []
    for item in CONTRACT_EVENTS:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        alerts += result.alerts

    assert sorted(a.borrower_id for a in alerts) == ["dr-1", "dr-2", "dr-3"]
    assert {a.episode for a in alerts} == {"device:dr-tablet"}
