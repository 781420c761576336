"""A detector is one unit: its module (thresholds, contract events), its tests, one registry row."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from detectors.engine import Input
from detectors.registry import REGISTRY, Registered, build_detectors, sections
from detectors.thresholds import CONSTRAINTS, SECTIONS, TUNABLES, InvalidThreshold, Thresholds
from topics.names import Source
from topics.records import Login, Repayment, Transaction

ROOT = Path(__file__).resolve().parents[2]
ROWS = [pytest.param(row, id=row.detector.name) for row in REGISTRY]
RECORD_OF = {Source.TRANSACTIONS: Transaction, Source.LOGINS: Login, Source.REPAYMENTS: Repayment}


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def _sources() -> list[Path]:
    """Every Python file of the project (not the virtualenv, not git's or caches)."""
    return sorted(
        path
        for path in ROOT.rglob("*.py")
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    )


def test_the_registry_is_the_only_module_that_names_every_detector() -> None:
    classes = [row.detector.__name__ for row in REGISTRY]
    naming_all = [
        path.relative_to(ROOT).as_posix()
        for path in _sources()
        if all(re.search(rf"\b{name}\b", path.read_text(encoding="utf-8")) for name in classes)
    ]

    assert len(_sources()) > 50  # the scan did find the project
    assert naming_all == ["detectors/registry.py"]


def test_names_sections_and_thresholds_are_unique_and_listed_once() -> None:
    kinds = [row.detector for row in REGISTRY]
    for attribute in ("__name__", "name", "section", "thresholds_type"):
        values = [getattr(kind, attribute) for kind in kinds]
        assert len(set(values)) == len(values), attribute
    assert sorted(row.listed for row in REGISTRY) == list(range(len(REGISTRY)))
    assert [d.name for d in build_detectors(Thresholds())] == [kind.name for kind in kinds]
    assert list(SECTIONS) == list(sections())
    assert list(dict.fromkeys(t.section for t in TUNABLES.values())) == list(SECTIONS)


@pytest.mark.parametrize("row", ROWS)
def test_its_thresholds_sit_beside_it_named_after_its_section(row: Registered) -> None:
    kind = row.detector
    thresholds = kind.thresholds_type

    assert thresholds is not None and dataclasses.is_dataclass(thresholds)
    assert thresholds.__module__ == kind.__module__
    assert _snake(thresholds.__name__.removesuffix("Thresholds")) == kind.section
    assert SECTIONS[kind.section] is thresholds
    assert [f"{kind.section}.{f.name}" for f in dataclasses.fields(thresholds)] == [
        key for key, t in TUNABLES.items() if t.section == kind.section
    ]
    for rule, holds in getattr(thresholds, "CONSTRAINTS", ()):
        assert rule.startswith(f"{kind.section}.") and holds(thresholds())
        assert rule in [text for text, _ in CONSTRAINTS]


@pytest.mark.parametrize("row", ROWS)
def test_it_is_built_from_its_section(row: Registered) -> None:
    kind = row.detector
    changed = _one_change(kind.section)

    [built] = [d for d in build_detectors(changed) if type(d) is kind]

    assert built.thresholds is changed.section(kind.section)
    assert built.thresholds is changed.of(kind.thresholds_type)
    assert built.thresholds is getattr(changed, kind.section)
    assert built.thresholds != kind.thresholds_type()


@pytest.mark.parametrize("row", ROWS)
def test_it_supplies_its_contract_events(row: Registered) -> None:
    events = row.detector.contract_events()

    assert events, f"{row.detector.__name__} supplies no contract events"
    for event in events:
        assert isinstance(event, Input) and event.partition == 0 and event.offset is None
        assert isinstance(event.record, RECORD_OF[event.source])
        assert event.record.ts.utcoffset() is not None
    assert [e.record.asdict() for e in row.detector.contract_events()] == [
        e.record.asdict() for e in events
    ], "contract events must be the same on every call"


def test_contract_event_ids_are_unique_across_detectors() -> None:
    ids = [e.record.event_id for row in REGISTRY for e in row.detector.contract_events()]

    assert len(ids) == len(set(ids))


def _one_change(section: str) -> Thresholds:
    """The defaults with one tunable of ``section`` moved to an end of its range."""
    for key, declared in TUNABLES.items():
        if declared.section != section:
            continue
        for end in (declared.low, declared.high):
            value = (int(end),) if declared.type == "days" else end
            if value == declared.default:
                continue
            try:
                return Thresholds().with_changes({key: value}, "v1")
            except InvalidThreshold:
                continue
    raise AssertionError(f"no tunable of {section} can change")
