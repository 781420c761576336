"""Delinquency: a borrower's decline judged against its peers' move over the same days."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from detectors.delinquency import DelinquencyDetector, DelinquencyThresholds
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.inflow_windows import ALL_PEERS, PeerMoves
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.delinquency_cases import (
    CHECK3,
    DUE,
    KEY,
    MIDNIGHT,
    codes,
    flows,
    logins,
    run,
    schedule,
)
from tests.detectors.factories import payment, scheduled, transaction
from topics.names import Source

#: Normal takings: 10 000 a day; the installment, a tenth of a month of them.
PER_DAY = 10_000.0
INSTALLMENT = "30000"

#: Just after the check three days before the due date.
CHECK3_TIME = MIDNIGHT - timedelta(days=3) + timedelta(minutes=1)

Shape = Callable[[int], float]  # days before the due date -> share of the normal takings


def _flat(back: int) -> float:
    return 1.0


def _down(share: float, days: int = 14) -> Shape:
    """At ``share`` of the normal takings over the last ``days`` before the due date."""
    return lambda back: share if back < days else 1.0


def _takings(
    detector: DelinquencyDetector, state: BorrowerState, shape: Shape, sector: str | None, i: int
) -> None:
    """~10 000 a day, varying by weekday and borrower, shaped; the sector as transactions
    carry it (the engine adds the inflows, the detector reads the sector)."""
    if sector:
        tx = transaction(
            f"t-{i}", state.borrower_id, "acc", "cust", "1", MIDNIGHT, "in", sector=sector
        )
        detector.on_transaction(tx, state, ())
    wiggle = [1.0 + 0.1 * (((back + i) * 7 % 5) - 2) for back in range(90)]
    flows(
        state,
        [PER_DAY * wiggle[back] * shape(back) for back in range(80)],
        after=PER_DAY * shape(0),
    )


def _partition(
    detector: DelinquencyDetector,
    subject: BorrowerState,
    subject_shape: Shape,
    peers: list[tuple[str | None, Shape]],
    subject_sector: str | None = "restaurant",
) -> list[BorrowerState]:
    """The subject and its partition's other borrowers (sector and shape each)."""
    _takings(detector, subject, subject_shape, subject_sector, 0)
    states = [subject]
    for i, (sector, shape) in enumerate(peers, start=1):
        state = BorrowerState(borrower_id=f"p-{i:02d}", partition=subject.partition)
        _takings(detector, state, shape, sector, i)
        states.append(state)
    return states


def _paid_on_time() -> list[object]:
    return [payment("p-1", MIDNIGHT - timedelta(hours=20), INSTALLMENT)]


def test_a_whole_sector_down_60_percent_with_every_installment_paid_is_not_alerted() -> None:
    """Restaurants in a lockdown: every one down 60 % for two weeks. The subject fell with
    them and pays; against its own past alone it would be a decline."""
    detector, subject = schedule(INSTALLMENT)
    peers = _partition(detector, subject, _down(0.4), [("restaurant", _down(0.4))] * 11)

    assert run(detector, subject, until=CHECK3_TIME, peers=peers) == []
    inflow = detector._inflow(subject, day_of(CHECK3.due), 30_000.0)
    assert inflow.own is not None and inflow.own.ratio < 0.45
    assert inflow.relative is not None and inflow.relative.ratio > 0.9
    assert inflow.peer is not None and (inflow.peer.scope, inflow.peer.peers) == ("sector", 12)
    assert run(detector, subject, _paid_on_time(), peers=peers) == []

    # The same borrower, no peers known: its own past alone sees a decline.
    alone, state = schedule(INSTALLMENT)
    _takings(alone, state, _down(0.4), "restaurant", 0)
    assert codes(run(alone, state, until=MIDNIGHT)) == [
        ["inflow_decline", "low_installment_coverage"]
    ]


def test_one_borrower_down_70_percent_while_its_sector_is_flat_is_warned() -> None:
    detector, subject = schedule(INSTALLMENT)
    peers = _partition(detector, subject, _down(0.3, 21), [("restaurant", _flat)] * 11)

    [finding, *_] = run(detector, subject, peers=peers)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    decline = finding.reasons[0]
    assert decline.code == "inflow_decline"
    assert "11 peers of the sector moved to" in decline.message
    assert float(decline.observed) < 0.35  # type: ignore[arg-type]


def test_a_borrower_down_80_percent_in_a_sector_down_40_percent_is_still_alerted() -> None:
    """It fell far more than its peers: a third of their move."""
    detector, subject = schedule(INSTALLMENT)
    peers = _partition(detector, subject, _down(0.2, 21), [("restaurant", _down(0.6, 21))] * 11)

    [finding, *_] = run(detector, subject, peers=peers)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    assert finding.reasons[0].code == "inflow_decline"
    assert 0.25 < float(finding.reasons[0].observed) < 0.45  # type: ignore[arg-type]


