"""Every detector the engine runs passes the same checks, as River's check_estimator does."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import pkgutil
import re
import subprocess
import sys

import pytest

import detectors
from detectors.base import CATEGORIES, Detector, Finding
from detectors.engine import Engine, Input, MemoryStateStore
from detectors.index import MemoryCrossIndex
from detectors.registry import REGISTRY, build_detectors
from detectors.state import BorrowerState, day_of
from detectors.thresholds import Thresholds
from tests.detectors.factories import at, login, payment, transaction
from topics.names import Source
from topics.records import PERSONAL_KINDS

DETECTORS = build_detectors(Thresholds())


def _inputs() -> list[Input]:
    """Every registered detector's contract events, and every stream moved past the deadlines
    so that the timers fire; in time order."""
    tx, lg, rp = Source.TRANSACTIONS, Source.LOGINS, Source.REPAYMENTS
    events = [
        *(event for row in REGISTRY for event in row.detector.contract_events()),
        # Every stream moves past the deadlines, so the timers fire.
        Input(0, tx, transaction("tx-late", "b-1", "c", "shop", "10", at(days=50))),
        Input(0, lg, login("lg-late", at(days=50), device="phone-1", ip="10.0.0.1")),
        Input(0, rp, payment("rp-late", at(days=50), "1", installment=9)),
    ]
    return sorted(events, key=lambda item: item.record.ts)


def _prepared_states() -> MemoryStateStore:
    """b-1's inflows collapsed: 10 000 a day, then 2 000 a day since mid-March."""
    store = MemoryStateStore()
    state = BorrowerState(borrower_id="b-1", own_accounts=["c"])
    for offset in range(-30, 45):
        state.inflows.add(day_of(at(days=offset).timestamp()), 10_000.0 if offset < 20 else 2_000.0)
    store.put("b-1", state)
    return store


async def _drive(detector: Detector, store: MemoryStateStore) -> list[Finding]:
    """Run one detector over the scenario through an engine; no input may be changed."""
    engine = Engine(Thresholds(), store, MemoryCrossIndex())
    engine.use([detector])
    inputs = _inputs()
    before = [copy.deepcopy(item.record.asdict()) for item in inputs]
    findings: list[Finding] = []
    for item in inputs:
        result = await engine.process([item])
        assert result.failed == [] and result.degraded == []
        findings += [_finding_of(alert) for alert in result.alerts]
    assert [item.record.asdict() for item in inputs] == before, "a hook changed its input"
    return findings


def _finding_of(alert: object) -> Finding:
    return alert  # type: ignore[return-value]


@pytest.fixture(params=DETECTORS, ids=[d.name for d in DETECTORS])
def detector(request: pytest.FixtureRequest) -> Detector:
    return copy.deepcopy(request.param)  # type: ignore[no-any-return]


def test_the_engine_runs_named_distinct_detectors() -> None:
    names = [d.name for d in DETECTORS]

    assert len(names) == len(set(names)) >= 3
    assert all(re.fullmatch(r"[a-z_]+", name) for name in names)
    assert {d.category for d in DETECTORS} == set(CATEGORIES)


async def test_every_detector_finds_its_case_in_the_scenario(detector: Detector) -> None:
    alerts = await _drive(detector, _prepared_states())

    assert alerts, f"the scenario must make {detector.name} find something"
    assert {a.detector for a in alerts} == {detector.name}


async def test_pickles_to_the_same_behaviour(detector: Detector) -> None:
    clone = pickle.loads(pickle.dumps(detector))
    store, same_store = _prepared_states(), _prepared_states()

    assert type(clone) is type(detector)
    assert clone.thresholds == detector.thresholds  # type: ignore[attr-defined]
    original = await _drive(detector, store)
    cloned = await _drive(clone, same_store)

    assert [a.alert_id for a in cloned] == [a.alert_id for a in original]
    assert {b: s.to_dict() for b, s in same_store.states.items()} == {
        b: s.to_dict() for b, s in store.states.items()
    }


