"""The simulator's boundaries: ground truth apart from the detectors, names from the contract."""

from __future__ import annotations

import ast
from pathlib import Path

import sim
import sim.typologies
from sim.typologies import ALL, BY_NAME, TYPOLOGIES
from topics import CATEGORIES

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "sim"


def _imported(path: Path) -> set[str]:
    """Top-level packages a module imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_of_sim_imports_detectors_or_streams() -> None:
    # The simulator is what the detectors are scored against: it must not share their code.
    modules = sorted(SIM.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        assert not _imported(path) & {"detectors", "streams"}, path.relative_to(ROOT)


def test_labels_use_the_contracts_categories() -> None:
    assert set(TYPOLOGIES.values()) == set(CATEGORIES)
    assert list(TYPOLOGIES) == [typology.name for typology in ALL]
    assert BY_NAME.keys() == TYPOLOGIES.keys()


def test_each_typology_module_is_named_as_the_detector_that_finds_it() -> None:
    folder = Path(sim.typologies.__file__).parent
    modules = {path.stem for path in folder.glob("*.py")} - {"__init__", "base", "common"}
    detectors = {path.stem for path in (ROOT / "detectors").glob("*.py")}
    assert modules and modules <= detectors, modules - detectors
    planted = {typology.plant.__module__.rsplit(".", 1)[1] for typology in ALL}
    assert planted == modules


def test_the_package_exports_its_public_surface() -> None:
    assert sorted(sim.__all__) == sorted(
        [
            "BASELINE",
            "PROFILES",
            "Profile",
            "SALE_DAY",
            "SLUMP_DAYS",
            "TYPOLOGIES",
            "Simulation",
            "SimulationConfig",
            "iter_jsonl",
            "profile_named",
            "simulate",
            "simulate_stream",
            "write_jsonl",
        ]
    )
    assert all(hasattr(sim, name) for name in sim.__all__)