def test_a_shared_slump_counts_when_the_installment_is_no_longer_covered() -> None:
    """Fallen with its sector, but a month at the recent rate no longer pays the installment
    (a third of a normal month's takings): its own decline counts."""
    detector, subject = schedule("100000")
    peers = _partition(detector, subject, _down(0.4), [("restaurant", _down(0.4))] * 11)

    [finding, *_] = run(detector, subject, peers=peers)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    decline = finding.reasons[0]
    assert decline.code == "inflow_decline" and decline.wording is not None
    assert "but a month at the recent rate covers the installment only" in decline.message


def test_a_shared_slump_leaving_the_installment_covered_under_twice_is_not_alerted() -> None:
    """Fallen with its sector, a month at the recent rate paying the installment 1.7 times:
    the slump has a cause that passes, so the stricter ``uncovered_coverage`` (1.5) holds,
    not the bar of a young borrower's own decline (``young_uncovered_coverage``, 2)."""
    detector, subject = schedule("70000")
    peers = _partition(detector, subject, _down(0.4), [("restaurant", _down(0.4))] * 11)

    assert run(detector, subject, until=CHECK3_TIME, peers=peers) == []
    inflow = detector._inflow(subject, day_of(CHECK3.due), 70_000.0)
    assert inflow.coverage is not None and 1.5 < inflow.coverage < 2.0


def test_without_sectors_the_partition_damps_a_shared_slump() -> None:
    """No sector given: a third of the partition fell 60 % the same days. The partition's
    median hardly moved, but that many falling at once is a shared slump, not each one's."""
    detector, subject = schedule(INSTALLMENT)
    others = [(None, _down(0.4))] * 9 + [(None, _flat)] * 20
    peers = _partition(detector, subject, _down(0.4), others, subject_sector=None)

    assert run(detector, subject, until=CHECK3_TIME, peers=peers) == []
    inflow = detector._inflow(subject, day_of(CHECK3.due), 30_000.0)
    assert inflow.peer is not None
    assert (inflow.peer.scope, inflow.peer.peers, inflow.peer.decliners) == ("partition", 30, 10)
    assert run(detector, subject, _paid_on_time(), peers=peers) == []


def test_an_owner_gone_quiet_in_a_shared_slump_is_warned() -> None:
    """A third of the partition fell 60 % the same days, the subject with them, but it also
    stopped logging in (every third day before, none for eleven days by the check): the slump
    explains its takings, not the owner's silence. Its twin: the same slump with the owner
    logging in as before is damped (below), and so is the slump alone."""
    detector, subject = schedule(INSTALLMENT)
    others = [(None, _down(0.4))] * 9 + [(None, _flat)] * 20
    peers = _partition(detector, subject, _down(0.4), others, subject_sector=None)
    logins(detector, subject, range(15, 60, 3))

    [finding] = run(detector, subject, until=CHECK3_TIME, peers=peers)

    assert codes([finding])[0][:2] == ["inflow_decline", "login_silence"]
    assert "9 other peer(s) falling as far" in finding.reasons[0].message

    attentive, state = schedule(INSTALLMENT)
    peers = _partition(attentive, state, _down(0.4), others, subject_sector=None)
    logins(attentive, state, range(3, 60, 3))
    assert run(attentive, state, until=CHECK3_TIME, peers=peers) == []


def test_without_sectors_a_lone_decline_in_the_partition_is_warned() -> None:
    detector, subject = schedule(INSTALLMENT)
    peers = _partition(detector, subject, _down(0.3, 21), [(None, _flat)] * 29, subject_sector=None)

    [finding, *_] = run(detector, subject, peers=peers)

    assert finding.ts <= MIDNIGHT - timedelta(days=3)
    assert "29 peers of the partition" in finding.reasons[0].message


def test_a_sector_with_too_few_borrowers_is_judged_against_the_partition() -> None:
    detector = DelinquencyDetector(DelinquencyThresholds(min_sector_peers=8))
    detector, subject = schedule(INSTALLMENT, detector)
    others = [("restaurant", _down(0.4))] * 3 + [("retail", _flat)] * 10
    peers = _partition(detector, subject, _down(0.4), others)
    run(detector, subject, until=CHECK3_TIME, peers=peers)

    inflow = detector._inflow(subject, day_of(CHECK3.due), 30_000.0)

    assert inflow.peer is not None and (inflow.peer.scope, inflow.peer.peers) == ("partition", 14)
    assert len(peers) == 14