async def test_alerts_are_explained_and_in_range(detector: Detector) -> None:
    alerts = await _drive(detector, _prepared_states())

    for alert in alerts:
        assert isinstance(alert.score, float) and 0.0 <= alert.score <= 1.0
        assert alert.reasons
        for reason in alert.reasons:
            assert isinstance(reason.code, str) and reason.code.strip()
            assert isinstance(reason.message, str) and reason.message.strip()
        assert alert.evidence and all(isinstance(e, str) and e for e in alert.evidence)
        assert alert.category == detector.category
        assert alert.detector_version == detector.version
        assert alert.episode and alert.ts.utcoffset() is not None
        assert re.fullmatch(r"[0-9a-f]{32}", alert.alert_id)


async def test_every_reason_and_episode_is_built_from_a_declared_template(
    detector: Detector,
) -> None:
    """What an alert says comes from the detector's ``messages`` and ``episodes``, with its
    personal values marked by kind: the masker relies on it (see streams/privacy.py)."""
    alerts = await _drive(detector, _prepared_states())

    for alert in alerts:
        for reason in alert.reasons:
            assert reason.code in detector.messages, reason.code
            declared = {
                template
                for key, template in detector.messages.items()
                if key.partition("/")[0] == reason.code
            }
            assert reason.wording is not None and reason.wording.template in declared
            assert reason.message == reason.wording.render()
            kinds = {*reason.wording.personal.values(), reason.observed_kind, reason.threshold_kind}
            assert kinds - {None} <= PERSONAL_KINDS
        episode = alert.episode_wording
        assert episode is not None and episode.template in detector.episodes.values()
        assert alert.episode == episode.render()
        assert set(episode.personal.values()) <= PERSONAL_KINDS


def test_templates_are_declared_by_code(detector: Detector) -> None:
    assert detector.messages and detector.episodes
    for key, template in detector.messages.items():
        # A reason code, or a code and a variant when the code is worded two ways.
        assert re.fullmatch(r"[a-z_]+(/[a-z_]+)?", key), key
        assert template.strip()
    assert all(template.strip() for template in detector.episodes.values())


def test_thresholds_are_frozen_data(detector: Detector) -> None:
    thresholds = detector.thresholds  # type: ignore[attr-defined]

    assert dataclasses.is_dataclass(thresholds)
    field = dataclasses.fields(thresholds)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(thresholds, field, 0)


async def test_writes_only_its_slot_and_the_fields_it_declares(detector: Detector) -> None:
    """A shadow copies ``writes`` only: a field written but not declared would be shared
    between a shadow and its live twin."""
    store = _prepared_states()
    before = {b: s.to_dict() for b, s in store.states.items()}
    engine = Engine(Thresholds(), store, MemoryCrossIndex())
    engine.use([])  # the engine's own upkeep (inflows, own accounts, applied ids) alone
    for item in _inputs():
        await engine.process([item])
    upkeep = {b: s.to_dict() for b, s in store.states.items()}
    store = _prepared_states()
    await _drive(detector, store)
    shared = {"devices", "ips", "failures"} if "logins" in detector.writes else set()
    shared |= {"installments"} if "installments" in detector.writes else set()
    for borrower, state in store.states.items():
        after = state.to_dict()
        expected = upkeep.get(borrower) or before.get(borrower) or {}
        for key in ("own_accounts", "inflows", "devices", "ips", "failures", "installments"):
            if key not in shared and expected:
                assert after[key] == expected[key], f"{detector.name} writes {key} of {borrower}"


def test_detectors_import_no_broker_or_redis_client() -> None:
    modules = sorted(f"detectors.{m.name}" for m in pkgutil.iter_modules(detectors.__path__))
    code = f"import sys, {', '.join(modules)}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert set(modules) <= loaded
    forbidden = ("aiokafka", "redis", "faust.app", "faust.transport")
    assert (
        sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)) == []
    )
