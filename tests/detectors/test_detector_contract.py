"""Every detector the engine runs passes the same checks, as River's check_estimator does."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import subprocess
import sys
from datetime import UTC, date, datetime

import pytest

from detectors.base import CATEGORIES, Detector, Finding
from detectors.engine import Engine, MemoryStateStore
from detectors.graph import Edge, MemoryEdgeIndex, Neighbourhood
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.factories import T0, at, login, payment, scheduled, transaction
from topics.records import Login, Repayment, Transaction

DETECTORS = Engine(Thresholds(), MemoryStateStore(), MemoryEdgeIndex()).detectors
DUE = date(2024, 4, 10)

# Two hops of a ring reported by other borrowers; b-1's transfer c → a closes it.
AROUND = Neighbourhood(
    out_of_dst=(Edge("a", "b", T0.timestamp(), 100_000.0, "A-1", "A"),),
    into_src=(Edge("b", "c", T0.timestamp() + 7200, 99_000.0, "B-1", "B"),),
)
TRANSACTIONS = [
    transaction("tx-small", "b-1", "c", "shop", "120.50", at(hours=1)),
    transaction("tx-close", "b-1", "c", "a", "98500", at(hours=5)),
]
LOGINS = [
    login("lg-home", at(days=-3), device="phone-1", ip="10.0.0.1"),
    *[
        login(
            f"lg-fail-{i}", at(hours=6, minutes=i), device="dev-x", ip="203.0.113.9", success=False
        )
        for i in range(6)
    ],
    login("lg-win", at(hours=6, minutes=8), device="dev-x", ip="203.0.113.9"),
]
REPAYMENTS = [
    scheduled("rp-s1", at(), DUE, "70000"),
    scheduled("rp-s2", at(), DUE, "3000", installment=2),
    payment("rp-p1", datetime(2024, 4, 9, tzinfo=UTC), "3000", installment=2),
    payment("rp-p2", datetime(2024, 4, 9, tzinfo=UTC), "100"),
    payment("rp-r1", datetime(2024, 4, 11, tzinfo=UTC), "3000", kind="reversal", installment=2),
]


def _prepared_state() -> BorrowerState:
    """A borrower whose inflows collapsed: 10 000 a day, then 2 000 a day since mid-March."""
    state = BorrowerState(borrower_id="b-1", own_accounts=["c"])
    for offset in range(-30, 45):
        day = day_of(at(days=offset).timestamp())
        state.inflows.add(day, 10_000.0 if offset < 20 else 2_000.0)
    return state


def _snapshot(record: Transaction | Login | Repayment) -> tuple[object, dict[str, object]]:
    return copy.deepcopy(record), copy.deepcopy(record.asdict())


def _drive(detector: Detector, state: BorrowerState) -> list[Finding]:
    """Every hook once over the scenario, checking that no input is changed by the call."""
    findings: list[Finding] = []
    for event in TRANSACTIONS:
        before = _snapshot(event)
        findings += detector.on_transaction(event, state, AROUND)
        assert _snapshot(event) == before, f"on_transaction changed {event.event_id}"
    around_before = copy.deepcopy(AROUND)
    assert AROUND == around_before
    for event in LOGINS:
        before = _snapshot(event)
        findings += detector.on_login(event, state)
        assert _snapshot(event) == before, f"on_login changed {event.event_id}"
    for event in REPAYMENTS:
        before = _snapshot(event)
        findings += detector.on_repayment(event, state)
        assert _snapshot(event) == before, f"on_repayment changed {event.event_id}"
    for timer in sorted(detector.pending_timers(state)):
        frozen = copy.deepcopy(timer)
        findings += detector.on_timer(timer, state)
        assert timer == frozen
    return findings


@pytest.fixture(params=DETECTORS, ids=[d.name for d in DETECTORS])
def detector(request: pytest.FixtureRequest) -> Detector:
    return copy.deepcopy(request.param)  # type: ignore[no-any-return]


def test_the_engine_runs_named_distinct_detectors() -> None:
    names = [d.name for d in DETECTORS]

    assert len(names) == len(set(names)) >= 3
    assert all(re.fullmatch(r"[a-z_]+", name) for name in names)
    assert all(d.category in CATEGORIES for d in DETECTORS)


def test_hooks_do_not_mutate_their_inputs(detector: Detector) -> None:
    findings = _drive(detector, _prepared_state())

    assert findings, "the scenario must make every detector find something"


def test_pickles_to_the_same_behaviour(detector: Detector) -> None:
    state = _prepared_state()
    clone = pickle.loads(pickle.dumps(detector))
    same_state = copy.deepcopy(state)

    assert type(clone) is type(detector)
    assert clone.thresholds == detector.thresholds  # type: ignore[attr-defined]
    original = _drive(detector, state)
    cloned = _drive(clone, same_state)

    assert original
    assert cloned == original
    assert same_state.to_dict() == state.to_dict()


def test_findings_are_explained_and_in_range(detector: Detector) -> None:
    findings = _drive(detector, _prepared_state())

    assert findings
    for finding in findings:
        assert isinstance(finding.score, float)
        assert 0.0 <= finding.score <= 1.0
        assert finding.reasons
        for reason in finding.reasons:
            assert isinstance(reason.code, str) and reason.code.strip()
            assert isinstance(reason.message, str) and reason.message.strip()
        assert finding.evidence
        assert all(isinstance(e, str) and e for e in finding.evidence)
        assert finding.category in CATEGORIES
        assert finding.category == detector.category
        assert finding.detector == detector.name
        assert finding.detector_version == detector.version
        assert finding.episode
        assert finding.ts.utcoffset() is not None
        assert re.fullmatch(r"[0-9a-f]{32}", finding.alert_id)


def test_thresholds_are_frozen_data(detector: Detector) -> None:
    thresholds = detector.thresholds  # type: ignore[attr-defined]

    assert dataclasses.is_dataclass(thresholds)
    field = dataclasses.fields(thresholds)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(thresholds, field, 0)


def test_detectors_import_no_broker_or_redis_client() -> None:
    code = (
        "import sys, detectors.engine, detectors.base, detectors.circular, detectors.clock, "
        "detectors.delinquency, detectors.graph, detectors.state, detectors.takeover, "
        "detectors.thresholds; print('\\n'.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    modules = set(done.stdout.split())
    assert "detectors.engine" in modules
    forbidden = ("aiokafka", "redis", "faust.app", "faust.transport")
    loaded = sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden))
    assert loaded == []
