"""What a worker imports before it joins its group: its start-up time (issue 13)."""

from __future__ import annotations

import subprocess
import sys

from streams.worker.app import SLOW_IMPORTS


def test_the_worker_imports_river_only_when_a_model_needs_it() -> None:
    """River (and scipy with it) took about 2 of a worker's 11 s to its first batch; the
    verdict models import it on first use and the worker in a thread while it joins its group."""
    code = (
        "import sys, streams.worker.app, detectors.registry, detectors.engine, "
        "detectors.verdicts, streams.worker.feedback; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('river', 'scipy')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == "[]"


def test_the_modules_imported_ahead_are_those_the_detectors_import() -> None:
    """A model that imports another River module on first use should have it warmed too."""
    from detectors import verdicts

    model = verdicts._new_model(0.05)
    used = {type(step).__module__ for step in model.steps.values()}
    used |= {type(model).__module__, type(model.steps["LogisticRegression"].optimizer).__module__}
    packages = {name.rsplit(".", 1)[0] for name in used}
    assert packages <= set(SLOW_IMPORTS), packages