def test_a_sector_closed_for_two_weeks_is_no_move_to_judge_against() -> None:
    """Every restaurant closed for two weeks (a Spring Festival closure): the peers' median
    move is nothing, so a fall beyond it cannot be measured (it divided by zero). The
    borrower is judged on its own fall, and counts because nothing covers the installment."""
    detector, subject = schedule(INSTALLMENT)
    peers = _partition(detector, subject, _down(0.0), [("restaurant", _down(0.0))] * 11)

    findings = run(detector, subject, until=CHECK3_TIME, peers=peers)

    inflow = detector._inflow(subject, day_of(CHECK3.due), 30_000.0)
    assert inflow.peer is not None and inflow.peer.stopped and inflow.peer.week == 0.0
    assert inflow.relative is None and inflow.own is not None and inflow.own.ratio == 0.0
    [finding] = findings
    assert finding.reasons[0].code == "inflow_decline"
    assert "covers the installment only 0.0 times" in finding.reasons[0].message


def test_a_borrower_open_while_its_sector_is_closed_is_not_alerted() -> None:
    """The one restaurant that kept delivering while the others closed: no decline of its
    own, and its peers' stop is no reason to alert it."""
    detector, subject = schedule(INSTALLMENT)
    peers = _partition(detector, subject, _flat, [("restaurant", _down(0.0))] * 11)

    assert run(detector, subject, until=CHECK3_TIME, peers=peers) == []
    inflow = detector._inflow(subject, day_of(CHECK3.due), 30_000.0)
    assert inflow.peer is not None and inflow.peer.stopped and inflow.relative is None
    assert run(detector, subject, _paid_on_time(), peers=peers) == []


def test_a_check_reads_only_closes_before_its_day() -> None:
    moves = PeerMoves()
    for day in range(100, 106):
        moves.close(0, day, [("retail", 0.5 + day - 100, 1.0)] * 10, 0.65)

    move = moves.move(0, "retail", 103, 8)  # a check on day 103: the close of day 102

    assert move is not None and move.week == 2.5 and move.scope == "sector"
    assert moves.move(0, "retail", 120, 8) is None  # the latest close is too old
    assert moves.move(1, "retail", 103, 8) is None  # another partition
    assert len(moves.closes[0]["retail"]) == 4 and set(moves.closes[0]) == {"retail", ALL_PEERS}


def test_the_peers_moves_survive_a_checkpoint() -> None:
    detector, subject = schedule(INSTALLMENT, partition=3)
    peers = _partition(detector, subject, _down(0.4), [("restaurant", _down(0.4))] * 11)
    run(detector, subject, until=MIDNIGHT - timedelta(days=3, hours=1), peers=peers)
    blob = detector.snapshot(3)
    assert blob is not None and detector.snapshot(4) is None

    restored = DelinquencyDetector(DelinquencyThresholds())
    restored.restore(3, blob)

    assert restored._peers.closes == detector._peers.closes
    assert restored.on_timer(CHECK3, subject) == []


async def test_through_the_engine_a_sector_slump_is_damped() -> None:
    """Twelve restaurants of one partition, their takings as transactions with the sector
    field; all fall 60 % for two weeks, the subject's installment due on the due date."""
    start = datetime(2024, 1, 20, 2, 0, tzinfo=UTC)
    slump = MIDNIGHT - timedelta(days=14)
    events: list[Input] = []
    for day in range(85):
        at = start + timedelta(days=day)
        for i in range(12):
            amount = PER_DAY * (0.4 if at >= slump else 1.0) * (1 + 0.05 * ((day + i) % 3))
            tx = transaction(
                f"t-{i}-{day}",
                f"r-{i}",
                f"acc-{i}",
                f"cust-{day}",
                f"{amount:.2f}",
                at,
                "in",
                sector="restaurant",
            )
            events.append(Input(0, Source.TRANSACTIONS, tx))
    events.append(
        Input(0, Source.REPAYMENTS, scheduled("s-1", start, DUE, INSTALLMENT, borrower_id="r-0"))
    )
    paid = payment("p-1", MIDNIGHT - timedelta(hours=20), INSTALLMENT, borrower_id="r-0")
    events.append(Input(0, Source.REPAYMENTS, paid))
    events.sort(key=lambda item: item.record.ts)
    engine = Engine(Thresholds(), MemoryStateStore(), MemoryCrossIndex())
    detector = next(d for d in engine.detectors if d.name == "delinquency")
    engine.use([detector])
    engine.clock.expect(0, {Source.TRANSACTIONS.value, Source.REPAYMENTS.value})

    alerts = []
    for first in range(0, len(events), 50):
        alerts += (await engine.process(events[first : first + 50])).alerts

    assert alerts == []
    assert isinstance(detector, DelinquencyDetector)
    assert detector._peers.closes[0]["restaurant"][-1][1] == 12
    state = engine.states.get("r-0")
    assert state is not None and KEY in state.installments
    assert state.slots["delinquency"]["sector"] == "restaurant"
    pickle.dumps(detector)
